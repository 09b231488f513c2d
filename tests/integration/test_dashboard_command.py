"""``linkwell dashboard`` says where it is as it starts (it printed nothing), then serves
the sign-in page there."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from services.outcomes.app import SERVICE as OUTCOMES
from services.runtime.runner import migrate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_dashboard_prints_its_address_and_serves_there(settings):
    await migrate(settings, OUTCOMES)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.ops.cli",
        "dashboard",
        "--port",
        str(port),
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "LINKWELL_NAMESPACE": settings.namespace,
            "AMQP_URL": settings.amqp_url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert first.strip() == f"Dashboard: http://127.0.0.1:{port}/", first
        said = (await asyncio.wait_for(process.stdout.readline(), 5)).decode()
        assert settings.names.schema("reporting") in said and "read-only" in said
        assert settings.names.schema("readside") in said
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    page = await http.get(f"http://127.0.0.1:{port}/login")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            assert page.status_code == 200 and "Account name" in page.text
            assert page.headers["x-frame-options"] == "DENY"
            home = await http.get(f"http://127.0.0.1:{port}/")
            assert home.status_code == 303 and home.headers["location"] == "/login"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
