"""One loop for everything that works off rows a transaction committed (the outbox relay,
notify's dispatcher): woken at once by LISTEN/NOTIFY (listening again at once when that
connection is lost), with a safety poll in case a notification is missed, retrying at
most every 2 s while the database is away, and draining what was committed before it
stops.

The contract a poller honours: implement ``work()``, which does one bounded pass in its own
transaction(s) and returns True if more may be due right now (then it is called again at
once). It must leave every row it could not finish due again later, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

import asyncpg

from .logs import get_logger

log = get_logger(__name__)


MAX_FAILURE_WAIT = 2.0  # seconds: a database back is used within this


def failure_wait(failures: int) -> float:
    """Seconds before the next pass after ``failures`` failed ones in a row: 0.4, 0.8,
    1.6, then every 2 s, so that work waiting for the database goes soon after it is
    back, however long it was away."""
    return min(0.2 * 2 ** min(failures, 10), MAX_FAILURE_WAIT)  # no overflow, however long


def notify_channel(schema: str, what: str) -> str:
    """The LISTEN/NOTIFY channel that wakes a service's poller of ``what``."""
    return f"{schema}_{what}"


class Poller(ABC):
    name = "poller"

    def __init__(self, dsn: str, pool: asyncpg.Pool, channel: str, interval: float, batch: int):
        self._dsn = dsn
        self._pool = pool
        self._channel = channel
        self._interval = interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    @abstractmethod
    async def work(self) -> bool:
        """One bounded pass; True if more may be due right now."""

    def idle_for(self) -> float:
        """Seconds to wait for a wake-up before the next pass: the safety poll, or less
        when a poller knows something falls due sooner."""
        return self._interval

    def wake(self) -> None:
        """Work now (what a NOTIFY does, from within the process: the gateway wakes its
        relay once a page has been sent)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop after a last pass, so that work committed before shutdown is not left behind."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await self._task
        if self._listener and not self._listener.is_closed():
            await self._listener.close()

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        listener = None
        try:
            listener = await asyncpg.connect(self._dsn, timeout=5)
            await listener.add_listener(self._channel, lambda *_: self._wake.set())
            # a lost listening connection (a database restart, a terminated backend)
            # wakes the loop, which listens again and makes a pass for what it missed
            listener.add_termination_listener(lambda *_: self._wake.set())
            self._listener = listener
        except Exception:
            self._listener = None  # fall back to polling until the database returns
            if listener is not None:
                listener.terminate()

    async def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stopping
            self._wake.clear()
            await self._listen()
            try:
                more = await self.work()
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 100 == 0:
                    log.exception(f"{self.name}_failed", failures=failures)
                else:  # the same outage: once with its traceback is enough
                    log.warning(f"{self.name}_failed", failures=failures, error=type(exc).__name__)
                if stopping:
                    return
                await asyncio.sleep(failure_wait(failures))
                continue
            if more:
                continue  # more waiting (also when stopping: drain what was committed)
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(self.idle_for(), 0.0))
