"""Retention: every service removes, on a schedule, what it no longer needs to keep.

Each service declares its rules (``ServiceDef.retention``) beside the runtime's own
(``RUNTIME_RULES``: published outbox rows, inbox entries, held early events). A rule names
a table of the service's own schema, the time column that starts its clock, the limit
(a setting, so an organisation's records manager can lengthen or shorten it), an optional
condition (only rows that are finished with: a published outbox row, an ended session)
and what to do once the limit has passed: delete the row, or redact it (set columns to
given SQL expressions, keeping the rest: an anonymous count survives).

The runner runs every rule every ``LINKWELL_RETENTION_INTERVAL`` seconds, in batches of
``LINKWELL_RETENTION_BATCH`` rows, each batch its own short transaction, so a sweep never
holds a lock for long. What it removed is counted in ``linkwell_retention_removed``
(service, store, action) and logged as counts only. The schedule, per kind of record, with
its source, is ``docs/retention.md``; what each store holds, ``docs/data-map.md``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from prometheus_client import Counter

from .logs import get_logger

log = get_logger(__name__)

REMOVED = Counter(
    "linkwell_retention_removed",
    "Rows a retention rule deleted or redacted once their time limit had passed.",
    ["service", "store", "action"],
)

DAY = 86_400.0
YEAR = 365.25 * DAY  # a calendar year on average: "8 years" is never short of 8 years
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

Action = Literal["delete", "redact"]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` whose ``column`` is older than the limit (and which match
    ``where``) are deleted, or redacted by setting ``redact`` (column -> SQL expression).
    ``limit`` reads the limit, in seconds, from the shared and the service's own settings."""

    store: str  # the name it is counted and documented under
    table: str
    column: str
    limit: Callable[[Any, Any], float]  # (shared settings, own settings) -> seconds
    action: Action = "delete"
    where: str = "true"  # trusted SQL from the service definition, never from input
    redact: dict[str, str] = field(default_factory=dict)
    # a redacted row must not be redacted again: it no longer matches this
    redacted: str | None = None
    # another schema the service owns (``ServiceDef.schemas``: "reporting"), or its own
    schema: str | None = None

    def __post_init__(self) -> None:
        names = (self.table, self.column, *self.redact, *((self.schema,) if self.schema else ()))
        for name in names:
            if not _IDENT.match(name):
                raise ValueError(f"retention rule {self.store}: {name!r} is not a plain name")
        if self.action == "redact" and (not self.redact or self.redacted is None):
            raise ValueError(f"retention rule {self.store}: redact needs columns and a test")
        if self.action == "delete" and self.redact:
            raise ValueError(f"retention rule {self.store}: delete takes no columns")


def cutoff(now: datetime, limit_seconds: float) -> datetime:
    """Rows timed before this have passed the limit."""
    if limit_seconds <= 0:
        raise ValueError("a retention limit is a positive number of seconds")
    return now - timedelta(seconds=limit_seconds)


def expired(stamp: datetime | None, now: datetime, limit_seconds: float) -> bool:
    """Whether a row timed ``stamp`` has passed the limit (an untimed row never has)."""
    return stamp is not None and stamp < cutoff(now, limit_seconds)


def ended(ends: Iterable[datetime | None], now: datetime, limit_seconds: float) -> bool:
    """Whether something tied to several referrals (intake's record of a person) has
    passed its limit: every one of them has ended (an open one, ``None``, keeps it) and
    the last of them ended before the limit. With no referral at all it has no clock."""
    stamps = list(ends)
    if not stamps or any(stamp is None for stamp in stamps):
        return False
    return expired(max(s for s in stamps if s is not None), now, limit_seconds)


def statement(rule: Rule, table: str | None = None) -> str:
    """One batch: at most $2 rows whose clock started before $1 (``table``: the rule's
    table, qualified by its schema when the rule names one). A rule's ``where`` may use
    $1, the cutoff, too (rows whose referral ended before it)."""
    table = table or rule.table
    chosen = (
        f"SELECT ctid FROM {table} WHERE {rule.column} < $1 AND ({rule.where})"
        + (f" AND NOT ({rule.redacted})" if rule.redacted else "")
        + " LIMIT $2 FOR UPDATE SKIP LOCKED"
    )
    if rule.action == "delete":
        return f"DELETE FROM {table} WHERE ctid IN ({chosen})"
    sets = ", ".join(f"{column} = {expr}" for column, expr in rule.redact.items())
    return f"UPDATE {table} SET {sets} WHERE ctid IN ({chosen})"


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "DELETE 12", "UPDATE 3"


async def apply(
    pool: asyncpg.Pool,
    rule: Rule,
    now: datetime,
    limit_seconds: float,
    batch: int,
    table: str | None = None,
) -> int:
    """Run one rule to completion, a batch a transaction; returns the rows it removed."""
    before = cutoff(now, limit_seconds)
    sql = statement(rule, table)
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            done = _count(await conn.execute(sql, before, batch))
        total += done
        if done < batch:
            return total


async def sweep(
    pool: asyncpg.Pool,
    service: str,
    rules: Iterable[Rule],
    settings: Any,
    now: datetime,
    batch: int = 500,
    own: Any = None,
) -> dict[str, int]:
    """Every rule once, at ``now``; what each removed (counted and logged, counts only)."""
    removed: dict[str, int] = {}
    for rule in rules:
        table = f"{settings.names.schema(rule.schema)}.{rule.table}" if rule.schema else None
        count = await apply(pool, rule, now, rule.limit(settings, own), batch, table)
        removed[rule.store] = count
        if count:
            REMOVED.labels(service, rule.store, rule.action).inc(count)
    if any(removed.values()):
        log.info("retention_swept", **{k: v for k, v in removed.items() if v})
    return removed


async def run_periodically(
    pool: asyncpg.Pool,
    service: str,
    rules: list[Rule],
    settings: Any,
    interval: float,
    batch: int,
    own: Any = None,
    clock: Clock = utc_now,
) -> None:
    """Sweep now, then every ``interval`` seconds, until cancelled. A failed sweep (the
    database away) is logged and tried again next time: nothing is lost by waiting."""
    while True:
        try:
            await sweep(pool, service, rules, settings, clock(), batch, own)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("retention_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)


async def of(runner: Any) -> None:
    """A started runner's sweeps: the runtime's rules and its service's."""
    await run_periodically(
        runner.pool,
        runner.service.name,
        [*RUNTIME_RULES, *runner.service.retention],
        runner.settings,
        runner.settings.retention_interval,
        runner.settings.retention_batch,
        own=runner.own_settings,
    )


# ------------------------------------------------------------------ the runtime's own stores

RUNTIME_RULES: tuple[Rule, ...] = (
    # a published event's copy: the broker has it; kept a while to trace a delivery
    Rule(
        "outbox_published",
        "outbox",
        "published_at",
        lambda s, _: s.retain_outbox_days * DAY,
        where="published_at IS NOT NULL",
    ),
    # handled event ids (no personal data): kept past any resend or redelivery window
    Rule("inbox", "inbox", "handled_at", lambda s, _: s.retain_inbox_days * DAY),
    # an event held for a referral that never became known
    Rule("early_event", "early_event", "received_at", lambda s, _: s.retain_early_days * DAY),
)


# ------------------------------------------------------------------ the broker's stores


def queue_policies(settings: Any) -> list[dict[str, Any]]:
    """Broker policies that give messages resting on queues a time limit (a message TTL:
    the broker drops a message older than it). A policy, not a queue argument, so that
    queues declared before it keep working (a changed ``x-`` argument fails redeclaration)
    and an operator can change a limit without recreating a queue. Applied by
    ``linkwell access apply`` and written into the definitions file.

    - every dead-letter queue, a service's (``<ns>.<service>.dead-letter``) or an
      organisation's (``<ns>.org.<user>.dead-letter``): ``LINKWELL_RETAIN_DEAD_LETTER_DAYS``,
      time enough for an operator to read and replay it (``linkwell dlq``);
    - ``<ns>.events.unrouted``, emitted events no subscriber binds yet (a GP integrator
      without a queue): ``LINKWELL_RETAIN_UNROUTED_DAYS``, for replay once it has one.

    A queue takes one policy, the highest priority's: an operator policy on these queues
    must carry ``message-ttl`` too."""
    ns = re.escape(settings.names.ns)
    return [
        {
            "name": f"{settings.names.ns}-dead-letter-retention",
            "pattern": rf"^{ns}\..*\.dead-letter$",
            "apply-to": "queues",
            "priority": 0,
            "definition": {"message-ttl": _ms(settings.retain_dead_letter_days)},
        },
        {
            "name": f"{settings.names.ns}-unrouted-retention",
            "pattern": rf"^{re.escape(settings.names.events_unrouted)}$",
            "apply-to": "queues",
            "priority": 0,
            "definition": {"message-ttl": _ms(settings.retain_unrouted_days)},
        },
    ]


def _ms(days: float) -> int:
    return round(days * DAY * 1000)
