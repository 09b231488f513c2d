"""A person's rights through the running services: a referral submitted and assigned,
then a subject access export (one document, a part from every service), a rectification
of the NHS number (corrected everywhere, the GP practice told), a restriction (no GP
writeback while it lasts) and an erasure (what is erased is gone, what is kept is said
with its ground)."""

from __future__ import annotations

import asyncio
import os
import stat
import sys

import pytest

from contracts.events import SubjectAction
from contracts.nhs import unique_synthetic_nhs_number
from services.ops import subject as rights

from ..stack import ROOT
from ..support import Tap, inbound, publish, submission, worker

pytestmark = pytest.mark.e2e

AGENCY, PCN, PRACTICE = "A81001", "U45679", "A81001"
SERVICES = ["intake", "notify", "outcomes", "triage"]


async def _cli(stack, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ops.cli",
        "subject",
        *args,
        cwd=ROOT,
        env=stack.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_export_rectify_restrict_and_erase_go_through_every_service(
    settings, stack, tmp_path
):
    async with (
        Tap(settings, f"gp.writeback.v1.{PRACTICE}") as practice,
        Tap(settings, f"referral.assigned.v1.{PCN}") as team,
        Tap(settings, "subject.answered.v1.*") as answers,
        Tap(settings, "audit.recorded.v1.*") as trail,
    ):
        await publish(settings, worker(PCN, "lw-rights", 3))
        await asyncio.sleep(0.5)
        referral = submission(org=AGENCY, pcn=PCN, practice=PRACTICE)
        person = referral["data"]["person"]
        await publish(settings, referral)
        [assigned] = await team.wait_count("referral.assigned.v1", 1)
        rid = assigned["data"]["referral_id"]
        contact = {"outcome": "engaged", "link_worker_id": "lw-rights"}
        await publish(settings, inbound("contact.recorded.v1", PCN, referral_id=rid, **contact))
        await practice.wait_count("gp.writeback.v1", 1, referral_id=rid)

        # --- export, found by NHS number and date of birth together
        out = tmp_path / "export.md"
        code, said = await _cli(
            stack,
            "export",
            "--nhs-number",
            person["nhs_number"],
            "--dob",
            person["date_of_birth"],
            "--out",
            str(out),
        )
        assert code == 0, said
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        doc = out.read_text()
        for heading in rights.SERVICE_TITLES.values():
            if "gateway" not in heading:
                assert f"## {heading}" in doc
        assert "Not answered" not in doc
        assert person["family_name"] in doc
        assert person["nhs_number"] in doc
        assert "lw-rights" in doc  # triage's allocation
        assert "how long it is kept" in doc and "where it came from" in doc
        phone = person["contact"].get("phone")
        if phone:
            assert rights._text(phone) in doc

        # a wrong date of birth finds nobody: never the NHS number alone
        code, said = await _cli(
            stack, "export", "--nhs-number", person["nhs_number"], "--dob", "1900-01-01",
            "--out", str(tmp_path / "none.md"),
        )  # fmt: skip
        assert code == 0 and "no referral found" in said

        # --- rectification of the NHS number
        right = unique_synthetic_nhs_number()
        got = await rights.ask(
            settings,
            rights.request(SubjectAction.RECTIFY, 20, referral_ids=[rid], new_nhs_number=right),
            20,
        )
        assert sorted(got.answers) == SERVICES, got.missing
        assert any("told GP practice" in d for d in got.answers["outcomes"].done)
        [told] = await practice.wait_count("gp.writeback.v1", 1, referral_id=rid, fact="correction")
        assert told["data"]["nhs_number"] == right
        assert told["data"]["codes"] == []
        assert person["nhs_number"] not in told["data"]["summary"]

        again = await rights.ask(
            settings, rights.request(SubjectAction.ACCESS, 20, referral_ids=[rid]), 20
        )
        text = rights.document(again)
        assert right in text and person["nhs_number"] not in text
        found = await rights.ask(
            settings,
            rights.request(
                SubjectAction.FIND, 20, nhs_number=right,
                date_of_birth=person["date_of_birth"],
            ),
            20,
        )  # fmt: skip
        assert found.referral_ids() == [again.referral_ids()[0]]

        # --- restriction: no GP writeback while it lasts
        got = await rights.ask(
            settings, rights.request(SubjectAction.RESTRICT, 20, referral_ids=[rid]), 20
        )
        assert not got.missing
        before = len(practice.events("gp.writeback.v1", referral_id=rid))
        await publish(
            settings,
            inbound("plan.agreed.v1", PCN, referral_id=rid, link_worker_id="lw-rights"),
        )
        await asyncio.sleep(3)
        assert len(practice.events("gp.writeback.v1", referral_id=rid)) == before
        got = await rights.ask(
            settings, rights.request(SubjectAction.LIFT, 20, referral_ids=[rid]), 20
        )
        assert not got.missing

        # --- erasure
        got = await rights.ask(
            settings, rights.request(SubjectAction.ERASE, 20, referral_ids=[rid]), 20
        )
        assert sorted(got.answers) == SERVICES, got.missing
        erased = rights.document(got)
        assert "Art. 17(3)(c)" in erased
        assert any("deleted" in d for d in got.answers["notify"].done)
        for service in ("intake", "outcomes", "triage"):
            assert all(k.ground for k in got.answers[service].kept)

        after = rights.document(
            await rights.ask(
                settings, rights.request(SubjectAction.ACCESS, 20, referral_ids=[rid]), 20
            )
        )
        assert person["family_name"] in after  # the referral is kept: a health record
        if phone:
            assert rights._text(phone) not in after
        if person["contact"].get("email"):
            assert rights._text(person["contact"]["email"]) not in after
        assert "Messages sent" not in after

    # every answer is on the audit trail, by referral, ids only
    records = [r["data"] for r in trail.events("audit.recorded.v1", referral_id=rid)]
    actions = {(r["by_service"], r["action"]) for r in records if r["recipient_kind"] == "operator"}
    for service in SERVICES:
        for action in ("export", "rectification", "restriction", "erasure"):
            assert (service, action) in actions
    assert any(
        r["action"] == "gp_writeback" and r["detail"].get("fact") == "correction" for r in records
    )
    assert person["family_name"] not in str(records) and person["nhs_number"] not in str(records)

    # every answer went to its request's key only
    keys = {k.rsplit(".", 1)[-1] for k, _, _ in answers.messages}
    assert all(len(k) == 36 for k in keys)
