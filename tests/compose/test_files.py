"""The compose files and deploy/.env.example agree with the code (no Docker needed)."""

from __future__ import annotations

import re

from services.ops.catalogue import environment_variables

from .stack import DEPLOY

ENV_EXAMPLE = (DEPLOY / ".env.example").read_text()
COMPOSE = (DEPLOY / "compose.yaml").read_text()
COMPOSE_TEST = (DEPLOY / "compose.test.yaml").read_text()
COMPOSE_PRODUCTION = (DEPLOY / "compose.production.yaml").read_text()


def setting_names() -> set[str]:
    return environment_variables()


def test_env_example_lists_every_setting():
    missing = {n for n in setting_names() if not re.search(rf"\b{n}\b", ENV_EXAMPLE)}
    assert not missing, f"add to deploy/.env.example: {sorted(missing)}"


def test_env_example_lists_every_compose_variable():
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE + COMPOSE_TEST + COMPOSE_PRODUCTION))
    missing = {n for n in used if not re.search(rf"^#?{n}=", ENV_EXAMPLE, re.M)}
    assert not missing, f"add to deploy/.env.example: {sorted(missing)}"


def test_settings_passed_through_by_compose_exist():
    passed = set(re.findall(r"^\s+([A-Z_][A-Z0-9_]*):\s*$", COMPOSE, re.M))
    assert passed, "compose.yaml passes no settings through"
    assert passed <= setting_names() | {"LINKWELL_FAILPOINTS"}, passed - setting_names()


def test_every_service_connects_as_its_own_broker_user():
    for service in ("intake", "triage", "notify", "outcomes", "gateway", "audit"):
        assert f"amqp://linkwell-{service}:${{LINKWELL_{service.upper()}_AMQP_PASSWORD" in COMPOSE
    assert "amqp://linkwell-admin:${LINKWELL_ADMIN_AMQP_PASSWORD" in COMPOSE


def test_the_gateway_is_published_trusted_for_its_organisation_and_has_its_practices():
    assert (
        '"${LINKWELL_BIND_ADDRESS:-127.0.0.1}:${LINKWELL_GATEWAY_PUBLISHED_PORT:-8071}:8070"'
        in (COMPOSE)
    )
    assert "LINKWELL_TRUSTED_USERS: linkwell-gateway=${LINKWELL_GATEWAY_PUBLIC_ORG:-SELF-WEB}" in (
        COMPOSE
    )
    assert "./gateway/practices.toml:/etc/linkwell/practices.toml:ro" in COMPOSE
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY deploy/gateway/practices.toml /etc/linkwell/practices.toml" in dockerfile
    assert "!deploy/gateway/practices.toml" in (DEPLOY.parent / ".dockerignore").read_text()
    # no two published host ports the same by default
    published = re.findall(r'"\$\{LINKWELL_BIND_ADDRESS:-127\.0\.0\.1\}:\$\{\w+:-(\d+)\}:', COMPOSE)
    assert len(published) == len(set(published)) == 4, published
    assert "8070" not in published  # bash deploy/local.sh run serves the pages there


def test_the_production_profile_encrypts_every_link_and_requires_every_secret():
    assert "amqp://" not in COMPOSE_PRODUCTION
    for service in ("intake", "triage", "notify", "outcomes", "audit", "gateway"):
        upper = service.upper()
        assert (
            f"amqps://linkwell-{service}:${{LINKWELL_{upper}_AMQP_PASSWORD:?" in COMPOSE_PRODUCTION
        )
        assert (
            f"postgresql://linkwell_{service}:${{LINKWELL_{upper}_DB_PASSWORD:?"
            in COMPOSE_PRODUCTION
        )
    assert "postgresql://linkwell_readside:${LINKWELL_READSIDE_DB_PASSWORD:?" in COMPOSE_PRODUCTION
    assert "amqps://linkwell-readside:${LINKWELL_READSIDE_AMQP_PASSWORD:?" in COMPOSE_PRODUCTION
    assert "${POSTGRES_PASSWORD:?" in COMPOSE_PRODUCTION
    assert "${LINKWELL_GATEWAY_CLIENT_PEPPER:?" in COMPOSE_PRODUCTION
    assert "LINKWELL_MODE: production" in COMPOSE_PRODUCTION
    assert "ssl=on" in COMPOSE_PRODUCTION
    assert "${LINKWELL_DEFINITIONS:?" in COMPOSE_PRODUCTION
    tls = (DEPLOY / "rabbitmq" / "tls.conf").read_text()
    assert "listeners.tcp = none" in tls and "listeners.ssl.default = 5671" in tls
    hba = (DEPLOY / "postgres" / "pg_hba.conf").read_text()
    assert not re.search(r"^host\s", hba, re.M), "a plain network login is allowed"
    # the development profile says what it is
    assert "LINKWELL_MODE: development" in COMPOSE


def test_the_development_broker_makes_its_passwords_and_production_brings_its_own():
    # the committed sample holds no password hash; the development stack's broker gives
    # its users dev-<user> at start, unless definitions are mounted (production)
    assert 'entrypoint: ["sh", "/etc/linkwell/dev-definitions.sh"]' in COMPOSE
    assert "./rabbitmq/definitions.json:/etc/linkwell/definitions.sample.json:ro" in COMPOSE
    assert "./rabbitmq/definitions.json:/etc/rabbitmq/definitions.json" not in COMPOSE
    assert ":/etc/rabbitmq/definitions.json:ro" in COMPOSE_PRODUCTION
    script = (DEPLOY / "rabbitmq" / "dev-definitions.sh").read_text()
    assert 'if [ ! -e "$TARGET" ]; then' in script and "exec docker-entrypoint.sh" in script
