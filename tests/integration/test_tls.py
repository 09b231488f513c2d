"""TLS on the links: the services' settings connect to PostgreSQL and RabbitMQ over TLS,
verifying the server's certificate against LINKWELL_TLS_CA and its host name, and refuse a
certificate from another CA or for another name.

A PostgreSQL (``ssl=on``) and a RabbitMQ node (``listeners.ssl`` only, plain listener off)
are started for this module on free ports with certificates from
deploy/tls/make-dev-ca.sh, beside the servers the other tests use. They need the
PostgreSQL and RabbitMQ binaries of this machine: without them the tests fail, never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from services.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MAKE_CA = ROOT / "deploy" / "tls" / "make-dev-ca.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {seconds}s")


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _make_ca(directory: Path) -> Path:
    subprocess.run(["bash", str(MAKE_CA), str(directory)], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def certificates() -> Iterator[tuple[Path, Path]]:
    """The servers' CA (with their certificates) and another, unrelated CA, in a directory
    the postgres user can read (pytest's own temporary directories are the runner's only)."""
    base = Path(tempfile.mkdtemp(prefix="linkwell-tls-"))
    os.chmod(base, 0o755)
    try:
        good, other = _make_ca(base / "good"), _make_ca(base / "other")
        for d in (good, other):
            os.chmod(d, 0o755)
        yield good, other
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_postgres(certificates: tuple[Path, Path]) -> Iterator[int]:
    good, _ = certificates
    for tool in ("initdb", "postgres"):
        assert shutil.which(tool), f"{tool} is not installed: the TLS test needs PostgreSQL"
    data = good.parent / "pgdata"
    data.mkdir()
    key = data.parent / "pg-server.key"
    shutil.copy(good / "postgres.key", key)
    shutil.copy(good / "postgres.pem", data.parent / "pg-server.pem")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        shutil.chown(key, "postgres")
    os.chmod(key, 0o600)
    subprocess.run(
        _as_postgres(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    proc = subprocess.Popen(
        _as_postgres(
            [
                "postgres",
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1,127.0.0.2",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "ssl=on",
                "-c",
                f"ssl_cert_file={data.parent / 'pg-server.pem'}",
                "-c",
                f"ssl_key_file={key}",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, 30, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def tls_rabbitmq(certificates: tuple[Path, Path]) -> Iterator[int]:
    good, _ = certificates
    # Debian's /usr/sbin wrapper switches to the rabbitmq user and drops the environment:
    # run the server script itself, as this user, with its own home (Erlang cookie)
    bindir = Path("/usr/lib/rabbitmq/bin")
    server = bindir / "rabbitmq-server"
    if not server.exists():
        server = Path(shutil.which("rabbitmq-server") or "rabbitmq-server")
        bindir = server.parent
    assert server.exists(), "rabbitmq-server is not installed: the TLS test needs it"
    base = good.parent / "rabbit"
    base.mkdir()
    port, dist = _free_port(), _free_port()
    (base / "rabbitmq.conf").write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {good / 'ca.pem'}\n"
        f"ssl_options.certfile = {good / 'rabbitmq.pem'}\n"
        f"ssl_options.keyfile = {good / 'rabbitmq.key'}\n"
        "ssl_options.verify = verify_none\n"
        "ssl_options.fail_if_no_peer_cert = false\n"
    )
    (base / "enabled_plugins").write_text("[].\n")
    name = f"linkwell-tls-{port}@localhost"
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_PID_FILE": str(base / "pid"),
        "HOME": str(base),
    }
    env.pop("RABBITMQ_NODE_PORT", None)
    proc = subprocess.Popen(
        [str(server)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_port(port, 90, proc)
        yield port
    finally:
        subprocess.run(
            [str(bindir / "rabbitmqctl"), "-n", name, "stop"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _settings(ca: Path, amqp: str, database: str) -> Settings:
    return Settings(
        _env_file=None,
        LINKWELL_MODE="development",
        LINKWELL_TLS_CA=str(ca),
        AMQP_URL=amqp,
        DATABASE_URL=database,
    )


async def test_postgres_connects_over_verified_tls(certificates, tls_postgres):
    good, _ = certificates
    settings = _settings(
        good / "ca.pem",
        "amqp://x@localhost/",
        f"postgresql://postgres@localhost:{tls_postgres}/postgres",
    )
    assert "sslmode=verify-full" in settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()


async def test_postgres_refuses_another_ca(certificates, tls_postgres):
    _, other = certificates
    settings = _settings(
        other / "ca.pem",
        "amqp://x@localhost/",
        f"postgresql://postgres@localhost:{tls_postgres}/postgres",
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(settings.database_url)


async def test_postgres_refuses_a_wrong_host_name(certificates, tls_postgres):
    good, _ = certificates
    # 127.0.0.2 reaches the same server, but its certificate does not name it
    settings = _settings(
        good / "ca.pem",
        "amqp://x@localhost/",
        f"postgresql://postgres@127.0.0.2:{tls_postgres}/postgres",
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(settings.database_url)


async def test_rabbitmq_connects_over_verified_tls(certificates, tls_rabbitmq):
    good, _ = certificates
    settings = _settings(
        good / "ca.pem",
        f"amqps://guest:guest@localhost:{tls_rabbitmq}/",
        "postgresql://p@localhost/p",
    )
    assert "cafile=" in settings.amqp_url
    connection = await aio_pika.connect(settings.amqp_url, timeout=20)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"over tls"), queue.name)
        message = await queue.get(timeout=10)
        assert message.body == b"over tls"
    finally:
        await connection.close()


async def test_rabbitmq_refuses_another_ca(certificates, tls_rabbitmq):
    _, other = certificates
    settings = _settings(
        other / "ca.pem",
        f"amqps://guest:guest@localhost:{tls_rabbitmq}/",
        "postgresql://p@localhost/p",
    )
    with pytest.raises(Exception) as refused:
        await aio_pika.connect(settings.amqp_url, timeout=20)
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value) or isinstance(
        refused.value.__cause__ or refused.value, ssl.SSLError
    ), repr(refused.value)


async def test_rabbitmq_plain_listener_is_off(tls_rabbitmq):
    # the node listens for TLS only: a plain AMQP handshake gets no AMQP answer
    with socket.create_connection(("127.0.0.1", tls_rabbitmq), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.settimeout(5)
        try:
            answer = s.recv(8)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"AMQP") and not answer.startswith(b"\x01\x00\x00")


async def test_the_services_clients_connect_over_tls_and_refuse_another_ca(
    certificates, tls_rabbitmq
):
    # what a service's runner uses: FastStream's broker (consuming) and aio-pika's robust
    # connection (the outbox's publisher), each given only the settings' URL
    from faststream.rabbit import RabbitBroker

    good, other = certificates
    url = f"amqps://guest:guest@localhost:{tls_rabbitmq}/"
    settings = _settings(good / "ca.pem", url, "postgresql://p@localhost/p")
    broker = RabbitBroker(settings.amqp_url, logger=None)
    await broker.connect()
    await broker.stop()
    robust = await aio_pika.connect_robust(settings.amqp_url, timeout=20)
    await robust.close()
    wrong = _settings(other / "ca.pem", url, "postgresql://p@localhost/p")
    with pytest.raises(Exception) as refused:
        await aio_pika.connect_robust(wrong.amqp_url, timeout=20, fail_fast="true")
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value) or isinstance(
        refused.value, ssl.SSLError
    ), repr(refused.value)
