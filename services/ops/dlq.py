"""Dead letters: look at them without taking them, and send chosen ones back.

Each service's dead-letter queue ``<ns>.<service>.dead-letter`` holds the original body of
every message the consumer gave up on, with the reason in ``x-linkwell-*`` headers
(``consumer._dead_letter``).

**Looking (peek).** RabbitMQ cannot browse a queue, so a peek takes every message with
``basic.get`` without acknowledging it, reads its headers and gives it back. On RabbitMQ
3.10 quorum queues (``tests/integration/test_dlq.py`` keeps checking this):

- Nothing is lost. A message given back, by a nack with requeue or by its channel or
  connection closing (a crashed or interrupted peek), returns to the queue. Each return
  adds one to its delivery count; the dead-letter queues have no delivery limit, so that
  count never drops anything. RabbitMQ 4 gives quorum queues a default delivery limit of
  20: there, set the policy ``delivery-limit: -1`` on the dead-letter queues first.
- The order is kept only if the messages are given back one at a time, in order, and no
  faster than the queue applies them. A closing channel gives back what it holds in no
  particular order; a channel with 32 or more settlements (acks or nacks) in flight stashes
  the rest and sends them later as one unordered batch, or not at all if it closes first,
  so that acknowledged messages come back. So messages are given back in small batches,
  each awaited until the queue shows it back, and acknowledgements are spaced by the
  publisher confirm that precedes each. A given-back message goes to the tail: the held
  ones keep their order, and a message dead-lettered during a peek moves ahead of them.
- While one peek holds the messages, another peek (or a depth check) sees fewer.

Only identifiers and the failure leave this module: the envelope's ``id``, its ``type``
if it is a registered type, and its sender if ``source`` is ``urn:linkwell:org:<CODE>``.
Never ``data``, ``subject`` or any other field of the body.

**Replay.** A chosen message is published again through the default exchange straight to
the service's own queue, so only that service sees it, persistent and with publisher
confirms; only once the broker has confirmed the copy is the dead letter acknowledged
(removed). Unchosen messages are given back in order. A crash between the confirm and
the acknowledgement leaves both copies, so a later replay sends the message again:
replay is at least once, and the service's inbox, keyed by the envelope's (source, id),
drops the second copy, so a referral is never made twice.

The replayed copy keeps every ``x-linkwell-*`` header (where the message was first
published, the sender's identity) except the dead-letter ones (reason, detail, service,
attempts, failed-at, last-error); its attempt and wait counts start again at 0, and
``x-linkwell-replayed-at`` says when. The service trusts those headers on anything that
arrives through the default exchange, so only a dead letter the consumer itself wrote
(it sets every ``x-linkwell-*`` header, dropping any the sender sent) is replayed. One
the broker dead-lettered from the service queue (its delivery limit: the message kept
killing its consumer) still carries the headers it was sent with, perhaps forged: it is
listed but never replayed (resubmit it with ``linkwell submit`` once understood). Only
Linkwell's own broker users may publish to ``<ns>.dead-letter`` and to the default
exchange (``linkwell access``), so no organisation can write a dead letter or a replay.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, DeliveryMode
from aio_pika.exceptions import ChannelNotFoundEntity

from contracts import EVENTS, org_from_source
from services.runtime.delivery import (
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    DETAIL_HEADER,
    FAILED_AT_HEADER,
    LAST_ERROR_HEADER,
    ORIGIN_EXCHANGE,
    ORIGIN_KEY,
    REASON_HEADER,
    REPLAYED_AT_HEADER,
    SERVICE_HEADER,
    WAITS_HEADER,
)
from services.runtime.names import Names
from services.runtime.publisher import PUBLISH_TIMEOUT
from services.runtime.redaction import redact
from services.runtime.settings import Settings

# Written by the consumer on a dead letter only; meaningless once it is replayed.
DEAD_LETTER_ONLY = frozenset(
    {
        REASON_HEADER,
        DETAIL_HEADER,
        SERVICE_HEADER,
        ATTEMPTS_HEADER,
        FAILED_AT_HEADER,
        LAST_ERROR_HEADER,
    }
)
# The broker's record of a message's past lives (dead-lettering, redeliveries).
BROKER_HEADERS = frozenset({"x-death", "x-delivery-count"})
BROKER_PREFIXES = ("x-first-death-", "x-last-death-")

REPLAY_APP_ID = "linkwell-dlq"
# Settlements in flight on one channel stay well below the quorum queue client's limit
# of 32, beyond which it stashes them and sends them later, unordered.
RELEASE_BATCH = 8
RELEASE_WAIT = 2.0  # seconds for a batch to show back in the queue before moving on
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class DeadLetter:
    """What an operator may see of one dead letter: identifiers and the failure only."""

    service: str
    queue: str
    position: int  # 0 = the head of the queue
    id: str  # the envelope's id; else the AMQP message id; else a digest of the body
    event_type: str | None
    sender: str | None
    reason: str
    detail: str
    attempts: int | None
    failed_at: datetime | None
    original_exchange: str | None
    original_routing_key: str | None
    replayable: bool

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.failed_at is None else (now - self.failed_at).total_seconds()

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "service": self.service,
            "queue": self.queue,
            "position": self.position,
            "id": self.id,
            "event_type": self.event_type,
            "sender": self.sender,
            "reason": self.reason,
            "detail": self.detail,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "age_seconds": _round(self.age_seconds(now)),
            "original_exchange": self.original_exchange,
            "original_routing_key": self.original_routing_key,
            "replayable": self.replayable,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# ------------------------------------------------------------------ reading a dead letter


def _text(value: object, limit: int = 200) -> str:
    """A header or attribute as one safe line: no control characters, redacted, bounded."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    text = _CONTROL.sub(" ", str(value)).strip()
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _identifier(value: object) -> str | None:
    """An id usable on a command line, or None if it is unusable or looks personal."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    if not isinstance(value, str) or not 0 < len(value) <= 128 or not value.isprintable():
        return None
    if value.strip() != value or redact(value) != value:
        return None
    return value


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", errors="replace")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _envelope_identity(body: bytes) -> tuple[object, object, object]:
    """The envelope's id, source and type; nothing else is read from the body."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None, None, None
    if not isinstance(raw, dict):
        return None, None, None
    return raw.get("id"), raw.get("source"), raw.get("type")


def broker_death(
    headers: Mapping[str, Any], names: Names, service: str
) -> Mapping[str, Any] | None:
    """The broker's ``x-death`` entry if the broker itself dead-lettered this message out of
    the service's queue (it hit the queue's delivery limit), else None."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        if deaths[0].get("queue") == names.queue(service):
            return deaths[0]
    return None


def written_by_consumer(headers: Mapping[str, Any], names: Names, service: str) -> bool:
    """True if this dead letter is the consumer's own copy, whose ``x-linkwell-*`` headers the
    consumer set itself (it drops any a sender sent), so the service may trust them."""
    return (
        REASON_HEADER in headers
        and _text(headers.get(SERVICE_HEADER, "")) == service
        and broker_death(headers, names, service) is None
    )


def read(
    names: Names,
    service: str,
    position: int,
    body: bytes,
    headers: Mapping[str, Any],
    message_id: str | None = None,
    amqp_type: str | None = None,
) -> DeadLetter:
    """Describe a dead letter for an operator: identifiers and the failure, no contents."""
    env_id, source, env_type = _envelope_identity(body)
    ident = (
        _identifier(env_id)
        or _identifier(message_id)
        or f"sha256:{hashlib.sha256(body).hexdigest()[:16]}"
    )
    event_type = next(
        (t for t in (amqp_type, env_type) if isinstance(t, str) and t in EVENTS), None
    )
    sender = org_from_source(source) if isinstance(source, str) else None
    trusted = written_by_consumer(headers, names, service)
    death = broker_death(headers, names, service)
    if trusted:
        reason = _text(headers.get(REASON_HEADER), 64)
        detail = _text(headers.get(DETAIL_HEADER, ""), 1000)
        attempts = _int(headers.get(ATTEMPTS_HEADER))
        failed_at = _time(headers.get(FAILED_AT_HEADER))
        exchange = _text(headers.get(ORIGIN_EXCHANGE, ""))
        routing_key = _text(headers.get(ORIGIN_KEY, ""))
    elif death is not None:
        reason = _text(death.get("reason") or "dead-lettered", 64)
        detail = (
            f"dead-lettered by the broker from {names.queue(service)}: its headers are the "
            "sender's, so it is not replayed; resubmit it once understood"
        )
        attempts = _int(headers.get("x-delivery-count"))
        failed_at = _time(death.get("time"))
        exchange, routing_key = None, None
    else:
        reason = "unknown"
        detail = "not written by Linkwell's consumer: not replayed"
        attempts, failed_at, exchange, routing_key = None, None, None, None
    return DeadLetter(
        service=service,
        queue=names.dead_letter_queue(service),
        position=position,
        id=ident,
        event_type=event_type,
        sender=sender,
        reason=reason,
        detail=detail,
        attempts=attempts,
        failed_at=failed_at,
        original_exchange=exchange,
        original_routing_key=routing_key,
        replayable=trusted,
    )


def replay_headers(headers: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The headers of a replayed copy of a dead letter the consumer wrote: every
    ``x-linkwell-*`` header but the dead-letter ones, attempt and wait counts back to 0,
    the replay time; the sender's other headers; none of the broker's past-life headers."""
    out: dict[str, Any] = {}
    for key, value in headers.items():
        if key in BROKER_HEADERS or key.startswith(BROKER_PREFIXES) or key in DEAD_LETTER_ONLY:
            continue
        out[key] = value
    out[ATTEMPT_HEADER] = 0
    out[WAITS_HEADER] = 0
    out[REPLAYED_AT_HEADER] = now.astimezone(UTC).isoformat()
    return out


def replay_message(message: AbstractIncomingMessage, now: datetime) -> aio_pika.Message:
    """The copy to publish: the same body and envelope properties, persistent. Not the
    ``user_id`` property, which the broker checks against whoever publishes."""
    return aio_pika.Message(
        message.body,
        headers=replay_headers(dict(message.headers or {}), now),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        timestamp=message.timestamp,
        app_id=REPLAY_APP_ID,
    )


# ------------------------------------------------------------------ holding a queue


@dataclass
class _Held:
    letter: DeadLetter
    message: AbstractIncomingMessage


async def _depth(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def _take_all(channel: AbstractChannel, names: Names, service: str) -> list[_Held]:
    """Every message ready in the service's dead-letter queue, unacknowledged, in order."""
    queue_name = names.dead_letter_queue(service)
    queue = await channel.declare_queue(queue_name, passive=True)
    expected = queue.declaration_result.message_count or 0
    held: list[_Held] = []
    while len(held) < expected:  # bounded: messages arriving meanwhile wait for next time
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        letter = read(
            names,
            service,
            len(held),
            message.body,
            dict(message.headers or {}),
            message.message_id,
            message.type,
        )
        held.append(_Held(letter, message))
    return held


async def _release(channel: AbstractChannel, queue: str, messages: Sequence[_Held]) -> bool:
    """Give messages back to the queue in their order (see the module docstring). Returns
    False if the queue did not show a batch back in time (someone else is peeking): the
    rest are still given back, and the order may then change, never the count."""
    paced = True
    for start in range(0, len(messages), RELEASE_BATCH):
        batch = messages[start : start + RELEASE_BATCH]
        before = await _depth(channel, queue) if paced else 0
        for held in batch:
            await held.message.nack(requeue=True)
        if paced:
            paced = await _until_depth(channel, queue, before + len(batch))
    return paced


async def _until_depth(channel: AbstractChannel, queue: str, at_least: int) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RELEASE_WAIT
    pause = 0.002
    while await _depth(channel, queue) < at_least:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


# ------------------------------------------------------------------ the two operations


@dataclass
class Listing:
    letters: list[DeadLetter] = field(default_factory=list)
    missing_queues: list[str] = field(default_factory=list)  # not declared (yet)


async def peek(settings: Settings, services: Iterable[str]) -> Listing:
    """Every dead letter of the given services, in queue order, each left in its queue."""
    names = settings.names
    listing = Listing()
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        for service in services:
            channel = await connection.channel(publisher_confirms=False)
            held: list[_Held] = []
            try:
                held = await _take_all(channel, names, service)
            except ChannelNotFoundEntity:
                listing.missing_queues.append(names.dead_letter_queue(service))
            finally:
                if not channel.is_closed:
                    await _release(channel, names.dead_letter_queue(service), held)
                    await channel.close()
            listing.letters += [h.letter for h in held]
    return listing


Selector = Callable[[DeadLetter], bool]


def select(
    ids: Sequence[str] = (), reason: str | None = None, everything: bool = False
) -> Selector:
    """Exactly one of: these ids, this reason, or everything."""
    if sum((bool(ids), reason is not None, everything)) != 1:
        raise ValueError("choose exactly one of ids, a reason, or everything")
    wanted = set(ids)
    if wanted:
        return lambda letter: letter.id in wanted
    if reason is not None:
        return lambda letter: letter.reason == reason
    return lambda letter: True


@dataclass
class ReplayResult:
    service: str
    queue: str
    target: str
    dry_run: bool
    replayed: list[DeadLetter] = field(default_factory=list)
    not_replayable: list[DeadLetter] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # requested ids not in the queue
    failed: str | None = None  # why the replay stopped early
    order_kept: bool = True

    @property
    def ok(self) -> bool:
        return not self.missing and not self.not_replayable and self.failed is None


async def replay(
    settings: Settings,
    service: str,
    chosen: Selector,
    *,
    requested_ids: Sequence[str] = (),
    dry_run: bool = False,
    now: datetime | None = None,
) -> ReplayResult:
    """Send the chosen dead letters of ``service`` back to its queue, each removed from the
    dead-letter queue only once the broker has confirmed its copy (see the module
    docstring: at least once, the inbox drops a second copy). If a requested id is not in
    the queue, nothing is replayed; chosen messages that may not be replayed (see
    ``written_by_consumer``) are left in place and reported."""
    names = settings.names
    dlq = names.dead_letter_queue(service)
    result = ReplayResult(service, dlq, names.queue(service), dry_run)
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        source = await connection.channel(publisher_confirms=False)
        target = await connection.channel(publisher_confirms=True, on_return_raises=True)
        held: list[_Held] = []
        removed: set[int] = set()
        try:
            held = await _take_all(source, names, service)
            picked = [h for h in held if chosen(h.letter)]
            present = {h.letter.id for h in held}
            result.missing = [i for i in dict.fromkeys(requested_ids) if i not in present]
            result.not_replayable = [h.letter for h in picked if not h.letter.replayable]
            if result.missing:
                return result
            if dry_run:
                result.replayed = [h.letter for h in picked if h.letter.replayable]
                return result
            stamp = now or datetime.now(UTC)
            for index, held_one in enumerate(held):
                if not (chosen(held_one.letter) and held_one.letter.replayable):
                    continue
                try:
                    await target.default_exchange.publish(
                        replay_message(held_one.message, stamp),
                        routing_key=names.queue(service),
                        mandatory=True,
                        timeout=PUBLISH_TIMEOUT,
                    )
                except Exception as exc:  # not confirmed: it stays a dead letter
                    result.failed = f"{type(exc).__name__}: {_text(exc)}"
                    break
                await held_one.message.ack()
                removed.add(index)
                result.replayed.append(held_one.letter)
        finally:
            kept = [h for i, h in enumerate(held) if i not in removed]
            if not source.is_closed:
                result.order_kept = await _release(source, dlq, kept)
                await source.close()
    return result
