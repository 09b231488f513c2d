"""A running compose stack (deploy/compose.yaml + deploy/compose.test.yaml, and any further
override such as deploy/compose.cluster.yaml): compose commands against it, its containers,
their health."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("intake", "triage", "notify", "outcomes", "gateway", "audit")
# What the stack's own settings may not inherit from the environment pytest runs in
# (the suite's AMQP_URL, DATABASE_URL and LINKWELL_* are for the host's servers).
STACK_PREFIXES = ("LINKWELL_", "POSTGRES_", "RABBITMQ_", "PYTHON_IMAGE", "COMPOSE_")
STACK_NAMES = ("AMQP_URL", "DATABASE_URL")
# ... except what the host and the image build are told to use
HOST_SETTINGS = ("LINKWELL_EXTRA_CA", "LINKWELL_BASE_IMAGE", "LINKWELL_DOCKER_STATE")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class ComposeStack:
    """One running stack: run compose commands against it, find its containers."""

    project: str
    amqp_port: int
    management_port: int
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    # compose files in deploy/, in order (a later one overrides an earlier one)
    files: tuple[str, ...] = ("compose.yaml", "compose.test.yaml")

    def compose(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            "docker",
            "compose",
            "--ansi",
            "never",
            "--project-name",
            self.project,
            "--project-directory",
            str(DEPLOY),
            # not deploy/.env: a developer's own settings must not change the test
            "--env-file",
            os.devnull,
            *(arg for name in self.files for arg in ("-f", str(DEPLOY / name))),
            *args,
        ]
        return run(cmd, env=self.env, check=check, timeout=timeout)

    def amqp_url(self, user: str) -> str:
        """The sample development password of every user in deploy/rabbitmq/definitions.json
        is ``dev-<user>``."""
        return f"amqp://{user}:dev-{user}@127.0.0.1:{self.amqp_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        args = ["ps", "-q", *(["-a"] if all_states else []), service]
        return self.compose(*args).stdout.split()

    def inspect(self, container: str) -> dict:
        [info] = json.loads(run(["docker", "inspect", container], env=self.env).stdout)
        return info

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return state.get("Health", {}).get("Status") or state["Status"]

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            states = {
                f"{service}:{cid[:12]}": self.health(cid)
                for service in services
                for cid in self.containers(service)
            }
            missing = [s for s in services if not any(k.startswith(f"{s}:") for k in states)]
            if not missing and all(state == "healthy" for state in states.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy within {within}s: {states}, not running: {missing}\n"
                    + self.diagnostics()
                )
            time.sleep(1)

    def diagnostics(self) -> str:
        ps = self.compose("ps", "-a", check=False)
        logs = self.compose("logs", "--no-color", "--tail", "30", check=False)
        return f"--- docker compose ps\n{ps.stdout}\n--- docker compose logs\n{logs.stdout}"


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited with {result.returncode}\n"
            f"{tail(result.stdout)}\n{tail(result.stderr)}"
        )
    return result


async def api(stack: ComposeStack, path: str) -> Any:
    """GET from the management API the stack publishes, as its administrator (in a
    cluster, node rabbitmq-1's, which shows the whole cluster)."""
    import httpx

    auth = ("linkwell-admin", "dev-linkwell-admin")
    async with httpx.AsyncClient(auth=auth, timeout=10) as client:
        response = await client.get(f"{stack.management_url}/api/{path}")
        response.raise_for_status()
        return response.json()


async def docker(stack: ComposeStack, *args: str) -> str:
    result = await asyncio.to_thread(run, ["docker", *args], env=stack.env)
    return result.stdout.strip()
