"""What the broker says about a message, and which of it Linkwell trusts.

Read from every delivery (and nothing else; the body is admission's business):

- ``exchange`` and ``routing_key``: set by the broker, so trusted. An inbound type must
  arrive from ``<ns>.inbound``, an emitted one from ``<ns>.events`` (``admission``).
- ``user_id``: the broker refuses a message whose ``user_id`` is not the publishing
  connection's user, so it names the real publisher
  (``docs/architecture/access-and-sender-identity.md``).
- ``headers['x-death']``: present when some queue dead-lettered the message into the
  exchange rather than a client publishing it; such messages skip the broker's publish
  checks and are refused.
- ``type``: the AMQP type, used to label metrics (from a closed set) before the body is
  read, and to name the refused event's type in an answer when the body does not.
- Linkwell's own ``x-linkwell-*`` headers (attempts, waits, origin, publisher) are trusted
  only on messages that come back through the default exchange: from our delay queues or
  a replay, which no organisation may publish to. On anything else they are ignored.

Never read: ``message_id``, ``correlation_id``, ``content_type``, ``content_encoding``,
``reply_to``, ``priority``, ``expiration``, ``timestamp``, ``app_id`` and other headers,
which a sender sets freely; they are never logged. A parked copy keeps the body, the
sender's headers, ``message_id``, ``correlation_id`` and ``type``; the rest are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

HEADER = "x-linkwell-"
ATTEMPT_HEADER = f"{HEADER}attempt"  # failed handling attempts so far
WAITS_HEADER = f"{HEADER}waits"  # waits for infrastructure or a missing dependency
ORIGIN_EXCHANGE = f"{HEADER}original-exchange"
ORIGIN_KEY = f"{HEADER}original-routing-key"
USER_HEADER = f"{HEADER}user-id"  # the broker-validated publisher, kept across retries
REASON_HEADER = f"{HEADER}reason"
DETAIL_HEADER = f"{HEADER}detail"
SERVICE_HEADER = f"{HEADER}service"
ATTEMPTS_HEADER = f"{HEADER}attempts"
FAILED_AT_HEADER = f"{HEADER}failed-at"
LAST_ERROR_HEADER = f"{HEADER}last-error"
REPLAYED_AT_HEADER = f"{HEADER}replayed-at"

_MAX_NAME = 255  # AMQP short strings: exchange and routing key names are at most this


@dataclass(frozen=True)
class Delivery:
    """Where a message was first published, by whom, and how often it has been tried."""

    exchange: str
    routing_key: str
    attempt: int = 0
    waits: int = 0
    user_id: str | None = None
    # dead-lettered into this exchange from some other queue rather than published to it
    forwarded: bool = False
    amqp_type: str | None = None

    @classmethod
    def of(cls, raw: AbstractIncomingMessage) -> Delivery:
        headers = raw.headers or {}
        amqp_type = _text(raw.type)
        if raw.exchange:  # published by a client (or forwarded by a queue): trust the broker
            return cls(
                raw.exchange,
                raw.routing_key or "",
                user_id=_text(raw.user_id),
                forwarded="x-death" in headers,
                amqp_type=amqp_type,
            )
        # through the default exchange: from our own delay queues or a replay
        return cls(
            _text(headers.get(ORIGIN_EXCHANGE)) or "",
            _text(headers.get(ORIGIN_KEY)) or "",
            _count(headers.get(ATTEMPT_HEADER)),
            _count(headers.get(WAITS_HEADER)),
            _text(headers.get(USER_HEADER)),
            amqp_type=amqp_type,
        )

    @property
    def attempts_made(self) -> int:
        return self.attempt + 1

    def parked_headers(self, original: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """Headers for a copy parked on a delay or dead-letter queue: the sender's own
        headers kept, any ``x-linkwell-*`` it sent replaced by ours."""
        kept = {k: v for k, v in original.items() if not str(k).startswith(HEADER)}
        identity = {USER_HEADER: self.user_id} if self.user_id else {}
        return {
            **kept,
            ATTEMPT_HEADER: self.attempt,
            WAITS_HEADER: self.waits,
            ORIGIN_EXCHANGE: self.exchange,
            ORIGIN_KEY: self.routing_key,
            **identity,
            **extra,
        }

    def retried(self, *, attempt: int = 0, waits: int = 0) -> Delivery:
        return replace(self, attempt=self.attempt + attempt, waits=self.waits + waits)


def _text(value: object) -> str | None:
    """A header or property as text, if it is short printable text; else nothing."""
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    if isinstance(value, str) and 0 < len(value) <= _MAX_NAME and value.isprintable():
        return value
    return None


def _count(value: object) -> int:
    try:
        return min(max(int(value), 0), 1_000_000)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
