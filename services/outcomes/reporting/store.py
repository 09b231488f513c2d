"""The reporting model in the database (schema ``<ns>_reporting``, outcomes' second schema):
projected from outcomes' own tables (referral, timeline, measurement, writeback, rejection,
roster) in the transaction of each event outcomes handles, and rebuilt from them by the
same queries (``rebuild``), so that a rebuild gives the same figures.

Outcomes only writes it. The read side (``services/readside``: the dashboard, reports and
pictures) reads it as a published read model, in read-only sessions; its tables and columns
are that model's contract (``reporting/migrations``)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

_REFERRAL_COLUMNS = (
    "referral_id, person_id, sender, agency_type, registered_practice, pcn, needs, pathway,"
    " received_at, waitlisted_at, assigned_at, first_contact_at, declined_at, withdrawn_at,"
    " closed_at, close_reason, contacts, coded_at, link_worker_id, joined, swemwbs_baseline,"
    " swemwbs_end, ons4_baseline, ons4_end, awaiting_nhs_number, nhs_number_confirmed_at"
)

# One referral's facts, from outcomes' tables (the connection's search_path is outcomes').
_PROJECT_REFERRAL = """
INSERT INTO {schema}.referral_fact ({columns})
SELECT r.referral_id, r.person_id, r.sender, r.agency_type, r.registered_practice, r.pcn,
       r.needs, coalesce(r.pathway, 'adult'), r.accepted_at,
       (SELECT min(occurred_at) FROM timeline t
         WHERE t.referral_id = r.referral_id AND t.event_type = 'referral.waitlisted.v1'),
       (SELECT min(occurred_at) FROM timeline t
         WHERE t.referral_id = r.referral_id AND t.event_type = 'referral.assigned.v1'),
       c.first_contact_at,
       coalesce(
         (SELECT CASE WHEN d.detail->>'outcome' = 'declined' THEN d.occurred_at END
            FROM timeline d WHERE d.referral_id = r.referral_id
             AND d.event_type = 'contact.recorded.v1' AND d.detail->>'outcome' <> 'not_reached'
           ORDER BY d.occurred_at, d.id LIMIT 1),
         CASE WHEN c.first_contact_at IS NULL AND r.close_reason = 'declined'
              THEN r.closed_at END),
       CASE WHEN r.close_reason = 'withdrawn' THEN r.closed_at END,
       CASE WHEN r.close_reason <> 'withdrawn' THEN r.closed_at END,
       CASE WHEN r.close_reason <> 'withdrawn' THEN r.close_reason END,
       c.contacts,
       CASE WHEN EXISTS (SELECT 1 FROM writeback w
                          WHERE w.referral_id = r.referral_id AND w.fact = 'accepted')
            THEN c.first_engaged_at END,
       r.link_worker_id,
       r.episode_referral_id IS NOT NULL,
       (SELECT metric FROM measurement m WHERE m.referral_id = r.referral_id
           AND m.instrument = 'swemwbs' AND m.point = 'baseline' ORDER BY taken_at LIMIT 1),
       (SELECT metric FROM measurement m WHERE m.referral_id = r.referral_id
           AND m.instrument = 'swemwbs' AND m.point = 'end' ORDER BY taken_at DESC LIMIT 1),
       (SELECT items FROM measurement m WHERE m.referral_id = r.referral_id
           AND m.instrument = 'ons4' AND m.point = 'baseline' ORDER BY taken_at LIMIT 1),
       (SELECT items FROM measurement m WHERE m.referral_id = r.referral_id
           AND m.instrument = 'ons4' AND m.point = 'end' ORDER BY taken_at DESC LIMIT 1),
       r.nhs_number IS NULL, r.nhs_number_confirmed_at
  FROM referral r,
       LATERAL (SELECT min(occurred_at) FILTER (WHERE detail->>'outcome' <> 'not_reached')
                         AS first_contact_at,
                       min(occurred_at) FILTER (WHERE detail->>'outcome' = 'engaged')
                         AS first_engaged_at,
                       count(*) FILTER (WHERE detail->>'outcome' <> 'not_reached') AS contacts
                  FROM timeline t
                 WHERE t.referral_id = r.referral_id AND t.event_type = 'contact.recorded.v1') c
 WHERE {where} AND r.accepted_at IS NOT NULL
ON CONFLICT (referral_id) DO UPDATE SET {updates}
"""


# The referrals $1 names, each one's episode (the referral it joined, or itself) and every
# referral of those episodes: the ids worked out first (an InitPlan), then read by key.
_AROUND = """r.referral_id = ANY(ARRAY(
    SELECT x FROM unnest($1::uuid[]) x
    UNION SELECT h.episode_referral_id FROM referral h
           WHERE h.referral_id = ANY($1::uuid[]) AND h.episode_referral_id IS NOT NULL
    UNION SELECT m.referral_id FROM referral m
           WHERE m.episode_referral_id = ANY(ARRAY(
                 SELECT coalesce(h.episode_referral_id, h.referral_id) FROM referral h
                  WHERE h.referral_id = ANY($1::uuid[])))))"""


class Projection:
    """Keeps ``<ns>_reporting`` in step with outcomes' tables, on outcomes' connection."""

    def __init__(self, conn: asyncpg.Connection, schema: str):
        self.conn = conn
        self.schema = f'"{schema}"'

    def _sql(self, where: str) -> str:
        updates = ", ".join(
            f"{c.strip()} = excluded.{c.strip()}" for c in _REFERRAL_COLUMNS.split(",")[1:]
        )
        return _PROJECT_REFERRAL.format(
            schema=self.schema, columns=_REFERRAL_COLUMNS, updates=updates, where=where
        )

    async def referrals(self, *referral_ids: uuid.UUID) -> None:
        await self.conn.execute(self._sql("r.referral_id = ANY($1::uuid[])"), list(referral_ids))

    async def around(self, *referral_ids: uuid.UUID) -> None:
        """Referrals, the episodes they belong to, and those episodes' other referrals: one
        statement, however many (a batch's, once at its end)."""
        await self.conn.execute(self._sql(_AROUND), list(dict.fromkeys(referral_ids)))

    async def rejection(self, source: str, submission_id: str) -> None:
        await self.conn.execute(
            f"INSERT INTO {self.schema}.rejection_fact (submission_id, sender, agency_type,"
            " registered_practice, pcn, reasons, rejected_at)"
            " SELECT source || '#' || submission_event_id, sender, agency_type,"
            " registered_practice, pcn, reasons, rejected_at FROM rejection"
            " WHERE source = $1 AND submission_event_id = $2 ON CONFLICT DO NOTHING",
            source,
            submission_id,
        )

    async def roster(self, pcn: str, worker_id: str) -> None:
        await self.conn.execute(
            f"INSERT INTO {self.schema}.roster_fact (pcn, link_worker_id, capacity, active)"
            " SELECT pcn, link_worker_id, capacity, active FROM roster"
            " WHERE pcn = $1 AND link_worker_id = $2 ON CONFLICT (pcn, link_worker_id)"
            " DO UPDATE SET capacity = excluded.capacity, active = excluded.active",
            pcn,
            worker_id,
        )

    async def rebuild(self) -> dict[str, int]:
        """Empty the model and project it again from outcomes' tables."""
        # anonymous facts (a record of care past its retention limit) have no source left
        # to project them from: they are kept
        await self.conn.execute(f"DELETE FROM {self.schema}.referral_fact WHERE NOT anonymised")
        await self.conn.execute(f"TRUNCATE {self.schema}.rejection_fact, {self.schema}.roster_fact")
        ids = [
            r["referral_id"]
            for r in await self.conn.fetch(
                "SELECT referral_id FROM referral WHERE accepted_at IS NOT NULL"
            )
        ]
        for start in range(0, len(ids), 1000):
            await self.referrals(*ids[start : start + 1000])
        for row in await self.conn.fetch("SELECT source, submission_event_id FROM rejection"):
            await self.rejection(row["source"], row["submission_event_id"])
        for row in await self.conn.fetch("SELECT pcn, link_worker_id FROM roster"):
            await self.roster(row["pcn"], row["link_worker_id"])
        return {
            "referrals": len(ids),
            "rejections": await self.conn.fetchval(
                f"SELECT count(*) FROM {self.schema}.rejection_fact"
            ),
            "link workers": await self.conn.fetchval(
                f"SELECT count(*) FROM {self.schema}.roster_fact"
            ),
        }


# ------------------------------------------------------------------ published snapshots


async def published_periods(conn: asyncpg.Connection, schema: str) -> set[str]:
    return {
        r["period"] for r in await conn.fetch(f'SELECT period FROM "{schema}".figures_snapshot')
    }


async def first_row_at(conn: asyncpg.Connection, schema: str) -> Any:
    """The earliest moment the model counts (a referral received or a submission refused)."""
    return await conn.fetchval(
        f'SELECT least((SELECT min(received_at) FROM "{schema}".referral_fact),'
        f' (SELECT min(rejected_at) FROM "{schema}".rejection_fact))'
    )


async def write_snapshot(conn: asyncpg.Connection, schema: str, snapshot: Any) -> bool:
    """Publish a snapshot; False (and nothing changed) if its period is published already."""
    written = await conn.fetchval(
        f'INSERT INTO "{schema}".figures_snapshot (period, period_start, period_end,'
        " published_by, rule, synthetic, figures) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (period) DO NOTHING RETURNING true",
        snapshot.period,
        snapshot.start,
        snapshot.end,
        snapshot.published_by,
        snapshot.rule,
        snapshot.synthetic,
        snapshot.figures,  # jsonb: the connection's codec (runtime.db.init_connection)
    )
    return bool(written)
