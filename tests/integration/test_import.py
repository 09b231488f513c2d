"""``linkwell import``: a scheme's file of referrals published as one organisation; killed
in the middle and run again, it carries on and sends no referral twice."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from services.intake.app import SERVICE as INTAKE

from ..support import Tap, submission
from .conftest import running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def command(settings, path: Path) -> list[str]:
    return [sys.executable, "-m", "services.ops.cli", "import", str(path), "--org", "A81001"]


def environment(settings) -> dict[str, str]:
    return {
        **os.environ,
        "AMQP_URL": settings.amqp_url,
        "DATABASE_URL": settings.database_url,
        "LINKWELL_NAMESPACE": settings.namespace,
    }


async def test_an_interrupted_import_resumes_without_duplicates(settings, tmp_path):
    n = 1500
    path = tmp_path / "referrals.jsonl"
    lines = [json.dumps(submission(org="A81001")["data"]) for _ in range(n)]
    lines.insert(1000, "this is not json")
    broken = submission(org="A81001")["data"]
    broken["consent"]["given"] = "yes"
    lines.insert(1200, json.dumps(broken))
    path.write_text("\n".join(lines) + "\n")
    progress = tmp_path / "referrals.jsonl.progress"
    async with running(INTAKE, settings), Tap(settings, "referral.accepted.v1.*") as tap:
        first = await asyncio.create_subprocess_exec(
            *command(settings, path),
            cwd=ROOT,
            env=environment(settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        # The import paces itself behind the live queues, so on a busy machine its first
        # confirmed rows can take a while: wait for them (bounded), never a fixed few seconds.
        deadline = asyncio.get_running_loop().time() + 90
        while asyncio.get_running_loop().time() < deadline and first.returncode is None:
            if progress.exists() and json.loads(progress.read_text())["confirmed_rows"] > 100:
                break
            await asyncio.sleep(0.01)
        assert first.returncode is None, "the import ended before it could be interrupted"
        assert progress.exists(), "the import confirmed no rows within 90 s"
        first.send_signal(signal.SIGKILL)  # interrupted in the middle
        await first.wait()
        interrupted_at = json.loads(progress.read_text())["confirmed_rows"]
        assert 0 < interrupted_at < n
        second = await asyncio.create_subprocess_exec(
            *command(settings, path),
            cwd=ROOT,
            env=environment(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await second.communicate())[0].decode()
        assert second.returncode == 1, out  # two rows did not meet the contract
        assert f"{interrupted_at:,} already sent before" in out
        assert "line 1001: (line is not a JSON object)" in out
        assert "line 1201: data.consent.given" in out
        await tap.wait_count("referral.accepted.v1", n, within=120)
        await asyncio.sleep(1.0)
    references = [e["data"]["sender_reference"] for e in tap.events("referral.accepted.v1")]
    assert len(references) == len(set(references)) == n  # each once, none lost


async def test_a_csv_export_imports(settings, tmp_path):
    from services.ops.importer import CSV_COLUMNS

    path = tmp_path / "export.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        for i in range(3):
            data = submission(org="A81001")["data"]
            writer.writerow({
                "sender_reference": f"OLD-{i}", "agency_type": "general_practice",
                "organisation_name": "Riverside Surgery", "professional_role": "GP",
                "nhs_number": data["person"]["nhs_number"], "given_name": "Sam",
                "family_name": "Example", "date_of_birth": "1958-04-12",
                "contact_preferred": "phone", "phone": "07700 900123", "email": "",
                "registered_practice": "A81001", "pcn": "U12345",
                "needs": "loneliness;housing", "consent_given": "true",
                "consent_recorded_at": "2026-10-01T09:00:00Z", "consent_method": "verbal",
                "in_crisis": "false", "submitted_at": "2026-10-01T09:05:00Z",
                "gp_sharing": "",
            })  # fmt: skip
    async with running(INTAKE, settings), Tap(settings, "referral.accepted.v1.*") as tap:
        process = await asyncio.create_subprocess_exec(
            *command(settings, path),
            cwd=ROOT,
            env=environment(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await process.communicate())[0].decode()
        assert process.returncode == 0, out
        accepted = await tap.wait_count("referral.accepted.v1", 3)
    assert sorted(a["data"]["sender_reference"] for a in accepted) == ["OLD-0", "OLD-1", "OLD-2"]
    assert {tuple(a["data"]["needs"]) for a in accepted} == {("loneliness", "housing")}


async def test_an_import_gives_way_so_live_referrals_never_queue_behind_the_file(
    settings, tmp_path
):
    """While the import runs, intake's queue never holds much more than the import's
    allowance: a referral sent meanwhile waits behind a few messages, not the file."""
    import aio_pika

    from services.ops.importer import QUEUE_ALLOWANCE, run_import

    n = 600
    path = tmp_path / "referrals.jsonl"
    path.write_text("".join(json.dumps(submission(org="A81001")["data"]) + "\n" for _ in range(n)))
    deepest = 0
    async with running(INTAKE, settings), Tap(settings, "referral.accepted.v1.*") as tap:
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            channel = await connection.channel()

            async def watch() -> None:
                nonlocal deepest
                while True:
                    queue = await channel.declare_queue(
                        settings.names.queue("intake"), passive=True
                    )
                    deepest = max(deepest, queue.declaration_result.message_count or 0)
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            outcome = await run_import(settings, path, "A81001", report=lambda _: None)
            await tap.wait_count("referral.accepted.v1", n, within=120)
            watcher.cancel()
    assert deepest <= QUEUE_ALLOWANCE + 8, deepest  # without pacing: hundreds
    assert outcome.sent == n and outcome.paused > 0  # intake is slower: the import waited
    references = [e["data"]["sender_reference"] for e in tap.events("referral.accepted.v1")]
    assert len(references) == len(set(references)) == n
