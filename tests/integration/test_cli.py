"""The ``linkwell`` command as a person uses it, against the running services."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from services.intake.app import SERVICE as INTAKE
from services.notify.app import SERVICE as NOTIFY

from .conftest import running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "contracts/examples/referral.submitted.v1.json"


async def linkwell(settings, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ops.cli",
        *args,
        cwd=ROOT,
        env={
            **os.environ,
            "AMQP_URL": settings.amqp_url,
            "DATABASE_URL": settings.database_url,
            "LINKWELL_NAMESPACE": settings.namespace,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    return process.returncode or 0, out.decode()


async def test_submit_wait_prints_the_acceptance_then_that_a_resend_was_a_duplicate(settings):
    async with running(INTAKE, settings), running(NOTIFY, settings):
        code, first = await linkwell(settings, "submit", EXAMPLE, "--new-id", "--wait")
        assert code == 0, first
        assert "accepted: referral " in first and "(reference EMIS-2026-000123)" in first
        referral_id = first.split("accepted: referral ")[1].split()[0]
        code, again = await linkwell(settings, "submit", EXAMPLE, "--wait")
        assert code == 0, again
        assert "duplicate: already received as" in again and referral_id in again
        assert "current status: received" in again


async def test_submit_wait_says_when_no_answer_comes(settings):
    code, out = await linkwell(settings, "topology")
    assert code == 0, out
    code, out = await linkwell(settings, "submit", EXAMPLE, "--new-id", "--wait", "--within", "2")
    assert code == 1
    assert "no answer within 2 s" in out


async def test_help_lists_every_command_in_one_clean_line(settings):
    code, out = await linkwell(settings, "--help")
    assert code == 0
    for command in (
        "migrate",
        "topology",
        "run",
        "submit",
        "demo",
        "probe",
        "access",
        "dlq",
        "asyncapi",
        "docs",
        "report",
        "import",
        "dashboard",
        "synthetic",
    ):
        assert f" {command} " in out, command
    assert "`" not in out and "<bool>" not in out
    # every group's commands too, each summary whole (click cuts a long one with "...")
    for group in ("access", "access account", "dlq", "asyncapi", "docs", "report"):
        code, out = await linkwell(settings, *group.split(), "--help")
        assert code == 0, group
        listed = out.split("Commands:")[1]
        assert "..." not in listed and "`" not in listed, (group, listed)


async def test_run_all_writes_whole_json_lines(settings):
    """Five processes share one stdout: each line is one whole JSON record, never two
    services' lines glued together."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ops.cli",
        "run",
        "all",
        cwd=ROOT,
        env={
            **os.environ,
            "AMQP_URL": settings.amqp_url,
            "DATABASE_URL": settings.database_url,
            "LINKWELL_NAMESPACE": settings.namespace,
            "LINKWELL_HTTP_PORT": "0",
            "LINKWELL_GATEWAY_PORT": "0",  # its pages off: no port shared with other runs
            "LINKWELL_LOG_LEVEL": "DEBUG",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        from ..support import publish, submission

        lines: list[bytes] = []

        async def read() -> None:
            assert process.stdout is not None
            while line := await process.stdout.readline():
                lines.append(line)

        reader = asyncio.create_task(read())
        for _ in range(100):
            if sum(b'"event": "started"' in line for line in lines) >= 5:
                break
            await asyncio.sleep(0.2)
        for _ in range(30):
            await publish(settings, submission())
        await asyncio.sleep(3)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 60)
        await asyncio.wait_for(reader, 10)
    assert len(lines) > 50
    services = set()
    for line in lines:
        record = json.loads(line)  # one whole record per line
        services.add(record.get("service"))
    assert {"intake", "triage", "notify", "outcomes", "gateway"} <= services


async def test_dashboard_accounts_are_added_and_disabled_on_the_trail(settings):
    code, out = await linkwell(settings, "topology")
    assert code == 0, out
    # an empty PCN never makes a commissioner's account
    code, out = await linkwell(settings, "access", "account", "add", "jo.u1", "--pcn", "")
    assert code != 0 and "ODS code" in out
    code, out = await linkwell(settings, "access", "account", "add", "jo.u1", "--pcn", "U00001")
    assert code == 0, out
    assert "account jo.u1 (pcn U00001)" in out and "password (shown once): " in out
    code, out = await linkwell(settings, "access", "account", "add", "jo.u1", "--commissioner")
    assert code == 1 and "exists already" in out
    code, out = await linkwell(settings, "access", "account", "disable", "jo.u1")
    assert code == 0 and "its sessions have ended" in out
    code, out = await linkwell(settings, "access", "account", "list")
    assert code == 0 and "jo.u1" in out and "disabled" in out
