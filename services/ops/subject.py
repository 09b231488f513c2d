"""The operator's side of the person's rights (``linkwell subject``): publish one
``subject.requested.v1`` to every service, wait for each service's
``subject.answered.v1`` on the command's own reply queue, and put the answers together.

The reply queue is exclusive to the command's connection, deleted with it, and its
messages expire after ``REPLY_TTL_MS``: answers with personal data rest on the broker no
longer than the command waits. Services answer a request whose ``reply_by`` has passed
without personal data (``services.runtime.subject.answer``).

The export is Markdown: plain text a person can read as it is, print, or open in any
viewer, with a heading per service and, for each thing held, what it is, where it came
from and how long it is kept. Values are escaped so that nothing in them is taken as
markup."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika

from contracts import org_source
from contracts.events import SubjectAction, SubjectAnswered, SubjectRequested
from services.ops.client import publish_inbound
from services.runtime.settings import Settings

OPERATOR_ORG = "LINKWELL-OPS"  # the source of operators' requests (a trusted broker user)
REPLY_TTL_MS = 60_000


def answering_services() -> list[str]:
    """Every service that answers a request about a person (it consumes the request)."""
    from services.registry import SERVICE_DEFS

    return sorted(n for n, d in SERVICE_DEFS.items() if SubjectRequested.TYPE in d.routes)


@dataclass
class Collected:
    request: SubjectRequested
    expected: list[str]
    answers: dict[str, SubjectAnswered] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [s for s in self.expected if s not in self.answers]

    def referral_ids(self) -> list[uuid.UUID]:
        return sorted({r for a in self.answers.values() for r in a.referral_ids}, key=str)


def request(
    action: SubjectAction,
    within: float,
    *,
    referral_ids: Iterable[uuid.UUID] = (),
    nhs_number: str | None = None,
    date_of_birth: date | None = None,
    new_nhs_number: str | None = None,
    new_date_of_birth: date | None = None,
) -> SubjectRequested:
    return SubjectRequested(
        request_id=uuid.uuid4(),
        action=action,
        referral_ids=list(referral_ids),
        nhs_number=nhs_number,
        date_of_birth=date_of_birth,
        new_nhs_number=new_nhs_number,
        new_date_of_birth=new_date_of_birth,
        reply_by=datetime.now(UTC) + timedelta(seconds=within),
    )


async def ask(settings: Settings, req: SubjectRequested, within: float) -> Collected:
    """Publish the request and gather the answers until every service has answered or
    ``within`` seconds have passed."""
    got = Collected(req, answering_services())
    done = asyncio.Event()
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            exclusive=True,
            auto_delete=True,
            arguments={"x-message-ttl": REPLY_TTL_MS},
        )
        await queue.bind(settings.names.events, f"{SubjectAnswered.TYPE}.{req.request_id}")
        await queue.bind(settings.names.events, f"event.rejected.v1.{OPERATOR_ORG}")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            try:
                body = json.loads(message.body)
                data = body.get("data") or {}
                if body.get("type") == SubjectAnswered.TYPE:
                    a = SubjectAnswered.model_validate(data)
                    if a.request_id == req.request_id:
                        got.answers[a.service] = a
                else:
                    got.refused.append(data)
            except ValueError:
                got.refused.append({"unreadable": True})
            if not got.missing or got.refused:
                done.set()

        await queue.consume(on_message, no_ack=True)
        envelope = req.envelope(source=org_source(OPERATOR_ORG))
        await publish_inbound(
            settings,
            envelope.model_dump_json(exclude_none=True).encode(),
            req.TYPE,
            connection=connection,
            message_id=envelope.id,
        )
        try:
            await asyncio.wait_for(done.wait(), within)
        except TimeoutError:
            pass
    finally:
        await connection.close()
    return got


# ------------------------------------------------------------------ the document

ACTION_TITLES = {
    SubjectAction.ACCESS: "Your data held by Linkwell",
    SubjectAction.RECTIFY: "Correction of your details",
    SubjectAction.RESTRICT: "Restriction of the use of your data",
    SubjectAction.LIFT: "Restriction lifted",
    SubjectAction.ERASE: "Erasure of your data",
}
SERVICE_TITLES = {
    "intake": "Referrals received (intake)",
    "triage": "Link worker teams and allocation (triage)",
    "notify": "Messages and contact details (notify)",
    "outcomes": "Your journey and your GP record (outcomes)",
    "gateway": "Referral pages (gateway)",
}


def _text(value: Any) -> str:
    """A value as one line of text, with nothing a Markdown or HTML viewer would run."""
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        value = ", ".join(str(v).replace("_", " ") for v in value) or "none"
    elif isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(str(value).split())
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(raw, safe)
    for ch in "\\`*_[]#|":
        text = text.replace(ch, "\\" + ch)
    return text


def _content(content: dict[str, Any], depth: int = 0) -> list[str]:
    lines = []
    pad = "  " * depth
    for key, value in content.items():
        label = _text(key.replace("_", " "))
        if isinstance(value, dict) and depth < 3:
            lines.append(f"{pad}- {label}:")
            lines += _content(value, depth + 1)
        else:
            lines.append(f"{pad}- {label}: {_text(value)}")
    return lines


def document(got: Collected, now: datetime | None = None) -> str:
    """One readable document of every answer: a heading per service; each thing held with
    what it is, where it came from and how long it is kept; what was done; what was kept
    and why; and which services did not answer."""
    req = got.request
    now = now or datetime.now(UTC)
    out = [
        f"# {ACTION_TITLES.get(req.action, req.action.value)}",
        "",
        f"Request {req.request_id}, made {now.strftime('%d %B %Y at %H:%M UTC')}.",
        "",
        "Linkwell passes referrals for social prescribing between the organisation that "
        "referred you, your link worker team and your GP. Each part of it answers below "
        "for the data it holds itself.",
        "",
    ]
    if got.missing:
        out += [
            "**Not answered:** " + ", ".join(got.missing) + ". Their part is not in this "
            "document; ask again.",
            "",
        ]
    for service in got.expected:
        a = got.answers.get(service)
        if a is None:
            continue
        out += [f"## {SERVICE_TITLES.get(service, service)}", ""]
        if a.late:
            out += ["Answered too late: its data is not included. Ask again.", ""]
        if req.action is SubjectAction.ACCESS and not a.items and not a.late:
            out += ["Holds nothing about you.", ""]
        for item in a.items:
            out += [f"### {_text(item.what)}", ""]
            if item.referral_id:
                out.append(f"- referral: {item.referral_id}")
            out += [
                f"- where it came from: {_text(item.source)}",
                f"- how long it is kept: {_text(item.kept)}",
                *_content(item.content),
                "",
            ]
        if a.done:
            out += ["What was done:", "", *(f"- {_text(d)}" for d in a.done), ""]
        if a.kept:
            out += ["What is kept, and why:", ""]
            out += [f"- {_text(k.what)}: {_text(k.ground)}" for k in a.kept]
            out.append("")
    if got.refused:
        out += ["## Refused", "", *(f"- {_text(r)}" for r in got.refused), ""]
    return "\n".join(out)


def write_private(path: Path, text: str) -> None:
    """Write the document readable by its owner alone (0600), whatever was there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
