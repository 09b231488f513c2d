"""The import's pacing rule: it gives way while any consumed queue of the pipeline is
longer than its allowance."""

from services.ops.importer import PIPELINE, QUEUE_ALLOWANCE, may_send
from services.registry import SERVICE_DEFS


def test_the_import_sends_while_every_consumed_queue_is_short():
    assert may_send({}, QUEUE_ALLOWANCE)  # nothing consumed yet: nothing to wait for
    assert may_send({"ns.intake": 0, "ns.triage": QUEUE_ALLOWANCE}, QUEUE_ALLOWANCE)


def test_the_import_waits_while_any_consumed_queue_is_long():
    assert not may_send({"ns.intake": 0, "ns.notify": QUEUE_ALLOWANCE + 1}, QUEUE_ALLOWANCE)
    assert not may_send({"ns.intake": 5000}, QUEUE_ALLOWANCE)


def test_the_import_watches_every_service_of_the_pipeline():
    assert set(PIPELINE) == set(SERVICE_DEFS)
