"""The reporting layer: figures, the small-number rule, tables, CSV, JSON and plots.

The rows below are written by hand: 20 referrals and 6 rejected submissions over two
quarters (2026Q2 and 2026Q3), two PCNs, three practices and four sources. Every expected
figure is worked out by hand in the comments next to it, never read back from the code.

PCN U11111 has practices A81001 and A81002; PCN U22222 has B82001. Times are UTC; the
window boundaries are UK dates, so 23:30 UTC on 30 June (00:30 BST on 1 July) is in Q3.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts.enums import AgencyType, ClosureReason, Need, RejectionCode
from services.readside.disclosure import RULE, disclosed, disclosed_comparison, shown
from services.readside.figures import (
    Comparison,
    Figures,
    Window,
    compare,
    report,
)
from services.readside.model import ReferralRow, RejectionRow
from services.readside.plots import plot
from services.readside.render import SECTIONS, flatten, table, to_csv, to_json

GP = AgencyType.GENERAL_PRACTICE.value
PH = AgencyType.COMMUNITY_PHARMACY.value
LA = AgencyType.LOCAL_AUTHORITY.value
SR = AgencyType.SELF_REFERRAL.value
LON, MH = Need.LONELINESS.value, Need.MENTAL_HEALTH.value
MONEY, HOUSING = Need.MONEY_AND_DEBT.value, Need.HOUSING.value
CYP = "children_and_young_people"
PCN_OF = {"A81001": "U11111", "A81002": "U11111", "B82001": "U22222"}
LIST_SIZES = {"A81001": 500, "A81002": 250, "B82001": 400}

Q2, Q3 = Window.quarter("2026Q2"), Window.quarter("2026Q3")


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def referral(
    rid: str,
    person: str | None,
    practice: str,
    source: str,
    needs: tuple[str, ...],
    received: datetime,
    *,
    pathway: str = "adult",
    waitlisted: bool = False,
    assigned: float | None = None,  # days after received
    contact: float | None = None,  # days after received to the first contact
    contacts: int = 0,
    declined: bool = False,  # declined at the first contact, and closed then
    withdrawn: datetime | None = None,
    closed: datetime | None = None,
    reason: ClosureReason | None = None,
    coded: bool = False,  # coded at the first contact
    joined: bool = False,
    swemwbs: tuple[float, float | None] | None = None,
    ons4: tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None = None,
) -> ReferralRow:
    first_contact = received + timedelta(days=contact) if contact is not None else None
    if declined:
        closed, reason = first_contact, ClosureReason.DECLINED
    return ReferralRow(
        referral_id=f"ref-{rid}",
        person_id=person,
        sender=practice if source == GP else f"{source.upper()[:3]}-1",
        agency_type=source,
        registered_practice=practice,
        pcn=PCN_OF[practice],
        needs=needs,
        pathway=pathway,
        received_at=received,
        waitlisted_at=received if waitlisted else None,
        assigned_at=received + timedelta(days=assigned) if assigned is not None else None,
        first_contact_at=first_contact,
        declined_at=first_contact if declined else None,
        withdrawn_at=withdrawn,
        closed_at=closed,
        close_reason=reason.value if reason else None,
        contacts=contacts,
        coded_at=first_contact if coded else None,
        link_worker_id="LW1" if assigned is not None else None,
        joined=joined,
        swemwbs_baseline=swemwbs[0] if swemwbs else None,
        swemwbs_end=swemwbs[1] if swemwbs else None,
        ons4_baseline=ons4[0] if ons4 else None,
        ons4_end=ons4[1] if ons4 else None,
    )


DONE = ClosureReason.COMPLETED

# Received in 2026Q3 (13 referrals; R01 at 00:30 BST on 1 July).
R01 = referral("R01", "P01", "A81001", GP, (LON, MH), at(6, 30, 23, 30), assigned=2, contact=5,
               contacts=4, closed=at(9, 10), reason=DONE, coded=True, swemwbs=(19.98, 23.21),
               ons4=((4, 5, 4, 7), (7, 7, 6, 3)))  # fmt: skip
R02 = referral("R02", "P02", "A81001", GP, (LON,), at(7, 2), assigned=1, contact=3, contacts=3,
               closed=at(8, 20), reason=DONE, coded=True, swemwbs=(17.98, 20.73),
               ons4=((5, 6, 5, 6), (7, 6, 7, 4)))  # fmt: skip
R03 = referral("R03", "P03", "A81001", PH, (MH,), at(7, 6), waitlisted=True, assigned=10,
               contact=12, contacts=2, closed=at(9, 1), reason=DONE, coded=True,
               swemwbs=(21.54, 21.54), ons4=((6, 6, 6, 5), (6, 6, 6, 5)))  # fmt: skip
R04 = referral("R04", "P04", "A81002", PH, (MONEY,), at(7, 8), assigned=3, contact=4, contacts=5,
               closed=at(9, 5), reason=DONE, coded=True, swemwbs=(15.84, 19.25),
               ons4=((3, 3, 3, 9), (5, 5, 5, 6)))  # fmt: skip
R05 = referral("R05", "P05", "A81002", LA, (HOUSING, MONEY), at(7, 13), assigned=4, contact=7,
               contacts=1, declined=True)  # fmt: skip
R06 = referral("R06", "P06", "A81002", SR, (LON,), at(7, 20), waitlisted=True, assigned=14,
               contact=15, contacts=6, coded=True, swemwbs=(18.59, None))  # fmt: skip
R07 = referral("R07", "P07", "B82001", GP, (MH,), at(8, 3), pathway=CYP, assigned=0.5, contact=2,
               contacts=2, closed=at(9, 25), reason=DONE, coded=True, swemwbs=(20.73, 24.11),
               ons4=((7, 7, 7, 2), (8, 9, 8, 1)))  # fmt: skip
R08 = referral("R08", "P08", "B82001", GP, (MH, LON), at(8, 10), assigned=6, contact=8, contacts=3,
               closed=at(9, 29), reason=DONE, coded=True, swemwbs=(22.35, 21.54),
               ons4=((6, 7, 6, 4), (3, 7, 6, 6)))  # fmt: skip
R09 = referral("R09", "P09", "B82001", LA, (HOUSING,), at(8, 17), waitlisted=True, assigned=20,
               closed=at(10, 1), reason=ClosureReason.UNABLE_TO_CONTACT)  # fmt: skip
R10 = referral("R10", "P10", "B82001", SR, (LON,), at(8, 24), waitlisted=True,
               withdrawn=at(9, 1))  # fmt: skip
R11 = referral("R11", "P11", "A81001", GP, (MONEY,), at(9, 7), pathway=CYP, assigned=2, contact=9,
               contacts=2, coded=True)  # fmt: skip
R12 = referral("R12", "P06", "A81002", GP, (MH,), at(9, 14), joined=True)  # joined R06's episode
R13 = referral("R13", "P13", "B82001", PH, (HOUSING,), at(9, 28), waitlisted=True)
# 23:30 UTC on 30 September is 00:30 BST on 1 October: in neither quarter.
R14 = referral("R14", "P14", "A81001", GP, (LON,), at(9, 30, 23, 30))

# Received in 2026Q2 (6 referrals). P20 has two referrals, both coded in Q2; Q04's person is
# unknown (counted by its referral); Q05 is coded in Q3 (3 July).
Q01 = referral("Q01", "P01", "A81001", GP, (LON,), at(4, 6), assigned=3, contact=6, contacts=3,
               closed=at(6, 1), reason=DONE, coded=True)  # fmt: skip
Q02 = referral("Q02", "P20", "A81001", PH, (MH,), at(4, 8), assigned=5, contact=7, contacts=2,
               closed=at(5, 20), reason=DONE, coded=True)  # fmt: skip
Q03 = referral("Q03", "P20", "A81001", PH, (MH,), at(5, 25), assigned=2, contact=3, contacts=1,
               coded=True)  # fmt: skip
Q04 = referral("Q04", None, "B82001", LA, (MONEY,), at(5, 4), waitlisted=True, assigned=9,
               contact=10, contacts=2, closed=at(6, 30), reason=DONE, coded=True)  # fmt: skip
Q05 = referral("Q05", "P21", "A81002", SR, (HOUSING,), at(6, 22), waitlisted=True, assigned=8,
               contact=11, contacts=1, coded=True)  # fmt: skip
Q06 = referral("Q06", "P22", "B82001", GP, (LON, MH), at(6, 29), pathway=CYP, withdrawn=at(7, 2))

REFERRALS = [R01, R02, R03, R04, R05, R06, R07, R08, R09, R10, R11, R12, R13, R14,
             Q01, Q02, Q03, Q04, Q05, Q06]  # fmt: skip


def rejection(sid: str, source: str | None, practice: str | None, reasons, when) -> RejectionRow:
    return RejectionRow(
        submission_id=f"sub-{sid}",
        sender=practice or "UNKNOWN-SENDER",
        agency_type=source,
        registered_practice=practice,
        pcn=PCN_OF[practice] if practice else None,
        reasons=tuple(r.value for r in reasons),
        rejected_at=when,
    )


C = RejectionCode
X1 = rejection("X1", GP, "A81001", [C.CONSENT_MISSING], at(7, 3, 10))
X2 = rejection("X2", PH, "A81002", [C.NHS_NUMBER_INVALID, C.SCHEMA_INVALID], at(8, 12))
X3 = rejection("X3", None, None, [C.SCHEMA_INVALID], at(9, 1))  # the form could not be read
X4 = rejection("X4", LA, "B82001", [C.CRISIS_REDIRECT], at(9, 20))
X5 = rejection("X5", GP, "B82001", [C.CONSENT_MISSING], at(5, 5))  # Q2
X6 = rejection("X6", SR, "A81001", [C.CONSENT_MISSING], at(6, 30, 23, 10))  # 1 July in the UK
REJECTIONS = [X1, X2, X3, X4, X5, X6]


def by_group(rows: list[Figures]) -> dict[str, Figures]:
    return {f.group: f for f in rows}


# ------------------------------------------------------------------------------ windows


def test_quarters_are_calendar_quarters_of_uk_dates() -> None:
    assert (Q3.start, Q3.end, Q3.label) == (date(2026, 7, 1), date(2026, 9, 30), "2026Q3")
    assert (Q2.start, Q2.end) == (date(2026, 4, 1), date(2026, 6, 30))
    q4 = Window.quarter("2026Q4")
    assert (q4.start, q4.end) == (date(2026, 10, 1), date(2026, 12, 31))
    assert Window.quarter("2026q1").end == date(2026, 3, 31)
    # 23:30 UTC on 30 June is 00:30 BST on 1 July
    assert Q3.contains(at(6, 30, 23, 30)) and not Q2.contains(at(6, 30, 23, 30))
    assert Q2.contains(at(6, 30, 22, 59))
    assert Q3.contains(at(9, 30, 22, 59)) and not Q3.contains(at(9, 30, 23, 0))
    with pytest.raises(ValueError):
        Window.quarter("2026Q5")
    with pytest.raises(ValueError):
        Q3.contains(datetime(2026, 7, 1, 12))  # naive: no timezone


def test_between_is_inclusive_and_labelled() -> None:
    w = Window.between(date(2026, 7, 1), date(2026, 8, 31))
    assert w.label == "2026-07-01 to 2026-08-31"
    assert w.days == 62
    assert w.contains(at(8, 31, 22, 59)) and not w.contains(at(8, 31, 23, 0))
    with pytest.raises(ValueError):
        Window.between(date(2026, 8, 1), date(2026, 7, 1))


# ------------------------------------------------------------------------------ figures


def test_total_for_a_quarter() -> None:
    total = report(REFERRALS, REJECTIONS, Q3, "pcn")[-1]
    assert total.group == "total"
    # R01-R13 accepted; X1, X2, X3, X4 and X6 rejected (X6 on 1 July UK time)
    assert (total.accepted, total.rejected, total.received) == (13, 5, 18)
    # X2 has two reasons and counts under each
    assert total.rejected_by_reason == {
        "consent_missing": 2,  # X1, X6
        "crisis_redirect": 1,  # X4
        "nhs_number_invalid": 1,  # X2
        "schema_invalid": 2,  # X2, X3
    }
    assert total.waitlisted == 5  # R03, R06, R09, R10, R13
    assert total.assigned == 10  # R01-R09 and R11 (R12 joined an episode: no place)
    assert total.first_contact == 9  # R01-R08 and R11 (R09 was never reached)
    assert (total.declined, total.withdrawn, total.completed) == (1, 1, 6)  # R05; R10; R01-4,7,8
    # to a link worker: 0.5 1 2 2 3 4 6 10 14 20 -> median (3 + 4) / 2, p90 at 8.1: 14 + 0.1 * 6
    assert (total.wait_assigned_median, total.wait_assigned_p90) == (3.5, 14.6)
    # to first contact: 2 3 4 5 7 8 9 12 15 -> median 7, p90 at position 7.2: 12 + 0.2 * 3
    assert (total.wait_first_contact_median, total.wait_first_contact_p90) == (7.0, 12.6)
    # contacts 4 3 2 5 1 6 2 3 2 over 9 referrals: 28 / 9
    assert (total.contacted, total.contacts_per_person) == (9, 3.11)
    # coded in Q3: R01 R02 R03 R04 R06 R07 R08 R11 and Q05 (received in Q2, coded 3 July)
    assert total.coded == 9
    assert total.coded_percent is None  # no list sizes
    # SWEMWBS pairs R01 R02 R03 R04 R07 R08 (R06 has no end): 3.23 + 2.75 + 0 + 3.41 + 3.38
    # - 0.81 = 11.96, / 6 = 1.993
    assert (total.swemwbs_pairs, total.swemwbs_mean_change) == (6, 1.99)


def test_ons4_band_shifts() -> None:
    total = report(REFERRALS, REJECTIONS, Q3, "pcn")[-1]
    assert total.ons4_pairs == 6  # R01 R02 R03 R04 R07 R08
    assert total.ons4_shifts == {
        # R01 low->high, R02 medium->high, R04 low->medium better; R03, R07 (high->high) same;
        # R08 medium->low worse
        "life satisfaction": {"better": 3, "same": 2, "worse": 1},
        # R01 medium->high, R04 low->medium, R07 high->very high better; R02, R03, R08 same
        "worthwhile": {"better": 3, "same": 3, "worse": 0},
        # R01 low->medium, R02 medium->high, R04 low->medium better; R03, R07, R08 same
        "happiness": {"better": 3, "same": 3, "worse": 0},
        # lower is better: R01 high->low, R02 high->medium, R07 low->very low better;
        # R03 medium, R04 high (9 to 6) the same; R08 medium->high worse
        "anxiety": {"better": 3, "same": 2, "worse": 1},
    }


def test_by_pcn() -> None:
    rows = report(REFERRALS, REJECTIONS, Q3, "pcn")
    assert [f.group for f in rows] == ["U11111", "U22222", "unknown", "total"]
    g = by_group(rows)
    one = g["U11111"]  # R01-R06, R11, R12; X1, X2, X6
    assert (one.accepted, one.rejected, one.received) == (8, 3, 11)
    assert (one.waitlisted, one.assigned, one.first_contact) == (2, 7, 7)
    assert (one.declined, one.withdrawn, one.completed) == (1, 0, 4)
    # waits 1 2 2 3 4 10 14: median 3, p90 at 5.4: 10 + 0.4 * 4
    assert (one.wait_assigned_median, one.wait_assigned_p90) == (3.0, 11.6)
    # 3 4 5 7 9 12 15: median 7, p90 at 5.4: 12 + 0.4 * 3
    assert (one.wait_first_contact_median, one.wait_first_contact_p90) == (7.0, 13.2)
    assert one.contacts_per_person == 3.29  # 23 / 7
    assert one.coded == 7  # R01 R02 R03 R04 R06 R11 Q05
    assert (one.swemwbs_pairs, one.swemwbs_mean_change) == (4, 2.35)  # 9.39 / 4 = 2.3475
    assert one.rejected_by_reason == {
        "consent_missing": 2,
        "nhs_number_invalid": 1,
        "schema_invalid": 1,
    }
    two = g["U22222"]  # R07-R10, R13; X4
    assert (two.accepted, two.rejected, two.received) == (5, 1, 6)
    assert (two.waitlisted, two.assigned, two.first_contact) == (3, 3, 2)
    assert (two.wait_assigned_median, two.wait_assigned_p90) == (6.0, 17.2)  # 0.5 6 20
    assert (two.wait_first_contact_median, two.wait_first_contact_p90) == (5.0, 7.4)  # 2 8
    assert two.contacts_per_person == 2.5
    assert (two.swemwbs_pairs, two.swemwbs_mean_change) == (2, 1.29)  # (3.38 - 0.81) / 2
    unknown = g["unknown"]  # X3, whose form could not be read
    assert (unknown.received, unknown.rejected, unknown.accepted) == (1, 1, 0)
    assert unknown.wait_assigned_median is None and unknown.contacts_per_person is None


def test_by_practice_with_list_sizes() -> None:
    rows = report(REFERRALS, REJECTIONS, Q3, "practice", LIST_SIZES)
    assert [f.group for f in rows] == ["A81001", "A81002", "B82001", "unknown", "total"]
    g = by_group(rows)
    assert [(g[p].accepted, g[p].rejected, g[p].received) for p in LIST_SIZES] == [
        (4, 2, 6),  # R01 R02 R03 R11; X1 X6
        (4, 1, 5),  # R04 R05 R06 R12; X2
        (5, 1, 6),  # R07 R08 R09 R10 R13; X4
    ]
    assert g["A81002"].assigned == 3  # R12 joined: not assigned
    assert [(g[p].coded, g[p].coded_percent) for p in LIST_SIZES] == [
        (4, 0.8),  # R01 R02 R03 R11 of 500
        (3, 1.2),  # R04 R06 Q05 of 250
        (2, 0.5),  # R07 R08 of 400
    ]
    assert g["unknown"].coded_percent is None
    assert (g["total"].coded, g["total"].coded_percent) == (9, 0.78)  # 9 of 1150
    # list sizes mean nothing for other groupings
    assert report(REFERRALS, REJECTIONS, Q3, "source", LIST_SIZES)[-1].coded_percent is None


def test_coded_counts_people_once_and_by_referral_when_unknown() -> None:
    g = by_group(report(REFERRALS, REJECTIONS, Q2, "practice"))
    # Q2: P01 (Q01), P20 twice (Q02, Q03) and Q04 with no person; Q05 is coded in July
    assert g["A81001"].coded == 2
    assert g["B82001"].coded == 1
    assert "A81002" in g and g["A81002"].coded == 0  # Q05 received in Q2, coded in Q3
    assert g["total"].coded == 3


def test_by_source() -> None:
    g = by_group(report(REFERRALS, REJECTIONS, Q3, "source"))
    assert list(g) == [PH, GP, LA, SR, "unknown", "total"]
    assert [(g[s].accepted, g[s].rejected, g[s].received, g[s].coded) for s in g] == [
        (3, 1, 4, 2),  # R03 R04 R13; X2; coded R03 R04
        (6, 1, 7, 5),  # R01 R02 R07 R08 R11 R12; X1; coded R01 R02 R07 R08 R11
        (2, 1, 3, 0),  # R05 R09; X4
        (2, 1, 3, 2),  # R06 R10; X6; coded R06 Q05
        (0, 1, 1, 0),  # X3
        (13, 5, 18, 9),
    ]


def test_by_need_counts_a_referral_under_each_need() -> None:
    g = by_group(report(REFERRALS, REJECTIONS, Q3, "need"))
    assert list(g) == [HOUSING, LON, MH, MONEY, "unknown", "total"]
    assert g[HOUSING].accepted == 3  # R05 R09 R13
    assert g[LON].accepted == 5  # R01 R02 R06 R08 R10
    assert g[MH].accepted == 5  # R01 R03 R07 R08 R12
    assert g[MONEY].accepted == 3  # R04 R05 R11
    assert (g["unknown"].accepted, g["unknown"].rejected) == (0, 5)  # rejections carry no need
    assert g["total"].accepted == 13  # once each, not 16


def test_by_pathway() -> None:
    g = by_group(report(REFERRALS, REJECTIONS, Q3, "pathway"))
    assert list(g) == ["adult", CYP, "unknown", "total"]
    assert (g["adult"].accepted, g[CYP].accepted) == (11, 2)  # R07 and R11 are CYP
    assert (g["unknown"].received, g["unknown"].rejected) == (5, 5)


def test_by_month_of_uk_dates() -> None:
    g = by_group(report(REFERRALS, REJECTIONS, Q3, "month"))
    assert list(g) == ["2026-07", "2026-08", "2026-09", "total"]
    # July: R01 (1 July BST) to R06; X1 and X6 (1 July BST)
    assert (g["2026-07"].accepted, g["2026-07"].rejected, g["2026-07"].received) == (6, 2, 8)
    assert (g["2026-08"].accepted, g["2026-08"].rejected) == (4, 1)  # R07-R10; X2
    assert (g["2026-09"].accepted, g["2026-09"].rejected) == (3, 2)  # R11-R13; X3 X4
    # coded by the month of coding: July R01 R02 R03 R04 Q05; August R06 R07 R08; Sept R11
    assert [g[m].coded for m in ("2026-07", "2026-08", "2026-09")] == [5, 3, 1]


def test_compare_two_quarters() -> None:
    rows = compare(REFERRALS, REJECTIONS, Q2, Q3, "pcn")
    assert all(isinstance(c, Comparison) for c in rows)
    assert [c.group for c in rows] == ["U11111", "U22222", "unknown", "total"]
    c = {row.group: row for row in rows}
    one = c["U11111"]  # Q2: Q01 Q02 Q03 Q05, no rejections; Q3: 8 accepted, 3 rejected
    assert (one.before.received, one.after.received) == (4, 11)
    assert (one.change["received"], one.change_percent["received"]) == (7, 175.0)
    assert (one.change["accepted"], one.change_percent["accepted"]) == (4, 100.0)
    assert (one.change["rejected"], one.change_percent["rejected"]) == (3, None)  # from 0
    assert (one.change["coded"], one.change_percent["coded"]) == (5, 250.0)  # 2 -> 7
    two = c["U22222"]  # Q2: Q04 Q06 and X5; Q3: 5 accepted and X4
    assert (two.change["received"], two.change_percent["received"]) == (3, 100.0)
    assert (two.change["rejected"], two.change_percent["rejected"]) == (0, 0.0)
    assert two.change["rejected_by_reason.consent_missing"] == -1
    assert two.change_percent["rejected_by_reason.consent_missing"] == -100.0
    assert two.change["rejected_by_reason.crisis_redirect"] == 1
    assert c["unknown"].before.received == 0 and c["unknown"].change["received"] == 1
    total = c["total"]
    assert (total.before.received, total.after.received) == (7, 18)
    assert (total.change["received"], total.change_percent["received"]) == (11, 157.1)
    assert (total.change["accepted"], total.change_percent["accepted"]) == (7, 116.7)  # 6->13


# ------------------------------------------------------------------------------ disclosure


def test_small_number_rule() -> None:
    assert [shown(n, exact=False) for n in (0, 1, 7, 8, 12, 13, 17, 18, 100)] == [
        0, "*", "*", 10, 10, 15, 15, 20, 100,
    ]  # fmt: skip
    assert shown(13, exact=True) == 13 and shown(3, exact=True) == 3
    with pytest.raises(ValueError):
        shown(-1, exact=False)


def test_disclosed_total_suppressed_and_exact() -> None:
    total = report(REFERRALS, REJECTIONS, Q3, "practice", LIST_SIZES)[-1]
    out = disclosed(total, exact=False)
    assert (out["received"], out["accepted"], out["rejected"]) == (20, 15, "*")  # 18, 13, 5
    assert (out["assigned"], out["first_contact"], out["completed"]) == (10, 10, "*")
    assert (out["declined"], out["withdrawn"], out["coded"]) == ("*", "*", 10)
    # derived from 10 and 9 people: shown
    assert out["wait_assigned_median"] == 3.5 and out["wait_first_contact_p90"] == 12.6
    assert out["contacts_per_person"] == 3.11
    assert out["coded_percent"] == 0.78  # 9 people coded
    # 6 pairs: too few
    assert out["swemwbs_pairs"] == "*" and out["swemwbs_mean_change"] == "*"
    assert out["ons4_shifts"]["anxiety"] == {"better": "*", "same": "*", "worse": "*"}
    assert out["rejected_by_reason"] == dict.fromkeys(total.rejected_by_reason, "*")
    exact = disclosed(total, exact=True)
    assert (exact["received"], exact["accepted"], exact["swemwbs_mean_change"]) == (18, 13, 1.99)
    assert exact["ons4_shifts"]["anxiety"] == {"better": 3, "same": 2, "worse": 1}


def test_disclosed_practice_derived_from_few_people() -> None:
    g = by_group(report(REFERRALS, REJECTIONS, Q3, "practice", LIST_SIZES))
    a = disclosed(g["A81001"], exact=False)
    assert (a["received"], a["coded"], a["coded_percent"]) == ("*", "*", "*")  # 6, 4, 0.8
    assert a["wait_assigned_median"] == "*"  # 4 people
    assert disclosed(g["A81001"], exact=True)["coded_percent"] == 0.8
    unknown = disclosed(g["unknown"], exact=False)
    assert (unknown["accepted"], unknown["wait_assigned_median"]) == (0, None)  # 0 stays 0


def test_disclosed_change_comes_from_shown_counts() -> None:
    half = Window.between(date(2026, 4, 1), date(2026, 9, 30))
    (total,) = [c for c in compare(REFERRALS, REJECTIONS, Q3, half, "pcn") if c.group == "total"]
    # received 18 -> 25 (19 accepted, 6 rejected); shown 20 -> 25
    assert total.change["received"] == 7
    out = disclosed_comparison(total, exact=False)
    assert (out["before"]["received"], out["after"]["received"]) == (20, 25)
    assert (out["change"]["received"], out["change_percent"]["received"]) == (5, 25.0)
    assert (out["change"]["accepted"], out["change_percent"]["accepted"]) == (5, 33.3)  # 15->20
    assert out["change"]["rejected"] == "*"  # 5 -> 6
    exact = disclosed_comparison(total, exact=True)
    assert (exact["change"]["received"], exact["change_percent"]["received"]) == (7, 38.9)


# ------------------------------------------------------------------------------ rendering


def _value(text: Any) -> Any:
    """A cell of any of the three formats, made comparable."""
    if text in (None, "", "-"):
        return None
    if text == "*":
        return "*"
    return float(text)


def _table_values(text: str) -> dict[tuple[str, str], Any]:
    """(group, flattened name) -> value, read back from a plain table."""
    names = {title: list(headings) for title, headings in SECTIONS}
    values: dict[tuple[str, str], Any] = {}
    for block in text.split("\n\n")[1:]:
        title, header, *rows = block.strip("\n").split("\n")
        columns = re.split(r"\s{2,}", header)[1:]
        for row in rows:
            group, *cells = re.split(r"\s{2,}", row.strip())
            for column, cell in zip(columns, cells, strict=True):
                if title in names:
                    values[group, names[title][columns.index(column)]] = _value(cell)
                elif title.startswith("ONS4"):
                    for shift, part in zip(
                        ("better", "same", "worse"), cell.split("/"), strict=True
                    ):
                        values[group, f"ons4_shifts.{column}.{shift}"] = _value(part)
                else:
                    values[group, f"rejected_by_reason.{column}"] = _value(cell)
    return values


@pytest.mark.parametrize("exact", [False, True])
def test_table_csv_and_json_carry_the_same_numbers(exact: bool) -> None:
    rows = report(REFERRALS, REJECTIONS, Q3, "practice", LIST_SIZES)
    document = json.loads(to_json(rows, exact=exact))
    assert document["window"] == {"label": "2026Q3", "start": "2026-07-01", "end": "2026-09-30"}
    assert document["grouping"] == "practice"
    assert document["suppressed"] is (not exact)
    assert document["rule"] == RULE
    from_json = {(g["group"], k): _value(v) for g in document["groups"] for k, v in flatten(g)}
    from_csv = {}
    for line in csv.DictReader(io.StringIO(to_csv(rows, exact=exact))):
        assert (line["window"], line["grouping"]) == ("2026Q3", "practice")
        assert line["suppressed"] == ("no" if exact else "yes")
        for key, cell in line.items():
            if key not in ("window", "grouping", "suppressed", "group"):
                from_csv[line["group"], key] = _value(cell)
    from_table = _table_values(table(rows, exact=exact))
    # reasons a group lacks are 0 in the CSV and the table, absent from the JSON
    assert from_csv == {**{k: 0.0 for k in from_csv if k not in from_json}, **from_json}
    assert from_table == from_csv
    assert from_table["total", "received"] == (18 if exact else 20)
    assert from_table["total", "wait_assigned_p90"] == 14.6
    assert from_table["A81001", "coded_percent"] == (0.8 if exact else "*")


def test_table_reads_well() -> None:
    text = table(report(REFERRALS, REJECTIONS, Q3, "source"))
    lines = text.splitlines()
    assert lines[0] == "Referral figures by source, 2026Q3 (2026-07-01 to 2026-09-30)"
    assert max(len(line) for line in lines) <= 130
    header = next(line for line in lines if line.startswith("group  "))
    assert header.split()[:3] == ["group", "received", "rejected"]
    total = next(line for line in lines if line.startswith("total "))
    assert total.split() == ["total", "20", "*", "15", "*", "10", "10", "*", "*", "*"]


def test_comparison_renders_the_same_numbers() -> None:
    rows = compare(REFERRALS, REJECTIONS, Q2, Q3, "pcn")
    document = json.loads(to_json(rows, comparison=True, exact=True))
    assert document["before"]["label"] == "2026Q2" and document["after"]["label"] == "2026Q3"
    (total,) = [g for g in document["groups"] if g["group"] == "total"]
    assert (total["change"]["received"], total["change_percent"]["received"]) == (11, 157.1)
    lines = list(csv.DictReader(io.StringIO(to_csv(rows, comparison=True, exact=True))))
    (received,) = [r for r in lines if r["group"] == "total" and r["figure"] == "received"]
    assert [received[k] for k in ("before", "after", "change", "change_percent")] == [
        "7", "18", "11", "157.1",
    ]  # fmt: skip
    text = table(rows, comparison=True, exact=True)
    assert max(len(line) for line in text.splitlines()[1:]) <= 110
    labels, headings, *lines = text.split("\n\n")[1].splitlines()  # received, rejected
    assert [word for word in labels.split() if set(word) != {"-"}] == ["received", "rejected"]
    assert headings.split()[:5] == ["group", "before", "after", "change", "change"]
    (total_line,) = [line for line in lines if line.startswith("total ")]
    # received 7 -> 18, then rejected 1 (X5) -> 5
    assert total_line.split() == ["total", "7", "18", "+11", "+157.1", "1", "5", "+4", "+400.0"]
    with pytest.raises(TypeError):
        table(rows)  # comparison rows need comparison=True


# ------------------------------------------------------------------------------ plots


def test_plot_writes_png(tmp_path: Path) -> None:
    path = plot(REFERRALS, Q3, tmp_path / "q3.png", exact=False)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_plot_writes_valid_deterministic_svg(tmp_path: Path) -> None:
    first = plot(REFERRALS, Q3, tmp_path / "a.svg", exact=True).read_bytes()
    second = plot(REFERRALS, Q3, tmp_path / "b.svg", exact=True).read_bytes()
    assert first == second
    root = ET.fromstring(first)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = first.decode()
    assert "Referrals received by month, by source" in text
    assert "ref-" not in text and "P01" not in text  # no identifiers


def test_plot_says_when_too_few_people(tmp_path: Path) -> None:
    # 2026Q3 suppressed: 13 referrals are drawn, but only 6 SWEMWBS pairs
    text = plot(REFERRALS, Q3, tmp_path / "q3.svg", exact=False).read_text()
    assert text.count("Fewer than 8 people") == 1
    # a two-month window is drawn by week; 2026Q2 has only 6 referrals and 5 waits of each
    # kind (its panel of SWEMWBS has no pairs at all, and says that instead)
    weekly = Window.between(date(2026, 7, 1), date(2026, 8, 31))
    assert "by week" in plot(REFERRALS, weekly, tmp_path / "w.svg", exact=True).read_text()
    # suppressed, every week's bar of each source is of 1 to 7 referrals
    assert (
        "Every bar is of 1 to 7" in plot(REFERRALS, weekly, tmp_path / "s.svg", False).read_text()
    )
    assert (
        plot(REFERRALS, Q2, tmp_path / "q2.svg", exact=False)
        .read_text()
        .count("Fewer than 8 people")
        == 2
    )
    with pytest.raises(ValueError):
        plot(REFERRALS, Q3, tmp_path / "q3.pdf", exact=True)


# ------------------------------------------------------------------ the synthetic year


def test_a_synthetic_year_has_shapes_to_look_at_and_says_what_it_is():
    from services.readside import synthetic
    from services.readside.model import SYNTHETIC_SENDER, is_synthetic

    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    year = synthetic.generate(600, now, seed=3)
    assert year == synthetic.generate(600, now, seed=3)  # the same seed, the same rows
    assert is_synthetic(year.referrals) and is_synthetic(year.rejections)
    assert {r.sender for r in year.referrals} == {SYNTHETIC_SENDER}
    assert all(r.pcn.startswith("SYN-") and r.registered_practice.startswith("SYN-")
               for r in year.referrals)  # fmt: skip
    assert min(r.received_at for r in year.referrals) >= now - timedelta(days=366)
    months = Counter(r.received_at.month for r in year.referrals)
    assert months[1] > months[8]  # busier in January than in August
    last = Window.between(date(2025, 12, 3), date(2026, 12, 2))
    rows = report(year.referrals, year.rejections, last, "pcn")
    shown = {f.group: disclosed(f, exact=False) for f in rows}
    assert len(shown) == 5 and all(v["received"] != "*" for v in shown.values())
    assert all(isinstance(v["wait_assigned_median"], float) for v in shown.values())
    medians = [v["wait_assigned_median"] for g, v in shown.items() if g != "total"]
    assert max(medians) > 2 * min(medians)  # the PCNs differ
    text = table(rows, synthetic=True)
    assert text.startswith("SYNTHETIC DATA: ")
    assert not table(rows).startswith("SYNTHETIC")


async def test_synthetic_rows_never_go_into_the_real_model():
    from services.readside import synthetic
    from services.readside.store import fill_synthetic

    year = synthetic.generate(50, datetime(2026, 12, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="only to a \\*_synthetic schema"):
        await fill_synthetic(None, "linkwell_reporting", year)  # type: ignore[arg-type]


def test_referrals_awaiting_an_nhs_number_are_counted_and_suppressed_like_any_count() -> None:
    import dataclasses

    waiting = [dataclasses.replace(r, awaiting_nhs_number=True) for r in REFERRALS[:3]]
    rows = waiting + REFERRALS[3:]
    total = report(rows, REJECTIONS, Q3, "source")[-1]
    in_q3 = sum(r.awaiting_nhs_number and Q3.contains(r.received_at) for r in rows)
    assert total.awaiting_nhs_number == in_q3 > 0
    assert report(REFERRALS, REJECTIONS, Q3, "source")[-1].awaiting_nhs_number == 0
    assert disclosed(total, exact=True)["awaiting_nhs_number"] == in_q3
    assert disclosed(total, exact=False)["awaiting_nhs_number"] == shown(in_q3, False)
    assert "NHS number awaited" in table(report(rows, REJECTIONS, Q3, "source"))
