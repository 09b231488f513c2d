"""The Docker Compose stack, from outside, as its users see it.

Everything goes through the broker port the stack publishes, with plain aio-pika and the
broker users of deploy/rabbitmq/definitions.json: the agencies A81001 (a GP practice) and
FNX01 (a fire service) submit referrals and hear their acceptances; the link worker team
U12345 registers its workers, hears its assignments, records contacts and closes
episodes; the GP integrator hears the writebacks for practice A81001. Each reads only
its own queue, ``linkwell.org.<user>``, bound to its own routing keys.

Then triage is scaled to three replicas, a burst of referrals is submitted while one
replica is killed, and the outcomes container crashes while contacts are being recorded:
no referral is assigned twice, no link worker ever holds more than their capacity, and
every referral is still assigned and written back to the GP record exactly once per fact.

Last, a person refers themself on the gateway's pages, on the port the stack publishes
(after the scenario above, which counts every place of the team's roster): the start
page, each question with its form's CSRF token, check your answers, send; the status page
then shows the referral accepted by intake (sent as SELF-WEB, the gateway's grant).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from services.ops.client import new_envelope

from .organisations import PCN, PRACTICE, Observer, Organisation
from .people import Person
from .stack import ComposeStack, api, docker

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]

EVENTS = "linkwell.events"
WORKERS = {"lw-compose-1": 5, "lw-compose-2": 5, "lw-compose-3": 4}  # 14 places
BURST = 30  # more than the places: 14 assigned, 16 waitlisted


async def compose(stack: ComposeStack, *args: str) -> str:
    result = await asyncio.to_thread(stack.compose, *args)
    return result.stdout.strip()


async def crash(stack: ComposeStack, container: str) -> str:
    """SIGKILL the container's process, as the kernel's OOM killer would: Docker restarts
    it by the restart policy. (`docker kill` would count as an operator's stop, so where
    this process may not signal the container's, kill it that way and start it again.)"""
    pid = stack.inspect(container)["State"]["Pid"]
    try:
        os.kill(pid, signal.SIGKILL)
        return "restart policy"
    except PermissionError:
        await docker(stack, "kill", container)
        await docker(stack, "start", container)
        return "docker start"


def assigned_by_referral(team: Observer) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for event in team.events("referral.assigned.v1"):
        rid = event["data"]["referral_id"]
        assert rid not in out, f"referral {rid} assigned twice: {out[rid]} and {event}"
        out[rid] = event
    return out


async def test_compose_stack_from_outside_scaled_and_killed(compose_stack: ComposeStack):
    stack = compose_stack
    started = time.monotonic()
    async with (
        Observer(stack, "A81001") as gp_practice,
        Observer(stack, "FNX01") as fire,
        Observer(stack, PCN) as team,
        Observer(stack, "gp-integrator") as gp_system,
        Organisation(stack, "A81001") as practice_org,
        Organisation(stack, "FNX01") as fire_org,
        Organisation(stack, PCN) as team_org,
    ):
        agencies = {"A81001": practice_org, "FNX01": fire_org}
        accepted_by = {"A81001": gp_practice, "FNX01": fire}
        closed: set[str] = set()
        worker_of: dict[str, str] = {}

        def accepted() -> dict[str, str]:
            """sender reference -> referral id, from what each agency heard"""
            return {
                e["data"]["sender_reference"]: e["data"]["referral_id"]
                for obs in accepted_by.values()
                for e in obs.events("referral.accepted.v1")
            }

        def writebacks(fact: str) -> list[dict[str, Any]]:
            return [e for e in gp_system.events("gp.writeback.v1") if e["data"]["fact"] == fact]

        async def contact_and_close(rids: list[str], midway=None) -> None:
            """The team reaches each person (they accept), the GP record gets the codes;
            then the team closes the episode, freeing the place. ``midway`` runs when
            half of the contacts are out."""
            for n, rid in enumerate(rids):
                if midway is not None and n == len(rids) // 2:
                    await midway()
                await team_org.publish(
                    new_envelope(
                        "contact.recorded.v1",
                        PCN,
                        referral_id=rid,
                        link_worker_id=worker_of[rid],
                        outcome="engaged",
                    )
                )
            want = set(rids)
            await gp_system.wait(
                f"accepted writebacks for {len(want)} referrals",
                lambda: want <= {e["data"]["referral_id"] for e in writebacks("accepted")},
                within=90,
            )
            for rid in rids:
                await team_org.publish(
                    new_envelope(
                        "referral.closed.v1",
                        PCN,
                        referral_id=rid,
                        link_worker_id=worker_of[rid],
                        reason="completed",
                    )
                )
                closed.add(rid)

        # -- the team registers its link workers
        for worker_id, capacity in WORKERS.items():
            await team_org.publish(
                new_envelope(
                    "linkworker.registered.v1",
                    PCN,
                    link_worker_id=worker_id,
                    pcn=PCN,
                    capacity=capacity,
                )
            )

        # -- one referral end to end, one replica of each service
        first = practice_org.referral(f"COMPOSE-{uuid.uuid4().hex[:8]}-first")
        await practice_org.publish(first)
        await gp_practice.wait("the first acceptance", lambda: accepted())
        rid = accepted()[first["data"]["sender_reference"]]
        await team.wait("the first assignment", lambda: rid in assigned_by_referral(team))
        worker_of[rid] = assigned_by_referral(team)[rid]["data"]["link_worker_id"]
        assert gp_practice.keys_of("referral.accepted.v1") == {"referral.accepted.v1.A81001"}
        assert team.keys_of("referral.assigned.v1") == {f"referral.assigned.v1.{PCN}"}
        await contact_and_close([rid])
        await gp_system.wait("the first closing writeback", lambda: len(writebacks("closed")) == 1)
        [wb] = writebacks("accepted")
        assert wb["data"]["codes"][0]["code"] == "871731000000106"
        assert gp_system.keys_of("gp.writeback.v1") == {f"gp.writeback.v1.{PRACTICE}"}

        # -- three triage replicas on one queue
        await compose(stack, "up", "-d", "--scale", "triage=3", "--no-recreate")
        await asyncio.to_thread(stack.wait_healthy, ("triage",))
        triage = (await compose(stack, "ps", "-q", "triage")).split()
        assert len(triage) == 3, triage
        # all three consume, and triage has handled everything so far (the first
        # referral's closure included: the whole roster is free again)
        deadline = time.monotonic() + 60
        while True:
            info = await api(stack, "queues/%2F/linkwell.triage")
            if info.get("consumers") == 3 and info.get("messages") == 0:
                break
            assert time.monotonic() < deadline, f"triage replicas not all consuming: {info}"
            await asyncio.sleep(0.5)

        # -- a burst from two agencies; one triage replica killed in the middle of it
        references = [f"COMPOSE-{uuid.uuid4().hex[:8]}-{n:02d}" for n in range(BURST)]
        for n, reference in enumerate(references):
            agency = agencies["A81001" if n % 2 == 0 else "FNX01"]
            await agency.publish(agency.referral(reference))
            if n == BURST // 3:
                await docker(stack, "kill", triage[1])
            await asyncio.sleep(0.05)

        def decided() -> set[str]:
            return {
                e["data"]["referral_id"]
                for t in ("referral.assigned.v1", "referral.waitlisted.v1")
                for e in team.events(t)
            }

        await gp_practice.wait(
            "every burst referral accepted",
            lambda: set(references) <= set(accepted()),
            within=90,
        )
        burst_ids = {accepted()[ref] for ref in references}
        await team.wait(
            "a decision on every burst referral", lambda: burst_ids <= decided(), within=90
        )
        await asyncio.sleep(1.0)  # anything more (a second decision) would show now
        assignments = assigned_by_referral(team)
        waitlisted = Counter(
            e["data"]["referral_id"] for e in team.events("referral.waitlisted.v1")
        )
        assert max(waitlisted.values()) == 1, waitlisted
        burst_assigned = {r: e for r, e in assignments.items() if r in burst_ids}
        per_worker = Counter(e["data"]["link_worker_id"] for e in burst_assigned.values())
        # never above capacity, and every place used: the roster was empty before the burst
        assert per_worker == Counter(WORKERS), per_worker
        assert len(burst_assigned) == sum(WORKERS.values())
        assert set(waitlisted) == burst_ids - set(burst_assigned)
        for e in burst_assigned.values():
            assert e["data"]["from_waitlist"] is False
        for agency, obs in accepted_by.items():
            assert obs.keys_of("referral.accepted.v1") == {f"referral.accepted.v1.{agency}"}
        killed = stack.inspect(triage[1])["State"]
        assert not killed["Running"], killed

        # -- work the caseload: contacts, writebacks, closures; the freed places go to
        # the waitlist; outcomes crashes while the first contacts are being recorded
        restarted_by = None
        outcomes = (await compose(stack, "ps", "-q", "outcomes")).split()
        rounds = 0
        while closed != burst_ids | {rid}:
            rounds += 1
            assert rounds <= 10, f"the waitlist did not drain: {len(closed)} closed"
            current = assigned_by_referral(team)
            open_now = [r for r in current if r not in closed]
            if not open_now:
                await team.wait(
                    "an assignment from the waitlist",
                    lambda: set(assigned_by_referral(team)) - closed,
                    within=60,
                )
                continue
            # capacity check: what each worker holds now (assigned and not yet closed)
            holding = Counter(current[r]["data"]["link_worker_id"] for r in open_now)
            for worker_id, n in holding.items():
                assert n <= WORKERS[worker_id], (worker_id, n)
            for r in open_now:
                worker_of[r] = current[r]["data"]["link_worker_id"]
            if restarted_by is None:

                async def crash_outcomes() -> None:
                    nonlocal restarted_by
                    restarted_by = await crash(stack, outcomes[0])

                await contact_and_close(open_now, midway=crash_outcomes)
            else:
                await contact_and_close(open_now)
            await team.wait(
                "the freed places to be given to the waitlist",
                lambda: (
                    len(assigned_by_referral(team))
                    >= min(len(burst_ids) + 1, len(closed) + sum(WORKERS.values()))
                ),
                within=60,
            )

        everyone = burst_ids | {rid}
        await gp_system.wait(
            "a closing writeback for every referral",
            lambda: everyone <= {e["data"]["referral_id"] for e in writebacks("closed")},
            within=90,
        )
        await asyncio.sleep(1.0)

        # -- exactly once, everywhere
        assignments = assigned_by_referral(team)
        assert set(assignments) == everyone
        assert sum(1 for e in assignments.values() if e["data"]["from_waitlist"]) == len(
            set(waitlisted)
        )
        per_fact: dict[str, Counter[str]] = defaultdict(Counter)
        for e in gp_system.events("gp.writeback.v1"):
            per_fact[e["data"]["fact"]][e["data"]["referral_id"]] += 1
        assert set(per_fact) == {"accepted", "closed"}
        for fact, counts in per_fact.items():
            assert set(counts) == everyone, fact
            assert max(counts.values()) == 1, (fact, counts.most_common(3))
        accepted_events = [
            e for obs in accepted_by.values() for e in obs.events("referral.accepted.v1")
        ]
        assert Counter(e["data"]["referral_id"] for e in accepted_events) == Counter(everyone)
        for obs in (gp_practice, fire, team):
            assert not obs.events("referral.rejected.v1") and not obs.events("event.rejected.v1")

    # the crashed outcomes container came back by itself (restart: unless-stopped)
    if restarted_by == "restart policy":
        assert stack.inspect(outcomes[0])["RestartCount"] >= 1
    # the two triage replicas left and everything else are still healthy
    await asyncio.to_thread(stack.wait_healthy)
    assert len((await compose(stack, "ps", "-q", "triage")).split()) == 2

    # notify spooled the people's messages to its volume
    spool = await compose(
        stack, "exec", "-T", "notify", "sh", "-c", "cat /var/lib/linkwell/notifications/*/*.jsonl"
    )
    assert len(spool.splitlines()) >= len(everyone)

    # the dashboard: a team member's account, made in a container, shows its own roster
    await asyncio.to_thread(stack.wait_healthy, ("dashboard",))
    add = ("linkwell", "access", "account", "add", "team.member", "--pcn", PCN)
    made = await compose(stack, "exec", "-T", "outcomes", *add)
    password = made.split("password (shown once):")[-1].split()[0]
    dashboard = f"http://127.0.0.1:{stack.env['LINKWELL_DASHBOARD_PORT']}"
    async with httpx.AsyncClient(base_url=dashboard, timeout=10) as http:
        anonymous = await http.get("/")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
        form = await http.get("/login")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        signed = await http.post(
            "/login",
            data={"login": "team.member", "password": password, "csrf": csrf},
            headers={"origin": dashboard},
        )
        assert signed.status_code == 303, signed.text[:300]
        own = await http.get("/")
    assert own.status_code == 200, own.text[:300]
    assert PCN in own.text and all(worker in own.text for worker in WORKERS)
    print(
        f"compose scenario: {len(everyone)} referrals, {len(set(waitlisted))} via the waitlist, "
        f"{rounds} rounds, outcomes restarted by {restarted_by}, "
        f"{time.monotonic() - started:.0f}s"
    )


async def test_a_person_refers_themself_on_the_published_pages(compose_stack: ComposeStack):
    stack = compose_stack
    await asyncio.to_thread(stack.wait_healthy, ("gateway",))
    pages = f"http://127.0.0.1:{stack.env['LINKWELL_GATEWAY_PUBLISHED_PORT']}"
    async with httpx.AsyncClient(base_url=pages, timeout=15) as http:
        person = Person(http)
        home = await http.get("/")
        assert (home.status_code, home.headers["location"]) == (303, "/refer")
        assets = await http.get("/assets/nhsuk-frontend.min.css")  # static files in the image
        assert assets.status_code == 200 and len(assets.content) > 10_000
        # a post without the form's token is refused, and nothing is started
        forged = await http.post("/refer", data={"csrf": "forged" * 8})
        assert forged.status_code == 403 and "Nothing was sent" in forged.text
        reference = await person.refer_myself()
        # the status page moves once the gateway hears intake's answer to SELF-WEB: intake
        # admitted the referral from the gateway's broker user, for that organisation only
        heading = await person.wait_status(
            reference, {"Accepted", "On the waiting list", "A link worker has been found"}
        )
    print(f"people's door: {reference} is {heading!r} on its status page")
