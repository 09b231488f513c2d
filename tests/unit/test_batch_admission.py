"""A well-formed batch is admitted whole, in one validation, exactly as each of its events
would be on its own; anything else takes the event-by-event path, which says what is wrong."""

from __future__ import annotations

import json

import pytest

from services.runtime import batch_admission
from services.runtime.admission import admit
from services.runtime.delivery import Delivery
from services.runtime.errors import BadMessage

from .test_batches import KEY, MODELS, NAMES, record
from .test_batches import admit as admit_batch


def one_by_one(monkeypatch) -> list[bytes]:
    """The bodies the event-by-event path admits (it is taken only if this fills)."""
    seen: list[bytes] = []

    def counting(body, *args, **kwargs):
        seen.append(body)
        return admit(body, *args, **kwargs)

    monkeypatch.setattr(batch_admission, "admit", counting)
    return seen


def test_a_well_formed_batch_is_admitted_whole_as_each_event_alone(monkeypatch):
    events = [record(), record(), record()]
    seen = one_by_one(monkeypatch)
    admitted = admit_batch(events)
    assert seen == []
    delivery = Delivery(NAMES.events, KEY, user_id="linkwell-intake")
    for one, event in zip(admitted, events, strict=True):
        alone = admit(
            json.dumps(event).encode(),
            delivery,
            names=NAMES,
            service="audit",
            models=MODELS,
            trusted=frozenset(),
        )
        assert one.envelope == alone.envelope and one.data == alone.data
        assert one.raw == event  # its own event, read from the batch when needed


def test_what_the_whole_batch_does_not_pass_is_taken_event_by_event(monkeypatch):
    events = [record(), record()]
    events[1]["data"]["recipient_org"] = "Dr Jones, 12 High St"
    seen = one_by_one(monkeypatch)
    with pytest.raises(BadMessage) as refused:
        admit_batch(events)
    assert refused.value.detail.startswith("event 1 of the batch") and len(seen) == 2


def test_an_escaped_control_character_takes_the_full_checks(monkeypatch):
    events = [record()]
    events[0]["data"]["by"] = "a\u0000b"
    seen = one_by_one(monkeypatch)
    with pytest.raises(BadMessage) as refused:
        admit_batch(events)
    assert refused.value.reason == "schema_invalid" and len(seen) == 1
