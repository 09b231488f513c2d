"""Admission: whether a delivery may be handled at all, and if not, why.

In order, each refusal a ``BadMessage`` with a machine-readable reason:

1. the message arrived the way its type must (``check_origin``): inbound types only from
   ``<ns>.inbound`` with the type as routing key, Linkwell's own only from ``<ns>.events``,
   nothing dead-lettered into an exchange by some other queue (``unsupported_type``);
2. the body is at most ``MAX_BODY_BYTES`` (``too_large``, refused unparsed), UTF-8 JSON
   (``not_json``), an object (``envelope_invalid``), and no string in it holds a control
   character or an unpaired surrogate (``envelope_invalid`` / ``schema_invalid``);
3. a strict CloudEvents 1.0 envelope (``envelope_invalid``) of a type this service
   handles (``unsupported_type``);
4. for inbound events, the sender is who the broker says published it
   (``check_sender``: ``sender_unverified``, ``source_mismatch``);
5. ``data`` is valid for its type, strictly: JSON types only (``schema_invalid``, or a
   more specific code such as ``nhs_number_invalid``).

The organisation policy lives here too: who hears of a refusal (``answer_to``), and that an
organisation acts only on what is its own (``require_own``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contracts import EVENTS, CloudEvent, Direction, EventData, RawEvent, org_from_source
from contracts import org_source as source_of
from contracts.enums import RejectionCode
from contracts.events import EventRejected, Reason, envelope_type
from contracts.limits import MAX_BODY_BYTES, forbidden_character
from contracts.rejections import reasons_from

from .delivery import Delivery
from .errors import BadMessage
from .names import Names
from .trust import speaks_for

RejectionBuilder = Callable[[dict[str, Any], str, list[Reason]], EventData]
_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_MAX_SCAN = 50_000  # strings and containers looked at; a 256 kB body has fewer


@dataclass(frozen=True, eq=False)
class Admitted:
    envelope: CloudEvent[Any]
    data: EventData
    body: bytes

    @functools.cached_property
    def raw(self) -> dict[str, Any]:
        """The body as plain JSON (read again only when needed: a refusal, a redaction)."""
        value = json.loads(self.body)
        return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------ the body


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a ``BadMessage`` saying why it is not one."""
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage(
            "too_large",
            f"body of {len(body)} bytes is over the limit of {MAX_BODY_BYTES}",
            [_reason(RejectionCode.TOO_LARGE, f"a message may be at most {MAX_BODY_BYTES} bytes")],
        )
    try:
        raw = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: nested beyond reason
        raise BadMessage(
            "not_json",
            f"body is not UTF-8 JSON ({type(exc).__name__})",
            [_reason(RejectionCode.ENVELOPE_INVALID, "the body must be a UTF-8 JSON object")],
        ) from None
    if not isinstance(raw, dict):
        raise BadMessage(
            "envelope_invalid",
            "body is not a JSON object",
            [_reason(RejectionCode.ENVELOPE_INVALID, "the body must be a JSON object")],
        )
    bad = forbidden_fields(raw)
    if bad:
        reasons = [
            _reason(
                RejectionCode.SCHEMA_INVALID
                if path.startswith("data.")
                else RejectionCode.ENVELOPE_INVALID,
                "text may not contain control characters or unpaired surrogates",
                path,
            )
            for path in bad[:20]
        ]
        raise BadMessage(
            reasons[0].code.value, f"forbidden characters in {', '.join(bad[:5])}", reasons, raw
        )
    return raw


def forbidden_fields(raw: Any) -> list[str]:
    """Dotted paths of the strings (values or keys) holding forbidden characters."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(raw, "")]
    seen = 0
    while stack and seen < _MAX_SCAN:
        node, path = stack.pop()
        seen += 1
        if isinstance(node, str):
            if forbidden_character(node):
                found.append(path or "(body)")
        elif isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else str(key)
                if forbidden_character(str(key)):
                    found.append(f"{path}.(key)" if path else "(key)")
                    continue
                stack.append((value, sub))
        elif isinstance(node, list):
            stack.extend((item, f"{path}.{i}") for i, item in enumerate(node))
    return sorted(set(found))


# ------------------------------------------------------------------ the envelope


def check_origin(names: Names, delivery: Delivery, event_type: str) -> str | None:
    """Why this type may not arrive this way, or None if it may."""
    if delivery.forwarded:  # a queue's dead-lettering skips the broker's publish checks
        return f"{event_type} was dead-lettered into {delivery.exchange}, not published to it"
    spec = EVENTS.get(event_type)
    if delivery.exchange == names.inbound:
        if spec is None or spec.model.DIRECTION is not Direction.INBOUND:
            return f"{event_type} may not be published to {names.inbound}"
        if delivery.routing_key != event_type:
            return f"routing key must be the type, {event_type}"
        return None
    if delivery.exchange == names.events:
        if spec is None or spec.model.DIRECTION is not Direction.EMITTED:
            return f"{event_type} is not a Linkwell event"
        if not delivery.routing_key.startswith(f"{event_type}."):
            return f"routing key does not match {event_type}"
        return None
    return "arrived from an unknown exchange"


def check_sender(trusted: frozenset[str], user_id: str | None, source: str) -> Reason | None:
    """Why an inbound event may not claim this ``source``, or None if it may. The broker
    vouches for ``user_id``; an organisation's broker username is its organisation code."""
    if speaks_for(trusted, user_id, org_from_source(source)):
        return None
    if user_id is None:
        return _reason(
            RejectionCode.SENDER_UNVERIFIED,
            "set the AMQP user_id property to your broker username, so that the broker "
            "vouches for the sender",
            "user_id",
        )
    if org_from_source(source) != user_id:
        return _reason(
            RejectionCode.SOURCE_MISMATCH,
            f"source must be {source_of(user_id)} for broker user {user_id}",
            "source",
        )
    return None


def admit(
    body: bytes,
    delivery: Delivery,
    *,
    names: Names,
    service: str,
    models: Mapping[str, type[EventData]],
    trusted: frozenset[str],
) -> Admitted:
    """The validated event, or a ``BadMessage`` (with the parsed body where there is one).

    Most messages are well formed: they take one strict validation against the type their
    routing key names, and the checks on it. Anything else takes every step in turn, to
    say exactly what is wrong."""
    if len(body) <= MAX_BODY_BYTES and _SUSPICIOUS.search(body) is None:
        quick = _admit_quickly(body, delivery, names, models, trusted)
        if quick is not None:
            return quick
    raw = parse_body(body)
    try:
        envelope = RawEvent.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _invalid("envelope_invalid", RejectionCode.ENVELOPE_INVALID, exc, raw) from None
    refusal = check_origin(names, delivery, envelope.type)
    model = models.get(envelope.type)
    if refusal is None and model is None:
        refusal = f"{service} does not handle {envelope.type}"
    if refusal is not None or model is None:
        reason = _reason(RejectionCode.UNSUPPORTED_TYPE, refusal or "", "type")
        raise BadMessage("unsupported_type", refusal or "", [reason], raw)
    if delivery.exchange == names.inbound:
        wrong = check_sender(trusted, delivery.user_id, envelope.source)
        if wrong is not None:
            raise BadMessage(wrong.code.value, wrong.message, [wrong], raw)
    try:
        typed = envelope_type(model).model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _invalid("schema_invalid", RejectionCode.SCHEMA_INVALID, exc, raw) from None
    return Admitted(typed, typed.data, body)


# escaped control characters and surrogates, DEL: the bytes that call for the full scan
_SUSPICIOUS = re.compile(rb"\\u(?:00[01][0-9a-fA-F]|007[fF]|[dD][89a-fA-F][0-9a-fA-F]{2})|\x7f")


def _admit_quickly(
    body: bytes,
    delivery: Delivery,
    names: Names,
    models: Mapping[str, type[EventData]],
    trusted: frozenset[str],
) -> Admitted | None:
    """The well-formed case, or None to take the full path."""
    key = delivery.routing_key
    event_type = key if delivery.exchange == names.inbound else key.rpartition(".")[0]
    model = models.get(event_type)
    if model is None or delivery.forwarded:
        return None
    try:
        typed = envelope_type(model).model_validate_json(body, strict=True)
    except ValueError:
        return None
    if typed.type != event_type or check_origin(names, delivery, event_type) is not None:
        return None
    if (
        delivery.exchange == names.inbound
        and check_sender(trusted, delivery.user_id, typed.source) is not None
    ):
        return None
    return Admitted(typed, typed.data, body)


def _invalid(
    reason: str, code: RejectionCode, exc: ValidationError, raw: dict[str, Any]
) -> BadMessage:
    reasons = reasons_from(exc)
    if code is RejectionCode.ENVELOPE_INVALID:
        reasons = [r.model_copy(update={"code": code}) for r in reasons]
    detail = "; ".join(f"{r.field}: {r.message}" for r in reasons)
    return BadMessage(reason, _cut(detail, 900), reasons[:50], raw)


# ------------------------------------------------------------------ the organisation policy


def answer_to(
    names: Names, trusted: frozenset[str], delivery: Delivery, source: str | None
) -> str | None:
    """Who hears of a refusal: only the organisation the broker says published it. The
    claimed source only for a trusted publisher (it speaks for others) or for Linkwell's
    own events; an inbound message without ``user_id`` is answered to nobody (anyone could
    name a victim as its source), only dead-lettered."""
    user = delivery.user_id
    claimed = org_from_source(source)
    if delivery.exchange != names.inbound:
        return claimed
    if not user:
        return None
    if speaks_for(trusted, user, claimed):
        return claimed
    return org_from_source(source_of(user))  # None for a user that is not an organisation


def require_own(sender: str | None, owner: str | None, what: str, *also: str | None) -> None:
    """An organisation acts only on what is its own: a link worker team on its PCN's roster
    and referrals, an agency on the referrals it sent. ``also``: other organisations that
    may (the referrer, for a withdrawal). ``owner`` None: nothing to check."""
    allowed = {o for o in (owner, *also) if o is not None}
    if owner is not None and sender not in allowed:
        message = f"{what} is not yours to act on: only {' or '.join(sorted(allowed))} may"
        raise BadMessage(
            "not_permitted", message, [_reason(RejectionCode.NOT_PERMITTED, message, "source")]
        )


def refuse(reason: RejectionCode, message: str, field: str | None = None) -> BadMessage:
    """A refusal a handler raises: answered to the sender with this reason, dead-lettered."""
    return BadMessage(reason.value, message, [_reason(reason, message, field)])


def event_id_of(raw: dict[str, Any] | None, body: bytes) -> str:
    """The refused event's id if it has a usable one, else a digest of the body."""
    value = raw.get("id") if raw else None
    if isinstance(value, str) and _ID.match(value):
        return value
    return "sha256:" + hashlib.sha256(body).hexdigest()[:40]


def printable(value: object, limit: int = 128) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
        return value
    return None


def default_rejection(raw: dict[str, Any], sender: str, reasons: list[Reason]) -> EventData:
    return EventRejected(
        rejected_event_id=str(raw.get("id")),
        rejected_type=printable(raw.get("type")),
        sender=sender,
        reasons=reasons,
        rejected_at=datetime.now(UTC),
    )


def _reason(code: RejectionCode, message: str, field: str | None = None) -> Reason:
    return Reason(code=code, message=_cut(message, 1000), field=field[:200] if field else None)


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary, with an ellipsis if cut."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:") + "…"
