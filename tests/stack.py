"""The services as separate OS processes, for end-to-end tests and the benchmark."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aio_pika

from services.runtime.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ALL = ("intake", "triage", "notify", "outcomes", "audit")


class ProcessStack:
    def __init__(self, settings: Settings, log_dir: Path, services: tuple[str, ...] = ALL):
        self.settings = settings
        self.services = services
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {}
        self.env = {
            **os.environ,
            "AMQP_URL": settings.amqp_url,
            "DATABASE_URL": settings.database_url,
            "LINKWELL_NAMESPACE": settings.namespace,
            "LINKWELL_RETRY_DELAYS": ",".join(str(d) for d in settings.retry_delays),
            "LINKWELL_POLL_INTERVAL": str(settings.poll_interval),
            "LINKWELL_HTTP_PORT": str(settings.http_port),
            "LINKWELL_NOTIFY_SPOOL_DIR": str(log_dir / "spool"),
            "LINKWELL_LOG_LEVEL": os.environ.get("LINKWELL_LOG_LEVEL", "INFO"),
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, name: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "services.ops.main", "run", name],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        """kill -9: no chance to finish anything."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def terminate(self, name: str) -> int:
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(30)

    async def start_all(self) -> None:
        for name in self.services:
            self.start(name)
        await self.wait_ready()

    async def wait_ready(self, within: float = 60.0, names: tuple[str, ...] | None = None) -> None:
        """Ready when each service's queue has a consumer."""
        deadline = time.monotonic() + within
        pending = set(names or self.services)
        connection = await aio_pika.connect(self.settings.amqp_url)
        try:
            while pending:
                for name in list(pending):
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {proc.returncode}: {self.tail(name)}"
                        )
                    channel = await connection.channel()
                    try:
                        queue = await channel.declare_queue(
                            self.settings.names.queue(name), passive=True
                        )
                        if queue.declaration_result.consumer_count:
                            pending.discard(name)
                    except aio_pika.exceptions.ChannelClosed:
                        pass
                    finally:
                        if not channel.is_closed:
                            await channel.close()
                if pending:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not ready: {sorted(pending)}")
                    await asyncio.sleep(0.2)
        finally:
            await connection.close()

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    async def supervise(self) -> None:
        """Restart any service that dies, as a process supervisor would (run as a task)."""
        while True:
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None:
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self.start(name)
            await asyncio.sleep(0.1)

    def stop_all(self) -> dict[str, int]:
        codes = {}
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes
