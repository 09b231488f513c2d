"""Admitting a batch: several events in one message (``contracts.BATCH_CONTENT_TYPE``,
``docs/architecture/outbox.md``), each admitted exactly as if it had come alone."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from contracts import CloudEvent, EventData
from contracts.enums import RejectionCode
from contracts.events import envelope_type
from contracts.limits import MAX_BODY_BYTES

from .admission import _SUSPICIOUS, Admitted, _reason, admit, check_origin, printable
from .delivery import Delivery
from .errors import BadMessage
from .names import Names

MAX_BATCH_EVENTS = 100  # events in one batch message (the relay sends at most outbox.MAX_BATCHED)


@dataclass(frozen=True, eq=False)
class Batched(Admitted):
    """An event admitted with its whole batch: ``body`` is the batch's, ``parsed`` reads it
    as plain JSON (once for all the batch's events, when first needed), the event at
    ``index`` in it."""

    parsed: Callable[[], Any]
    index: int

    @functools.cached_property
    def raw(self) -> dict[str, Any]:
        """The event as plain JSON, from the batch's."""
        value = self.parsed()[self.index]
        return value if isinstance(value, dict) else {}


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
    quick = _admit_quickly(body, delivery, names, models[event_type], event_type)
    if quick is not None:
        return quick
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


@functools.cache
def _batch_of(model: type[EventData]) -> TypeAdapter[list[CloudEvent[Any]]]:
    """The batch of ``model``'s envelopes, as one type (made once: it costs a schema)."""
    return TypeAdapter(list[envelope_type(model)])  # type: ignore[misc]


def _admit_quickly(
    body: bytes, delivery: Delivery, names: Names, model: type[EventData], event_type: str
) -> list[Batched] | None:
    """The well-formed case, the whole batch validated at once, strictly, with the checks
    ``admit`` makes on an event on its own; or None to admit each event in turn (which
    says which is wrong)."""
    if _SUSPICIOUS.search(body) is not None:
        return None
    try:
        typed = _batch_of(model).validate_json(body, strict=True)
    except ValueError:
        return None
    if not 1 <= len(typed) <= MAX_BATCH_EVENTS or any(e.type != event_type for e in typed):
        return None
    if check_origin(names, delivery, event_type) is not None:
        return None
    parsed = functools.cache(lambda: json.loads(body))  # once, for all, if ever needed
    return [Batched(e, e.data, body, parsed, n) for n, e in enumerate(typed)]
