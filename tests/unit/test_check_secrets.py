"""deploy/check-secrets.sh stops the production profile on a missing or development
secret, naming it, and lets through an env file with the operator's own."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "check-secrets.sh"
NAMES = [
    "POSTGRES_PASSWORD",
    "LINKWELL_ADMIN_AMQP_PASSWORD",
    "LINKWELL_READSIDE_DB_PASSWORD",
    "LINKWELL_READSIDE_AMQP_PASSWORD",
    "LINKWELL_GATEWAY_CLIENT_PEPPER",
] + [
    f"LINKWELL_{s}_{kind}_PASSWORD"
    for s in ("INTAKE", "TRIAGE", "NOTIFY", "OUTCOMES", "AUDIT", "GATEWAY")
    for kind in ("AMQP", "DB")
]


def run(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in NAMES and not k.startswith("LINKWELL_")}
    return subprocess.run(
        ["bash", str(SCRIPT), str(env_file), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def production_env(tmp_path: Path, **overrides: str) -> Path:
    tls = tmp_path / "tls"
    tls.mkdir()
    for name in ("ca.pem", "rabbitmq.pem", "rabbitmq.key", "postgres.pem", "postgres.key"):
        (tls / name).write_text("placeholder\n")
    definitions = tmp_path / "definitions.json"
    definitions.write_text('{"users": []}\n')
    values = {name: secrets.token_hex(16) for name in NAMES}
    values |= {"LINKWELL_TLS_DIR": str(tls), "LINKWELL_DEFINITIONS": str(definitions)}
    values |= overrides
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def test_own_secrets_pass(tmp_path):
    done = run(production_env(tmp_path))
    assert done.returncode == 0, done.stderr


def test_a_development_secret_stops_it_naming_the_secret(tmp_path):
    done = run(production_env(tmp_path, LINKWELL_TRIAGE_AMQP_PASSWORD="dev-linkwell-triage"))
    assert done.returncode == 1
    assert "LINKWELL_TRIAGE_AMQP_PASSWORD is a known development secret" in done.stderr


def test_a_missing_secret_and_the_sample_definitions_stop_it(tmp_path):
    env = production_env(
        tmp_path,
        POSTGRES_PASSWORD="",
        LINKWELL_DEFINITIONS=str(ROOT / "deploy" / "rabbitmq" / "definitions.json"),
    )
    done = run(env)
    assert done.returncode == 1
    assert "POSTGRES_PASSWORD is not set" in done.stderr
    assert "LINKWELL_DEFINITIONS is the sample" in done.stderr


def test_the_development_ca_stops_it(tmp_path):
    env = production_env(tmp_path)
    tls = tmp_path / "tls"
    subprocess.run(
        ["bash", str(ROOT / "deploy" / "tls" / "make-dev-ca.sh"), str(tmp_path / "dev")],
        check=True,
        capture_output=True,
    )
    (tls / "ca.pem").write_bytes((tmp_path / "dev" / "ca.pem").read_bytes())
    done = run(env)
    assert done.returncode == 1
    assert "is the development CA" in done.stderr


def test_a_cluster_needs_its_own_erlang_cookie(tmp_path):
    done = run(production_env(tmp_path), "--cluster")
    assert done.returncode == 1 and "LINKWELL_ERLANG_COOKIE is not set" in done.stderr
    (tmp_path / "x").mkdir()
    env = production_env(tmp_path / "x", LINKWELL_ERLANG_COOKIE="dev-linkwell-erlang-cookie")
    done = run(env, "--cluster")
    assert done.returncode == 1 and "LINKWELL_ERLANG_COOKIE is a known development" in done.stderr
