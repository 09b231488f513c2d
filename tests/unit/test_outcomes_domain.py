"""Outcomes' coding rules: which GP writebacks an episode calls for, and when."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import (
    AgencyType,
    ClosureReason,
    ContactMode,
    ContactOutcome,
    GpSharing,
    WritebackFact,
)
from contracts.snomed import REGISTRY
from services.outcomes.domain import Closure, Contact, Episode, RecordEntry, due_entries

ACCEPT_CODE = "871731000000106"
DECLINE_CODE = "871711000000103"
SELF_CODE = "306098008"
NHS_NUMBER = "9434765919"
T0 = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)


def at(days: int) -> datetime:
    return T0 + timedelta(days=days)


def contact(days: int, outcome: ContactOutcome, mode: ContactMode = ContactMode.PHONE) -> Contact:
    return Contact(occurred_at=at(days), mode=mode, outcome=outcome)


ENGAGED, DECLINED, NOT_REACHED = (
    ContactOutcome.ENGAGED,
    ContactOutcome.DECLINED,
    ContactOutcome.NOT_REACHED,
)


def episode(
    *contacts: Contact,
    closure: Closure | None = None,
    agency: AgencyType = AgencyType.GENERAL_PRACTICE,
) -> Episode:
    return Episode(
        referral_id="0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30",
        registered_practice="A81001",
        nhs_number=NHS_NUMBER,
        agency_type=agency,
        pcn="U12345",
        needs=("loneliness", "money_and_debt"),
        accepted_at=T0,
        contacts=contacts,
        closure=closure,
    )


def closed(reason: ClosureReason, days: int = 90) -> Closure:
    return Closure(reason=reason, closed_at=at(days))


def codes(wb: RecordEntry) -> list[str]:
    return [c.code for c in wb.concepts]


def facts(writebacks: list[RecordEntry]) -> list[WritebackFact]:
    return [wb.fact for wb in writebacks]


# ---------------------------------------------------------------- accepted


@pytest.mark.parametrize("agency", list(AgencyType))
@pytest.mark.parametrize("sharing", list(GpSharing))
def test_new_episode_calls_for_nothing(agency: AgencyType, sharing: GpSharing) -> None:
    """Whoever referred and whatever the person chose to share: an acceptance alone calls
    for no entry (outcomes does not look for one then, unless steps held for it came)."""
    assert due_entries(replace(episode(agency=agency), gp_sharing=sharing), set()) == []


def test_first_engaged_contact_codes_acceptance_only() -> None:
    (wb,) = due_entries(episode(contact(3, ENGAGED)), set())
    assert wb.fact is WritebackFact.ACCEPTED
    assert codes(wb) == [ACCEPT_CODE]
    assert wb.effective_at == at(3)
    assert "accepted support" in wb.summary
    assert "loneliness, money and debt" in wb.summary
    assert "U12345" in wb.summary


def test_self_referral_engaged_adds_the_self_referral_code() -> None:
    (wb,) = due_entries(episode(contact(3, ENGAGED), agency=AgencyType.SELF_REFERRAL), set())
    assert wb.fact is WritebackFact.ACCEPTED
    assert codes(wb) == [ACCEPT_CODE, SELF_CODE]
    assert "the person themself" in wb.summary


@pytest.mark.parametrize("agency", [a for a in AgencyType if a is not AgencyType.SELF_REFERRAL])
def test_only_self_referral_gets_the_self_referral_code(agency: AgencyType) -> None:
    (wb,) = due_entries(episode(contact(3, ENGAGED), agency=agency), set())
    assert codes(wb) == [ACCEPT_CODE]


def test_every_code_written_is_in_the_registry() -> None:
    eps = [
        episode(
            contact(1, ENGAGED),
            agency=AgencyType.SELF_REFERRAL,
            closure=closed(ClosureReason.COMPLETED),
        ),
        episode(contact(1, DECLINED), closure=closed(ClosureReason.DECLINED)),
        episode(closure=closed(ClosureReason.DECLINED)),
    ]
    for ep in eps:
        for wb in due_entries(ep, set()):
            assert all(c.code in REGISTRY and REGISTRY[c.code] == c for c in wb.concepts)


# ---------------------------------------------------------------- declined


def test_first_decisive_contact_declined_codes_declined() -> None:
    (wb,) = due_entries(episode(contact(2, DECLINED, ContactMode.HOME_VISIT)), set())
    assert wb.fact is WritebackFact.DECLINED
    assert codes(wb) == [DECLINE_CODE]
    assert wb.effective_at == at(2)
    assert "declined" in wb.summary
    assert "home visit" in wb.summary


def test_not_reached_contacts_decide_nothing() -> None:
    assert due_entries(episode(contact(1, NOT_REACHED), contact(2, NOT_REACHED)), set()) == []


def test_not_reached_contacts_before_the_decisive_one_are_ignored() -> None:
    (wb,) = due_entries(episode(contact(1, NOT_REACHED), contact(2, ENGAGED)), set())
    assert wb.fact is WritebackFact.ACCEPTED
    assert wb.effective_at == at(2)


def test_closure_declined_with_no_contacts_codes_declined_and_closes() -> None:
    writebacks = due_entries(episode(closure=closed(ClosureReason.DECLINED, 10)), set())
    assert facts(writebacks) == [WritebackFact.DECLINED, WritebackFact.CLOSED]
    declined, closure = writebacks
    assert codes(declined) == [DECLINE_CODE]
    assert declined.effective_at == at(10)
    assert codes(closure) == []


def test_closure_declined_after_only_unanswered_attempts_codes_declined() -> None:
    writebacks = due_entries(
        episode(contact(1, NOT_REACHED), closure=closed(ClosureReason.DECLINED)), set()
    )
    assert WritebackFact.DECLINED in facts(writebacks)


@pytest.mark.parametrize("reason", [r for r in ClosureReason if r is not ClosureReason.DECLINED])
def test_other_closures_with_no_contact_code_nothing_but_the_closure(
    reason: ClosureReason,
) -> None:
    (wb,) = due_entries(episode(closure=closed(reason)), set())
    assert wb.fact is WritebackFact.CLOSED
    assert wb.concepts == ()


# ---------------------------------------------------------------- closed


def test_closure_completed_sends_a_summary_without_codes() -> None:
    ep = episode(
        contact(1, NOT_REACHED),
        contact(3, ENGAGED),
        contact(20, ENGAGED),
        contact(40, NOT_REACHED),
        contact(60, ENGAGED),
        closure=closed(ClosureReason.COMPLETED, 90),
    )
    writebacks = due_entries(ep, {WritebackFact.ACCEPTED})
    (wb,) = writebacks
    assert wb.fact is WritebackFact.CLOSED
    assert wb.concepts == ()
    assert wb.effective_at == at(90)
    assert "completed" in wb.summary
    assert "3 contact(s)" in wb.summary
    assert "2 attempt(s) did not reach" in wb.summary
    assert at(3).date().isoformat() in wb.summary  # first contact with the person
    assert at(60).date().isoformat() in wb.summary  # last
    assert at(90).date().isoformat() in wb.summary  # closure


def test_closure_with_no_contacts_says_nothing_of_contacts() -> None:
    (wb,) = due_entries(episode(closure=closed(ClosureReason.UNABLE_TO_CONTACT)), set())
    assert "contact(s)" not in wb.summary
    assert "attempt(s)" not in wb.summary
    assert "unable to contact" in wb.summary


def test_first_engagement_and_closure_together_give_both() -> None:
    ep = episode(contact(3, ENGAGED), closure=closed(ClosureReason.COMPLETED))
    assert facts(due_entries(ep, set())) == [WritebackFact.ACCEPTED, WritebackFact.CLOSED]


# ---------------------------------------------------------------- exclusivity, idempotence


def test_after_acceptance_a_declined_contact_codes_nothing() -> None:
    ep = episode(contact(3, ENGAGED), contact(10, DECLINED))
    assert due_entries(ep, {WritebackFact.ACCEPTED}) == []


def test_after_acceptance_a_declined_closure_only_closes() -> None:
    ep = episode(contact(3, ENGAGED), contact(10, DECLINED), closure=closed(ClosureReason.DECLINED))
    assert facts(due_entries(ep, {WritebackFact.ACCEPTED})) == [WritebackFact.CLOSED]


def test_accepted_already_written_stands_even_if_contacts_now_show_a_decline_first() -> None:
    # a late-arriving, earlier 'declined' contact cannot add a contradicting code
    ep = episode(contact(1, DECLINED), contact(3, ENGAGED))
    assert due_entries(ep, {WritebackFact.ACCEPTED}) == []


def test_after_decline_an_engaged_contact_codes_nothing() -> None:
    ep = episode(contact(2, DECLINED), contact(5, ENGAGED))
    assert due_entries(ep, {WritebackFact.DECLINED}) == []


def test_engaged_then_declined_in_one_pass_gives_only_accepted() -> None:
    ep = episode(contact(3, ENGAGED), contact(10, DECLINED), closure=closed(ClosureReason.DECLINED))
    result = facts(due_entries(ep, set()))
    assert result == [WritebackFact.ACCEPTED, WritebackFact.CLOSED]


@pytest.mark.parametrize(
    "ep",
    [
        episode(contact(3, ENGAGED), closure=closed(ClosureReason.COMPLETED)),
        episode(contact(3, DECLINED), closure=closed(ClosureReason.DECLINED)),
        episode(closure=closed(ClosureReason.DECLINED)),
        episode(
            contact(3, ENGAGED),
            agency=AgencyType.SELF_REFERRAL,
            closure=closed(ClosureReason.MOVED_AWAY),
        ),
    ],
    ids=["engaged", "declined", "declined-closure", "self-referral"],
)
def test_nothing_already_written_is_returned_again(ep: Episode) -> None:
    first = due_entries(ep, set())
    assert first
    written = set(facts(first))
    assert due_entries(ep, written) == []
    for fact in written:  # and each is returned until written, never twice
        again = facts(due_entries(ep, written - {fact}))
        assert again == [fact]


def test_closed_once_is_not_closed_again() -> None:
    assert (
        due_entries(episode(closure=closed(ClosureReason.COMPLETED)), {WritebackFact.CLOSED}) == []
    )


# ---------------------------------------------------------------- ordering


def test_contacts_out_of_order_the_earliest_decisive_one_decides() -> None:
    ep = episode(contact(9, ENGAGED), contact(1, NOT_REACHED), contact(4, DECLINED))
    (wb,) = due_entries(ep, set())
    assert wb.fact is WritebackFact.DECLINED
    assert wb.effective_at == at(4)

    ep = episode(contact(9, DECLINED), contact(4, ENGAGED))
    (wb,) = due_entries(ep, set())
    assert wb.fact is WritebackFact.ACCEPTED
    assert wb.effective_at == at(4)


def test_result_does_not_depend_on_the_order_contacts_are_listed() -> None:
    items = [
        contact(5, ENGAGED),
        contact(2, NOT_REACHED),
        contact(3, DECLINED),
        contact(8, ENGAGED),
    ]
    base = episode(*items, closure=closed(ClosureReason.COMPLETED))
    expected = due_entries(base, set())
    for shuffled in (items[::-1], items[1:] + items[:1], items[2:] + items[:2]):
        assert due_entries(replace(base, contacts=tuple(shuffled)), set()) == expected


# ---------------------------------------------------------------- personal data


def test_summaries_contain_no_nhs_number() -> None:
    eps = [
        episode(contact(1, ENGAGED), closure=closed(ClosureReason.COMPLETED)),
        episode(contact(1, ENGAGED), agency=AgencyType.SELF_REFERRAL),
        episode(contact(1, DECLINED), closure=closed(ClosureReason.DECLINED)),
        episode(contact(1, NOT_REACHED), closure=closed(ClosureReason.DECLINED)),
    ]
    summaries = [wb.summary for ep in eps for wb in due_entries(ep, set())]
    assert len(summaries) == 7
    for summary in summaries:
        assert NHS_NUMBER not in summary
        assert not re.search(r"\d{3}[ -]?\d{3}[ -]?\d{4}", summary)
        assert 1 <= len(summary) <= 2000  # what GpWriteback.summary allows


# ---------------------------------------------------------------- no NHS number yet


def test_nothing_is_due_for_the_gp_record_until_the_nhs_number_is_known() -> None:
    ep = episode(contact(3, ENGAGED), closure=closed(ClosureReason.COMPLETED))
    waiting = replace(ep, nhs_number=None)
    assert due_entries(waiting, set()) == []
    # once confirmed, everything that was due goes, once
    confirmed = due_entries(ep, set())
    assert WritebackFact.ACCEPTED in facts(confirmed) and WritebackFact.CLOSED in facts(confirmed)
    assert due_entries(ep, {(e.fact, e.key) for e in confirmed}) == []


def test_the_closure_tells_each_code_written_back_once_in_order_and_only_registry_ones():
    from services.outcomes.domain import written_back

    told = written_back(["871731000000106", "306098008", "871731000000106", "123", "718466001"])
    assert [c.code for c in told] == ["871731000000106", "306098008", "718466001"]
    assert all(c is REGISTRY[c.code] for c in told)
    assert written_back([]) == ()
