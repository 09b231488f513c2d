"""The compose files and deploy/.env.example agree with the code (no Docker needed)."""

from __future__ import annotations

import re

from services.ops.catalogue import environment_variables

from .stack import DEPLOY

ENV_EXAMPLE = (DEPLOY / ".env.example").read_text()
COMPOSE = (DEPLOY / "compose.yaml").read_text()
COMPOSE_TEST = (DEPLOY / "compose.test.yaml").read_text()


def setting_names() -> set[str]:
    return environment_variables()


def test_env_example_lists_every_setting():
    missing = {n for n in setting_names() if not re.search(rf"\b{n}\b", ENV_EXAMPLE)}
    assert not missing, f"add to deploy/.env.example: {sorted(missing)}"


def test_env_example_lists_every_compose_variable():
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE + COMPOSE_TEST))
    missing = {n for n in used if not re.search(rf"^#?{n}=", ENV_EXAMPLE, re.M)}
    assert not missing, f"add to deploy/.env.example: {sorted(missing)}"


def test_settings_passed_through_by_compose_exist():
    passed = set(re.findall(r"^\s+([A-Z_][A-Z0-9_]*):\s*$", COMPOSE, re.M))
    assert passed, "compose.yaml passes no settings through"
    assert passed <= setting_names() | {"LINKWELL_FAILPOINTS"}, passed - setting_names()


def test_every_service_connects_as_its_own_broker_user():
    for service in ("intake", "triage", "notify", "outcomes"):
        assert f"amqp://linkwell-{service}:${{LINKWELL_{service.upper()}_AMQP_PASSWORD" in COMPOSE
    assert "amqp://linkwell-admin:${LINKWELL_ADMIN_AMQP_PASSWORD" in COMPOSE
