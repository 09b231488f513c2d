"""Bulk import: a scheme moving to Linkwell brings its referrals as a file and publishes
them as its own organisation, as an agency's system would, one ``referral.submitted.v1``
each.

- JSON lines: one referral's ``data`` (the contract's fields) per line; or CSV, one row
  each, with the columns in ``CSV_COLUMNS`` (needs separated by ``;``).
- Every row is checked against the contract before it is sent; a row that fails is
  reported by its line number and the fields at fault (never their values) and not sent.
- Resumable without duplicates: each referral's event id is derived from the organisation
  and its reference, so sending it again is dropped by intake's inbox (and one reference
  is one referral anyway); a ``<file>.progress`` file records how far the broker has
  confirmed, so a resumed import skips what was already sent.
- It gives way to live referrals: before each publish it looks at the service queues of
  the pipeline that have a consumer, and sends only while none holds more than
  ``QUEUE_ALLOWANCE`` messages waiting (``Pacer``). A referral a GP sends during an import
  so waits behind at most that many messages at each step, not behind the whole file
  (docs/architecture/bulk-import.md).
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from pydantic import ValidationError

from contracts import org_source
from contracts.events import ReferralSubmitted, parse_event
from contracts.rejections import reasons_from
from services.ops.client import broker_user
from services.runtime.settings import Settings

CSV_COLUMNS = (
    "sender_reference", "agency_type", "organisation_name", "professional_role",
    "nhs_number", "given_name", "family_name", "date_of_birth", "contact_preferred",
    "phone", "email", "registered_practice", "pcn", "needs", "consent_given",
    "consent_recorded_at", "consent_method", "in_crisis", "submitted_at", "gp_sharing",
)  # fmt: skip
IN_FLIGHT = 256  # publishes awaiting the broker's confirm
# Messages waiting in any one service queue that the import lets stand before it pauses.
# Kept at one, so the pipeline is never saturated by the import: each consumer also holds
# up to its prefetch (32) delivered and unacknowledged, which a passive declare cannot see,
# and a live referral would wait behind all of those at every step (bench/fairness.py:
# with 32 waiting, a live referral's assignment took 1.0 s at p50; with 1, 0.12 s).
QUEUE_ALLOWANCE = 1
LOOK_EVERY = 0.05  # seconds between two looks at the queues (and while paused)
# The services whose queues the import watches (every consumer of what a referral sets
# off; tests/unit/test_importer.py holds it to services/registry.py).
PIPELINE = ("intake", "triage", "notify", "outcomes", "gateway", "audit")


@dataclass
class Outcome:
    sent: int = 0
    skipped: int = 0  # confirmed by an earlier run
    invalid: list[tuple[int, list[str]]] = field(default_factory=list)  # line, fields
    seconds: float = 0.0

    paused: float = 0.0  # seconds spent giving way to the pipeline
    paced: bool = True

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def may_send(waiting: dict[str, int], allowance: int) -> bool:
    """Whether the import may publish: no consumed queue of the pipeline holds more than
    ``allowance`` messages waiting (``waiting``: queue -> ready messages, only the queues
    that have a consumer; a stopped service's backlog does not hold the import up)."""
    return all(count <= allowance for count in waiting.values())


class Pacer:
    """How much work waits in the pipeline's service queues, read with passive declares
    (message and consumer counts) on a channel of its own; ``wait`` returns once the
    import may send again."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractConnection,
        queues: list[str],
        allowance: int = QUEUE_ALLOWANCE,
        every: float = LOOK_EVERY,
    ):
        self.connection = connection
        self.queues = queues
        self.allowance = allowance
        self.every = every
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.looked = 0.0
        self.sent = 0  # publishes since the last look
        self.paused = 0.0

    async def waiting(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for name in self.queues:
            if self.channel is None or self.channel.is_closed:
                self.channel = await self.connection.channel(publisher_confirms=False)
            try:
                queue = await self.channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:  # not declared: nothing waits there
                self.channel = None
                continue
            result = queue.declaration_result
            if result.consumer_count:
                found[name] = result.message_count or 0
        return found

    async def wait(self) -> None:
        """Before one publish: look at the queues every ``every`` seconds or half an
        allowance of publishes, whichever comes first, and wait while any is too full."""
        self.sent += 1
        if time.monotonic() - self.looked < self.every and self.sent < self.allowance // 2:
            return
        self.sent = 0
        started = time.monotonic()
        while not may_send(await self.waiting(), self.allowance):  # noqa: ASYNC110 (polls the broker)
            await asyncio.sleep(self.every)
        self.looked = time.monotonic()
        self.paused += self.looked - started


def rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, referral data) per row; data None where a line is not readable."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                yield n, from_csv(row)
        return
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    value = None
                yield n, value if isinstance(value, dict) else None


def _flag(value: str | None) -> bool | str:
    text = (value or "").strip().lower()
    return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
        text, text
    )


def from_csv(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the contract's ``data`` (empty cells left out)."""

    def cell(name: str) -> str | None:
        value = (row.get(name) or "").strip()
        return value or None

    contact = {"preferred": cell("contact_preferred"), "phone": cell("phone"),
               "email": cell("email")}  # fmt: skip
    data: dict[str, Any] = {
        "sender_reference": cell("sender_reference"),
        "referrer": {
            "agency_type": cell("agency_type"),
            "organisation_name": cell("organisation_name"),
            "professional_role": cell("professional_role"),
        },
        "person": {
            "nhs_number": cell("nhs_number"),
            "given_name": cell("given_name"),
            "family_name": cell("family_name"),
            "date_of_birth": cell("date_of_birth"),
            "contact": {k: v for k, v in contact.items() if v is not None},
        },
        "registered_practice": cell("registered_practice"),
        "pcn": cell("pcn"),
        "needs": [n.strip() for n in (cell("needs") or "").split(";") if n.strip()],
        "consent": {
            "given": _flag(cell("consent_given")),
            "recorded_at": cell("consent_recorded_at"),
            "method": cell("consent_method"),
        },
        "in_crisis": _flag(cell("in_crisis")) if cell("in_crisis") else False,
        "submitted_at": cell("submitted_at"),
    }
    if cell("gp_sharing"):
        data["gp_sharing"] = cell("gp_sharing")
    data["referrer"] = {k: v for k, v in data["referrer"].items() if v is not None}
    return data


def envelope(org: str, data: dict[str, Any]) -> dict[str, Any]:
    """The referral as its sender publishes it, with an event id that is the same every
    time the same reference is imported."""
    reference = str(data.get("sender_reference"))
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell-import:{org}:{reference}")),
        "source": org_source(org),
        "type": ReferralSubmitted.TYPE,
        "time": datetime.now(UTC).isoformat(),
        "subject": reference,
        "datacontenttype": "application/json",
        "data": data,
    }


def problems(env: dict[str, Any]) -> list[str] | None:
    """The fields at fault (never their values), or None if the referral is well formed."""
    try:
        parse_event(ReferralSubmitted, env)
    except ValidationError as exc:
        return sorted({r.field or "?" for r in reasons_from(exc)})
    return None


class Progress:
    """How many rows of the file the broker has confirmed, in ``<file>.progress``."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".progress")

    def done(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["confirmed_rows"])
        except (OSError, ValueError, KeyError):
            return 0

    def save(self, rows: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"confirmed_rows": rows}))
        tmp.replace(self.path)


async def run_import(
    settings: Settings,
    path: Path,
    org: str,
    *,
    report: Callable[[str], None] = print,
    every: float = 2.0,
    pace: bool = True,
) -> Outcome:
    progress = Progress(path)
    start_after = progress.done()
    outcome = Outcome(skipped=start_after)
    connection = await aio_pika.connect(settings.amqp_url)
    started = last = time.monotonic()
    async with connection:
        channel = await connection.channel()  # publisher confirms
        exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
        pacer = (
            Pacer(connection, [settings.names.queue(name) for name in PIPELINE]) if pace else None
        )
        outcome.paced = pace
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        confirmed = start_after

        async def settle(keep: int) -> None:
            nonlocal confirmed
            while len(pending) > keep:
                row, confirm = pending.pop(0)
                await confirm
                confirmed = row
            progress.save(confirmed)

        def note_confirmed() -> None:
            """Record what the broker has confirmed so far, without waiting for the rest
            (a slow, paced import would otherwise note its progress only every few hundred
            rows, and a resumed one would send those again to be deduplicated)."""
            nonlocal confirmed
            moved = False
            while pending and pending[0][1].done():
                row, confirm = pending.pop(0)
                confirm.result()  # a refused publish stops the import, as in settle
                confirmed, moved = row, True
            if moved:
                progress.save(confirmed)

        for index, (line, data) in enumerate(rows(path), start=1):
            if index <= start_after:
                continue
            env = envelope(org, data) if data is not None else None
            wrong = ["(line is not a JSON object)"] if env is None else problems(env)
            if wrong:
                outcome.invalid.append((line, wrong))
                continue
            message = aio_pika.Message(
                json.dumps(env).encode(),
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=broker_user(settings.amqp_url),
                message_id=env["id"],  # type: ignore[index]
            )
            if pacer is not None:
                await pacer.wait()
            confirm = asyncio.ensure_future(
                exchange.publish(message, routing_key=ReferralSubmitted.TYPE)
            )
            pending.append((index, confirm))
            outcome.sent += 1
            if len(pending) >= IN_FLIGHT:
                await settle(IN_FLIGHT // 2)
            if time.monotonic() - last >= every:
                note_confirmed()
                last = time.monotonic()
                rate = outcome.sent / (last - started)
                report(f"sent {outcome.sent:,} ({rate:,.0f}/s), {len(outcome.invalid)} invalid")
        await settle(0)
        outcome.paused = pacer.paused if pacer is not None else 0.0
    outcome.seconds = time.monotonic() - started
    return outcome
