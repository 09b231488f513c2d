"""A hostile integrator, from outside, as its own least-privilege broker user: every class
of bad input gets a clear answer (a rejection to the real sender, or a dead letter with
its reason), and the service goes on. Each case is published to ``<ns>.inbound`` with
plain aio-pika, exactly as an agency or a team would."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest

from contracts.limits import MAX_BODY_BYTES
from services.intake.app import SERVICE as INTAKE
from services.outcomes.app import SERVICE as OUTCOMES
from services.triage.app import SERVICE as TRIAGE

from ..support import Tap, drain, inbound, submission, worker
from .conftest import running

pytestmark = pytest.mark.integration


@dataclass
class Case:
    name: str
    body: Callable[[str], bytes]  # org -> body
    reason: str  # the dead letter's x-linkwell-reason
    code: str | None  # the answer's reason code; None: not answerable
    field: str | None = None
    routing_key: str = "referral.submitted.v1"
    properties: dict[str, Any] | None = None


def referral(org: str, **changes: Any) -> dict[str, Any]:
    env = submission(org=org)
    for path, value in changes.items():
        node = env
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return env


DELETE = object()


def encoded(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


CASES = [
    Case(
        "not JSON, labelled JSON",
        lambda o: b"{not json",
        "not_json",
        "envelope_invalid",
        properties={"content_type": "application/json"},
    ),
    Case(
        "not UTF-8, labelled text",
        lambda o: b"\xff\xfe\x00caf\xe9",
        "not_json",
        "envelope_invalid",
        properties={"content_type": "text/plain"},
    ),
    Case("a JSON array", lambda o: b"[1, 2]", "envelope_invalid", "envelope_invalid"),
    Case(
        "over the size limit",
        lambda o: encoded(
            referral(o, data__referrer__organisation_name="x" * (MAX_BODY_BYTES + 1))
        ),
        "too_large",
        "too_large",
    ),
    Case(
        "no specversion",
        lambda o: encoded(referral(o, specversion=DELETE)),
        "envelope_invalid",
        "envelope_invalid",
        "specversion",
    ),
    Case(
        "a number for the time",
        lambda o: encoded(referral(o, time=1763900000)),
        "envelope_invalid",
        "envelope_invalid",
        "time",
    ),
    Case(
        "an id with spaces",
        lambda o: encoded(referral(o, id="Jane Smith 1958")),
        "envelope_invalid",
        "envelope_invalid",
        "id",
    ),
    Case(
        "a number for the id",
        lambda o: encoded(referral(o, id=1958)),
        "envelope_invalid",
        "envelope_invalid",
        "id",
    ),
    Case(
        "an id that is not ASCII",
        lambda o: encoded(referral(o, id="r\u00e9f\u00e9rence-1")),
        "envelope_invalid",
        "envelope_invalid",
        "id",
    ),
    Case(
        "an id too long",
        lambda o: encoded(referral(o, id="x" * 129)),
        "envelope_invalid",
        "envelope_invalid",
        "id",
    ),
    Case(
        "no id at all",
        lambda o: encoded(referral(o, id=DELETE)),
        "envelope_invalid",
        "envelope_invalid",
        "id",
    ),
    Case(
        "over the size limit and not JSON",
        lambda o: b"\xff" * (MAX_BODY_BYTES + 10),
        "too_large",
        "too_large",
    ),
    Case(
        "a practice code with a trailing newline",
        lambda o: encoded(referral(o, data__registered_practice="A81001\n")),
        "schema_invalid",
        "schema_invalid",
        "data.registered_practice",
    ),
    Case(
        "a PCN code with a trailing newline",
        lambda o: encoded(referral(o, data__pcn="U12345\n")),
        "schema_invalid",
        "schema_invalid",
        "data.pcn",
    ),
    Case(
        "a NUL byte in a name",
        lambda o: encoded(referral(o, data__person__given_name="Sam\u0000")),
        "schema_invalid",
        "schema_invalid",
        "data.person.given_name",
    ),
    Case(
        "a lone surrogate",
        lambda o: json.dumps(referral(o, data__referrer__organisation_name="caf\ud800")).encode(),
        "schema_invalid",
        "schema_invalid",
        "data.referrer.organisation_name",
    ),
    Case(
        'consent "yes"',
        lambda o: encoded(referral(o, data__consent__given="yes")),
        "schema_invalid",
        "consent_missing",
        "data.consent.given",
    ),
    Case(
        "consent 1",
        lambda o: encoded(referral(o, data__consent__given=1)),
        "schema_invalid",
        "consent_missing",
        "data.consent.given",
    ),
    Case(
        "a number for a date",
        lambda o: encoded(referral(o, data__person__date_of_birth=19580412)),
        "schema_invalid",
        "schema_invalid",
        "data.person.date_of_birth",
    ),
    Case(
        '"true" for a boolean',
        lambda o: encoded(referral(o, data__in_crisis="true")),
        "schema_invalid",
        "schema_invalid",
        "data.in_crisis",
    ),
    # (other routing keys are refused by the broker itself for an agency: its topic
    # permission is referral.submitted.* only; test_intake covers them for trusted users)
    Case(
        "an internal type in the body",
        lambda o: encoded(referral(o, type="referral.accepted.v1")),
        "unsupported_type",
        "unsupported_type",
        "type",
    ),
    Case(
        "type and routing key differ",
        lambda o: encoded(referral(o, type="contact.recorded.v1")),
        "unsupported_type",
        "unsupported_type",
        "type",
    ),
    Case(
        "a forged dead-letter history",
        lambda o: encoded(referral(o)),
        "unsupported_type",
        "unsupported_type",
        properties={"headers": {"x-death": [{"count": 1}]}},
    ),
]


async def test_every_bad_input_is_answered_or_dead_lettered_and_intake_goes_on(settings, orgs):
    agency = orgs.agency
    intake_settings = settings.model_copy(update={"trusted_users": frozenset()})
    connection = await aio_pika.connect(orgs.url(settings, agency))
    async with connection, running(INTAKE, intake_settings):
        channel = await connection.channel()
        inbound = await channel.get_exchange(settings.names.inbound, ensure=False)
        ids: dict[str, str] = {}
        for case in CASES:
            body = case.body(agency)
            message_id = f"case-{uuid.uuid4().hex[:8]}"
            ids[case.name] = message_id
            await inbound.publish(
                aio_pika.Message(
                    body, user_id=agency, message_id=message_id, **(case.properties or {})
                ),
                routing_key=case.routing_key,
            )
        good = submission(org=agency)
        await inbound.publish(
            aio_pika.Message(encoded(good), user_id=agency), routing_key="referral.submitted.v1"
        )
        dead = await drain(
            settings, settings.names.dead_letter_queue("intake"), within=30, count=len(CASES)
        )
        answers = [
            json.loads(m.body)
            for m in await drain(
                settings,
                settings.names.organisation_queue(agency),
                within=30,
                count=len([c for c in CASES if c.code]) + 2,  # the good one's v1 and v2
            )
        ]

    assert len(dead) == len(CASES), [m.headers.get("x-linkwell-reason") for m in dead]
    by_case = {}
    for message in dead:
        name = next(n for n, i in ids.items() if i == message.message_id)
        by_case[name] = message.headers
    for case in CASES:
        assert by_case[case.name]["x-linkwell-reason"] == case.reason, case.name
    # the good referral after all of them was still accepted
    for version in ("v1", "v2"):
        accepted = [a for a in answers if a["type"] == f"referral.accepted.{version}"]
        assert [a["data"]["sender_reference"] for a in accepted] == [
            good["data"]["sender_reference"]
        ]
    refusals = [a for a in answers if not a["type"].startswith("referral.accepted.")]
    assert all(len(json.dumps(a)) < 8_000 for a in refusals), "an answer echoed the input"
    for case in [c for c in CASES if c.code]:
        found = [
            a
            for a in refusals
            if any(
                r["code"] == case.code and (case.field is None or r.get("field") == case.field)
                for r in a["data"]["reasons"]
            )
        ]
        assert found, f"no {case.code} answer for {case.name}: {refusals}"


async def test_a_team_that_sends_wrong_types_is_answered(settings, orgs):
    team = orgs.team
    triage_settings = settings.model_copy(update={"trusted_users": frozenset()})
    bad = [
        worker(team, "lw-1", 3) | {"data": {**worker(team, "lw-1", 3)["data"], "capacity": "3"}},
        worker(team, "lw-2", 3) | {"data": {**worker(team, "lw-2", 3)["data"], "capacity": 3.5}},
        worker(team, "lw-3", 3)
        | {"data": {**worker(team, "lw-3", 3)["data"], "registered_at": "yesterday"}},
    ]
    connection = await aio_pika.connect(orgs.url(settings, team))
    async with connection, running(TRIAGE, triage_settings), Tap(settings) as tap:
        channel = await connection.channel()
        inbound = await channel.get_exchange(settings.names.inbound, ensure=False)
        for env in [*bad, worker(team, "lw-ok", 2)]:
            await inbound.publish(
                aio_pika.Message(encoded(env), user_id=team), routing_key="linkworker.registered.v1"
            )
        answers = await tap.wait_count("event.rejected.v1", 3)
    assert {tuple(r.get("field") for r in a["data"]["reasons"]) for a in answers} == {
        ("data.capacity",),
        ("data.registered_at",),
    }
    assert sorted(tap.keys("event.rejected.v1")) == [f"event.rejected.v1.{team}"] * 3
    await asyncio.sleep(0)


async def test_times_nobody_could_have_meant_are_answered_and_never_reach_the_gp(settings, orgs):
    """From outside, each as its own broker user: a referral dated an hour ahead is
    rejected to its agency; a team's contact dated before the referral was received, and
    one dated an hour ahead, are answered to the team as ``time_implausible`` naming the
    field and dead-lettered; only the team's believable contact reaches the GP record."""
    agency, team = orgs.agency, orgs.team
    untrusted = settings.model_copy(update={"trusted_users": frozenset()})
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with (
        running(INTAKE, untrusted),
        running(OUTCOMES, untrusted),
        Tap(settings) as tap,
        await aio_pika.connect(orgs.url(settings, agency)) as as_agency,
        await aio_pika.connect(orgs.url(settings, team)) as as_team,
    ):

        async def send(connection: Any, user: str, env: dict[str, Any]) -> None:
            channel = await connection.channel()
            exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
            await exchange.publish(
                aio_pika.Message(encoded(env), user_id=user), routing_key=env["type"]
            )

        ahead_referral = referral(agency, data__submitted_at=later)
        good_referral = submission(org=agency, pcn=team)
        await send(as_agency, agency, ahead_referral)
        await send(as_agency, agency, good_referral)
        [acc] = await tap.wait_count("referral.accepted.v1", 1)
        rid, received = acc["data"]["referral_id"], acc["data"]["accepted_at"]

        def contact(**data: Any) -> dict[str, Any]:
            return inbound("contact.recorded.v1", team, referral_id=rid, outcome="engaged", **data)

        before = contact(
            occurred_at=(datetime.fromisoformat(received) - timedelta(days=1)).isoformat()
        )
        ahead = contact(occurred_at=later)
        good = contact()
        for env in (before, ahead, good):
            await send(as_team, team, env)
        [writeback] = await tap.wait_count("gp.writeback.v1", 1)
        team_answers = [
            json.loads(m.body)
            for m in await drain(settings, settings.names.organisation_queue(team), count=2)
        ]
        agency_answers = [
            json.loads(m.body)
            for m in await drain(settings, settings.names.organisation_queue(agency), count=2)
        ]
        letters = await drain(settings, settings.names.dead_letter_queue("outcomes"), count=2)
        await asyncio.sleep(0.5)  # nothing more reaches the GP record
        assert len(tap.events("gp.writeback.v1")) == 1

    assert writeback["data"]["effective_at"] == good["data"]["occurred_at"].replace("+00:00", "Z")
    refusals = {
        a["data"]["rejected_event_id"]: [(r["code"], r["field"]) for r in a["data"]["reasons"]]
        for a in team_answers
        if a["type"] == "event.rejected.v1"
    }
    assert refusals == {
        before["id"]: [("time_implausible", "data.occurred_at")],
        ahead["id"]: [("time_implausible", "data.occurred_at")],
    }
    assert sorted(json.loads(m.body)["id"] for m in letters) == sorted([before["id"], ahead["id"]])
    assert {m.headers["x-linkwell-reason"] for m in letters} == {"time_implausible"}
    [rejected] = [a for a in agency_answers if a["type"] == "referral.rejected.v1"]
    assert rejected["data"]["submission_event_id"] == ahead_referral["id"]
    assert [(r["code"], r["field"]) for r in rejected["data"]["reasons"]] == [
        ("time_implausible", "data.submitted_at")
    ]


def test_cases_cover_every_refusal_reason_intake_can_give():
    from services.runtime import admission

    reasons = {c.reason for c in CASES}
    assert {
        "not_json",
        "too_large",
        "envelope_invalid",
        "schema_invalid",
        "unsupported_type",
    } <= reasons
    assert copy.deepcopy(CASES[0]).name  # cases are plain data
    assert admission.MAX_BODY_BYTES == MAX_BODY_BYTES
