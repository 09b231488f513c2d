"""Prometheus metrics, served at /metrics by each service.

Counters per service and event type (a closed set: a type no route handles counts as
``other``, so a sender cannot grow the label space). Gauges that describe stored state
(outbox backlog, waitlists) are refreshed from the database by the runner every few
seconds, so every replica reports the same shared truth; sum counters, not gauges.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

OTHER = "other"

HANDLED = Counter(
    "linkwell_messages_handled",
    "Messages handled and committed (duplicates included, see outcome; not_needed: an "
    "event its handler has no use for, acknowledged with no transaction).",
    ["service", "type", "outcome"],
)
FAILED = Counter(
    "linkwell_messages_failed",
    "Handling attempts that raised (each is retried, waited or dead-lettered).",
    ["service", "type"],
)
RETRIED = Counter(
    "linkwell_messages_retried",
    "Messages parked on a delay queue: a retry after a failure, or a wait for "
    "infrastructure or a missing dependency (see kind).",
    ["service", "type", "kind"],
)
DEAD_LETTERED = Counter(
    "linkwell_messages_dead_lettered",
    "Messages moved to the service's dead-letter queue, by reason.",
    ["service", "type", "reason"],
)
EMITTED = Counter("linkwell_events_emitted", "Events committed to the outbox.", ["service", "type"])
LATENCY = Histogram(
    "linkwell_handler_seconds",
    "Time from delivery to commit of a handled message.",
    ["service", "type"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTBOX_BACKLOG = Gauge("linkwell_outbox_backlog", "Outbox rows not yet published.", ["service"])
OUTBOX_OLDEST = Gauge(
    "linkwell_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when empty).",
    ["service"],
)
STATEMENTS = Counter(
    "linkwell_sql_statements",
    "SQL statements the service sent to PostgreSQL (counted only where "
    "LINKWELL_COUNT_STATEMENTS=1, as the benchmark sets: the cost of an event, measured).",
    ["service"],
)
READY = Gauge("linkwell_ready", "1 when the service is ready (see /readyz).", ["service"])


def type_label(event_type: str | None, known: Container[str]) -> str:
    return event_type if event_type in known else OTHER


async def refresh_outbox(conn: asyncpg.Connection, service: str) -> None:
    backlog, oldest = await conn.fetchrow(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
        " FROM outbox WHERE published_at IS NULL"
    )
    OUTBOX_BACKLOG.labels(service).set(backlog)
    OUTBOX_OLDEST.labels(service).set(float(oldest))


_SEEN: dict[int, set[str]] = {}


def set_per_label(gauge: Gauge, rows: Iterable[tuple[str, float]]) -> None:
    """Set a one-label gauge to exactly these values; labels no longer present go to 0."""
    values = dict(rows)
    seen = _SEEN.setdefault(id(gauge), set())
    for label in seen - values.keys():
        gauge.labels(label).set(0)
    for label, value in values.items():
        gauge.labels(label).set(value)
    seen.update(values)


def total(counter: Counter, service: str) -> float:
    """A counter's value summed over every label but the service."""
    found = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("service") == service:
                found += sample.value
    return found


def log_cost(service: str) -> None:
    """On SIGUSR1: what this process has cost so far, for the benchmark to difference
    (messages handled, events committed to the outbox, SQL statements when counted)."""
    from .db import counting_statements
    from .logs import get_logger

    get_logger(__name__).info(
        "cost_counters",
        handled=total(HANDLED, service),
        emitted=total(EMITTED, service),
        statements=total(STATEMENTS, service) if counting_statements() else None,
    )
