"""The reporting model's rows, as the figures read them (free of I/O).

One ``ReferralRow`` per referral intake accepted, one ``RejectionRow`` per submission it
refused, one ``RosterRow`` per link worker. They are projected by outcomes from what it
stores (``services/outcomes/reporting/store.py``) as each event is handled, and can be
rebuilt from it; the read side reads them (``store.load``). No row holds a name, NHS
number, date of birth or contact detail.

Synthetic rows (``synthetic.py``) carry the reserved sender ``SYNTHETIC_SENDER``: a model
holding any is shown as synthetic wherever it shows (``is_synthetic``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

SYNTHETIC_SENDER = "SYNTHETIC"  # reserved: no ODS code is this
SYNTHETIC_LEAD = "SYNTHETIC DATA"
SYNTHETIC_DETAIL = (
    "invented referrals for trying Linkwell out (linkwell synthetic). "
    "These are not real people and not real figures."
)
SYNTHETIC_NOTE = f"{SYNTHETIC_LEAD}: {SYNTHETIC_DETAIL}"


@dataclass(frozen=True)
class ReferralRow:
    referral_id: str
    person_id: str | None  # the same for every referral of one person (PC-01 counts people)
    sender: str  # the referring organisation's code
    agency_type: str  # contracts.enums.AgencyType value: the "source"
    registered_practice: str  # GP practice ODS code
    pcn: str  # PCN ODS code
    needs: tuple[str, ...]  # contracts.enums.Need values
    pathway: str  # adult, children_and_young_people
    received_at: datetime  # intake accepted it
    waitlisted_at: datetime | None  # first waitlisted, if ever
    assigned_at: datetime | None  # first given a link worker, if ever
    first_contact_at: datetime | None  # first contact that reached the person
    declined_at: datetime | None  # the person declined (first decisive contact, or closure)
    withdrawn_at: datetime | None
    closed_at: datetime | None  # closed (not withdrawn)
    close_reason: str | None  # contracts.enums.ClosureReason value when closed
    contacts: int  # contacts that reached the person
    coded_at: datetime | None  # when 871731000000106 was written to the GP record
    link_worker_id: str | None  # current (or last) link worker
    joined: bool  # joined a person's open episode (took no place)
    swemwbs_baseline: float | None  # metric score of the first baseline
    swemwbs_end: float | None  # metric score of the last end measurement
    ons4_baseline: (
        tuple[int, int, int, int] | None
    )  # life satisfaction, worthwhile, happiness, anxiety
    ons4_end: tuple[int, int, int, int] | None
    awaiting_nhs_number: bool = False  # came without one; the team has not confirmed it yet

    @property
    def completed(self) -> bool:
        return self.closed_at is not None and self.close_reason == "completed"

    @property
    def open(self) -> bool:
        return self.closed_at is None and self.withdrawn_at is None

    @property
    def waiting(self) -> bool:
        """On the waitlist now."""
        return self.open and not self.joined and self.assigned_at is None


@dataclass(frozen=True)
class RejectionRow:
    submission_id: str
    sender: str
    agency_type: str | None  # unknown when the form could not be read
    registered_practice: str | None
    pcn: str | None
    reasons: tuple[str, ...]  # contracts.enums.RejectionCode values
    rejected_at: datetime


@dataclass(frozen=True)
class RosterRow:
    pcn: str
    link_worker_id: str
    capacity: int
    active: bool
    caseload: int  # people assigned to the worker now


def is_synthetic(*groups: Iterable[ReferralRow | RejectionRow]) -> bool:
    """Whether any row is synthetic: then everything drawn from these rows is marked."""
    return any(row.sender == SYNTHETIC_SENDER for rows in groups for row in rows)
