"""Intake's rules: consent, crisis, and the children and young people's pathway."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest

from contracts.enums import Pathway, RejectionCode
from contracts.events import ReferralSubmitted
from contracts.schema import EXAMPLES_DIR
from services.intake.domain import ADULT_AGE, Accept, Reject, age_on, assess, pathway_for

TODAY = date(2026, 11, 23)
EXAMPLE = json.loads((EXAMPLES_DIR / "referral.submitted.v1.json").read_text())["data"]


def referral(
    *, consent: bool = True, crisis: bool = False, born: str = "1958-04-12"
) -> ReferralSubmitted:
    data: dict[str, Any] = copy.deepcopy(EXAMPLE)
    data["consent"]["given"] = consent
    data["in_crisis"] = crisis
    data["person"]["date_of_birth"] = born
    return ReferralSubmitted.model_validate(data)


def test_valid_adult_referral_is_accepted_on_the_adult_pathway() -> None:
    assert assess(referral(), TODAY) == Accept(Pathway.ADULT)


def test_valid_child_referral_is_accepted_on_the_young_peoples_pathway() -> None:
    assert assess(referral(born="2015-03-01"), TODAY) == Accept(Pathway.CHILDREN_AND_YOUNG_PEOPLE)


def test_no_consent_is_rejected_with_consent_missing() -> None:
    decision = assess(referral(consent=False), TODAY)
    assert isinstance(decision, Reject)
    assert [r.code for r in decision.reasons] == [RejectionCode.CONSENT_MISSING]
    assert decision.reasons[0].field == "data.consent.given"


def test_crisis_is_rejected_with_advice_to_redirect_to_urgent_help() -> None:
    decision = assess(referral(crisis=True), TODAY)
    assert isinstance(decision, Reject)
    (reason,) = decision.reasons
    assert reason.code is RejectionCode.CRISIS_REDIRECT
    assert reason.field == "data.in_crisis"
    message = reason.message.lower()
    assert "urgent" in message
    assert "redirect" in message
    assert "999" in message or "111" in message
    assert "not an emergency service" in message


def test_crisis_without_consent_gives_both_reasons_crisis_first() -> None:
    decision = assess(referral(consent=False, crisis=True), TODAY)
    assert isinstance(decision, Reject)
    assert [r.code for r in decision.reasons] == [
        RejectionCode.CRISIS_REDIRECT,
        RejectionCode.CONSENT_MISSING,
    ]


def test_crisis_rejects_a_child_too() -> None:
    decision = assess(referral(crisis=True, born="2015-03-01"), TODAY)
    assert isinstance(decision, Reject)


# ---------------------------------------------------------------- age and pathway


def test_adult_age_is_eighteen() -> None:
    assert ADULT_AGE == 18


@pytest.mark.parametrize(
    ("today", "pathway"),
    [
        (date(2026, 6, 14), Pathway.CHILDREN_AND_YOUNG_PEOPLE),  # the day before the 18th
        (date(2026, 6, 15), Pathway.ADULT),  # the 18th birthday
        (date(2026, 6, 16), Pathway.ADULT),
        (date(2025, 12, 31), Pathway.CHILDREN_AND_YOUNG_PEOPLE),
        (date(2026, 1, 1), Pathway.CHILDREN_AND_YOUNG_PEOPLE),  # same year, birthday to come
    ],
)
def test_pathway_changes_on_the_eighteenth_birthday(today: date, pathway: Pathway) -> None:
    born = date(2008, 6, 15)
    assert pathway_for(born, today) is pathway
    assert assess(referral(born=born.isoformat()), today) == Accept(pathway)


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2000, 1, 1), date(2000, 1, 1), 0),
        (date(2000, 1, 2), date(2000, 12, 31), 0),
        (date(2000, 1, 1), date(2026, 11, 23), 26),
        (date(1958, 4, 12), date(2026, 4, 11), 67),
        (date(1958, 4, 12), date(2026, 4, 12), 68),
        (date(1999, 12, 31), date(2000, 1, 1), 0),
    ],
)
def test_age_on(born: date, today: date, age: int) -> None:
    assert age_on(born, today) == age


@pytest.mark.parametrize(
    ("today", "age"),
    [
        (date(2026, 2, 28), 17),  # no 29 Feb in 2026: not yet 18 on the 28th
        (date(2026, 3, 1), 18),  # 18 from 1 March in a common year
        (date(2027, 2, 28), 18),
        (date(2028, 2, 28), 19),
        (date(2028, 2, 29), 20),  # leap year: the real birthday
        (date(2028, 3, 1), 20),
    ],
)
def test_age_on_handles_29_february_birthdays(today: date, age: int) -> None:
    assert age_on(date(2008, 2, 29), today) == age


def test_29_february_child_moves_to_adult_pathway_on_1_march_of_a_common_year() -> None:
    born = date(2008, 2, 29)
    assert pathway_for(born, date(2026, 2, 28)) is Pathway.CHILDREN_AND_YOUNG_PEOPLE
    assert pathway_for(born, date(2026, 3, 1)) is Pathway.ADULT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("registered_practice", "A81001\n"),
        ("pcn", "U12345\n"),
        ("registered_practice", "a81001"),
        ("pcn", "U1234"),
    ],
)
def test_a_refusal_never_copies_a_code_that_failed_validation(field: str, value: str) -> None:
    """Python's ``$`` matches before a trailing newline; the contract's pattern does not.
    The answer is built only from values valid as the contract checks them, so it can
    always be built (it once failed validation itself and the sender never heard)."""
    from contracts.enums import RejectionCode
    from contracts.events import Reason
    from services.intake.handlers import rejection

    raw: dict[str, Any] = {"id": "ev-1", "data": copy.deepcopy(EXAMPLE)}
    raw["data"][field] = value
    raw["data"]["sender_reference"] = "ref\n"
    reason = Reason(code=RejectionCode.SCHEMA_INVALID, message="bad", field=f"data.{field}")
    answer = rejection(raw, "A81001", [reason])
    assert getattr(answer, field) is None
    assert answer.sender_reference is None
    assert answer.reasons == [reason]
