"""``linkwell demo``: the pipeline end to end, as agencies and link worker teams see it.

Registers a roster in two PCNs, submits referrals from seven kinds of agency (one resent),
three that are refused and a message that is not JSON; the teams make first contacts; one
person's whole journey follows (plan, wellbeing at the start and the end, a note for the
GP, a pause, the closing summary); another referral is withdrawn by its sender. Then each
referral's path is printed, and the dead letters of this run (never earlier runs')."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import textwrap
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika

from contracts.nhs import synthetic_nhs_number
from contracts.schema import example
from services.notify.settings import NotifySettings
from services.ops import dlq
from services.ops.client import Tap, new_envelope, publish_inbound
from services.runtime.settings import Settings

WIDTH = 100


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


def cases_for(pcn_a: str, pcn_b: str, now: str) -> list[Case]:
    return [
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


class Demo:
    def __init__(self, settings: Settings, tap: Tap, connection: Any, run: str):
        self.settings = settings
        self.tap = tap
        self.connection = connection
        self.run = run
        self.sent: set[str] = set()  # ids of everything this run published

    async def send(self, env: dict[str, Any] | bytes, key: str | None = None) -> None:
        message_id = f"demo-{self.run}-{len(self.sent)}"
        self.sent.add(message_id)
        if isinstance(env, dict):
            self.sent.add(env["id"])
        body = env if isinstance(env, bytes) else json.dumps(env).encode()
        await publish_inbound(
            self.settings,
            body,
            key or env["type"],  # type: ignore[index]
            connection=self.connection,
            message_id=message_id,
        )

    async def team(self, case: Case, event_type: str, **data: Any) -> None:
        await self.send(new_envelope(event_type, case.pcn, referral_id=case.referral_id, **data))

    def statuses(self, case: Case) -> int:
        return len(self.tap.events("referral.status.v1", referral_id=case.referral_id))

    async def told(self, case: Case, n: int, within: float) -> None:
        """Wait until the referrer has heard ``n`` steps (keeps a journey in order)."""
        await self.tap.wait_for(lambda t: self.statuses(case) >= n, within, f"{n} statuses")


async def run_demo(settings: Settings, within: float = 60.0) -> bool:
    rng = random.Random()
    run = uuid.uuid4().hex[:6].upper()
    pcn_a, pcn_b = (f"U{rng.randint(10000, 99999)}" for _ in range(2))
    now = datetime.now(UTC).isoformat()
    cases = cases_for(pcn_a, pcn_b, now)
    print(f"Linkwell demo {run}: namespace {settings.namespace!r}, PCNs {pcn_a} and {pcn_b}\n")

    async with Tap(settings) as tap:
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            demo = Demo(settings, tap, connection, run)
            for pcn, worker_id, capacity in [
                (pcn_a, f"lw-{run}-a1", 2),
                (pcn_a, f"lw-{run}-a2", 1),
                (pcn_b, f"lw-{run}-b1", 3),
            ]:
                await demo.send(
                    new_envelope(
                        "linkworker.registered.v1",
                        pcn,
                        link_worker_id=worker_id,
                        pcn=pcn,
                        capacity=capacity,
                    )
                )
                print(f"roster  {pcn}: {worker_id} can hold {capacity}")
            await asyncio.sleep(1.0)
            await submit_all(demo, cases, rng, now)

            def settled(t: Tap) -> bool:
                return all(_placed(t, c) or _rejected(t, c) for c in cases)

            await tap.wait_for(settled, within, "every referral placed or rejected")
            for case in cases:
                accepted = tap.events("referral.accepted.v2", sender_reference=case.reference)
                case.referral_id = accepted[0]["data"]["referral_id"] if accepted else None

            contacted = [c for c in cases if c.contact and _assigned(tap, c)]
            for case in contacted:
                await demo.team(
                    case,
                    "contact.recorded.v1",
                    mode="phone",
                    outcome=case.contact,
                    link_worker_id=_assigned(tap, case)["data"]["link_worker_id"],
                )
            await journey(demo, contacted[0], within)
            withdrawn = next(c for c in cases if c.label == "Police")
            await demo.send(
                new_envelope(
                    "referral.withdrawn.v1",
                    withdrawn.org,
                    referral_id=withdrawn.referral_id,
                    by="referrer",
                    reason="the person moved out of the area",
                )
            )
            await tap.wait_for(
                lambda t: (
                    all(t.events("gp.writeback.v1", referral_id=c.referral_id) for c in contacted)
                    and t.events(
                        "referral.status.v1", referral_id=withdrawn.referral_id, status="withdrawn"
                    )
                ),
                within,
                "every writeback and the withdrawal",
            )
            await asyncio.sleep(0.5)
    letters = (await dlq.peek(settings, ["intake"])).letters
    ours = [letter for letter in letters if letter.id in demo.sent]
    report(tap, cases, ours, settings)
    accepted_refs = [e["data"]["sender_reference"] for e in tap.events("referral.accepted.v2")]
    duplicates = len(accepted_refs) - len(set(accepted_refs))
    print(f"duplicate acceptances: {duplicates}")
    return duplicates == 0


async def submit_all(demo: Demo, cases: list[Case], rng: random.Random, now: str) -> None:
    for i, case in enumerate(cases):
        case.reference = f"DEMO-{demo.run}-{i:02d}"
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
        await demo.send(envelope)
        if i == 0:  # the GP's system resends it: still one referral, and an answer
            await demo.send(dict(envelope, id=str(uuid.uuid4())))
    await demo.send(b"this is not json {", "referral.submitted.v1")
    print(f"submitted {len(cases)} referrals, one resend and one message that is not JSON\n")


async def journey(demo: Demo, case: Case, within: float) -> None:
    """One person's support, step by step, each step told to the referrer in order."""
    worker = _assigned(demo.tap, case)["data"]["link_worker_id"]  # type: ignore[index]
    await demo.told(case, 3, within)  # received, accepted, in progress
    await demo.team(case, "plan.agreed.v1", link_worker_id=worker)
    for point, swemwbs, ons4 in [("baseline", [2, 2, 3, 2, 3, 3, 3], [4, 5, 3, 7])]:
        await demo.team(
            case,
            "wellbeing.measured.v1",
            link_worker_id=worker,
            instrument="swemwbs",
            point=point,
            items=swemwbs,
        )
        await demo.team(
            case,
            "wellbeing.measured.v1",
            link_worker_id=worker,
            instrument="ons4",
            point=point,
            items=ons4,
        )
    await demo.team(
        case,
        "note.shared.v1",
        link_worker_id=worker,
        attachments=[],
        text="Goes to the walking group twice a week; benefit claim made.",
    )
    await demo.team(case, "referral.held.v1", reason="in hospital for two weeks")
    await demo.told(case, 4, within)
    await demo.team(case, "referral.resumed.v1", reason="home again")
    await demo.told(case, 5, within)
    await demo.team(
        case,
        "wellbeing.measured.v1",
        link_worker_id=worker,
        instrument="swemwbs",
        point="end",
        items=[4, 3, 4, 3, 4, 4, 3],
    )
    await demo.team(
        case,
        "wellbeing.measured.v1",
        link_worker_id=worker,
        instrument="ons4",
        point="end",
        items=[8, 7, 8, 3],
    )
    await demo.tap.wait_for(
        lambda t: len(t.events("gp.writeback.v1", referral_id=case.referral_id)) >= 7,
        within,
        "the journey's writebacks",
    )
    await demo.team(case, "referral.closed.v1", reason="completed")
    await demo.tap.wait_for(
        lambda t: t.events("gp.writeback.v1", referral_id=case.referral_id, fact="closed"),
        within,
        "the closing summary",
    )


def report(tap: Tap, cases: list[Case], letters: list[dlq.DeadLetter], settings: Settings) -> None:
    for case in cases:
        print(f"{case.label:<36} {case.org}/{case.reference}")
        for line in _path(tap, case):
            print(textwrap.fill(line, WIDTH, initial_indent="    -> ", subsequent_indent="       "))
    print(f"\nintake dead-letter queue, this run: {len(letters)} message(s)")
    for letter in letters:
        print(
            textwrap.fill(
                f"{letter.reason}: {letter.detail}",
                WIDTH,
                initial_indent="    ",
                subsequent_indent="      ",
            )
        )
    spool = NotifySettings().notify_spool_dir / settings.namespace
    print(f"notifications to people and teams (the spool channel): {spool}")
    print(
        "figures and pictures: a dozen referrals are too few to publish (counts under 8 are "
        "suppressed); for a year to look at, `linkwell synthetic` fills a separate model "
        "with SYNTHETIC referrals (README: Something to look at)"
    )


def _assigned(tap: Tap, case: Case) -> dict[str, Any] | None:
    if case.referral_id is None:
        return None
    found = tap.events("referral.assigned.v1", referral_id=case.referral_id)
    return found[0] if found else None


def _placed(tap: Tap, case: Case) -> bool:
    accepted = tap.events("referral.accepted.v2", sender_reference=case.reference)
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
    """What happened to a referral, in order, as its sender and the GP record saw it."""
    out = []
    for rej in tap.events("referral.rejected.v1", sender_reference=case.reference):
        for reason in rej["data"]["reasons"]:
            out.append(f"rejected [{reason['code']}] {reason['message']}")
    for key, body, _ in tap.messages:
        data = body.get("data", {})
        mine = data.get("sender_reference") == case.reference or (
            case.referral_id is not None and data.get("referral_id") == case.referral_id
        )
        if not mine:
            continue
        match body["type"]:
            case "referral.accepted.v2":
                out.append(f"accepted as {case.referral_id} ({key})")
            case "referral.duplicate.v1":
                out.append(
                    f"resent as event {data['submission_event_id']}: a duplicate of event "
                    f"{data['original_submission_event_id']}, no second referral"
                )
            case "referral.waitlisted.v1":
                out.append(f"waitlisted in {data['pcn']} ({key})")
            case "referral.assigned.v1":
                extra = " from the waitlist" if data["from_waitlist"] else ""
                out.append(f"assigned to {data['link_worker_id']}{extra} ({key})")
            case "referral.status.v1":
                reason = f" ({data['reason']})" if data.get("reason") else ""
                out.append(f"referrer told: {data.get('task_status')} [{data['status']}]{reason}")
            case "gp.writeback.v1":
                out.append(_writeback(data))
    return out


def _writeback(data: dict[str, Any]) -> str:
    codes = ", ".join(f"{c['code']} {c['display']}" for c in data["codes"])
    observed = ", ".join(
        f"{o['name']} {o['value']:g}"
        + (f" ({o['interpretation']})" if o.get("interpretation") else "")
        for o in data.get("observations", [])
    )
    line = f"GP writeback to {data['registered_practice']} [{data['fact']}]"
    if codes:
        line += f": {codes}"
    if observed:
        line += f"; {observed}"
    if data["fact"] == "closed":
        line += f": {data['summary']}"
    return line
