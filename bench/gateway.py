"""Benchmark of the people's door: the form post that sends a referral, against a bare
Starlette endpoint taking a form post of the same size, in the same run.

    .venv/bin/python bench/gateway.py --n 1000 --concurrency 8

Migrates the gateway's schema in a fresh namespace (``benchgw<hex>``) of the real
PostgreSQL, then starts two server processes on loopback, each one uvicorn exactly as the
gateway serves its pages (``services.runtime.health.HealthServer``): the gateway's pages
(``services.gateway.web.create_app``) and a bare Starlette app whose one route parses the
form and answers 303. It prepares N drafts through the pages (every question answered, as
a browser would), then times N sends (``POST /refer/send``: the send transaction, the
outbox row) and N posts of the same body and cookies to the bare endpoint, each with one
keep-alive httpx client and a bounded number in flight. Reports requests per second and
p50/p99 latency of each, and their ratios, to stdout and bench/results/gateway-<stamp>.json;
drops the namespace's schema at the end. The gateway's rate limits are settings
(LINKWELL_GATEWAY_*_PER_*): the run gives them values that admit its own traffic
(``--limit``), as a deployment would. See bench/README.md, "The people's door".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench.report import (  # noqa: E402
    LOOPBACK,
    RESULTS,
    ratios,
    save,
    start_server,
    stop_server,
    summary,
    table,
)
from contracts.nhs import unique_synthetic_nhs_number  # noqa: E402
from services.gateway.app import SERVICE as GATEWAY  # noqa: E402
from services.runtime.db import drop_schema  # noqa: E402
from services.runtime.runner import migrate  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402

now = time.perf_counter
ANSWERS: list[tuple[str, dict[str, Any]]] = [
    ("crisis", {"crisis": "no"}),
    ("who", {"who": "myself"}),
    ("name", {"given_name": "Bench", "family_name": "Person"}),
    ("date-of-birth", {"dob_day": "7", "dob_month": "11", "dob_year": "1961"}),
    ("nhs-number", {}),  # a unique synthetic number each
    ("gp", {"practice": "A81001"}),
    ("needs", {"needs": ["loneliness"]}),
    ("contact", {"preferred": "phone", "phone": "07700 900123", "email": ""}),
    ("adjustments", {"adjustments": ""}),
    ("consent", {"consent": "yes"}),
]


def log(msg: str) -> None:
    print(f"[bench-gateway {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the two servers


def bare_app() -> Any:
    """One route: parse the posted form (as Starlette's request.form() does for the
    gateway), answer 303 as the send does. No database, no templates, no guard."""
    from starlette.applications import Starlette
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    async def post(request: Any) -> Any:
        form = await request.form(max_files=0, max_fields=50)
        if not form.get("key"):
            return RedirectResponse("/missing", 303)
        return RedirectResponse("/refer/sent", 303)

    return Starlette(routes=[Route("/refer/send", post, methods=["POST"])])


def serve(kind: str, port: int, env: dict[str, str], ready: Any, log_file: str) -> None:
    """A child process: one uvicorn, as HealthServer runs it, until SIGTERM. Logs as the
    service does (LINKWELL_LOG_LEVEL, default INFO), to ``log_file``."""
    os.environ.update(env)
    out = open(log_file, "a", buffering=1)  # open for the process's whole life
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    sys.stdout = sys.stderr = out
    from services.runtime.logs import configure

    configure("gateway", Settings().log_level)

    async def main() -> None:
        import signal

        from services.runtime.health import HealthServer

        pool = None
        if kind == "gateway":
            from services.gateway.settings import GatewaySettings
            from services.gateway.web import Gateway, create_app
            from services.runtime.db import create_pool

            settings = Settings()
            pool = await create_pool(
                settings.database_url,
                settings.names.schema("gateway"),
                "gateway",
                settings.db_pool_size,
            )
            app = create_app(Gateway(pool, settings.names, GatewaySettings()))
        else:
            app = bare_app()
        server = HealthServer(app, LOOPBACK, port, kind)
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        ready.set()
        await stop.wait()
        await server.stop()
        if pool is not None:
            await pool.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# ------------------------------------------------------------------ the client


def field(text: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', text)
    if not found:
        raise RuntimeError(f"no {name} field on the page")
    return found.group(1)


async def prepare(base: str, n: int, concurrency: int, deadline: float) -> list[dict[str, str]]:
    """N drafts through the pages, each in a browser of its own (its cookies): every
    answer given, up to the check page. Returns each send's cookies and body."""
    out: list[dict[str, str]] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate, httpx.AsyncClient(base_url=base, timeout=30) as browser:
            start = await browser.get("/refer")
            csrf = field(start.text, "csrf")
            begun = await browser.post("/refer", data={"csrf": csrf})
            if begun.status_code != 303:
                raise RuntimeError(f"start: {begun.status_code} (a rate limit? see --limit)")
            for slug, data in ANSWERS:
                if slug == "nhs-number":
                    data = {"nhs_number": unique_synthetic_nhs_number()}
                r = await browser.post(f"/refer/{slug}", data={"csrf": csrf, **data})
                if r.status_code != 303:
                    raise RuntimeError(f"{slug}: {r.status_code}")
            check = await browser.get("/refer/check")
            cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
            out.append({"cookie": cookie, "csrf": csrf, "key": field(check.text, "key")})

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), max(1.0, deadline - time.monotonic()))
    finally:
        for t in tasks:
            t.cancel()
    return out


async def drive(
    base: str, sends: list[dict[str, str]], concurrency: int, deadline: float
) -> dict[str, Any]:
    """POST /refer/send once for each prepared draft with one keep-alive client, at most
    ``concurrency`` in flight; each must answer 303 to /refer/sent."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    queue = list(reversed(sends))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while queue and time.monotonic() < deadline:
                s = queue.pop()
                t0 = now()
                r = await client.post(
                    "/refer/send",
                    data={"csrf": s["csrf"], "key": s["key"]},
                    headers={"cookie": s["cookie"]},
                )
                took = now() - t0
                if r.status_code == 303 and r.headers.get("location") == "/refer/sent":
                    latencies.append(took)
                else:
                    failures[str(r.status_code)] = failures.get(str(r.status_code), 0) + 1

        t0 = now()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = now() - t0
    return summary(latencies, elapsed, failures, len(sends))


# ------------------------------------------------------------------ the run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"benchgw{uuid.uuid4().hex[:8]}"
    limit = str(args.limit)
    env = {
        "LINKWELL_NAMESPACE": namespace,
        # the run's own traffic all comes from 127.0.0.1: limits that admit it, as settings
        "LINKWELL_GATEWAY_CLIENT_POSTS_PER_MINUTE": limit,
        "LINKWELL_GATEWAY_GLOBAL_POSTS_PER_MINUTE": limit,
        "LINKWELL_GATEWAY_CLIENT_SENDS_PER_HOUR": limit,
        "LINKWELL_GATEWAY_PORT": "0",  # not used: the bench serves the app itself
    }
    os.environ.update(env)
    settings = Settings()
    schema = settings.names.schema("gateway")
    result: dict[str, Any] = {
        "namespace": namespace,
        "args": vars(args),
        "settings": {k: v for k, v in env.items() if k.startswith("LINKWELL_GATEWAY_")},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    deadline = time.monotonic() + args.max_seconds
    procs: list[mp.Process] = []
    try:
        await migrate(settings, GATEWAY)
        log(f"schema {schema} migrated; starting the gateway's pages and the bare endpoint")
        RESULTS.mkdir(parents=True, exist_ok=True)
        logs = RESULTS / f"gateway-{namespace}.log"
        result["server_log"] = str(logs.relative_to(ROOT))
        gateway, gateway_url = start_server(serve, "gateway", env, logs)
        procs.append(gateway)
        bare, bare_url = start_server(serve, "bare", env, logs)
        procs.append(bare)

        warm = min(args.warmup, args.n)
        log(f"preparing {args.n + warm} drafts through the pages (not timed)")
        t0 = now()
        drafts = await prepare(gateway_url, args.n + warm, args.concurrency, deadline)
        result["prepare_s"] = round(now() - t0, 2)
        warmup, measured = drafts[:warm], drafts[warm:]
        # the bare endpoint gets the same cookies and bodies, in the same order
        await drive(bare_url, warmup, args.concurrency, deadline)
        await drive(gateway_url, warmup, args.concurrency, deadline)
        log(f"timing {len(measured)} posts to the bare endpoint, then {len(measured)} sends")
        result["bare"] = await drive(bare_url, measured, args.concurrency, deadline)
        result["gateway"] = await drive(gateway_url, measured, args.concurrency, deadline)
        g, b = result["gateway"], result["bare"]
        result["body_bytes"] = len(
            httpx.Request(
                "POST", "/", data={"csrf": measured[0]["csrf"], "key": measured[0]["key"]}
            ).read()
        )
        result["ratios"] = ratios(g, b, "gateway")
        # every send made its submission and its outbox row (the relay is not running)
        conn = await asyncpg.connect(settings.database_url)
        try:
            result["outbox_rows"] = await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
        finally:
            await conn.close()
        result["complete"] = g["ok"] == b["ok"] == len(measured) and result["outbox_rows"] == len(
            drafts
        )
    finally:
        for proc in procs:
            stop_server(proc)
        with contextlib.suppress(Exception):
            await drop_schema(settings.database_url, schema)
            log(f"schema {schema} dropped")
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"people's door  n={result['args']['n']}  concurrency={result['args']['concurrency']}  "
        f"body={result.get('body_bytes')} B  namespace={result['namespace']}"
    )
    rows = [("gateway", "gateway POST /refer/send"), ("bare", "bare Starlette form POST")]
    table(result, rows, "gateway", 28)
    print(f"outbox rows: {result.get('outbox_rows')} (one per send, warm-up included)")
    print(f"results: {result.get('results_file')}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="sends timed (and bare posts) [1000]")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight [8]")
    ap.add_argument("--warmup", type=int, default=30, help="untimed sends first, each [30]")
    ap.add_argument(
        "--max-seconds", type=float, default=300, help="the whole run's bound, in s [300]"
    )
    ap.add_argument(
        "--limit",
        type=int,
        default=1_000_000,
        help="the gateway's rate limit settings for the run (posts per minute, per client "
        "and in all; sends per hour per client): the run's own traffic is one client",
    )
    args = ap.parse_args(argv)
    if not (1 <= args.concurrency <= 64 and 1 <= args.n <= 20_000):
        ap.error("--concurrency 1..64 and --n 1..20000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    save(result, "gateway")
    report(result)
    return 0 if result.get("complete") else 1


if __name__ == "__main__":
    sys.exit(main())
