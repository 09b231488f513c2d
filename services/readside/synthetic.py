"""A believable year of synthetic referrals, so that a newcomer sees what the reports,
pictures and dashboard are for (``linkwell synthetic``).

Kept apart from real figures three ways, so the two cannot mix unnoticed:

- the rows go to their own schema, ``<ns>_synthetic`` (the reporting model's tables, from
  outcomes' reporting migrations), never to ``<ns>_reporting``, which only outcomes'
  projection writes; the read side reads it only when asked (``--synthetic``);
- every row carries the reserved sender code ``SYNTHETIC`` and PCN and practice codes
  that begin ``SYN`` (no ODS code does);
- the read side marks everything it shows from a model holding any such row (a banner on
  every dashboard page, "SYNTHETIC" above every report and in every picture's title),
  whichever schema it reads.

The shapes are invented, not drawn from any source: four PCNs of different sizes, more
referrals in winter and fewer in August and at Christmas, mostly from general practice,
waits of one to three weeks that differ between PCNs, most people engaging and about two
in three completing, SWEMWBS a few points higher at the end. ``generate`` is pure (a
seeded random generator), so the same seed gives the same rows.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from .model import SYNTHETIC_SENDER, ReferralRow, RejectionRow, RosterRow

# (PCN code, share of referrals, median days to a link worker, link workers)
PCNS = (
    ("SYN-PCN-NORTH", 0.34, 6.0, 4),
    ("SYN-PCN-RIVERSIDE", 0.28, 11.0, 3),
    ("SYN-PCN-MARKET", 0.22, 17.0, 3),
    ("SYN-PCN-HILLS", 0.16, 8.0, 2),
)
SOURCES = {
    "general_practice": 52, "self_referral": 9, "community_pharmacy": 5,
    "hospital_discharge": 7, "vcse": 6, "housing_association": 4, "local_authority": 4,
    "social_care": 3, "job_centre": 3, "police": 2, "fire_service": 2,
    "family_or_carer": 2, "allied_health_professional": 1,
}  # fmt: skip
NEEDS = {
    "loneliness": 22, "mental_health": 18, "money_and_debt": 10, "long_term_condition": 9,
    "healthy_lifestyle": 8, "bereavement": 7, "housing": 6, "carer_support": 5,
    "employment": 4, "daily_living": 4, "falls_prevention": 3, "volunteering": 2, "other": 2,
}  # fmt: skip
MONTH_WEIGHT = (1.25, 1.15, 1.1, 1.0, 1.0, 0.95, 0.9, 0.8, 1.05, 1.15, 1.2, 0.85)  # Jan..Dec
REJECTIONS = (("consent_missing",), ("nhs_number_invalid",), ("schema_invalid",))


@dataclass(frozen=True)
class Year:
    referrals: list[ReferralRow]
    rejections: list[RejectionRow]
    roster: list[RosterRow]  # caseload as generated; the store counts it again on reading


def practice_codes(pcn: str) -> list[str]:
    short = pcn.removeprefix("SYN-PCN-")[:3]
    return [f"SYN-{short}-{n}" for n in range(1, 5)]


def generate(count: int, now: datetime, seed: int = 1) -> Year:
    """About ``count`` referrals received over the year to ``now``."""
    rng = random.Random(seed)
    referrals: list[ReferralRow] = []
    rejections: list[RejectionRow] = []
    roster: list[RosterRow] = []
    start = now - timedelta(days=365)
    people: list[uuid.UUID] = []
    for pcn, share, median_wait, workers in PCNS:
        names = [f"syn-{pcn.removeprefix('SYN-PCN-').lower()}-{n}" for n in range(1, workers + 1)]
        practices = practice_codes(pcn)
        for _ in range(round(count * share)):
            received = _received(rng, start, now)
            person = rng.choice(people) if people and rng.random() < 0.04 else _uuid(rng)
            people.append(person)
            referrals.append(
                _journey(rng, pcn, practices, names, median_wait, received, now, person)
            )
        for n in range(round(count * share * 0.03)):
            rejections.append(
                RejectionRow(
                    submission_id=f"synthetic#{pcn}-{n}",
                    sender=SYNTHETIC_SENDER,
                    agency_type=_pick(rng, SOURCES),
                    registered_practice=rng.choice(practices),
                    pcn=pcn,
                    reasons=rng.choice(REJECTIONS),
                    rejected_at=_received(rng, start, now),
                )
            )
        for name in names:
            roster.append(RosterRow(pcn, name, rng.choice((30, 35, 35, 40, 45)), True, 0))
    referrals.sort(key=lambda r: r.received_at)
    return Year(referrals, rejections, roster)


def _received(rng: random.Random, start: datetime, now: datetime) -> datetime:
    """A working-day time, more often in the busier months."""
    while True:
        day = start + timedelta(days=rng.random() * (now - start).days)
        if day.weekday() >= 5 and rng.random() < 0.9:
            continue
        if rng.random() * 1.25 > MONTH_WEIGHT[day.month - 1]:
            continue
        moment = day.replace(
            hour=rng.randint(8, 17), minute=rng.randint(0, 59), second=0, microsecond=0
        )
        if moment < now:
            return moment


def _journey(
    rng: random.Random,
    pcn: str,
    practices: list[str],
    workers: list[str],
    median_wait: float,
    received: datetime,
    now: datetime,
    person: uuid.UUID,
) -> ReferralRow:
    def after(moment: datetime, median_days: float, spread: float = 0.6) -> datetime | None:
        then = moment + timedelta(days=median_days * math.exp(rng.gauss(0, spread)))
        return then if then < now else None

    waitlisted = received + timedelta(minutes=rng.randint(1, 30)) if rng.random() < 0.45 else None
    withdrawn = after(received, 10) if rng.random() < 0.04 else None
    assigned = None if withdrawn or rng.random() < 0.05 else after(received, median_wait)
    contact = after(assigned, 3, 0.5) if assigned and rng.random() < 0.93 else None
    declined = contact if contact and rng.random() < 0.09 else None
    closed, reason = None, None
    if declined:
        closed, reason = declined, "declined"
    elif contact:
        closed = after(contact, 60, 0.35)
        reason = (
            "completed"
            if rng.random() < 0.82
            else rng.choice(("unable_to_contact", "moved_away", "referred_elsewhere", "other"))
        )
    elif assigned and rng.random() < 0.5:
        closed, reason = after(assigned, 30), "unable_to_contact"
    if closed is None:
        reason = None
    engaged = contact is not None and declined is None
    measured = engaged and rng.random() < 0.7
    ended = measured and reason == "completed" and rng.random() < 0.8
    baseline = _clip(rng.gauss(19.5, 3.5), 7, 35) if measured else None
    end = _clip(baseline + rng.gauss(2.6, 3.0), 7, 35) if ended and baseline else None
    # life satisfaction, worthwhile, happiness (higher is better), anxiety (lower is)
    ons_start = (rng.randint(2, 7), rng.randint(2, 7), rng.randint(2, 7), rng.randint(3, 9))
    ons_end = (
        *(min(10, v + rng.randint(0, 3)) for v in ons_start[:3]),
        max(0, ons_start[3] - rng.randint(0, 3)),
    )
    needs = sorted({_pick(rng, NEEDS) for _ in range(rng.choice((1, 1, 2, 2, 3)))})
    return ReferralRow(
        referral_id=str(_uuid(rng)),
        person_id=str(person),
        sender=SYNTHETIC_SENDER,
        agency_type=_pick(rng, SOURCES),
        registered_practice=rng.choice(practices),
        pcn=pcn,
        needs=tuple(needs),
        pathway="children_and_young_people" if rng.random() < 0.08 else "adult",
        received_at=received,
        waitlisted_at=waitlisted,
        assigned_at=assigned,
        first_contact_at=contact,
        declined_at=declined,
        withdrawn_at=withdrawn,
        closed_at=closed,
        close_reason=reason,
        contacts=0 if contact is None else rng.randint(1, 8),
        coded_at=contact if engaged and rng.random() < 0.95 else None,
        link_worker_id=rng.choice(workers) if assigned else None,
        joined=False,
        swemwbs_baseline=baseline,
        swemwbs_end=end,
        ons4_baseline=ons_start if measured else None,  # type: ignore[arg-type]
        ons4_end=ons_end if ended else None,  # type: ignore[arg-type]
    )


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _clip(value: float, low: float, high: float) -> float:
    return round(min(high, max(low, value)), 2)
