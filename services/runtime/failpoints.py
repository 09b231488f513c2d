"""Crash injection for tests: ``LINKWELL_FAILPOINTS="after_commit=0.02,after_publish=0.02"``
makes the process die (``os._exit``, as abrupt as kill -9) at that point with that
probability. Unset, as in production, every failpoint is a dictionary miss.

Points: ``after_claim`` (in the transaction, before the handler), ``mid_batch`` (half of
a batch handled, in its transaction), ``before_commit``
(handler done, not committed), ``after_commit`` (committed, not acked),
``before_publish`` (outbox rows claimed, not published),
``after_publish`` (outbox rows published, not marked), ``after_send`` (notify's
dispatcher: a channel batch sent, not marked), ``after_park`` (a retry or
dead-letter copy confirmed, original not acked).
"""

from __future__ import annotations

import os
import random
import sys

POINTS = (
    "after_claim",
    "mid_batch",
    "before_commit",
    "after_commit",
    "before_publish",
    "after_publish",
    "after_send",
    "after_park",
)


def _parse(spec: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, probability = item.partition("=")
        if name not in POINTS:
            raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(POINTS)}")
        out[name] = float(probability or 1.0)
    return out


_ACTIVE = _parse(os.environ.get("LINKWELL_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    probability = _ACTIVE.get(name)
    if probability is not None and random.random() < probability:
        print(f'{{"event": "failpoint", "point": "{name}"}}', file=sys.stderr, flush=True)
        os._exit(137)
