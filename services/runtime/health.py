"""Liveness, readiness and metrics over HTTP (uvicorn serving a three-route ASGI app).

- ``/livez``: 200 while the event loop answers. A failing liveness probe means
  restart me.
- ``/readyz``: 200 only when the broker connections (consumer and publisher) are up,
  the database answers and the topology has been declared; 503 otherwise, with each
  check's result in the JSON body. A failing readiness probe means wait: the service
  recovers on its own when its dependencies return.
- ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from prometheus_client import make_asgi_app

from .logs import get_logger

log = get_logger(__name__)

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT = 2.0


async def run_checks(checks: dict[str, Check]) -> dict[str, bool]:
    async def one(check: Check) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT))
        except Exception:
            return False

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))


class HealthApp:
    """The ASGI application. ``checks`` decide readiness; all must pass."""

    def __init__(self, service: str, checks: dict[str, Check]):
        self.service = service
        self.checks = checks
        self.metrics = make_asgi_app()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await self.metrics(scope, receive, send)
            return
        if path == "/livez":
            await _json(send, 200, {"service": self.service, "status": "alive"})
        elif path == "/readyz":
            results = await run_checks(self.checks)
            ready = all(results.values())
            await _json(
                send,
                200 if ready else 503,
                {"service": self.service, "ready": ready, "checks": results},
            )
        else:
            await _json(
                send, 404, {"error": "not found", "paths": ["/livez", "/readyz", "/metrics"]}
            )


async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _Server(uvicorn.Server):
    """uvicorn inside our own process: the runner owns SIGTERM, not the web server."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


class HealthServer:
    """uvicorn serving ``app`` (the health app; the gateway's pages) on one port."""

    def __init__(self, app: Any, host: str, port: int, what: str = "health"):
        self.host = host
        self.port = port
        self.what = what
        self._server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                lifespan="off",
                access_log=False,
                log_config=None,
                log_level="warning",
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Bind here, not in uvicorn: uvicorn answers a taken port with sys.exit, which
        # would escape the event loop; an OSError here names the port and stops start().
        try:
            sock = socket.create_server((self.host, self.port), reuse_port=False)
        except OSError as exc:
            raise RuntimeError(
                f"cannot serve {self.what} on {self.host}:{self.port}: {exc}"
            ) from None
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="health")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError(f"{self.what} server on {self.host}:{self.port} stopped")
            await asyncio.sleep(0.01)
        log.info(f"{self.what}_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
