"""The evidence from events to figures: events handled by outcomes (on the real broker),
then ``linkwell report`` as a commissioner and as the PCN would run it, with the answers
stated by hand; a rebuild of the reporting model gives the same figures."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.outcomes.app import SERVICE as OUTCOMES

from ..support import accepted, emit, inbound, internal, publish
from .conftest import running
from .test_cli import linkwell

pytestmark = pytest.mark.integration

PCN = "U71001"


async def test_events_become_the_figures_people_read(settings):
    referrals = [accepted(pcn=PCN, agency_type="police") for _ in range(9)]
    referrals += [accepted(pcn=PCN, agency_type="general_practice") for _ in range(3)]
    async with running(OUTCOMES, settings):
        for ref in referrals:
            await emit(settings, ref)
        for ref in referrals[:8]:  # eight placed; six take up support
            rid = ref["data"]["referral_id"]
            await emit(
                settings,
                internal("referral.assigned.v1", producer="triage", referral_id=rid, pcn=PCN),
            )
        for ref in referrals[:6]:
            await publish(
                settings,
                inbound(
                    "contact.recorded.v1",
                    PCN,
                    outcome="engaged",
                    referral_id=ref["data"]["referral_id"],
                ),
            )
        await emit(settings, internal("referral.rejected.v1", pcn=PCN, agency_type="police"))
        await asyncio.sleep(3)
    code, out = await linkwell(
        settings, "report", "--by", "source", "--format", "json", "--pcn", PCN
    )
    assert code == 0, out
    exact = {g["group"]: g for g in json.loads(out)["groups"]}
    assert (exact["police"]["received"], exact["police"]["accepted"]) == (10, 9)
    assert exact["police"]["rejected_by_reason"] == {"consent_missing": 1}
    assert exact["total"]["assigned"] == 8 and exact["total"]["first_contact"] == 6
    assert exact["total"]["coded"] == 6  # people coded 871731000000106 (PC-01)
    assert exact["general_practice"]["received"] == 3

    code, out = await linkwell(settings, "report", "--by", "source", "--format", "json")
    published = {g["group"]: g for g in json.loads(out)["groups"]}
    assert published["police"]["received"] == 10  # 10 stays 10 (nearest 5)
    assert published["general_practice"]["received"] == "*"  # 3: never shown
    assert published["total"]["received"] == 15  # 13, rounded

    code, table = await linkwell(settings, "report", "--by", "source")
    assert "police" in table and "general_practice" in table

    code, out = await linkwell(settings, "report", "rebuild")
    assert code == 0 and "12 referrals, 1 rejections" in out
    code, again = await linkwell(
        settings, "report", "--by", "source", "--format", "json", "--pcn", PCN
    )
    assert {g["group"]: g for g in json.loads(again)["groups"]} == exact
