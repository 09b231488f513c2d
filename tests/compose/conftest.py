"""The compose stack (deploy/compose.yaml + deploy/compose.test.yaml) as a fixture.

Docker is made ready by deploy/docker/host.sh (idempotent). Under CI (``CI`` set) a
Docker that cannot be started fails the test, loudly; elsewhere the test is skipped with
the reason. Every image is built from the local Debian base (deploy/docker/build.sh), the
stack runs under a project name of its own with free host ports, and is always removed
with its volumes (``docker compose down -v``) at the end.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from .stack import (
    DEPLOY,
    HOST_SETTINGS,
    STACK_NAMES,
    STACK_PREFIXES,
    ComposeStack,
    free_port,
    in_ci,
    run,
    tail,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "compose: builds the images and runs the Docker Compose stack"
    )


def _docker_ready() -> None:
    """Under CI, deploy/docker/host.sh makes Docker ready (installing and starting it if
    needed; .ci/run has already done so). Elsewhere nothing is installed: the test runs if
    a Docker engine answers, and is skipped, saying how, if not."""
    if not in_ci():
        result = run(["docker", "info"], check=False, timeout=30)
        if result.returncode != 0:
            pytest.skip(
                "no Docker engine answers, so the compose stack test is skipped (under CI it "
                "fails). `bash deploy/docker/host.sh` installs and starts Docker (Debian "
                "packages, about 1 GB of images) if you want to run it."
            )
        compose = run(["docker", "compose", "version"], check=False, timeout=30)
        base = run(
            ["docker", "image", "inspect", "linkwell/bookworm:local"], check=False, timeout=30
        )
        if compose.returncode == 0 and base.returncode == 0:
            return
        pytest.skip(
            "Docker runs, but Compose v2 or the local base image is missing: "
            "`bash deploy/docker/host.sh` adds them (the compose test is skipped; under CI "
            "it fails)."
        )
    try:
        result = run(["bash", str(DEPLOY / "docker" / "host.sh")], check=False, timeout=900)
        problem = None if result.returncode == 0 else tail(result.stderr or result.stdout, 30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = repr(exc)
    if problem is None:
        return
    pytest.fail(
        "Docker is not usable here, so the compose stack cannot run: "
        f"bash deploy/docker/host.sh failed:\n{problem}",
        pytrace=False,
    )


def _running(
    request: pytest.FixtureRequest,
    label: str,
    files: tuple[str, ...],
    settings: dict[str, str],
) -> Iterator[ComposeStack]:
    """Build the images, start a stack of these compose files under a project of its own
    with free host ports, yield it once healthy, and remove it with its volumes."""
    failed_before = request.session.testsfailed
    started = time.monotonic()
    _docker_ready()
    timings = {"docker_ready_s": time.monotonic() - started}

    env = {
        k: v
        for k, v in os.environ.items()
        if k in HOST_SETTINGS or not (k.startswith(STACK_PREFIXES) or k in STACK_NAMES)
    }
    stack = ComposeStack(
        project=f"lwtest-{label}{uuid.uuid4().hex[:8]}",
        amqp_port=free_port(),
        management_port=free_port(),
        env=env,
        timings=timings,
        files=files,
    )
    env.update(
        LINKWELL_AMQP_PORT=str(stack.amqp_port),
        LINKWELL_MANAGEMENT_PORT=str(stack.management_port),
        LINKWELL_DASHBOARD_PORT=str(free_port()),
        LINKWELL_GATEWAY_PUBLISHED_PORT=str(free_port()),
        # the person's status checks are polled: more than a person's ten an hour
        LINKWELL_GATEWAY_CLIENT_SENDS_PER_HOUR="200",
        # quicker retries than production's 0.5,5,30, so a retried message never
        # holds the test up for long
        LINKWELL_RETRY_DELAYS="0.5,1,2",
        **settings,
    )

    t = time.monotonic()
    run(["bash", str(DEPLOY / "docker" / "build.sh")], env=env, timeout=1800)
    timings["build_s"] = time.monotonic() - t

    t = time.monotonic()
    try:
        up = stack.compose("up", "-d", check=False, timeout=300)
        if up.returncode != 0:
            raise AssertionError(
                f"docker compose up failed:\n{tail(up.stderr)}\n{stack.diagnostics()}"
            )
        stack.wait_healthy()
        timings["up_s"] = time.monotonic() - t
        yield stack
    finally:
        if request.session.testsfailed > failed_before:
            print(stack.diagnostics())
        down = stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
        if down.returncode != 0:
            print(f"docker compose down failed: {down.stderr}")
        print(f"{label or 'compose '}stack timings: {timings}")


@pytest.fixture(scope="module")
def compose_stack(request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    yield from _running(request, "", ("compose.yaml", "compose.test.yaml"), {})


# The three-node RabbitMQ cluster of deploy/compose.cluster.yaml, with the local images.
CLUSTER_FILES = ("compose.yaml", "compose.test.yaml", "compose.cluster.yaml")


@pytest.fixture(scope="module")
def cluster_stack(request: pytest.FixtureRequest) -> Iterator[ComposeStack]:
    """The compose stack with RabbitMQ as a three-node cluster (deploy/compose.cluster.yaml),
    started and removed as ``compose_stack`` is."""
    yield from _running(
        request,
        "cluster-",
        CLUSTER_FILES,
        {
            # all three nodes on the image deploy/docker/build.sh makes, with this run's
            # own Erlang cookie
            "RABBITMQ_IMAGE": "linkwell/rabbitmq:local",
            "RABBITMQ_HEALTHCHECK_INTERVAL": "2s",
            "LINKWELL_ERLANG_COOKIE": uuid.uuid4().hex,
            # gauges read from the database (triage's capacity: the roster is in) every second
            "LINKWELL_METRICS_INTERVAL": "1",
        },
    )
