"""Admitting a batch: several events in one message (``contracts.BATCH_CONTENT_TYPE``,
``docs/architecture/outbox.md``), each admitted exactly as if it had come alone."""

from __future__ import annotations

import json
from collections.abc import Mapping

from contracts import EventData
from contracts.enums import RejectionCode
from contracts.limits import MAX_BODY_BYTES

from .admission import Admitted, _reason, admit, printable
from .delivery import Delivery
from .errors import BadMessage
from .names import Names

MAX_BATCH_EVENTS = 100  # events in one batch message (the relay sends at most outbox.MAX_BATCHED)


def admit_batch(
    body: bytes,
    delivery: Delivery,
    *,
    names: Names,
    service: str,
    models: Mapping[str, type[EventData]],
    trusted: frozenset[str],
    batched: frozenset[str],
) -> list[Admitted]:
    """Each event of a batch message (a JSON array of envelopes), admitted exactly as if it
    had come alone; a ``BadMessage`` for the message if it is not a batch this service
    takes, or if any one event would be refused (saying which)."""
    event_type = delivery.routing_key.rpartition(".")[0]
    if (
        delivery.exchange != names.events
        or delivery.forwarded
        or event_type not in batched
        or event_type not in models
    ):
        detail = f"{service} takes no batch of {printable(delivery.routing_key, 255)} this way"
        reason = _reason(RejectionCode.UNSUPPORTED_TYPE, detail, "type")
        raise BadMessage("unsupported_type", detail, [reason])
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage("too_large", f"a batch is at most {MAX_BODY_BYTES} bytes")
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        raise BadMessage("unreadable", "a batch is a JSON array of events") from None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_EVENTS:
        raise BadMessage("unreadable", f"a batch is a JSON array of 1 to {MAX_BATCH_EVENTS} events")
    admitted = []
    for n, item in enumerate(items):
        try:
            one = admit(
                json.dumps(item, ensure_ascii=False).encode(),
                delivery,
                names=names,
                service=service,
                models=models,
                trusted=trusted,
            )
        except BadMessage as exc:
            exc.detail = f"event {n} of the batch: {exc.detail}"
            raise
        if one.envelope.type != event_type:
            raise BadMessage("unsupported_type", f"event {n} of the batch is not {event_type}")
        admitted.append(one)
    return admitted
