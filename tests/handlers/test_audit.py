"""The audit trail on a real database: each disclosure is recorded in its own transaction
(both or neither), and the audit service keeps the records append-only and chained."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from services.audit import domain
from services.audit.store import chain, query
from services.runtime import handling
from services.runtime.audit import disclosure

from ..support import accepted, submission, worker


def audit_rows(rows):
    return [json.loads(r["body"])["data"] for r in rows if r["event_type"] == "audit.recorded.v1"]


async def outbox(h):
    return await h.rows("SELECT event_type, routing_key, body FROM outbox ORDER BY id")


async def test_an_answer_to_the_sender_is_recorded_with_it(harness):
    intake = await harness("intake")
    referral = submission(org="A81001")
    emitted = await intake.send(referral)
    rows = await outbox(intake)
    # the answers the referrer receives (v1 until its end, v2) each beside its record; the
    # internal events (to one service each) leave no organisation and need none
    assert [r["event_type"] for r in rows] == [
        "referral.accepted.v1",
        "audit.recorded.v1",
        "referral.accepted.v2",
        "audit.recorded.v1",
        "referral.placement.v1",
        "referral.contact.v1",
        "referral.recorded.v1",
    ]
    records = audit_rows(rows)
    answers = [e for e in emitted if e.type.startswith("referral.accepted.")]
    assert len(records) == len(answers) == 2
    for record, answer in zip(records, answers, strict=True):
        assert record["action"] == "answer" and record["recipient_kind"] == "sender"
        assert record["recipient_org"] == "A81001"
        assert record["referral_id"] == str(answer.data.referral_id)
        assert record["detail"] == {"event_id": answer.id, "type": answer.type}
    assert rows[1]["routing_key"] == "audit.recorded.v1.intake"
    # ids only: nothing of the person
    body = rows[1]["body"].decode()
    for value in (
        referral["data"]["person"]["family_name"],
        referral["data"]["person"]["date_of_birth"],
    ):
        assert value not in body


async def test_a_refusal_and_a_resend_are_recorded_too(harness):
    intake = await harness("intake")
    first = submission(org="A81001")
    await intake.send(first)
    await intake.send(dict(first, id="again-1"))
    await intake.send(submission(org="A81001", in_crisis=True))
    records = audit_rows(await outbox(intake))
    assert [r["detail"]["type"] for r in records] == [
        "referral.accepted.v1",
        "referral.accepted.v2",
        "referral.duplicate.v1",
        "referral.rejected.v1",
    ]
    assert {r["recipient_org"] for r in records} == {"A81001"}


async def test_a_status_to_the_referrer_and_the_team_assignment_are_recorded(harness):
    notify = await harness("notify")
    ref = accepted(contact={"preferred": "email", "email": "sam@example.org"})
    await notify.send(ref)
    records = audit_rows(await outbox(notify))
    statuses = [r for r in records if r["action"] == "status"]
    assert statuses and statuses[0]["recipient_org"] == ref["data"]["sender"]
    assert statuses[0]["by_service"] == "notify"

    triage = await harness("triage")
    await triage.send(worker("U12345", "lw-audit-1", 5))
    await triage.send(accepted(pcn="U12345"))
    records = audit_rows(await outbox(triage))
    assert [(r["action"], r["recipient_kind"], r["recipient_org"]) for r in records] == [
        ("assignment", "team", "U12345")
    ]


class Crash(Exception):
    pass


async def test_a_crash_before_commit_leaves_neither_the_disclosure_nor_its_record(
    harness, monkeypatch
):
    intake = await harness("intake")

    def failpoint(point: str) -> None:
        if point == "before_commit":
            raise Crash(point)

    monkeypatch.setattr(handling, "failpoint", failpoint)
    uow = intake.uow()
    referral = submission(org="A81001")
    from services.runtime.admission import admit
    from services.runtime.delivery import Delivery

    admitted = admit(
        json.dumps(referral).encode(),
        Delivery(intake.names.inbound, "referral.submitted.v1", user_id="guest"),
        names=intake.names,
        service="intake",
        models={"referral.submitted.v1": intake.service.routes["referral.submitted.v1"].model},
        trusted=frozenset({"guest"}),
    )
    with pytest.raises(Crash):
        async with intake.conn.transaction():
            await handling.handle(
                uow,
                intake.service.routes["referral.submitted.v1"],
                admitted.envelope,
                admitted.data,
            )
            await uow.flush()
    assert await outbox(intake) == []
    assert await intake.value("SELECT count(*) FROM referral") == 0
    # and the same delivery, without the crash, writes both in one statement
    monkeypatch.setattr(handling, "failpoint", lambda point: None)
    uow = intake.uow()
    async with intake.conn.transaction():
        await handling.handle(
            uow, intake.service.routes["referral.submitted.v1"], admitted.envelope, admitted.data
        )
        await uow.flush()
    xmins = {r["x"] for r in await intake.rows("SELECT xmin::text AS x FROM outbox")}
    assert len(await outbox(intake)) == 7 and len(xmins) == 1  # one transaction
    assert [e.type for e in uow.audited] == ["audit.recorded.v1"] * 2  # v1 and v2 answers


def recorded(data, service: str = "notify"):
    return json.loads(data.envelope(source=f"urn:linkwell:x:{service}").to_json())


async def test_the_audit_service_chains_each_record_once(harness):
    audit = await harness("audit")
    rid = uuid.uuid4()
    a = disclosure("status", "referrer", "A81001", by_service="notify", referral_id=rid)
    b = disclosure("gp_writeback", "gp", "A81001", by_service="outcomes", referral_id=rid)
    first = recorded(a, service="notify")
    await audit.send(_sourced(audit, first, "notify"))
    await audit.send(_sourced(audit, recorded(b, service="outcomes"), "outcomes"))
    await audit.send(_sourced(audit, first, "notify"))  # a redelivery: kept once
    rows = await chain(audit.conn, audit.names.schema("audit"))
    assert [r.seq for r, _, _ in rows] == [1, 2]
    assert rows[0][1] == domain.GENESIS and rows[1][1] == rows[0][2]
    assert domain.verify(rows) == (2, None)
    found = await query(audit.conn, audit.names.schema("audit"), referral=rid, org="A81001")
    assert [r.action for r in found] == ["status", "gp_writeback"]


def _sourced(h, body, service):
    return dict(body, source=h.names.source(service))


async def test_the_trail_refuses_update_and_delete_and_verify_finds_a_tampered_row(harness):
    audit = await harness("audit")
    for n in range(3):
        data = disclosure("status", "referrer", "A81001", by_service="notify", detail={"n": n})
        await audit.send(_sourced(audit, recorded(data), "notify"))
    for sql in (
        "UPDATE audit_record SET recipient_org = 'B82005' WHERE seq = 2",
        "DELETE FROM audit_record WHERE seq = 2",
        "TRUNCATE audit_record",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            async with audit.conn.transaction():
                await audit.conn.execute(sql)
    schema = audit.names.schema("audit")
    assert domain.verify(await chain(audit.conn, schema)) == (3, None)
    # someone with the power to drop the trigger changes a row: verify names it
    async with audit.conn.transaction():
        await audit.conn.execute("ALTER TABLE audit_record DISABLE TRIGGER audit_record_no_update")
        await audit.conn.execute("UPDATE audit_record SET recipient_org = 'B82005' WHERE seq = 2")
        _, broken = domain.verify(await chain(audit.conn, schema))
        assert broken == domain.Break(2, "its content does not match its hash")
        await audit.conn.execute("DELETE FROM audit_record WHERE seq = 2")
        _, broken = domain.verify(await chain(audit.conn, schema))
        assert broken is not None and broken.seq == 3


async def test_the_detail_is_stored_as_a_json_object(harness):
    audit = await harness("audit")
    data = disclosure("status", "referrer", "A81001", by_service="notify", detail={"n": "1"})
    await audit.send(_sourced(audit, recorded(data), "notify"))
    assert await audit.value("SELECT jsonb_typeof(detail) FROM audit_record") == "object"
    assert await audit.value("SELECT detail->>'n' FROM audit_record") == "1"


async def test_a_batch_locks_and_reads_the_chain_once_and_a_duplicate_never_advances_it(harness):
    from services.audit.handlers import on_recorded

    audit = await harness("audit")
    schema = audit.names.schema("audit")

    def event(n: int):
        data = disclosure("status", "referrer", "A81001", by_service="notify", detail={"n": n})
        return data.envelope(source=audit.names.source("notify")), data

    first = event(1)
    await audit.send(_sourced(audit, json.loads(first[0].to_json()), "notify"))
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    shared: dict = {}  # one transaction of several deliveries: one dict for all of them
    async with audit.conn.transaction():
        audit.conn.add_query_logger(note)
        for e, data in (event(2), first, event(3)):  # the first again: already on the trail
            uow = audit.service.unit_of_work(audit.conn, audit.names, None, None, shared)
            await on_recorded(uow, e, data)
        audit.conn.remove_query_logger(note)
    assert sum("pg_advisory_xact_lock" in q for q in sent) == 1
    assert sum(q.startswith("SELECT seq, hash FROM audit_record") for q in sent) == 1
    assert sum(q.startswith("INSERT INTO audit_record") for q in sent) == 3
    assert len(sent) == 5  # the lock, the chain's end, one statement per record
    rows = await chain(audit.conn, schema)
    assert [r.detail["n"] for r, _, _ in rows] == ["1", "2", "3"]
    assert domain.verify(rows) == (3, None)

    # a transaction rolled back forgets its appends; the next starts from what is stored
    with pytest.raises(Crash):
        async with audit.conn.transaction():
            uow = audit.service.unit_of_work(audit.conn, audit.names, None, None, {})
            await on_recorded(uow, *event(4))
            raise Crash("rolled back")
    await audit.send(_sourced(audit, json.loads(event(5)[0].to_json()), "notify"))
    rows = await chain(audit.conn, schema)
    assert [r.detail["n"] for r, _, _ in rows] == ["1", "2", "3", "5"]
    assert domain.verify(rows) == (4, None)


async def test_a_batch_stores_its_records_in_one_statement_at_its_flush(harness):
    from services.audit.handlers import on_recorded

    audit = await harness("audit")
    schema = audit.names.schema("audit")

    def event(n: int):
        data = disclosure("status", "referrer", "A81001", by_service="notify", detail={"n": n})
        return data.envelope(source=audit.names.source("notify")), data

    first = event(1)
    await audit.send(_sourced(audit, json.loads(first[0].to_json()), "notify"))
    sent: list[str] = []

    def note(query) -> None:
        sent.append(" ".join(query.query.split()))

    shared = handling.gathering()  # a batch's: its records wait for its flush
    async with audit.conn.transaction():
        audit.conn.add_query_logger(note)
        uows = []
        for n in (2, 3, 4):
            uow = audit.service.unit_of_work(audit.conn, audit.names, None, None, shared)
            await on_recorded(uow, *event(n))
            uows.append(uow)
        await asyncio.sleep(0)  # the query loggers are called soon after, not at once
        assert len(sent) == 2  # the lock and the chain's end; nothing stored yet
        await uows[0].flush(*uows[1:])
        audit.conn.remove_query_logger(note)
    assert sum(q.startswith("INSERT INTO audit_record") for q in sent) == 1
    assert "ON CONFLICT" not in sent[-1]  # a record skipped would leave a gap
    assert len(sent) == 3  # the lock, the chain's end, one statement for all the records
    rows = await chain(audit.conn, schema)
    assert [r.detail["n"] for r, _, _ in rows] == ["1", "2", "3", "4"]
    assert [r.seq for r, _, _ in rows] == [1, 2, 3, 4]
    assert domain.verify(rows) == (4, None)
    found = await audit.value("SELECT detail->>'n' FROM audit_record WHERE seq = 3")
    assert (
        found == "3"
        and await audit.value("SELECT jsonb_typeof(detail) FROM audit_record") == "object"
    )

    # an event id already on the trail fails the whole statement (nothing skipped, no gap);
    # the batch is then rolled back and each delivery handled alone
    again = event(5)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with audit.conn.transaction():
            shared = handling.gathering()
            for e, data in (again, first):
                uow = audit.service.unit_of_work(audit.conn, audit.names, None, None, shared)
                await on_recorded(uow, e, data)
            await uow.flush()
    assert domain.verify(await chain(audit.conn, schema)) == (4, None)
