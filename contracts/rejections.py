"""Turning validation errors into machine-readable rejection reasons.

Messages never echo the rejected value (it may be personal data): pydantic's error
messages describe the expectation, and the input is never included.
"""

from __future__ import annotations

from pydantic import ValidationError

from .enums import RejectionCode
from .events import Reason

_CONSENT_FIELDS = {("consent",), ("consent", "given")}
# Fields whose third-party validators quote parts of the input in their messages.
_FIXED_MESSAGES = {"email": "value is not a valid email address"}


def reason_for(error_type: str, loc: tuple[str | int, ...]) -> RejectionCode:
    if loc[:1] == ("data",):  # a whole envelope's error: judge by the path within data
        loc = loc[1:]
    if error_type == "nhs_number_invalid":
        return RejectionCode.NHS_NUMBER_INVALID
    if loc in _CONSENT_FIELDS and (error_type == "missing" or loc == ("consent", "given")):
        # consent is an explicit JSON true: "yes", 1 or "true" is no consent
        return RejectionCode.CONSENT_MISSING
    return RejectionCode.SCHEMA_INVALID


def _short(path: str) -> str | None:
    """A field's dotted path, at most 200 characters (a sender chooses the keys)."""
    return path[:200] or None


def reasons_from(exc: ValidationError, prefix: str = "") -> list[Reason]:
    reasons = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        reasons.append(
            Reason(
                code=reason_for(err["type"], loc),
                message=_FIXED_MESSAGES.get(str(loc[-1]) if loc else "", err["msg"]),
                field=_short(f"{prefix}{field}" if field else prefix.rstrip(".")),
            )
        )
    return reasons
