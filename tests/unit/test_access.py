"""The access plan: least privilege by construction, and the committed definitions."""

from __future__ import annotations

import re

import pytest

from services.access_cli import ORGANISATIONS, SAMPLE_DEFINITIONS, plan, stale
from services.runtime import access
from services.runtime.settings import Settings


@pytest.fixture(scope="module")
def principals() -> dict[str, access.Principal]:
    settings = Settings(namespace="linkwell", amqp_url="amqp://rabbitmq:5672/")
    return {p.username: p for p in plan(settings, ORGANISATIONS).principals()}


def topic(p: access.Principal, exchange: str) -> access.TopicPermission:
    [t] = [t for t in p.topics if t.exchange == exchange]
    return t


def test_committed_definitions_are_current():
    assert stale(SAMPLE_DEFINITIONS, ORGANISATIONS) == [], (
        "run: LINKWELL_NAMESPACE=linkwell AMQP_URL=amqp://rabbitmq:5672/ "
        "linkwell access definitions --sample-passwords --out deploy/rabbitmq/definitions.json"
    )


def test_no_organisation_may_publish_linkwell_events(principals):
    for p in principals.values():
        if p.kind in ("agency", "team", "gp_integrator"):
            assert topic(p, "linkwell.events").write == access.NOTHING
            assert not re.fullmatch(p.write, "linkwell.events")
            assert not re.fullmatch(p.write, "amq.default")
            assert not re.fullmatch(p.read, "linkwell.inbound")


@pytest.mark.parametrize(
    ("user", "key", "allowed"),
    [
        ("A81001", "referral.accepted.v1.A81001", True),
        ("A81001", "referral.status.v1.A81001", True),
        ("A81001", "referral.accepted.v1.FNX01", False),
        ("A81001", "referral.accepted.v1.*", False),
        ("A81001", "#", False),
        ("U12345", "referral.assigned.v1.U12345", True),
        ("U12345", "referral.assigned.v1.U99999", False),
        ("U12345", "event.rejected.v1.U12345", True),
        ("gp-integrator", "gp.writeback.v1.A81001", True),
        ("gp-integrator", "gp.writeback.v1.B82002", False),
        ("linkwell-triage", "referral.accepted.v1.*", True),
        ("linkwell-triage", "gp.writeback.v1.*", False),
    ],
)
def test_who_may_bind_what(principals, user, key, allowed):
    assert bool(re.fullmatch(topic(principals[user], "linkwell.events").read, key)) is allowed


@pytest.mark.parametrize(
    ("user", "key", "allowed"),
    [
        ("A81001", "referral.submitted.v1", True),
        ("A81001", "linkworker.registered.v1", False),
        ("U12345", "linkworker.registered.v1", True),
        ("U12345", "referral.submitted.v1", False),
        ("gp-integrator", "referral.submitted.v1", False),
    ],
)
def test_who_may_publish_what(principals, user, key, allowed):
    assert bool(re.fullmatch(topic(principals[user], "linkwell.inbound").write, key)) is allowed


def test_services_publish_only_what_they_produce(principals):
    write = topic(principals["linkwell-intake"], "linkwell.events").write
    assert re.fullmatch(write, "referral.accepted.v1.A81001")
    assert not re.fullmatch(write, "referral.assigned.v1.U12345")
    assert not re.fullmatch(write, "gp.writeback.v1.A81001")


def test_password_hash_is_rabbitmq_sha256():
    hashed = access.password_hash("secret", salt=b"\x90\x8d\xc6\x0a")
    assert access.check_password("secret", hashed)
    assert not access.check_password("Secret", hashed)
    assert hashed == access.password_hash("secret", salt=b"\x90\x8d\xc6\x0a")


def test_passwords_from_the_environment_name_every_missing_one(monkeypatch, principals):
    some = list(principals.values())[:2]
    monkeypatch.setenv(access.password_env(some[0].username), "x")
    with pytest.raises(KeyError) as excinfo:
        access.passwords_for(some, sample=False)
    assert access.password_env(some[1].username) in str(excinfo.value)
    assert access.password_env(some[0].username) not in str(excinfo.value)


def test_organisation_codes_are_checked():
    with pytest.raises(ValueError):
        access.Organisations.model_validate({"agency": [{"code": "lower-case"}]})
    with pytest.raises(ValueError):
        access.Organisations.model_validate({"agency": [{"code": "A81001", "typo": 1}]})
