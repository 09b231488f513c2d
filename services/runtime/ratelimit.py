"""Rate limits (the gateway's public form, sign-ins to the gateway and the dashboard),
pure: a sliding window of counts per key, with the
clock given (tests turn it by hand). In memory, per process: each gateway replica limits
what reaches it, and a restart forgets, which errs towards letting a person in."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 100_000  # clients remembered at once; the oldest are forgotten beyond it


@dataclass
class Window:
    """At most ``limit`` events per ``seconds`` for each key."""

    limit: int
    seconds: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, key: str) -> bool:
        """Count one event for ``key`` if it is within the limit; False (not counted) if not."""
        now = self.clock()
        times = self._seen.get(key)
        if times is None:
            if len(self._seen) >= MAX_KEYS:
                self._forget_oldest(now)
            times = self._seen[key] = deque()
        while times and times[0] <= now - self.seconds:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may try again (0: now)."""
        times = self._seen.get(key)
        if not times or len(times) < self.limit:
            return 0
        return max(1, int(times[0] + self.seconds - self.clock() + 0.999))

    def _forget_oldest(self, now: float) -> None:
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= now - self.seconds]:
            del self._seen[key]
        while len(self._seen) >= MAX_KEYS:
            del self._seen[next(iter(self._seen))]


@dataclass
class Limits:
    """The gateway's limits: form posts per client and from everyone, and sends (a
    referral, a status check) per client."""

    per_client: Window
    everyone: Window
    sends: Window

    @classmethod
    def of(
        cls,
        client_per_minute: int,
        global_per_minute: int,
        sends_per_hour: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> Limits:
        return cls(
            Window(client_per_minute, 60.0, clock),
            Window(global_per_minute, 60.0, clock),
            Window(sends_per_hour, 3600.0, clock),
        )

    def post(self, client: str) -> int:
        """0 if this client may post now, else the seconds to wait."""
        if not self.per_client.allow(client):
            return self.per_client.retry_after(client)
        if not self.everyone.allow("*"):
            return self.everyone.retry_after("*")
        return 0

    def send(self, client: str) -> int:
        """0 if this client may send (a referral, a status check) now, else seconds to wait."""
        if not self.sends.allow(client):
            return self.sends.retry_after(client)
        return 0
