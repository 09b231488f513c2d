"""Settings fail closed outside development: a missing or known development secret, or a
link in the clear to another host, stops a service before it connects, naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from services.runtime import secure
from services.runtime.settings import Settings

GOOD_AMQP = "amqps://linkwell-intake:Zq8v7Kp2@broker.example.org:5671/"
GOOD_DB = "postgresql://linkwell_intake:Hk3m9Wq1@db.example.org:5432/linkwell"


def production(**env: str) -> Settings:
    values = {"LINKWELL_MODE": "production", "LINKWELL_TLS_CA": "/etc/linkwell/ca.pem"}
    values.update(env)
    return Settings(_env_file=None, **values)


def test_production_with_own_secrets_and_tls_starts():
    settings = production(AMQP_URL=GOOD_AMQP, DATABASE_URL=GOOD_DB)
    assert "cafile=%2Fetc%2Flinkwell%2Fca.pem" in settings.amqp_url
    assert "sslmode=verify-full" in settings.database_url
    assert "sslrootcert=%2Fetc%2Flinkwell%2Fca.pem" in settings.database_url
    assert settings.trusted_users == frozenset()


@pytest.mark.parametrize(
    ("amqp", "db", "named"),
    [
        ("amqps://guest:guest@broker.example.org/", GOOD_DB, "AMQP_URL"),
        ("amqps://linkwell-intake:dev-linkwell-intake@broker.example.org/", GOOD_DB, "AMQP_URL"),
        ("amqps://linkwell-intake@broker.example.org/", GOOD_DB, "AMQP_URL"),
        (GOOD_AMQP, "postgresql://postgres:dev-postgres@db.example.org/linkwell", "DATABASE_URL"),
        (GOOD_AMQP, "postgresql://postgres@db.example.org/linkwell", "DATABASE_URL"),
    ],
)
def test_a_development_or_missing_secret_is_refused(amqp, db, named):
    with pytest.raises(ValidationError) as refused:
        production(AMQP_URL=amqp, DATABASE_URL=db)
    assert named in str(refused.value)
    assert "development" in str(refused.value)


def test_plain_links_to_another_host_are_refused():
    with pytest.raises(ValidationError) as refused:
        Settings(
            _env_file=None,
            LINKWELL_MODE="production",
            AMQP_URL="amqp://linkwell-intake:Zq8v7Kp2@broker.example.org/",
            DATABASE_URL="postgresql://linkwell_intake:Hk3m9Wq1@db.example.org/linkwell",
        )
    text = str(refused.value)
    assert "AMQP_URL: plain amqp://" in text
    assert "DATABASE_URL: to another host without sslmode=verify-full" in text


def test_turning_verification_off_is_refused():
    with pytest.raises(ValidationError, match="no_verify_ssl"):
        production(AMQP_URL=GOOD_AMQP + "?no_verify_ssl=1", DATABASE_URL=GOOD_DB)


def test_the_defaults_are_refused_unless_in_development():
    with pytest.raises(
        ValidationError, match="DATABASE_URL: the password of database role 'postgres'"
    ):
        Settings(_env_file=None, LINKWELL_MODE="production")
    # a service needs its own broker user: the runner refuses without AMQP_URL
    with pytest.raises(secure.Refused, match="AMQP_URL is not set"):
        secure.require_broker("production", amqp_set=False)
    secure.require_broker("development", amqp_set=False)
    secure.require_broker("production", amqp_set=True)
    dev = Settings(_env_file=None, LINKWELL_MODE="development")
    assert dev.trusted_users == frozenset({"guest"})


def test_development_secrets_are_recognised():
    for value in (None, "", "guest", "dev-postgres", "DEV-linkwell-admin", "postgres"):
        assert secure.is_development_secret(value)
    assert not secure.is_development_secret("Zq8v7Kp2-long-random")


def test_the_command_stops_with_a_clear_message():
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LINKWELL_", "AMQP", "DATABASE"))
    }
    env["AMQP_URL"] = "amqp://linkwell-admin:dev-linkwell-admin@rabbitmq:5672/"
    env["DATABASE_URL"] = "postgresql://postgres:dev-postgres@postgres:5432/linkwell"
    done = subprocess.run(
        [sys.executable, "-m", "services.ops.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "linkwell-admin" in done.stderr and "known development" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("pepper", [None, "", "dev-pepper", "short-but-not-a-dev-one"])
def test_the_gateway_refuses_a_missing_or_weak_credential_pepper_outside_development(pepper):
    from services.gateway.settings import GatewaySettings

    env = {"LINKWELL_MODE": "production"}
    if pepper is not None:
        env["LINKWELL_GATEWAY_CLIENT_PEPPER"] = pepper
    with pytest.raises(ValidationError) as refused:
        GatewaySettings(_env_file=None, **env)
    said = " ".join(problem["msg"] for problem in refused.value.errors())  # what start says
    assert "LINKWELL_GATEWAY_CLIENT_PEPPER" in said
    assert not pepper or pepper not in said  # the secret itself is never echoed
    strong = GatewaySettings(
        _env_file=None,
        LINKWELL_MODE="production",
        LINKWELL_GATEWAY_CLIENT_PEPPER="a" * 8 + "Zq8v7Kp2" * 4,
    )
    assert len(strong.gateway_client_pepper.get_secret_value()) == 40
    assert GatewaySettings(_env_file=None, LINKWELL_MODE="development").mode == "development"
