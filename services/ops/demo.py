"""``linkwell demo``: the pipeline end to end, as agencies and a link worker team see it."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika

from contracts.nhs import synthetic_nhs_number
from contracts.schema import example
from services.ops.client import Tap, new_envelope, publish_inbound
from services.runtime.settings import Settings


@dataclass
class Case:
    label: str
    org: str
    agency_type: str
    pcn: str
    tweak: dict[str, Any] = field(default_factory=dict)
    reference: str = ""
    contact: str | None = None  # outcome of the link worker's first contact
    referral_id: str | None = None


async def run_demo(settings: Settings, within: float = 60.0) -> bool:
    rng = random.Random()
    run = uuid.uuid4().hex[:6].upper()
    pcn_a, pcn_b = (f"U{rng.randint(10000, 99999)}" for _ in range(2))
    now = datetime.now(UTC).isoformat()
    cases = [
        Case("GP practice", "A81001", "general_practice", pcn_a, contact="engaged"),
        Case("Community pharmacy", "FA123", "community_pharmacy", pcn_a, contact="engaged"),
        Case("Police", "POLICE-WM", "police", pcn_a),
        Case("Housing association", "HA-0042", "housing_association", pcn_a),
        Case("Hospital discharge team", "RRK", "hospital_discharge", pcn_b, contact="engaged"),
        Case("Self-referral", "SELF-WEB", "self_referral", pcn_b, contact="engaged"),
        Case("Fire service", "FIRE-WM", "fire_service", pcn_b, contact="declined"),
        Case(
            "Job centre, no consent",
            "JCP-B12",
            "job_centre",
            pcn_a,
            {"consent": {"given": False, "recorded_at": now, "method": "verbal"}},
        ),
        Case(
            "VCSE group, wrong NHS check digit",
            "VCSE-77",
            "vcse",
            pcn_a,
            {"person": {"nhs_number": "9990000019"}},
        ),
        Case("Police, person in crisis", "POLICE-WM", "police", pcn_b, {"in_crisis": True}),
    ]
    print(f"Linkwell demo {run}: namespace {settings.namespace!r}, PCNs {pcn_a} and {pcn_b}\n")

    async with Tap(settings) as tap:
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:

            async def send(env: dict[str, Any] | bytes, key: str | None = None) -> None:
                body = env if isinstance(env, bytes) else json.dumps(env).encode()
                await publish_inbound(settings, body, key or env["type"], connection=connection)

            roster = [
                (pcn_a, f"lw-{run}-a1", 2),
                (pcn_a, f"lw-{run}-a2", 1),
                (pcn_b, f"lw-{run}-b1", 3),
            ]
            for pcn, worker_id, capacity in roster:
                await send(
                    new_envelope(
                        "linkworker.registered.v1",
                        pcn,
                        link_worker_id=worker_id,
                        pcn=pcn,
                        capacity=capacity,
                        registered_at=now,
                    )
                )
                print(f"roster  {pcn}: {worker_id} can hold {capacity}")
            await asyncio.sleep(1.0)

            for i, case in enumerate(cases):
                case.reference = f"DEMO-{run}-{i:02d}"
                data = copy.deepcopy(example("referral.submitted.v1")["data"])
                data.update(sender_reference=case.reference, pcn=case.pcn, submitted_at=now)
                data["referrer"]["agency_type"] = case.agency_type
                data["referrer"]["organisation_name"] = case.label
                data["person"]["nhs_number"] = synthetic_nhs_number(rng)
                for key, value in case.tweak.items():
                    if isinstance(value, dict) and isinstance(data.get(key), dict):
                        data[key] = {**data[key], **value}
                    else:
                        data[key] = value
                envelope = new_envelope("referral.submitted.v1", case.org, **data)
                await send(envelope)
                if i == 0:
                    resend = dict(envelope, id=str(uuid.uuid4()))
                    await send(resend)  # the GP's system resends: still one referral
            await send(b"this is not json {", "referral.submitted.v1")
            print(
                f"submitted {len(cases)} referrals, one resend and one message that is not JSON\n"
            )

            def settled(t: Tap) -> bool:
                return all(_placed(t, c) or _rejected(t, c) for c in cases)

            await tap.wait_for(settled, within, "every referral placed or rejected")
            for case in cases:
                accepted = tap.events("referral.accepted.v1", sender_reference=case.reference)
                case.referral_id = accepted[0]["data"]["referral_id"] if accepted else None

            # The link worker team's side: first contacts, then one episode closes.
            contacted = [c for c in cases if c.contact and _assigned(tap, c)]
            for case in contacted:
                await send(
                    new_envelope(
                        "contact.recorded.v1",
                        case.pcn,
                        referral_id=case.referral_id,
                        link_worker_id=_assigned(tap, case)["data"]["link_worker_id"],
                        occurred_at=datetime.now(UTC).isoformat(),
                        mode="phone",
                        outcome=case.contact,
                    )
                )
            first = contacted[0]
            await send(
                new_envelope(
                    "referral.closed.v1",
                    first.pcn,
                    referral_id=first.referral_id,
                    reason="completed",
                    closed_at=datetime.now(UTC).isoformat(),
                )
            )

            await tap.wait_for(
                lambda t: (
                    all(t.events("gp.writeback.v1", referral_id=c.referral_id) for c in contacted)
                    and t.events("gp.writeback.v1", referral_id=first.referral_id, fact="closed")
                    and len(t.events("referral.assigned.v1", pcn=pcn_a)) >= 4
                ),
                within,
                "writebacks and the freed place",
            )
            await asyncio.sleep(0.5)
            dead = await dead_letter_reasons(connection, settings, "intake")

    for case in cases:
        print(f"{case.label:<36} {case.org}/{case.reference}")
        for line in _path(tap, case):
            print(f"    -> {line}")
    print(f"\nintake dead-letter queue: {len(dead)} message(s)")
    for reason, detail in dead:
        print(f"    {reason}: {detail}")
    print(f"notifications to people and teams: {settings.notify_spool_dir / settings.namespace}")
    accepted_refs = [e["data"]["sender_reference"] for e in tap.events("referral.accepted.v1")]
    duplicates = len(accepted_refs) - len(set(accepted_refs))
    print(f"duplicate acceptances: {duplicates}")
    return duplicates == 0


def _assigned(tap: Tap, case: Case) -> dict[str, Any] | None:
    if case.referral_id is None:
        return None
    found = tap.events("referral.assigned.v1", referral_id=case.referral_id)
    return found[0] if found else None


def _placed(tap: Tap, case: Case) -> bool:
    accepted = tap.events("referral.accepted.v1", sender_reference=case.reference)
    if not accepted:
        return False
    rid = accepted[0]["data"]["referral_id"]
    return bool(
        tap.events("referral.assigned.v1", referral_id=rid)
        or tap.events("referral.waitlisted.v1", referral_id=rid)
    )


def _rejected(tap: Tap, case: Case) -> bool:
    return bool(tap.events("referral.rejected.v1", sender_reference=case.reference))


def _path(tap: Tap, case: Case) -> list[str]:
    out = []
    for rej in tap.events("referral.rejected.v1", sender_reference=case.reference):
        for reason in rej["data"]["reasons"]:
            out.append(f"rejected [{reason['code']}] {reason['message'][:90]}")
        if tap.events("referral.status.v1", sender_reference=case.reference, status="rejected"):
            out.append("referrer told: rejected")
    if case.referral_id is None:
        return out
    for key, body, _ in tap.messages:
        data = body.get("data", {})
        if data.get("referral_id") != case.referral_id:
            continue
        match body["type"]:
            case "referral.accepted.v1":
                out.append(f"accepted as {case.referral_id} ({key})")
            case "referral.waitlisted.v1":
                out.append(f"waitlisted in {data['pcn']} ({key})")
            case "referral.assigned.v1":
                extra = " from the waitlist" if data["from_waitlist"] else ""
                out.append(f"assigned to {data['link_worker_id']}{extra} ({key})")
            case "referral.status.v1":
                out.append(f"referrer told: {data['status']}")
            case "gp.writeback.v1":
                codes = ", ".join(f"{c['code']} {c['display']}" for c in data["codes"]) or "summary"
                out.append(
                    f"GP writeback to {data['registered_practice']} [{data['fact']}]: {codes}"
                )
    return out


async def dead_letter_reasons(
    connection: aio_pika.abc.AbstractConnection, settings: Settings, service: str
) -> list[tuple[str, str]]:
    """Peek at a dead-letter queue: each message's reason and detail (no personal data)."""
    channel = await connection.channel()
    queue = await channel.declare_queue(settings.names.dead_letter_queue(service), passive=True)
    seen, held = [], []
    for _ in range(queue.declaration_result.message_count or 0):
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        held.append(message)
        headers = message.headers or {}
        seen.append((str(headers.get("x-linkwell-reason")), str(headers.get("x-linkwell-detail"))))
    await channel.close()  # unacknowledged: every message goes back to the queue
    return seen
