"""Admission, recovery decisions and delivery trust, as pure functions."""

from __future__ import annotations

import json

import asyncpg
import pytest

from contracts.limits import MAX_BODY_BYTES
from contracts.schema import example
from services.runtime.admission import admit, event_id_of, forbidden_fields, parse_body
from services.runtime.delivery import Delivery
from services.runtime.errors import BadMessage, Deferred, is_transient
from services.runtime.handling import correlation_for
from services.runtime.names import Names
from services.runtime.recovery import GiveUp, Retry, decide
from services.triage.app import SERVICE as TRIAGE

NAMES = Names("linkwell")
MODELS = {name: route.model for name, route in TRIAGE.routes.items()}


def inbound(body: dict | bytes, user: str | None = "U12345") -> BadMessage | object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        return admit(
            raw,
            Delivery(NAMES.inbound, "linkworker.registered.v1", user_id=user),
            names=NAMES,
            service="triage",
            models=MODELS,
            trusted=frozenset(),
        )
    except BadMessage as exc:
        return exc


def registration(**data) -> dict:
    env = example("linkworker.registered.v1")
    env["data"].update(data)
    return env


def test_a_valid_event_is_admitted():
    admitted = inbound(registration())
    assert not isinstance(admitted, BadMessage)
    assert admitted.data.capacity == 40


def test_a_body_over_the_limit_is_refused_unparsed():
    with pytest.raises(BadMessage) as refused:
        parse_body(b"{" * (MAX_BODY_BYTES + 1))
    assert refused.value.reason == "too_large" and refused.value.raw is None


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{not json", b"[" * 100_000 + b"]" * 100_000])
def test_what_is_not_utf8_json_is_not_json(body):
    with pytest.raises(BadMessage) as refused:
        parse_body(body)
    assert refused.value.reason == "not_json"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("a\x00b", "data.link_worker_id"),
        ("\ud800", "data.link_worker_id"),
        ("\x1b[2J", "data.link_worker_id"),
    ],
)
def test_control_characters_and_lone_surrogates_are_refused_by_path(value, path):
    env = registration()
    env["data"]["link_worker_id"] = value
    assert forbidden_fields(env) == [path]
    refused = inbound(env)
    assert isinstance(refused, BadMessage) and refused.reason == "schema_invalid"
    assert refused.reasons[0].field == path


def test_new_lines_and_tabs_in_free_text_are_fine():
    assert forbidden_fields({"data": {"summary": "line one\n\tline two"}}) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity", "5"),
        ("capacity", 5.5),
        ("capacity", True),
        ("registered_at", 1763900000),
        ("registered_at", "2026-11-23"),
    ],
)
def test_no_lax_coercion(field, value):
    refused = inbound(registration(**{field: value}))
    assert isinstance(refused, BadMessage) and refused.reason == "schema_invalid"
    assert refused.reasons[0].field == f"data.{field}"


def test_the_envelope_must_name_its_specversion():
    env = registration()
    del env["specversion"]
    refused = inbound(env)
    assert isinstance(refused, BadMessage) and refused.reason == "envelope_invalid"


@pytest.mark.parametrize(
    ("user", "source", "reason"),
    [
        (None, "urn:linkwell:org:U12345", "sender_unverified"),
        ("U99999", "urn:linkwell:org:U12345", "source_mismatch"),
    ],
)
def test_the_sender_is_who_the_broker_says(user, source, reason):
    env = registration()
    env["source"] = source
    refused = inbound(env, user=user)
    assert isinstance(refused, BadMessage) and refused.reason == reason


def test_a_forwarded_message_is_refused():
    raw = json.dumps(registration()).encode()
    with pytest.raises(BadMessage) as refused:
        admit(
            raw,
            Delivery(NAMES.inbound, "linkworker.registered.v1", user_id="U12345", forwarded=True),
            names=NAMES,
            service="triage",
            models=MODELS,
            trusted=frozenset(),
        )
    assert refused.value.reason == "unsupported_type"


def test_an_unusable_id_is_answered_under_a_digest_never_echoed():
    assert event_id_of({"id": "ok-123"}, b"x") == "ok-123"
    digest = event_id_of({"id": "Jane Smith 12/04/1958"}, b"x")
    assert digest.startswith("sha256:") and "Jane" not in digest
    assert event_id_of(None, b"x") == digest


def test_outside_ids_never_become_correlation_ids():
    from contracts.events import LinkWorkerRegistered, parse_event

    env = registration()
    env["id"] = "Jane-Smith-1958"
    event = parse_event(LinkWorkerRegistered, env)
    assert "Jane" not in correlation_for(event)
    inside = parse_event(
        LinkWorkerRegistered,
        env | {"source": "urn:linkwell:linkwell:intake", "correlationid": "abc"},
    )
    assert correlation_for(inside) == "abc"


# ---------------------------------------------------------------- recovery


DELAYS = (0.5, 5.0, 30.0)


def test_failures_are_retried_after_each_delay_then_dead_lettered():
    delivery = Delivery("x", "y")
    seen = []
    while True:
        decision = decide(RuntimeError("boom"), delivery, DELAYS, 20)
        if isinstance(decision, GiveUp):
            break
        seen.append(decision.delay)
        delivery = decision.delivery
    assert seen == list(DELAYS) and decision.reason == "handler_failed"


def test_infrastructure_trouble_waits_without_spending_the_budget():
    delivery = Delivery("x", "y", attempt=3)
    for _ in range(50):
        decision = decide(ConnectionRefusedError(), delivery, DELAYS, 20)
        assert isinstance(decision, Retry) and decision.waiting
        delivery = decision.delivery
    assert delivery.attempt == 3 and delivery.waits == 50


def test_a_missing_dependency_waits_up_to_its_limit():
    decision = decide(Deferred("x"), Delivery("x", "y", waits=2), DELAYS, 3)
    assert isinstance(decision, Retry) and decision.delay == 30.0
    assert decide(Deferred("x"), Delivery("x", "y", waits=3), DELAYS, 3) == GiveUp(
        "dependency_missing"
    )


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionResetError(),
    ],
)
def test_every_error_of_a_lost_connection_is_transient(error):
    assert is_transient(error)


def test_an_error_raised_while_a_lost_connection_is_handled_is_transient():
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("gone")
        except asyncpg.ConnectionDoesNotExistError:
            raise RuntimeError("while releasing") from None
    except RuntimeError as exc:
        wrapped = exc
    wrapped.__context__ = asyncpg.ConnectionDoesNotExistError("gone")
    assert is_transient(wrapped)
    assert not is_transient(ValueError("a bug"))


# ---------------------------------------------------------------- delivery


def test_our_headers_are_ignored_on_anything_a_client_published():
    class Raw:
        exchange = "linkwell.inbound"
        routing_key = "contact.recorded.v1"
        user_id = "U12345"
        type = None
        headers = {"x-linkwell-attempt": 99, "x-linkwell-user-id": "A81001"}

    delivery = Delivery.of(Raw())  # type: ignore[arg-type]
    assert (delivery.attempt, delivery.user_id) == (0, "U12345")


def test_hostile_header_values_do_not_break_a_redelivery():
    class Raw:
        exchange = ""
        routing_key = "linkwell.triage"
        user_id = None
        type = None
        headers = {
            "x-linkwell-attempt": "many",
            "x-linkwell-waits": 10**30,
            "x-linkwell-user-id": b"\xff",
            "x-linkwell-original-exchange": "x" * 1000,
        }

    delivery = Delivery.of(Raw())  # type: ignore[arg-type]
    assert (delivery.attempt, delivery.waits, delivery.user_id, delivery.exchange) == (
        0,
        1_000_000,
        None,
        "",
    )


def test_an_answer_is_built_from_less_when_what_it_copies_is_bad():
    """An answer never depends on the refused input being valid: a builder that cannot
    use what it copies is asked again with the id and type alone, then the generic
    ``event.rejected.v1`` stands in; a refusal with no reasons still says why."""
    from contracts.enums import RejectionCode
    from contracts.events import EventRejected, Reason, ReferralRejected
    from services.intake.handlers import rejection
    from services.runtime.admission import default_rejection
    from services.runtime.answers import UNREADABLE, answer

    reason = Reason(code=RejectionCode.SCHEMA_INVALID, message="bad", field="data.pcn")
    calls: list[dict] = []

    def strict(raw: dict, sender: str, reasons: list) -> ReferralRejected:
        calls.append(raw)
        if "data" in raw:  # as a builder would that trusts a copied value
            ReferralRejected.model_validate({"pcn": raw["data"]["pcn"]})
        return rejection(raw, sender, reasons)

    raw = {"id": "ev-1", "type": "referral.submitted.v1", "data": {"pcn": "U12345\n"}}
    built = answer(strict, default_rejection, raw, "A81001", [reason])
    assert isinstance(built, ReferralRejected)
    assert (built.submission_event_id, built.pcn, built.reasons) == ("ev-1", None, [reason])
    assert calls[1] == {"id": "ev-1", "type": "referral.submitted.v1"}

    def broken(raw: dict, sender: str, reasons: list) -> ReferralRejected:
        raise ValueError("cannot")

    generic = answer(broken, default_rejection, raw, "A81001", [])
    assert isinstance(generic, EventRejected)
    assert generic.rejected_event_id == "ev-1"
    assert generic.reasons == [UNREADABLE]


@pytest.mark.parametrize("value", [1, "a\x01"])
def test_a_bad_field_at_a_very_long_path_is_refused_by_a_cut_path(value):
    """A sender chooses the keys: a path past a reason's 200-character field limit is cut,
    so admission still refuses with a reason instead of failing to build one."""
    body = registration()
    body["data"]["k" * 300] = value
    refused = inbound(body)
    assert isinstance(refused, BadMessage)
    assert refused.reasons and len(refused.reasons[0].field) == 200
