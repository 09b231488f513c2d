"""The access plan: least privilege by construction, and the committed definitions."""

from __future__ import annotations

import re

import pytest

from services.ops import access
from services.ops.access_cli import ORGANISATIONS, SAMPLE_DEFINITIONS, plan, stale
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
        "linkwell access definitions --sample --out deploy/rabbitmq/definitions.json"
    )


def allows(pattern: str, name: str) -> bool:
    """As RabbitMQ applies a permission: an unanchored regular expression search."""
    return re.search(pattern, name) is not None


ORGS = ("A81001", "FNX01", "U12345", "gp-integrator")


@pytest.mark.parametrize("user", [*ORGS, "linkwell-intake", "linkwell-triage"])
def test_nobody_but_the_administrator_may_declare_anything(principals, user):
    assert principals[user].configure == access.NOTHING
    for name in ("linkwell.inbound", "linkwell.org.A81001", "amq.gen-x", "linkwell.intake"):
        assert not allows(principals[user].configure, name)


@pytest.mark.parametrize("user", ORGS)
def test_an_organisation_reads_only_its_own_queue_and_writes_only_inbound(principals, user):
    p = principals[user]
    assert allows(p.read, f"linkwell.org.{user}")
    assert allows(p.read, f"linkwell.org.{user}.dead-letter")  # what its consumer rejected
    for other in (
        "linkwell.org.FNX01x",
        "linkwell.org.U99999.dead-letter",
        "linkwell.org.U99999",
        "linkwell.intake",
        "linkwell.events",
    ):
        assert not allows(p.read, other), other
    for name in ("linkwell.events", "amq.default", "linkwell.dead-letter", "linkwell.intake.retry"):
        assert not allows(p.write, name), name
    assert topic(p, "linkwell.events").write == access.NOTHING


def test_each_organisation_queue_is_bound_to_its_own_events_only(principals):
    assert principals["A81001"].bindings == (
        "event.rejected.v1.A81001",
        "referral.accepted.v1.A81001",
        "referral.accepted.v2.A81001",
        "referral.duplicate.v1.A81001",
        "referral.rejected.v1.A81001",
        "referral.status.v1.A81001",
    )
    assert principals["U12345"].bindings == (
        "event.rejected.v1.U12345",
        "notification.failed.v1.U12345",
        "referral.assigned.v1.U12345",
        "referral.identity_conflict.v1.U12345",
        "referral.joined.v1.U12345",
        "referral.waitlisted.v1.U12345",
    )
    assert principals["gp-integrator"].bindings == ("gp.writeback.v1.A81001",)


@pytest.mark.parametrize(
    ("user", "key", "allowed"),
    [
        ("A81001", "referral.submitted.v1", True),
        ("A81001", "linkworker.registered.v1", False),
        ("A81001", "xreferral.submitted.v1", False),
        ("U12345", "linkworker.registered.v1", True),
        ("U12345", "referral.closed.v1", True),
        ("U12345", "referral.submitted.v1", False),
        ("gp-integrator", "referral.submitted.v1", False),
        ("linkwell-intake", "referral.submitted.v1", False),
    ],
)
def test_who_may_publish_what(principals, user, key, allowed):
    assert allows(topic(principals[user], "linkwell.inbound").write, key) is allowed


def test_services_write_only_their_events_dead_letters_and_retries(principals):
    intake = principals["linkwell-intake"]
    for name in ("linkwell.events", "linkwell.dead-letter", "linkwell.intake.retry"):
        assert allows(intake.write, name), name
    for name in ("amq.default", "linkwell.triage.retry", "linkwell.inbound", "linkwell.triage"):
        assert not allows(intake.write, name), name
    assert allows(intake.read, "linkwell.intake")
    for name in ("linkwell.intake.dead-letter", "linkwell.triage", "linkwell.unrouted"):
        assert not allows(intake.read, name), name
    write = topic(intake, "linkwell.events").write
    assert allows(write, "referral.accepted.v1.A81001")
    assert not allows(write, "referral.assigned.v1.U12345")
    assert not allows(write, "gp.writeback.v1.A81001")


def test_password_hash_is_rabbitmq_sha256():
    # the vector from RabbitMQ's documentation on credentials and passwords
    assert access.password_hash("test12", salt=bytes.fromhex("908dc60a")) == (
        "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    )
    hashed = access.password_hash("secret")
    assert access.check_password("secret", hashed)
    assert not access.check_password("Secret", hashed)
    assert not access.check_password("secret", "not base64!")


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


def test_the_sample_definitions_hold_no_usable_credential():
    import json

    users = json.loads(SAMPLE_DEFINITIONS.read_text())["users"]
    assert users and all(u["password_hash"] == "" for u in users)
    assert not any(access.check_password(f"dev-{u['name']}", u["password_hash"]) for u in users)


def test_the_development_broker_gives_each_sample_user_its_dev_password(tmp_path):
    import json
    import shutil
    import subprocess

    if shutil.which("openssl") is None and shutil.which("erl") is None:
        pytest.skip("neither openssl nor Erlang is installed here (the broker image has Erlang)")
    script = SAMPLE_DEFINITIONS.parent / "dev-definitions.sh"
    out = tmp_path / "definitions.json"
    subprocess.run(["sh", str(script), "fill", str(SAMPLE_DEFINITIONS), str(out)], check=True)
    filled = json.loads(out.read_text())
    assert access.without_secrets(filled) == access.without_secrets(
        json.loads(SAMPLE_DEFINITIONS.read_text())
    )
    for user in filled["users"]:
        assert access.check_password(f"dev-{user['name']}", user["password_hash"]), user["name"]
