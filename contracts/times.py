"""Whether the times an inbound event states are believable (``time_implausible``).

Two rules, each with ``limits.CLOCK_SKEW`` (5 minutes) of slack for the sender's clock:

- Nothing is dated in the future: the envelope's ``time`` (when the sender sent it) and
  every time in ``data`` (``occurred_at``, ``agreed_at``, ``submitted_at``,
  ``consent.recorded_at``...) at most ``CLOCK_SKEW`` ahead of Linkwell's clock when the
  event is judged. A plan's ``review_on`` is a date to come, not a time that happened,
  and is not judged; a date of birth has its own rule in the model.
- Nothing about a referral happens before Linkwell received it: every time in ``data``
  of an event naming a referral at most ``CLOCK_SKEW`` before the referral's receipt (the
  ``accepted_at`` of ``referral.accepted.v1``, when intake accepted it). The envelope's
  ``time`` is the sender's clock at sending, not a time of the journey: only the first
  rule applies to it.

Plain functions of their arguments: the services call them with their own clock and the
receipt time they stored (``docs/architecture/ordering-and-early-events.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from .enums import RejectionCode
from .events import Reason
from .limits import CLOCK_SKEW

SKEW_TEXT = f"{int(CLOCK_SKEW.total_seconds() // 60)} minutes"


def stated_times(data: BaseModel, prefix: str = "data") -> list[tuple[str, datetime]]:
    """Every time (not date) in ``data``, with its dotted path, nested parts included."""
    found: list[tuple[str, datetime]] = []
    for name in type(data).model_fields:
        _collect(getattr(data, name), f"{prefix}.{name}", found)
    return found


def _collect(value: object, path: str, found: list[tuple[str, datetime]]) -> None:
    if isinstance(value, datetime):
        found.append((path, value))
    elif isinstance(value, BaseModel):
        found.extend(stated_times(value, path))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _collect(item, f"{path}.{i}", found)


def ahead(field: str, at: datetime, now: datetime) -> Reason | None:
    """Refused if ``at`` is more than the skew after ``now``."""
    if at <= now + CLOCK_SKEW:
        return None
    return Reason(
        code=RejectionCode.TIME_IMPLAUSIBLE,
        field=field,
        message=f"{field} is in the future: a time may be at most {SKEW_TEXT} ahead of "
        "Linkwell's clock (UTC); send what happened once it has happened, dated when it did",
    )


def before_receipt(field: str, at: datetime, received_at: datetime) -> Reason | None:
    """Refused if ``at`` is more than the skew before the referral's receipt."""
    if at >= received_at - CLOCK_SKEW:
        return None
    received = received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Reason(
        code=RejectionCode.TIME_IMPLAUSIBLE,
        field=field,
        message=f"{field} is before Linkwell received this referral ({received}; "
        f"{SKEW_TEXT} of clock skew allowed): nothing about a referral happens before it",
    )


def implausible(
    sent: datetime, data: BaseModel, now: datetime, received_at: datetime | None = None
) -> list[Reason]:
    """Why the times of an event are not believable (none if they are): ``sent`` its
    envelope's ``time``, ``received_at`` the receipt of the referral it is about (None
    when it is about none, or the referral is not known yet)."""
    reasons = [r for r in [ahead("time", sent, now)] if r is not None]
    for field, at in stated_times(data):
        reason = ahead(field, at, now)
        if reason is None and received_at is not None:
            reason = before_receipt(field, at, received_at)
        if reason is not None:
            reasons.append(reason)
    return reasons


def summary(reasons: list[Reason]) -> str:
    """One line for a dead letter's detail."""
    return "; ".join(r.message for r in reasons)
