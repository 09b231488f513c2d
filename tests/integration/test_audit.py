"""The audit service running: what intake answers lands on the trail, chained; an
operator's record is published confirmed; ``linkwell audit`` finds records by person,
referral, organisation and time; ``linkwell audit verify`` finds a tampered row."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from services.audit.app import SERVICE as AUDIT
from services.intake.app import SERVICE as INTAKE
from services.ops.audit_cli import record_operator_action

from ..support import publish, submission
from .conftest import asyncpg_connect, running

pytestmark = pytest.mark.integration


async def trail(settings) -> list:
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("audit")
        return await conn.fetch(f'SELECT * FROM "{schema}".audit_record ORDER BY seq')


async def until(settings, count: int) -> list:
    for _ in range(200):
        rows = await trail(settings)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"the trail holds {len(rows)} records, not {count}")


async def cli(*args: str):
    from services.ops.cli import app

    return await asyncio.to_thread(CliRunner().invoke, app, ["audit", *args])


async def test_the_trail_is_kept_queried_and_verified(settings, monkeypatch):
    monkeypatch.setenv("LINKWELL_NAMESPACE", settings.namespace)
    monkeypatch.setenv("USER", "ops-jo")
    person = uuid.uuid4()
    async with running(AUDIT, settings), running(INTAKE, settings) as intake:
        await publish(settings, submission(org="A81001"))
        await publish(settings, submission(org="B82005", in_crisis=True))
        for _ in range(50):
            intake.pollers[0].wake()
            if len(await trail(settings)) >= 3:  # A's v1 and v2 answers, B's refusal
                break
            await asyncio.sleep(0.1)
        await record_operator_action(
            settings, "export", recipient_org="A81001", person_id=person, detail={"what": "sar"}
        )
        rows = await until(settings, 4)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    answers = {r["recipient_org"]: r for r in rows if r["action"] == "answer"}
    assert set(answers) == {"A81001", "B82005"}
    to_a = [r for r in rows if r["recipient_org"] == "A81001" and r["action"] == "answer"]
    assert len(to_a) == 2 and len({r["referral_id"] for r in to_a}) == 1  # v1 and v2
    referral = answers["A81001"]["referral_id"]
    assert referral is not None and answers["B82005"]["referral_id"] is None
    export = rows[-1]
    assert (export["action"], export["by_kind"], export["by_whom"]) == (
        "export",
        "operator",
        "ops-jo",
    )

    by_referral = json.loads((await cli("--referral", str(referral), "--format", "json")).stdout)
    assert [(r["action"], r["recipient_org"]) for r in by_referral] == [("answer", "A81001")] * 2
    by_org = json.loads((await cli("--org", "A81001", "--format", "json")).stdout)
    assert [r["action"] for r in by_org] == ["answer", "answer", "export"]
    by_person = json.loads((await cli("--person", str(person), "--format", "json")).stdout)
    assert [r["seq"] for r in by_person] == [4]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = json.loads((await cli("--since", tomorrow, "--format", "json")).stdout)
    assert later == []
    today = datetime.now(UTC).date().isoformat()
    assert len(json.loads((await cli("--until", today, "--format", "json")).stdout)) == 4
    table = await cli("--org", "B82005")
    assert table.exit_code == 0 and "sender:B82005" in table.output and "1 record" in table.output
    assert (await cli("--referral", "not-a-uuid")).exit_code == 2

    intact = await cli("verify")
    assert intact.exit_code == 0 and "intact: 4 records" in intact.output
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("audit")
        with pytest.raises(Exception, match="append-only"):
            await conn.execute(f'DELETE FROM "{schema}".audit_record')
        await conn.execute(
            f'ALTER TABLE "{schema}".audit_record DISABLE TRIGGER audit_record_no_update'
        )
        await conn.execute(
            f"UPDATE \"{schema}\".audit_record SET recipient_org = 'C83001' WHERE seq = 2"
        )
    broken = await cli("verify")
    assert broken.exit_code == 1 and "BROKEN at record 2" in broken.output


async def test_a_namespace_without_a_trail_is_said_plainly(settings, monkeypatch):
    monkeypatch.setenv("LINKWELL_NAMESPACE", f"{settings.namespace}none")
    for args in (("--format", "json"), ("verify",)):
        done = await cli(*args)
        assert done.exit_code == 2, done.output
        assert f"no audit trail in {settings.namespace}none_audit" in done.output
        assert "Traceback" not in done.output
        assert done.exception is None or isinstance(done.exception, SystemExit)
