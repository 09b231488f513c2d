"""Closure-based retention against PostgreSQL: each service's copy of a referral goes (or,
for the reporting model, becomes anonymous) once the referral ended longer ago than its
limit, set short here through the settings; an open referral, or one ended lately, stays;
and each service records the end from what it is told."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.gateway.app import SERVICE as GATEWAY
from services.intake.app import SERVICE as INTAKE
from services.notify.app import SERVICE as NOTIFY
from services.outcomes.app import SERVICE as OUTCOMES
from services.outcomes.store import Referrals as OutcomesReferrals
from services.runtime import db
from services.runtime.retention import sweep
from services.runtime.runner import migrate
from services.triage.app import SERVICE as TRIAGE

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3)  # ended before a limit of 2 days
NEW = NOW - timedelta(days=1)  # ended within it


async def _pool(settings, service):
    await migrate(settings, service)  # its own schema and any other it owns (reporting)
    return await db.create_pool(
        settings.database_url, settings.names.schema(service.name), service.name, 2
    )


def _short(settings, **more):
    return settings.model_copy(update={"retain_ended_days": 2.0, **more})


async def test_intake_forgets_an_ended_referral_and_then_its_person(settings):
    pool = await _pool(settings, INTAKE)
    short = _short(settings)
    people = {name: uuid.uuid4() for name in ("gone", "open", "lately")}
    try:
        async with pool.acquire() as conn:
            for person in people.values():
                await conn.execute(
                    "INSERT INTO person (person_id, nhs_number, date_of_birth, created_at)"
                    " VALUES ($1, $2, '1960-01-01', $3)",
                    person,
                    str(person.int)[:10],
                    NOW - timedelta(days=30),
                )
            rows = [
                ("r-gone", people["gone"], OLD),
                ("r-open", people["open"], None),
                ("r-open-ended", people["open"], OLD),
                ("r-lately", people["lately"], NEW),
            ]
            for ref, person, ended in rows:
                await conn.execute(
                    "INSERT INTO referral (referral_id, sender, sender_reference,"
                    " submission_event_id, agency_type, registered_practice, pcn, pathway,"
                    " needs, submission, accepted_at, person_id, ended_at)"
                    " VALUES (gen_random_uuid(), 'A81001', $1, $1, 'gp_practice', 'A81001',"
                    " 'U1', 'community', '{loneliness}', '{}', $2, $3, $4)",
                    ref,
                    NOW - timedelta(days=20),
                    person,
                    ended,
                )
        removed = await sweep(pool, "intake", INTAKE.retention, short, NOW)
        assert removed["referral_ended"] == 2 and removed["person"] == 1
        async with pool.acquire() as conn:
            refs = {r["sender_reference"] for r in await conn.fetch("SELECT * FROM referral")}
            left = {r["person_id"] for r in await conn.fetch("SELECT person_id FROM person")}
        assert refs == {"r-lately", "r-open"}
        assert left == {people["open"], people["lately"]}
        # two days on the lately ended one has gone too, and its person with it
        later = await sweep(pool, "intake", INTAKE.retention, short, NOW + timedelta(days=2))
        assert later["referral_ended"] == 1 and later["person"] == 1
    finally:
        await pool.close()


async def test_triage_forgets_an_ended_placement_and_those_joined_to_it(settings):
    pool = await _pool(settings, TRIAGE)
    short = _short(settings)
    episode, joined, lately, waiting = (uuid.uuid4() for _ in range(4))
    try:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO pcn (pcn) VALUES ('U1')")
            for rid, status, closed, of in (
                (episode, "closed", OLD, None),
                (joined, "joined", None, episode),
                (lately, "withdrawn", NEW, None),
                (waiting, "waiting", None, None),
            ):
                await conn.execute(
                    "INSERT INTO referral (referral_id, pcn, status, accepted_at, closed_at,"
                    " episode_referral_id) VALUES ($1, 'U1', $2, $3, $4, $5)",
                    rid,
                    status,
                    NOW - timedelta(days=10),
                    closed,
                    of,
                )
        removed = await sweep(pool, "triage", TRIAGE.retention, short, NOW)
        assert removed == {"placement_ended": 1, "placement_joined": 1}
        async with pool.acquire() as conn:
            left = {r["referral_id"] for r in await conn.fetch("SELECT referral_id FROM referral")}
        assert left == {lately, waiting}
    finally:
        await pool.close()


async def test_notify_forgets_contact_details_once_a_referral_ended(settings):
    pool = await _pool(settings, NOTIFY)
    short = _short(settings)
    old, lately, open_ = (uuid.uuid4() for _ in range(3))
    try:
        async with pool.acquire() as conn:
            for rid in (old, lately, open_):
                await conn.execute(
                    "INSERT INTO referral (referral_id, sender, sender_reference, pcn, contact)"
                    " VALUES ($1, 'A81001', $2, 'U1', '{\"phone\": \"07700900123\"}')",
                    rid,
                    str(rid),
                )
            store = NOTIFY.store(conn)
            await store.referrals.ended(old, OLD)
            await store.referrals.ended(old, NEW)  # a second end told: the first stands
            await store.referrals.ended(lately, NEW)
        removed = await sweep(pool, "notify", NOTIFY.retention, short, NOW, own=_own_notify())
        assert removed["referral_contact"] == 1
        async with pool.acquire() as conn:
            left = {r["referral_id"] for r in await conn.fetch("SELECT referral_id FROM referral")}
        assert left == {lately, open_}
    finally:
        await pool.close()


def _own_notify():
    from services.notify.settings import NotifySettings

    return NotifySettings()


async def test_outcomes_keeps_the_record_for_its_years_then_only_an_anonymous_fact(settings):
    pool = await _pool(settings, OUTCOMES)
    short = settings.model_copy(update={"retain_record_years": 2 / 365.25})  # two days
    reporting = settings.names.schema("reporting")
    episode, joined, lately, open_ = (uuid.uuid4() for _ in range(4))
    person = uuid.uuid4()
    try:
        async with pool.acquire() as conn:
            for rid, of in ((episode, None), (joined, episode), (lately, None), (open_, None)):
                await conn.execute(
                    "INSERT INTO referral (referral_id, nhs_number, pcn, accepted_at,"
                    " episode_referral_id, person_id) VALUES ($1, '9434765919', 'U1', $2, $3, $4)",
                    rid,
                    NOW - timedelta(days=10),
                    of,
                    person,
                )
                await conn.execute(
                    "INSERT INTO timeline (referral_id, source, event_id, event_type,"
                    " occurred_at) VALUES ($1, 's', $2, 'contact.recorded.v1', $3)",
                    rid,
                    f"t-{rid}",
                    NOW - timedelta(days=5),
                )
                await conn.execute(
                    "INSERT INTO measurement (referral_id, source, event_id, instrument, point,"
                    " items, raw_total, taken_at) VALUES ($1, 's', $2, 'ons4', 'baseline',"
                    " '{5,5,5,5}', 20, $3)",
                    rid,
                    f"m-{rid}",
                    NOW - timedelta(days=5),
                )
                await conn.execute(
                    "INSERT INTO writeback (referral_id, fact, event_id, codes, created_at)"
                    " VALUES ($1, 'closed', $2, '{}', $3)",
                    rid,
                    f"w-{rid}",
                    NOW - timedelta(days=2, minutes=-1),  # just after the cutoff
                )
                await conn.execute(
                    f"INSERT INTO {reporting}.referral_fact (referral_id, person_id, sender,"
                    " agency_type, registered_practice, pcn, needs, pathway, received_at,"
                    " link_worker_id) VALUES ($1, $2, 'A81001', 'gp_practice', 'A81001', 'U1',"
                    " '{loneliness}', 'adult', $3, 'LW1')",
                    rid,
                    person,
                    NOW - timedelta(days=10),
                )
            referrals = OutcomesReferrals(conn)
            assert await referrals.end(episode, OLD, "completed")  # the joined one ends too
            assert await referrals.end(lately, NEW, "completed")
            assert (
                await conn.fetchval("SELECT ended_at FROM referral WHERE referral_id = $1", joined)
                == OLD
            )
        removed = await sweep(pool, "outcomes", OUTCOMES.retention, short, NOW)
        assert removed["reporting_fact"] == 2
        assert removed["record_referral"] == 2
        assert removed["record_timeline"] == removed["record_measurement"] == 2
        async with pool.acquire() as conn:
            left = {r["referral_id"] for r in await conn.fetch("SELECT referral_id FROM referral")}
            assert left == {lately, open_}
            facts = await conn.fetch(
                f"SELECT referral_id, person_id, link_worker_id, anonymised, pcn"
                f" FROM {reporting}.referral_fact"
            )
            for table in ("timeline", "measurement", "writeback"):
                assert await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE referral_id = ANY($1)", [episode, joined]
                ) == (2 if table == "writeback" else 0)  # writebacks timed after the cutoff
        anonymous = [f for f in facts if f["anonymised"]]
        assert len(facts) == 4 and len(anonymous) == 2
        assert all(f["person_id"] is None and f["link_worker_id"] is None for f in anonymous)
        assert not {f["referral_id"] for f in anonymous} & {episode, joined}
        assert {f["pcn"] for f in anonymous} == {"U1"}  # still counted
        # a moment on, the writebacks left of the deleted record go too; nothing twice
        later = await sweep(pool, "outcomes", OUTCOMES.retention, short, NOW + timedelta(hours=1))
        assert later["record_writeback"] == 2 and later["reporting_fact"] == 0
    finally:
        await pool.close()


async def test_gateway_forgets_a_submission_once_its_referral_ended(settings):
    pool = await _pool(settings, GATEWAY)
    short = _short(settings)
    from services.gateway.settings import GatewaySettings

    try:
        async with pool.acquire() as conn:
            for ref in ("rejected", "closed", "lately", "open"):
                await conn.execute(
                    "INSERT INTO submission (reference, form_key, event_id, organisation,"
                    " check_digest, referral_id) VALUES ($1, $1, $1, 'SELF-WEB', '\\x00',"
                    " gen_random_uuid())",
                    ref,
                )
            await conn.execute(
                "INSERT INTO fhir_step (reference, status, at, told_at)"
                " VALUES ('closed', 'completed', $1, $1), ('rejected', 'rejected', $1, $2)",
                OLD,
                NOW - timedelta(days=2, minutes=-1),  # told just after the cutoff
            )
            store = GATEWAY.store(conn)
            for ref, step, at in (
                ("rejected", "rejected", OLD),
                ("closed", "closed", OLD),
                ("lately", "withdrawn", NEW),
                ("open", "assigned", OLD),
            ):
                assert await store.submissions.answered(
                    event_id=ref, referral_id=None, step=step, at=at
                )
        removed = await sweep(pool, "gateway", GATEWAY.retention, short, NOW, own=GatewaySettings())
        assert removed["submission_ended"] == 1 and removed["fhir_step_ended"] == 1
        async with pool.acquire() as conn:
            left = {r["reference"] for r in await conn.fetch("SELECT reference FROM submission")}
        assert left == {"rejected", "lately", "open"}  # "rejected" waits for its step
        later = await sweep(
            pool,
            "gateway",
            GATEWAY.retention,
            short,
            NOW + timedelta(hours=1),
            own=GatewaySettings(),
        )
        assert later["fhir_step_ended"] == 1 and later["submission_ended"] == 1
    finally:
        await pool.close()
