"""The compose stack on a three-node RabbitMQ cluster (deploy/compose.cluster.yaml), one
node killed in the middle of a burst.

Every quorum queue has a member on each node; the services reach the broker by the name
``rabbitmq``, which Docker's DNS answers with every running node, and reconnect by
themselves. From outside, through the ports the stack publishes (node rabbitmq-1's), the
team U12345 registers its link workers and the agencies A81001 and FNX01 submit a burst of
referrals; a third of the way in, whichever of the other two nodes leads more service
queues is killed (``docker kill``). The queues elect new leaders among their other two
members and the services reconnect to the nodes left, and still every referral is
accepted once and reaches exactly one decision (assigned or waitlisted), none is placed
twice, no link worker holds more than their capacity, nothing is dead-lettered and
nothing is lost (every outbox is flushed). Then the node is started again and its queue
members catch up. On RabbitMQ 3.10 (the local image) a publishing channel opened while a
queue elects its leader can be refused by that queue until it closes: the services' publisher
then opens a fresh channel (services/runtime/publisher.py), with no restart.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from services.ops.client import new_envelope

from .organisations import PCN, Observer, Organisation
from .stack import SERVICES, ComposeStack, api, docker

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]

WORKERS = {"lw-cluster-1": 5, "lw-cluster-2": 5, "lw-cluster-3": 4}  # 14 places
BURST = 40  # one place is taken before the burst: 13 assigned, 27 waitlisted
KILL_AT = BURST // 3
SERVICE_QUEUES = tuple(f"linkwell.{s}" for s in SERVICES)
# Node rabbit@rabbitmq-1 is the compose service `rabbitmq`, whose ports the stack publishes
# (the outside clients' node: never killed here); either of the other two may be.
NODES = ("rabbit@rabbitmq-1", "rabbit@rabbitmq-2", "rabbit@rabbitmq-3")
KILLABLE = {"rabbit@rabbitmq-2": "rabbitmq-2", "rabbit@rabbitmq-3": "rabbitmq-3"}


async def until(
    what: str, check, within: float = 90.0, every: float = 0.5, check_value: Any = None
) -> Any:
    """Poll ``check`` (async) until it returns ``check_value``, or if that is None,
    anything truthy; return that."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = await check()
        except (httpx.HTTPError, KeyError) as exc:
            last = exc
        else:
            if last == check_value if check_value is not None else last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last saw {last!r}")
        await asyncio.sleep(every)


def service_metric(stack: ComposeStack, service: str, pattern: str) -> float | None:
    """The sum of a service's Prometheus samples whose line matches ``pattern`` (None if
    its /metrics does not answer)."""
    body = stack.compose(
        "exec",
        "-T",
        service,
        "python",
        "-c",
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:8080/metrics', timeout=5).read().decode())",
        check=False,
    ).stdout
    if "# TYPE" not in body:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if re.match(pattern, line)
    )


async def test_cluster_loses_a_node_in_a_burst(cluster_stack: ComposeStack):
    stack = cluster_stack
    started = time.monotonic()

    # -- one cluster of three nodes; every quorum queue has a member on each
    running = await api(stack, "nodes")
    assert sorted(n["name"] for n in running if n["running"]) == sorted(NODES), running
    queues = {q["name"]: q for q in await api(stack, "queues/%2F")}
    for name in SERVICE_QUEUES:
        q = queues[name]
        assert q["type"] == "quorum", q
        assert sorted(q["online"]) == sorted(NODES), (name, q["online"])
    for name, q in queues.items():  # delay, dead-letter and organisations' queues too
        assert sorted(q["members"]) == sorted(NODES), (name, q["members"])

    # -- the node to kill: of rabbitmq-2 and -3, the one leading more service queues
    # (then the one holding more of the services' connections)
    services_connections = Counter(
        c["node"] for c in await api(stack, "connections") if c["user"].startswith("linkwell-")
    )
    leaders = Counter(queues[name]["leader"] for name in SERVICE_QUEUES)
    victim = max(KILLABLE, key=lambda n: (leaders[n], services_connections[n]))
    led = [name for name in SERVICE_QUEUES if queues[name]["leader"] == victim]
    assert led, f"neither rabbitmq-2 nor rabbitmq-3 leads a service queue: {leaders}"
    [victim_container] = await asyncio.to_thread(stack.containers, KILLABLE[victim])

    async with (
        Observer(stack, "A81001") as gp_practice,
        Observer(stack, "FNX01") as fire,
        Observer(stack, PCN) as team,
        Organisation(stack, "A81001") as practice_org,
        Organisation(stack, "FNX01") as fire_org,
        Organisation(stack, PCN) as team_org,
    ):
        agencies = {"A81001": practice_org, "FNX01": fire_org}
        observers = (gp_practice, fire)

        def acceptances() -> list[dict[str, Any]]:
            return [e for obs in observers for e in obs.events("referral.accepted.v1")]

        def accepted() -> dict[str, str]:
            """sender reference -> referral id"""
            return {e["data"]["sender_reference"]: e["data"]["referral_id"] for e in acceptances()}

        def decisions() -> Counter[str]:
            """referral id -> distinct decision events (assigned or waitlisted) heard"""
            return Counter(
                e["data"]["referral_id"]
                for t in ("referral.assigned.v1", "referral.waitlisted.v1")
                for e in team.events(t)
            )

        # -- the team registers its link workers (triage's capacity gauge shows when all
        # are in); one referral end to end proves the pipeline before the burst
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
        await until(
            "the whole roster registered",
            lambda: asyncio.to_thread(
                service_metric, stack, "triage", rf'^linkwell_triage_capacity\{{pcn="{PCN}"\}}'
            ),
            check_value=sum(WORKERS.values()),
        )
        first = practice_org.referral(f"CLUSTER-{uuid.uuid4().hex[:8]}-first")
        await practice_org.publish(first)
        await gp_practice.wait("the first acceptance", lambda: accepted())
        first_id = accepted()[first["data"]["sender_reference"]]
        await team.wait(
            "the first assignment",
            lambda: any(
                e["data"]["referral_id"] == first_id for e in team.events("referral.assigned.v1")
            ),
        )

        # -- the burst, from two agencies; the victim node killed a third of the way in
        references = [f"CLUSTER-{uuid.uuid4().hex[:8]}-{n:02d}" for n in range(BURST)]
        kill: asyncio.Task[str] | None = None
        killed_at = 0.0
        burst_started = time.monotonic()
        for n, reference in enumerate(references):
            agency = agencies["A81001" if n % 2 == 0 else "FNX01"]
            await agency.publish(agency.referral(reference))
            if n == KILL_AT:
                kill = asyncio.create_task(docker(stack, "kill", victim_container))
                killed_at = time.monotonic()
            await asyncio.sleep(0.1)
        assert kill is not None
        await kill
        burst_s = time.monotonic() - burst_started

        await gp_practice.wait(
            "every burst referral accepted",
            lambda: set(references) <= set(accepted()),
        )
        burst_ids = {accepted()[ref] for ref in references}
        await team.wait("a decision on every burst referral", lambda: burst_ids <= set(decisions()))
        decided_s = time.monotonic() - killed_at
        await asyncio.sleep(2.0)  # anything more (a second acceptance or decision) shows now

        # -- exactly once: one acceptance per sender reference and per referral, one
        # decision per referral, never above capacity
        everyone = burst_ids | {first_id}
        by_reference = Counter(e["data"]["sender_reference"] for e in acceptances())
        assert set(by_reference) == set(references) | {first["data"]["sender_reference"]}
        assert max(by_reference.values()) == 1, by_reference.most_common(3)
        assert Counter(e["data"]["referral_id"] for e in acceptances()) == Counter(everyone)
        assert set(decisions()) == everyone
        twice = {r for r, n in decisions().items() if n > 1}
        assert not twice, [
            (e["type"], e["time"], e["data"])
            for e in team.by_id.values()
            if e["data"].get("referral_id") in twice
        ]
        assigned = {e["data"]["referral_id"]: e for e in team.events("referral.assigned.v1")}
        waitlisted = {e["data"]["referral_id"] for e in team.events("referral.waitlisted.v1")}
        assert not set(assigned) & waitlisted
        per_worker = Counter(e["data"]["link_worker_id"] for e in assigned.values())
        # the burst is bigger than the roster: every place taken, none twice
        assert per_worker == Counter(WORKERS), per_worker
        assert len(waitlisted) == len(everyone) - sum(WORKERS.values())
        for obs in (gp_practice, fire, team):
            assert not obs.events("referral.rejected.v1"), obs.events("referral.rejected.v1")
            assert not obs.events("event.rejected.v1"), obs.events("event.rejected.v1")

        # -- nothing dead-lettered
        async def dead_letters() -> dict[str, int] | None:
            counts = {
                s: (await api(stack, f"queues/%2F/linkwell.{s}.dead-letter")).get("messages")
                for s in SERVICES
            }
            return None if None in counts.values() else counts

        dead = await until("the dead-letter queues' figures", dead_letters)
        assert not any(dead.values()), dead

        # -- every event each service committed has been published (its outbox is empty)
        async def outboxes() -> dict[str, float]:
            pattern = r"^linkwell_outbox_backlog\{"
            return {s: await asyncio.to_thread(service_metric, stack, s, pattern) for s in SERVICES}

        await until("every outbox flushed", outboxes, check_value=dict.fromkeys(SERVICES, 0))

    # -- the cluster without the victim: two members of three online, a leader elected
    # among them, a consumer back on every service queue, nothing left in them
    state = (await asyncio.to_thread(stack.inspect, victim_container))["State"]
    assert not state["Running"], state
    survivors = sorted(n for n in NODES if n != victim)

    async def failed_over() -> dict[str, Any] | None:
        current = {name: await api(stack, f"queues/%2F/{name}") for name in SERVICE_QUEUES}
        for q in current.values():
            if sorted(q["online"]) != survivors or q.get("leader") not in survivors:
                return None
            if q["consumers"] < 1 or q["messages"] != 0:
                return None
        return current

    after = await until("the service queues to fail over and drain", failed_over)
    await asyncio.to_thread(stack.wait_healthy)

    duplicate = r'^linkwell_messages_handled_total\{.*outcome="duplicate"'
    dropped = {s: service_metric(stack, s, duplicate) for s in SERVICES}
    parked = {s: service_metric(stack, s, r"^linkwell_messages_retried_total\{") for s in SERVICES}

    # -- the node comes back: it rejoins and its queue members catch up
    t = time.monotonic()
    await docker(stack, "start", victim_container)

    async def caught_up() -> bool:
        for name in SERVICE_QUEUES:
            q = await api(stack, f"queues/%2F/{name}")
            if sorted(q["online"]) != sorted(NODES):
                return False
        return all(n["running"] for n in await api(stack, "nodes"))

    await until("the node to rejoin", caught_up, within=120)
    rejoined_s = time.monotonic() - t

    print(
        f"cluster scenario: killed {victim} (leader of {', '.join(led)}; "
        f"{services_connections[victim]} service connections) after {KILL_AT + 1} of "
        f"{BURST} referrals sent over {burst_s:.1f}s; every decision {decided_s:.1f}s after "
        f"the kill; new leaders { ({n: q['leader'] for n, q in after.items()}) }; "
        f"resent by agencies {practice_org.resent + fire_org.resent}; events heard twice "
        f"{sum(o.heard_again for o in (gp_practice, fire, team))}; duplicates dropped by "
        f"services {dropped}; parked for retry {parked}; rejoined in {rejoined_s:.0f}s; "
        f"{time.monotonic() - started:.0f}s"
    )
