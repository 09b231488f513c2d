"""Building the answer to a refused event from what can be known to be valid.

A refusal copies a little of the input into its answer (the event's id, the sender's
reference, the practice and PCN where well formed, for the figures on refusals). The
input failed validation, so any of it may be bad: an answer must never depend on it being
good. ``answer`` builds the full answer if it can, else a bare one (the id, or the body's
digest, and the type only), else the generic ``event.rejected.v1``; it never raises for
what the sender sent, so every refusal the broker can attribute is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from contracts import EventData
from contracts.enums import RejectionCode
from contracts.events import Reason

from .logs import get_logger

log = get_logger(__name__)
Builder = Callable[[dict[str, Any], str, list[Reason]], EventData]

# said when a refusal came with no reasons of its own (it must still say something)
UNREADABLE = Reason(
    code=RejectionCode.ENVELOPE_INVALID,
    message="the message could not be read as a Linkwell event",
)


def answer(
    build: Builder, fallback: Builder, raw: dict[str, Any], sender: str, reasons: list[Reason]
) -> EventData:
    """The answer to a refused event: ``build`` from ``raw``, or from its id and type alone,
    or ``fallback`` (``event.rejected.v1``) from those."""
    reasons = list(reasons) or [UNREADABLE]
    bare = {"id": raw.get("id"), "type": raw.get("type")}
    for builder, body in ((build, raw), (build, bare), (fallback, bare)):
        try:
            return builder(body, sender, reasons)
        except (ValidationError, ValueError, TypeError, AttributeError) as exc:
            # a value the sender sent slipped past its check: answer with less of it
            log.warning("answer_built_with_less", error=type(exc).__name__)
    return fallback(bare, sender, [UNREADABLE])
