"""``linkwell synthetic``: a year of synthetic referrals in a model of their own, which the
reports read with ``--synthetic``, marked SYNTHETIC in every output, with figures that are
not all suppressed; the real reporting model is left untouched."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import asyncpg
import pytest

from services.outcomes.app import SERVICE as OUTCOMES
from services.runtime.db import drop_schema
from services.runtime.runner import migrate

from .test_cli import linkwell

pytestmark = pytest.mark.integration


async def test_a_synthetic_year_fills_its_own_model_and_shows_as_synthetic(settings, tmp_path):
    await migrate(settings, OUTCOMES)
    synthetic = settings.names.schema("synthetic")
    try:
        code, out = await linkwell(settings, "synthetic", "--referrals", "400", "--seed", "7")
        assert code == 0, out
        assert out.startswith("SYNTHETIC: ") and synthetic in out
        made = [line.split()[0] for line in out.splitlines() if line.startswith("  synthetic-")]
        # a commissioner's and a PCN team's accounts, for the dashboard
        assert made == ["synthetic-commissioner:", "synthetic-syn-pcn-north:"], out

        # the real model holds none of it
        conn = await asyncpg.connect(settings.database_url)
        try:
            real = settings.names.schema("reporting")
            assert await conn.fetchval(f'SELECT count(*) FROM "{real}".referral_fact') == 0
            assert await conn.fetchval(f'SELECT count(*) FROM "{synthetic}".referral_fact') > 350
        finally:
            await conn.close()
        code, out = await linkwell(settings, "report", "--by", "pcn", "--format", "json")
        assert code == 0 and json.loads(out)["synthetic"] is False

        # the synthetic model: every PCN shown, figures not all suppressed, marked
        today = date.today()
        year = ("--from", str(today - timedelta(days=364)), "--to", str(today))
        args = ("report", "--synthetic", "--by", "pcn", *year)
        code, out = await linkwell(settings, *args, "--format", "json")
        assert code == 0, out
        document = json.loads(out)
        assert document["synthetic"] is True and "not real" in document["note"]
        groups = {g["group"]: g for g in document["groups"]}
        assert len([g for g in groups if g.startswith("SYN-PCN-")]) == 4
        shown = [g["received"] for g in groups.values()]
        assert all(isinstance(n, int) and n >= 10 for n in shown), shown
        assert isinstance(groups["total"]["wait_assigned_median"], float)
        assert isinstance(groups["total"]["swemwbs_mean_change"], float)

        code, out = await linkwell(settings, *args, "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and all(row["data"] == "SYNTHETIC" for row in rows)

        picture = tmp_path / "year.svg"
        code, out = await linkwell(settings, *args, "--plot", str(picture))
        assert code == 0 and out.startswith("SYNTHETIC DATA")
        drawn = picture.read_text()
        assert "SYNTHETIC DATA: Social prescribing referrals" in drawn
        assert "Fewer than 8 people" not in drawn  # every panel drawn, none suppressed
    finally:
        await drop_schema(settings.database_url, synthetic)
