"""What each audience is told: the person (never a waiting time), the team, the referrer."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.enums import ContactPreference, ReferralStatusValue, RejectionCode, TaskStatus
from contracts.events import PersonContact, Reason, ReferralAssigned, ReferralWaitlisted
from contracts.schema import EXAMPLES_DIR
from services.notify.domain import (
    Audience,
    Known,
    Medium,
    Told,
    for_person,
    for_team,
    person_address,
    status_text,
    telling,
)

PHONE = "07700 900123"
EMAIL = "sam.example@example.org"
REFERRAL_ID = "0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30"
TIME_WORDS = ("week", "day", "month", "hour", "minute", "year", "soon")


def example_data(event_type: str) -> dict[str, Any]:
    return json.loads((EXAMPLES_DIR / f"{event_type}.json").read_text())["data"]


def assigned(**changes: Any) -> ReferralAssigned:
    return ReferralAssigned.model_validate({**example_data("referral.assigned.v1"), **changes})


def waitlisted() -> ReferralWaitlisted:
    return ReferralWaitlisted.model_validate(example_data("referral.waitlisted.v1"))


def known(
    preferred: ContactPreference = ContactPreference.PHONE,
    phone: str | None = PHONE,
    email: str | None = EMAIL,
) -> Known:
    return Known(
        referral_id=REFERRAL_ID,
        sender="A81001",
        sender_reference="EMIS-2026-000123",
        pcn="U12345",
        contact=PersonContact(preferred=preferred, phone=phone, email=email),
    )


# ---------------------------------------------------------------- the person


def test_waitlist_message_tells_of_a_waiting_list_but_gives_no_waiting_time() -> None:
    message = for_person(known(), waitlisted())
    assert message is not None
    assert message.audience is Audience.PERSON
    body = message.body
    assert "waiting list" in body.lower()
    # The only number allowed is the NHS 111 helpline (a phone number, not a time).
    assert not re.search(r"\d", body.replace("NHS 111", ""))
    assert not re.search(r"\d", message.subject)
    for word in ("week", "day", "month", "hour"):
        assert word not in body.lower()
        assert word not in message.subject.lower()


def test_waitlist_message_makes_no_promise_of_timing() -> None:
    body = for_person(known(), waitlisted()).body.lower()
    for word in TIME_WORDS:
        assert word not in body, word


def test_assigned_message_differs_from_the_waitlist_one() -> None:
    placed = for_person(known(), assigned())
    waiting = for_person(known(), waitlisted())
    assert placed.body != waiting.body
    assert "waiting list" not in placed.body.lower()
    assert "link worker" in placed.body.lower()


@pytest.mark.parametrize("placed", [assigned, waitlisted], ids=["assigned", "waitlisted"])
def test_person_messages_carry_no_identifiers(placed) -> None:
    body = for_person(known(), placed()).body
    for secret in (REFERRAL_ID, "U12345", "A81001", "lw-u12345-01", PHONE, EMAIL):
        assert secret not in body


def test_person_without_an_address_gets_no_message() -> None:
    assert for_person(known(phone=None, email=None), waitlisted()) is None


def test_person_message_goes_where_they_asked() -> None:
    message = for_person(known(ContactPreference.EMAIL), assigned())
    assert (message.medium, message.address) == (Medium.EMAIL, EMAIL)


# ---------------------------------------------------------------- person_address


@pytest.mark.parametrize(
    ("preferred", "phone", "email", "expected"),
    [
        (ContactPreference.EMAIL, PHONE, EMAIL, (Medium.EMAIL, EMAIL)),
        (ContactPreference.SMS, PHONE, EMAIL, (Medium.SMS, PHONE)),
        (ContactPreference.PHONE, PHONE, EMAIL, (Medium.SMS, PHONE)),
        # fallbacks when the preferred channel has no address
        (ContactPreference.EMAIL, PHONE, None, (Medium.SMS, PHONE)),
        (ContactPreference.SMS, None, EMAIL, (Medium.EMAIL, EMAIL)),
        (ContactPreference.PHONE, None, EMAIL, (Medium.EMAIL, EMAIL)),
        (ContactPreference.LETTER, PHONE, EMAIL, None),
        (ContactPreference.LETTER, PHONE, None, None),
        # nowhere to write to
        (ContactPreference.EMAIL, None, None, None),
        (ContactPreference.SMS, None, None, None),
        (ContactPreference.LETTER, None, None, None),
    ],
)
def test_person_address(preferred, phone, email, expected) -> None:
    contact = PersonContact(preferred=preferred, phone=phone, email=email)
    assert person_address(contact) == expected


# ---------------------------------------------------------------- the team


def test_team_message_names_referral_worker_and_needs() -> None:
    message = for_team(known(), assigned(), "team@example.org")
    assert message.audience is Audience.TEAM
    assert message.medium is Medium.EMAIL
    assert message.address == "team@example.org"
    assert REFERRAL_ID in message.body
    assert "lw-u12345-01" in message.body
    assert "Needs: loneliness, bereavement" in message.body
    assert "U12345" in message.subject
    assert "from the waiting list" not in message.body


def test_team_message_says_from_the_waiting_list_only_when_it_is() -> None:
    message = for_team(known(), assigned(from_waitlist=True), "team@example.org")
    assert "from the waiting list" in message.body
    first_line = message.body.splitlines()[0]
    assert first_line.endswith("from the waiting list.")


def test_team_message_gives_pathway_and_contact_details() -> None:
    body = for_team(known(), assigned(pathway="children_and_young_people"), "t@example.org").body
    assert "Pathway: children and young people" in body
    assert f"Phone: {PHONE}" in body
    assert f"Email: {EMAIL}" in body


def test_team_message_leaves_out_contact_lines_it_does_not_have() -> None:
    body = for_team(known(phone=None), assigned(), "t@example.org").body
    assert "Phone:" not in body
    assert "Email:" in body


# ---------------------------------------------------------------- the referrer


def test_status_text_accepted() -> None:
    text = status_text(ReferralStatusValue.ACCEPTED, pcn="U12345")
    assert "Received" in text  # received, not yet accepted by a link worker (Gravity)
    assert "U12345" in text


def test_status_text_rejected_lists_reason_codes() -> None:
    reasons = [
        Reason(code=RejectionCode.CRISIS_REDIRECT, message="m"),
        Reason(code=RejectionCode.CONSENT_MISSING, message="m"),
    ]
    text = status_text(ReferralStatusValue.REJECTED, reasons=reasons)
    assert "Not accepted" in text
    assert "crisis_redirect, consent_missing" in text
    assert "referral.rejected.v1" in text


def test_status_text_waitlisted_gives_no_waiting_time() -> None:
    text = status_text(ReferralStatusValue.WAITLISTED, pcn="U12345")
    assert "waiting list" in text
    assert "U12345" in text
    assert not re.search(r"\d", text.replace("U12345", ""))
    for word in TIME_WORDS:
        assert word not in text.lower()


def test_status_text_assigned() -> None:
    text = status_text(ReferralStatusValue.ASSIGNED, pcn="U12345")
    assert "link worker" in text
    assert "U12345" in text


@pytest.mark.parametrize("status", list(ReferralStatusValue))
def test_every_status_has_a_distinct_text(status: ReferralStatusValue) -> None:
    text = status_text(status, pcn="U12345", reasons=[])
    assert isinstance(text, str)
    assert text
    others = {status_text(s, pcn="U12345", reasons=[]) for s in ReferralStatusValue if s != status}
    assert text not in others


# ---------------------------------------------------------------- steps in any order

_T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_JOURNEY = [  # a referral's steps, in the order they happened
    TaskStatus.RECEIVED,  # waitlisted
    TaskStatus.ACCEPTED,  # assigned
    TaskStatus.IN_PROGRESS,
    TaskStatus.ON_HOLD,
    TaskStatus.IN_PROGRESS,  # resumed
    TaskStatus.RECEIVED,  # waitlisted again: the worker left
    TaskStatus.ACCEPTED,  # assigned again
    TaskStatus.COMPLETED,
]
_ORDER = [TaskStatus.RECEIVED, TaskStatus.ACCEPTED, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED]


def _rank(task: TaskStatus) -> int:
    return _ORDER.index(TaskStatus.IN_PROGRESS if task is TaskStatus.ON_HOLD else task)


def test_a_late_step_is_told_with_the_current_task_status() -> None:
    told = telling(TaskStatus.IN_PROGRESS, _T0, TaskStatus.ACCEPTED, _T0 - timedelta(seconds=1))
    assert told == Told(TaskStatus.IN_PROGRESS, latest=False)


def test_a_newer_step_moves_on_and_never_back() -> None:
    later = _T0 + timedelta(seconds=1)
    assert telling(TaskStatus.ACCEPTED, _T0, TaskStatus.IN_PROGRESS, later) == Told(
        TaskStatus.IN_PROGRESS, latest=True
    )
    assert telling(TaskStatus.IN_PROGRESS, _T0, TaskStatus.ON_HOLD, later).task_status is (
        TaskStatus.ON_HOLD
    )
    assert telling(TaskStatus.ACCEPTED, _T0, TaskStatus.RECEIVED, later) == Told(
        TaskStatus.ACCEPTED, latest=True
    )
    assert telling(TaskStatus.COMPLETED, _T0, TaskStatus.IN_PROGRESS, later).task_status is (
        TaskStatus.COMPLETED
    )


@given(st.permutations(range(len(_JOURNEY))))
def test_in_any_arrival_order_every_step_is_told_and_the_status_never_goes_back(order) -> None:
    current, current_at = TaskStatus.RECEIVED, None
    ranks = []
    for i in order:
        told = telling(current, current_at, _JOURNEY[i], _T0 + timedelta(minutes=i))
        ranks.append(_rank(told.task_status))
        if told.latest:
            current, current_at = told.task_status, _T0 + timedelta(minutes=i)
    assert len(ranks) == len(_JOURNEY)  # every step told
    assert ranks == sorted(ranks)  # in arrival order, never backwards
    assert current is TaskStatus.COMPLETED  # wherever it ends, it ends where it really did


def test_team_message_tells_the_reasonable_adjustments_when_there_are_any() -> None:
    plain = for_team(known(), assigned(), "team@example.org")
    assert "adjustments" not in plain.body.lower()
    adjusted = Known(
        referral_id=REFERRAL_ID,
        sender="A81001",
        sender_reference="EMIS-2026-000123",
        pcn="U12345",
        contact=PersonContact(
            preferred=ContactPreference.PHONE, phone=PHONE, adjustments="Call, don't text"
        ),
    )
    message = for_team(adjusted, assigned(), "team@example.org")
    assert "Reasonable adjustments: Call, don't text" in message.body
