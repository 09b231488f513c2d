"""The README's agency and team programs (docs/examples/), run as they are, twice each, as
least-privilege organisation users against the real broker and the running services."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import aio_pika
import pytest

from services.intake.app import SERVICE as INTAKE
from services.notify.app import SERVICE as NOTIFY
from services.triage.app import SERVICE as TRIAGE

from ..support import inbound, worker
from .conftest import running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


async def run(program: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / program),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


def another_pcns_roster(orgs) -> dict:
    """The team (its own source) registering a worker on another PCN's roster."""
    return inbound(
        "linkworker.registered.v1",
        orgs.team,
        link_worker_id="lw-x",
        pcn=orgs.other_team,
        capacity=1,
    )


async def publish_as(settings, orgs, user: str, envelope: dict) -> None:
    connection = await aio_pika.connect(orgs.url(settings, user))
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
        await exchange.publish(
            aio_pika.Message(json.dumps(envelope).encode(), user_id=user),
            routing_key=envelope["type"],
        )


async def test_the_agency_and_team_programs_run_twice_and_see_their_own_answers(
    settings, orgs, tmp_path
):
    strict = settings.model_copy(update={"trusted_users": frozenset()})
    referral = json.loads((ROOT / "contracts/examples/referral.submitted.v1.json").read_text())
    referral["data"]["pcn"] = orgs.team
    example = tmp_path / "referral.json"
    example.write_text(json.dumps(referral))
    common = {"LINKWELL_NAMESPACE": settings.namespace}
    agency = {
        **common,
        "LINKWELL_ORG": orgs.agency,
        "LINKWELL_URL": orgs.url(settings, orgs.agency),
        "LINKWELL_EXAMPLE": str(example),
    }
    team = {
        **common,
        "LINKWELL_PCN": orgs.team,
        "LINKWELL_URL": orgs.url(settings, orgs.team),
        "LINKWELL_IDLE_EXIT": "3",
    }
    async with running(INTAKE, strict), running(TRIAGE, strict), running(NOTIFY, strict):
        await publish_as(settings, orgs, orgs.team, worker(orgs.team, "lw-snippet", 5))
        await asyncio.sleep(0.5)
        outputs = []
        for _ in range(2):  # twice: the second run must not take the first run's answer
            code, out = await run("agency.py", agency)
            assert code == 0, out
            [submitted] = re.findall(r"^submitted (\S+) as event", out, re.M)
            [accepted] = re.findall(r"^accepted (\S+): referral \S+$", out, re.M)
            assert accepted == submitted, out
            outputs.append(out)
        assert "an earlier answer" in outputs[1]  # the first run's later status, shown
        # the team's queue: its assignments, and a rejection notice it must survive
        await publish_as(settings, orgs, orgs.team, another_pcns_roster(orgs))
        first, second = [await run("team.py", team) for _ in range(2)]
    code, out = first
    assert code == 0, out
    [assigned] = re.findall(r"^assigned (\S+) to lw-snippet$", out, re.M)
    # the example is the same person each run: the second referral joins their episode
    assert re.search(rf"^\S+ joined the episode of {assigned}$", out, re.M), out
    assert re.search(r"^rejected \S+ \(linkworker\.registered\.v1\): not_permitted", out, re.M)
    assert second == (0, "")  # the first run took everything, acknowledged


async def test_what_a_team_consumer_rejects_is_kept_where_the_team_can_read_it(settings, orgs):
    strict = settings.model_copy(update={"trusted_users": frozenset()})
    async with running(TRIAGE, strict):
        # not its PCN: refused, and the refusal lands in the team's queue
        await publish_as(settings, orgs, orgs.team, another_pcns_roster(orgs))
        connection = await aio_pika.connect(orgs.url(settings, orgs.team))
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(
                settings.names.organisation_queue(orgs.team), ensure=False
            )
            message = None
            for _ in range(100):
                message = await queue.get(fail=False)
                if message is not None:
                    break
                await asyncio.sleep(0.1)
            assert message is not None
            await message.reject(requeue=False)  # a consumer that fails on it, as old code did
            dead = await channel.get_queue(
                f"{settings.names.organisation_queue(orgs.team)}.dead-letter", ensure=False
            )
            kept = None
            for _ in range(50):
                kept = await dead.get(fail=False)
                if kept is not None:
                    break
                await asyncio.sleep(0.1)
            assert kept is not None, "the rejected message was lost"
            event = json.loads(kept.body)
            assert event["type"] == "event.rejected.v1"
            assert event["data"]["reasons"][0]["code"] == "not_permitted"
            await kept.ack()
