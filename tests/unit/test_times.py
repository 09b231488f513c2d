"""Times nobody could have meant (``contracts.times``): an event dated more than the clock
skew ahead of Linkwell's clock, or about a referral and dated more than the skew before
Linkwell received it, is refused as ``time_implausible`` naming the field. And the
contract's examples tell one referral's journey in an order that passes these rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts import EVENTS, Direction
from contracts.enums import RejectionCode
from contracts.events import ReferralSubmitted, parse_event
from contracts.limits import CLOCK_SKEW
from contracts.schema import EXAMPLES_DIR, example
from contracts.times import ahead, before_receipt, implausible, stated_times
from services.intake.domain import Accept, Reject, assess

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RECEIVED = NOW - timedelta(days=10)
SECOND = timedelta(seconds=1)
STORY_REFERRAL = "0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30"

# every time a sender states, per inbound type (what the rules judge)
STATED = {
    "referral.submitted.v1": ["data.consent.recorded_at", "data.submitted_at"],
    "linkworker.registered.v1": ["data.registered_at"],
    "linkworker.updated.v1": ["data.updated_at"],
    "contact.recorded.v1": ["data.occurred_at"],
    "plan.agreed.v1": ["data.agreed_at"],
    "wellbeing.measured.v1": ["data.taken_at"],
    "note.shared.v1": ["data.shared_at"],
    "referral.held.v1": ["data.held_at"],
    "referral.resumed.v1": ["data.resumed_at"],
    "referral.transferred.v1": ["data.transferred_at"],
    "referral.closed.v1": ["data.closed_at"],
    "referral.withdrawn.v1": ["data.withdrawn_at"],
    "referral.identity_confirmed.v1": ["data.confirmed_at"],
    # at most the skew ahead: an operator waits for answers five minutes at most
    "subject.requested.v1": ["data.reply_by"],
}


def data_of(event_type: str):
    return parse_event(EVENTS[event_type].model, example(event_type)).data


def test_the_skew_is_five_minutes() -> None:
    assert CLOCK_SKEW == timedelta(minutes=5)


def test_every_time_a_sender_states_is_found_nested_parts_included() -> None:
    inbound = [t for t, s in EVENTS.items() if s.model.DIRECTION is Direction.INBOUND]
    assert sorted(STATED) == sorted(inbound)
    for event_type, fields in STATED.items():
        assert [path for path, _ in stated_times(data_of(event_type))] == fields, event_type


def test_a_plans_review_date_is_not_a_time_that_happened() -> None:
    plan = data_of("plan.agreed.v1")
    assert plan.goals and [path for path, _ in stated_times(plan)] == ["data.agreed_at"]


def test_a_time_up_to_the_skew_ahead_is_believed_beyond_it_refused() -> None:
    assert ahead("data.occurred_at", NOW, NOW) is None
    assert ahead("data.occurred_at", NOW + CLOCK_SKEW, NOW) is None
    reason = ahead("data.occurred_at", NOW + CLOCK_SKEW + SECOND, NOW)
    assert reason is not None and reason.code is RejectionCode.TIME_IMPLAUSIBLE
    assert reason.field == "data.occurred_at"
    assert "5 minutes" in reason.message and "future" in reason.message


def test_a_time_up_to_the_skew_before_receipt_is_believed_beyond_it_refused() -> None:
    assert before_receipt("data.occurred_at", RECEIVED, RECEIVED) is None
    assert before_receipt("data.occurred_at", RECEIVED - CLOCK_SKEW, RECEIVED) is None
    reason = before_receipt("data.occurred_at", RECEIVED - CLOCK_SKEW - SECOND, RECEIVED)
    assert reason is not None and reason.code is RejectionCode.TIME_IMPLAUSIBLE
    assert reason.field == "data.occurred_at"
    assert "before Linkwell received this referral" in reason.message
    assert RECEIVED.strftime("%Y-%m-%dT%H:%M:%SZ") in reason.message  # so the sender can fix it
    assert "5 minutes" in reason.message


def contact(at: datetime):
    data = example("contact.recorded.v1")["data"] | {"occurred_at": at.isoformat()}
    return EVENTS["contact.recorded.v1"].model.model_validate(data)


def test_a_contact_dated_before_the_referral_was_received_is_refused() -> None:
    [reason] = implausible(NOW, contact(RECEIVED - timedelta(days=1)), NOW, RECEIVED)
    assert (reason.code, reason.field) == (RejectionCode.TIME_IMPLAUSIBLE, "data.occurred_at")


def test_a_contact_an_hour_ahead_is_refused_known_referral_or_not() -> None:
    for received in (RECEIVED, None):
        [reason] = implausible(NOW, contact(NOW + timedelta(hours=1)), NOW, received)
        assert (reason.code, reason.field) == (RejectionCode.TIME_IMPLAUSIBLE, "data.occurred_at")


def test_without_the_referrals_receipt_only_the_future_is_judged() -> None:
    assert implausible(NOW, contact(RECEIVED - timedelta(days=1)), NOW) == []


def test_the_envelope_time_is_judged_against_the_future_only() -> None:
    late = contact(NOW)
    [reason] = implausible(NOW + timedelta(hours=1), late, NOW, RECEIVED)
    assert reason.field == "time" and reason.code is RejectionCode.TIME_IMPLAUSIBLE
    # the sender's clock when sending, not a step of the journey: not held to the receipt
    assert implausible(RECEIVED - timedelta(days=1), late, NOW, RECEIVED) == []


def test_every_implausible_time_is_named() -> None:
    ahead_by = NOW + timedelta(hours=1)
    reasons = implausible(ahead_by, contact(ahead_by), NOW, RECEIVED)
    assert [r.field for r in reasons] == ["time", "data.occurred_at"]


# ---------------------------------------------------------------- intake


def submission(**changes: str) -> ReferralSubmitted:
    data = copy.deepcopy(example("referral.submitted.v1")["data"])
    data.update({k: v for k, v in changes.items() if k != "consent_at"})
    if "consent_at" in changes:
        data["consent"]["recorded_at"] = changes["consent_at"]
    return ReferralSubmitted.model_validate(data)


def test_intake_refuses_a_referral_dated_in_the_future() -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    for changes, field in [
        ({"submitted_at": later}, "data.submitted_at"),
        ({"consent_at": later}, "data.consent.recorded_at"),
    ]:
        decision = assess(submission(**changes), NOW.date(), now=NOW, sent=NOW)
        assert isinstance(decision, Reject), field
        assert [(r.code, r.field) for r in decision.reasons] == [
            (RejectionCode.TIME_IMPLAUSIBLE, field)
        ]
    decision = assess(submission(), NOW.date(), now=NOW, sent=NOW + timedelta(hours=1))
    assert isinstance(decision, Reject) and decision.reasons[0].field == "time"


def test_intake_still_puts_a_crisis_first() -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    decision = assess(submission(submitted_at=later, in_crisis=True), NOW.date(), now=NOW)
    assert isinstance(decision, Reject)
    assert [r.code for r in decision.reasons] == [
        RejectionCode.CRISIS_REDIRECT,
        RejectionCode.TIME_IMPLAUSIBLE,
    ]


def test_intake_believes_a_referral_dated_now_or_consented_long_ago() -> None:
    old = (NOW - timedelta(days=400)).isoformat()
    decision = assess(submission(submitted_at=NOW.isoformat(), consent_at=old), NOW.date(), now=NOW)
    assert isinstance(decision, Accept)


# ---------------------------------------------------------------- the examples


def story() -> list[tuple[datetime, str]]:
    """The examples about the one referral, by the time each says it happened."""
    out = []
    for path in EXAMPLES_DIR.glob("*.json"):
        env = json.loads(path.read_text())
        if env["data"].get("referral_id") == STORY_REFERRAL or env["type"] in (
            "referral.submitted.v1",
            "linkworker.registered.v1",
        ):
            event = parse_event(EVENTS[env["type"]].model, env)
            times = [at for _, at in stated_times(event.data)] or [event.time]
            out.append((max(times), env["type"]))
    return sorted(out)


def test_the_examples_tell_one_referrals_journey_in_order() -> None:
    order = [t for _, t in story()]
    journey = [t for t in order if t in STATED or t == "referral.accepted.v1"]
    assert journey == [
        "linkworker.registered.v1",
        "referral.submitted.v1",
        "referral.accepted.v1",
        "referral.identity_confirmed.v1",
        "contact.recorded.v1",
        "plan.agreed.v1",
        "wellbeing.measured.v1",
        "note.shared.v1",
        "referral.held.v1",
        "referral.resumed.v1",
        "referral.transferred.v1",
        "referral.closed.v1",
    ]


@pytest.mark.parametrize(
    "event_type", [t for t, s in EVENTS.items() if s.model.DIRECTION is Direction.INBOUND]
)
def test_every_inbound_example_passes_the_rules_replayed_as_it_stands(event_type: str) -> None:
    """Dated in the past, and after the referral it is about was received (the accepted
    example's ``accepted_at``, or the one it joined for the second referral)."""
    event = parse_event(EVENTS[event_type].model, example(event_type))
    received = None
    if getattr(event.data, "referral_id", None) is not None:
        received = data_of("referral.accepted.v1").accepted_at
        if str(event.data.referral_id) != STORY_REFERRAL:  # the referral that joined
            received = data_of("referral.joined.v1").joined_at
    assert implausible(event.time, event.data, datetime.now(UTC), received) == []
