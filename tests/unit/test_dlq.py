"""Dead letters without I/O: what a replayed copy carries, what an operator is shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from contracts.schema import example
from services.ops import dlq
from services.ops.dlq_cli import age, table
from services.runtime.names import Names

NAMES = Names("linkwell")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FAILED = NOW - timedelta(minutes=12, seconds=5)


def consumer_headers(**extra: object) -> dict[str, object]:
    """What ``Consumer._dead_letter`` writes on a referral that kept failing."""
    return {
        "x-linkwell-attempt": 2,
        "x-linkwell-waits": 1,
        "x-linkwell-original-exchange": "linkwell.inbound",
        "x-linkwell-original-routing-key": "referral.submitted.v1",
        "x-linkwell-user-id": "A81001",
        "x-linkwell-last-error": "RaiseError: store refused",
        "x-linkwell-reason": "handler_failed",
        "x-linkwell-detail": "RaiseError: store refused",
        "x-linkwell-service": "intake",
        "x-linkwell-attempts": 3,
        "x-linkwell-failed-at": FAILED.isoformat(),
        "x-death": [
            {
                "count": 2,
                "reason": "expired",
                "queue": "linkwell.intake.retry.5000ms",
                "exchange": "",
                "routing-keys": ["linkwell.intake.retry.5000ms"],
            }
        ],
        "x-first-death-queue": "linkwell.intake.retry.500ms",
        "x-first-death-reason": "expired",
        "x-first-death-exchange": "",
        "x-delivery-count": 4,
        "traceparent": "00-abc-def-01",
        **extra,
    }


def referral_body() -> bytes:
    env = example("referral.submitted.v1")
    env["id"] = "5b1f3c1e-8f0e-4a55-9c55-0d4f7f0b9a01"
    env["data"]["person"]["contact"]["email"] = "sam.example@nhs.net"
    return json.dumps(env).encode()


def personal_data() -> list[str]:
    person = example("referral.submitted.v1")["data"]["person"]
    return [
        person["given_name"],
        person["family_name"],
        person["nhs_number"],
        person["date_of_birth"],
        person["contact"]["phone"],
        "sam.example@nhs.net",
    ]


# ---------------------------------------------------------------- the replayed copy


def test_replay_keeps_where_and_who_resets_counts_and_drops_the_dead_letter_headers():
    out = dlq.replay_headers(consumer_headers(), NOW)
    assert out == {
        "x-linkwell-attempt": 0,
        "x-linkwell-waits": 0,
        "x-linkwell-original-exchange": "linkwell.inbound",
        "x-linkwell-original-routing-key": "referral.submitted.v1",
        "x-linkwell-user-id": "A81001",
        "x-linkwell-replayed-at": NOW.isoformat(),
        "traceparent": "00-abc-def-01",  # the sender's own headers stay
    }


def test_replay_keeps_x_linkwell_headers_it_does_not_know():
    out = dlq.replay_headers(consumer_headers(**{"x-linkwell-tenant": "t1"}), NOW)
    assert out["x-linkwell-tenant"] == "t1"


def test_replay_time_is_utc():
    local = NOW.astimezone(timezone(timedelta(hours=1)))
    assert dlq.replay_headers({}, local)["x-linkwell-replayed-at"] == "2026-11-23T10:00:00+00:00"


# ---------------------------------------------------------------- which dead letters are ours


def test_a_consumer_dead_letter_is_trusted():
    assert dlq.written_by_consumer(consumer_headers(), NAMES, "intake")


def test_another_services_or_a_broker_dead_letter_is_not():
    assert not dlq.written_by_consumer(consumer_headers(), NAMES, "triage")
    killed = consumer_headers()
    killed["x-death"] = [
        {"reason": "delivery_limit", "queue": "linkwell.intake", "exchange": "linkwell.events"},
        *killed["x-death"],  # type: ignore[list-item]
    ]
    assert not dlq.written_by_consumer(killed, NAMES, "intake")
    assert dlq.broker_death(killed, NAMES, "intake") is not None
    assert not dlq.written_by_consumer({"x-linkwell-service": "intake"}, NAMES, "intake")


# ---------------------------------------------------------------- what an operator sees


def test_read_shows_identifiers_and_the_failure_only():
    letter = dlq.read(NAMES, "intake", 0, referral_body(), consumer_headers(), None, None)
    assert letter.id == "5b1f3c1e-8f0e-4a55-9c55-0d4f7f0b9a01"
    assert letter.event_type == "referral.submitted.v1"
    assert letter.sender == "A81001"
    assert letter.reason == "handler_failed"
    assert letter.attempts == 3
    assert letter.failed_at == FAILED
    assert letter.original_exchange == "linkwell.inbound"
    assert letter.original_routing_key == "referral.submitted.v1"
    assert letter.queue == "linkwell.intake.dead-letter"
    assert letter.replayable
    shown = json.dumps(letter.as_json(NOW)) + table([letter], NOW)
    for secret in personal_data():
        assert secret not in shown


def test_read_takes_nothing_personal_even_from_odd_messages():
    # a sender that put an NHS number in the id, a detail with a phone number, a
    # terminal escape in a header, a source that is not an organisation
    env = json.loads(referral_body())
    env["id"] = "9990000018"
    env["source"] = "mailto:sam.example@nhs.net"
    env["type"] = "referral.submitted.v1 Sam Example"
    headers = consumer_headers(**{"x-linkwell-detail": "call 07700 900123\x1b[2J now"})
    letter = dlq.read(NAMES, "intake", 3, json.dumps(env).encode(), headers, None, None)
    assert letter.id.startswith("sha256:")
    assert letter.sender is None
    assert letter.event_type is None
    assert "\x1b" not in letter.detail and "07700" not in letter.detail
    shown = json.dumps(letter.as_json(NOW)) + table([letter], NOW)
    for secret in [*personal_data(), "9990000018"]:
        assert secret not in shown


def test_read_of_a_message_that_is_not_json():
    letter = dlq.read(NAMES, "intake", 0, b"\x00not json", consumer_headers(), "amqp-id-1", None)
    assert letter.id == "amqp-id-1"
    assert letter.sender is None and letter.event_type is None
    assert dlq.read(NAMES, "intake", 0, b"\x00", consumer_headers()).id.startswith("sha256:")


def test_read_of_a_broker_dead_letter_shows_it_is_not_replayable():
    headers = {
        "x-linkwell-original-exchange": "linkwell.events",  # the sender's, perhaps forged
        "x-delivery-count": 20,
        "x-death": [
            {
                "reason": "delivery_limit",
                "queue": "linkwell.intake",
                "time": FAILED,
                "exchange": "linkwell.inbound",
            }
        ],
    }
    letter = dlq.read(NAMES, "intake", 0, referral_body(), headers)
    assert letter.reason == "delivery_limit"
    assert letter.failed_at == FAILED
    assert letter.original_exchange is None
    assert not letter.replayable
    assert "not replayable" in table([letter], NOW)


def test_table_is_aligned_with_detail_last():
    first = dlq.read(NAMES, "intake", 0, referral_body(), consumer_headers())
    other = dlq.read(
        NAMES,
        "notify",
        0,
        b"{}",
        consumer_headers(**{"x-linkwell-service": "notify", "x-linkwell-reason": "not_json"}),
    )
    lines = table([first, other], NOW).splitlines()
    assert lines[0].split()[:3] == ["SERVICE", "ID", "TYPE"]
    start = lines[0].index("REASON")
    assert lines[1][start:].startswith("handler_failed")
    assert lines[2][start:].startswith("not_json")
    assert "2026-11-23T09:47:55Z" in lines[1] and "12m05s" in lines[1]
    assert lines[1].endswith("RaiseError: store refused")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (-3, "0s"), (42, "42s"), (725, "12m05s"), (11_220, "3h07m"), (187_200, "2d04h")],
)
def test_age(seconds, shown):
    assert age(seconds) == shown


def test_select_needs_exactly_one_way_of_choosing():
    letter = dlq.read(NAMES, "intake", 0, referral_body(), consumer_headers())
    assert dlq.select(["5b1f3c1e-8f0e-4a55-9c55-0d4f7f0b9a01"])(letter)
    assert not dlq.select(["other"])(letter)
    assert dlq.select(reason="handler_failed")(letter)
    assert not dlq.select(reason="not_json")(letter)
    assert dlq.select(everything=True)(letter)
    for wrong in ({}, {"ids": ["a"], "everything": True}, {"reason": "x", "everything": True}):
        with pytest.raises(ValueError):
            dlq.select(**wrong)
