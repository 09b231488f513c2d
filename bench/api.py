"""Benchmark of the JSON API: ``POST /v1/referrals`` (a credential checked, the body
validated as referral.submitted.v1, the submission and its outbox row committed) against
a bare Starlette endpoint that parses the same JSON body and answers 202, in the same run.

    .venv/bin/python bench/api.py --n 500 --concurrency 8
    .venv/bin/python bench/api.py --n 200 --process-message bundle.json   # also the FHIR door

Migrates the gateway's schema in a fresh namespace (``benchapi<hex>``) of the real
PostgreSQL, issues one API credential (``services.gateway.clients.issue``), starts two
server processes on loopback (uvicorn as the gateway serves, ``HealthServer``): the
gateway's app and the bare app. Times N posts of distinct referrals (each its own
Idempotency-Key) to each with one keep-alive httpx client and a bounded number in flight;
reports requests per second and p50/p99 latency, and their ratios, to stdout and
bench/results/api-<stamp>.json; drops the schema at the end. With ``--process-message
FILE`` it also times N posts of that FHIR message to ``POST /$process-message`` (the
FHIR door), each with fresh ids and BaRS' headers so that each is a new referral
answered 200. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
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
from contracts.schema import example  # noqa: E402
from services.gateway.app import SERVICE as GATEWAY  # noqa: E402
from services.runtime.db import create_pool, drop_schema  # noqa: E402
from services.runtime.runner import migrate  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402

ORG = "A81001"
PEPPER = "bench-pepper"
now = time.perf_counter


def log(msg: str) -> None:
    print(f"[bench-api {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bare_app() -> Any:
    """One route: read the JSON body (as the API does), answer 202 with an id. No
    credential, no validation, no database."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def post(request: Any) -> Any:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            return JSONResponse({"code": "schema_invalid"}, 400)
        event_id = str(uuid.uuid4())
        return JSONResponse({"id": event_id, "status": "received"}, 202)

    return Starlette(routes=[Route("/v1/referrals", post, methods=["POST"])])


def serve(kind: str, port: int, env: dict[str, str], ready: Any, log_file: str) -> None:
    os.environ.update(env)
    out = open(log_file, "a", buffering=1)
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

            settings = Settings()
            pool = await create_pool(
                settings.database_url, settings.names.schema("gateway"), "gateway", 10
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

    asyncio.run(main())


def bodies(n: int) -> list[bytes]:
    """N distinct referrals: each its own sender reference and synthetic NHS number."""
    out = []
    for i in range(n):
        data = example("referral.submitted.v1")["data"]
        data["sender_reference"] = f"BENCH-{i:06d}-{uuid.uuid4().hex[:6]}"
        data["person"] = {**data["person"], "nhs_number": unique_synthetic_nhs_number()}
        out.append(json.dumps(data).encode())
    return out


async def drive(
    base: str,
    path: str,
    requests: list[tuple[dict[str, str], bytes]],
    concurrency: int,
    deadline: float,
    ok: Any,
) -> dict[str, Any]:
    """POST each (headers, body) to ``path`` with one keep-alive client, at most
    ``concurrency`` in flight; ``ok(status)`` says which answers count."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while queue and time.monotonic() < deadline:
                headers, body = queue.pop()
                t0 = now()
                r = await client.post(path, content=body, headers=headers)
                took = now() - t0
                if ok(r.status_code):
                    latencies.append(took)
                else:
                    failures[str(r.status_code)] = failures.get(str(r.status_code), 0) + 1

        t0 = now()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = now() - t0
    return summary(latencies, elapsed, failures, len(requests))


def fresh_messages(message: bytes, n: int) -> list[bytes]:
    """N copies of a FHIR message Bundle, each a referral of its own: new Bundle,
    MessageHeader and ServiceRequest ids, entry fullUrls and sender reference (the
    ServiceRequest's first identifier, when it has one), and a synthetic NHS number for
    the Patient, so that none is answered 409 as a resend of another."""
    template = json.loads(message)
    out = []
    for _ in range(n):
        bundle = json.loads(json.dumps(template))
        renamed: dict[str, str] = {}
        bundle["id"] = str(uuid.uuid4())
        for entry in bundle.get("entry", []):
            old = entry.get("fullUrl")
            if isinstance(old, str) and old.startswith("urn:uuid:"):
                entry["fullUrl"] = renamed[old] = f"urn:uuid:{uuid.uuid4()}"
            resource = entry.get("resource", {})
            kind = resource.get("resourceType")
            if kind in ("MessageHeader", "ServiceRequest"):
                if "id" in resource:
                    renamed[f"{kind}/{resource['id']}"] = f"{kind}/{(new := uuid.uuid4())}"
                    resource["id"] = str(new)
            if kind == "ServiceRequest" and resource.get("identifier"):
                resource["identifier"][0]["value"] = f"BENCH-{uuid.uuid4().hex[:12]}"
            if kind == "Patient":
                for ident in resource.get("identifier", []):
                    if ident.get("system") == "https://fhir.nhs.uk/Id/nhs-number":
                        ident["value"] = unique_synthetic_nhs_number()
        text = json.dumps(bundle)
        for old, new_ref in renamed.items():  # references to the renamed entries
            text = text.replace(f'"{old}"', f'"{new_ref}"')
        out.append(text.encode())
    return out


def fhir_headers(headers: dict[str, str]) -> dict[str, str]:
    """BaRS' headers: X-Request-Id and X-Correlation-Id, new for each post."""
    return {
        **headers,
        "Content-Type": "application/fhir+json",
        "X-Request-Id": str(uuid.uuid4()),
        "X-Correlation-Id": str(uuid.uuid4()),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from services.gateway import clients

    namespace = f"benchapi{uuid.uuid4().hex[:8]}"
    env = {
        "LINKWELL_NAMESPACE": namespace,
        "LINKWELL_GATEWAY_ORGANISATIONS": ",".join(sorted({ORG, args.fhir_org})),
        "LINKWELL_GATEWAY_CLIENT_PEPPER": PEPPER,
        "LINKWELL_GATEWAY_PORT": "0",
    }
    os.environ.update(env)
    settings = Settings()
    schema = settings.names.schema("gateway")
    result: dict[str, Any] = {
        "namespace": namespace,
        "args": {k: str(v) for k, v in vars(args).items() if k != "message"},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    deadline = time.monotonic() + args.max_seconds
    procs: list[mp.Process] = []
    try:
        await migrate(settings, GATEWAY)
        pool = await create_pool(settings.database_url, schema, "bench", 1)
        try:
            issued = await clients.issue(
                pool,
                organisation=ORG,
                name="bench",
                serves=(ORG,),
                pepper=PEPPER,
                organisation_name="Riverside Surgery",
                agency_type="general_practice",
            )
            # the FHIR message's sender (BaRS' example: RND), its own credential
            fhir_client = await clients.issue(
                pool,
                organisation=args.fhir_org,
                name="bench-fhir",
                serves=(args.fhir_org,),
                pepper=PEPPER,
                organisation_name="Bench FHIR sender",
                agency_type="hospital_discharge",
            )
        finally:
            await pool.close()
        RESULTS.mkdir(parents=True, exist_ok=True)
        logs = RESULTS / f"api-{namespace}.log"
        result["server_log"] = str(logs.relative_to(ROOT))
        gateway, gateway_url = start_server(serve, "gateway", env, logs)
        procs.append(gateway)
        bare, bare_url = start_server(serve, "bare", env, logs)
        procs.append(bare)
        headers = {
            "Authorization": f"Bearer {issued.token}",
            "Content-Type": "application/json",
        }
        warm = min(args.warmup, args.n)
        made = bodies(args.n + warm)
        requests = [({**headers, "Idempotency-Key": str(uuid.uuid4())}, b) for b in made]
        warmup, measured = requests[:warm], requests[warm:]

        def accepted(status: int) -> bool:
            return status == 202

        for url in (bare_url, gateway_url):
            await drive(url, "/v1/referrals", warmup, args.concurrency, deadline, accepted)
        log(f"timing {len(measured)} posts to the bare endpoint, then to POST /v1/referrals")
        result["bare"] = await drive(
            bare_url, "/v1/referrals", measured, args.concurrency, deadline, accepted
        )
        result["api"] = await drive(
            gateway_url, "/v1/referrals", measured, args.concurrency, deadline, accepted
        )
        result["body_bytes"] = len(made[0])
        a, b = result["api"], result["bare"]
        result["ratios"] = ratios(a, b, "api")
        complete = a["ok"] == b["ok"] == len(measured)
        if args.process_message:
            messages = fresh_messages(args.message, args.n)
            fhir = {"Authorization": f"Bearer {fhir_client.token}"}
            posts = [(fhir_headers(fhir), m) for m in messages]
            log(f"timing {len(posts)} posts to POST /$process-message")
            result["process_message"] = await drive(
                gateway_url,
                "/$process-message",
                posts,
                args.concurrency,
                deadline,
                lambda status: status == 200,  # BaRS: 200 once in the outbox; never a 409
            )
            result["message_bytes"] = len(messages[0])
            complete = complete and result["process_message"]["ok"] == len(posts)
        conn = await asyncpg.connect(settings.database_url)
        try:
            result["outbox_rows"] = await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
        finally:
            await conn.close()
        result["complete"] = complete
    finally:
        for proc in procs:
            stop_server(proc)
        with contextlib.suppress(Exception):
            await drop_schema(settings.database_url, schema)
            log(f"schema {schema} dropped")
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"JSON API  n={result['args']['n']}  concurrency={result['args']['concurrency']}  "
        f"body={result.get('body_bytes')} B  namespace={result['namespace']}"
    )
    rows = [
        ("api", "gateway POST /v1/referrals"),
        ("bare", "bare Starlette JSON POST"),
        ("process_message", "gateway POST /$process-message"),
    ]
    table(result, rows, "api", 30)
    print(f"outbox rows: {result.get('outbox_rows')}")
    print(f"results: {result.get('results_file')}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="posts timed, each endpoint [500]")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight [8]")
    ap.add_argument("--warmup", type=int, default=30, help="untimed posts first, each [30]")
    ap.add_argument("--max-seconds", type=float, default=300, help="the run's bound [300]")
    ap.add_argument(
        "--process-message",
        metavar="FILE",
        help="also time POST /$process-message with this FHIR message (the FHIR door), "
        "each post a referral of its own (fresh ids, BaRS headers)",
    )
    ap.add_argument(
        "--fhir-org",
        default="RND",
        help="the ODS code the FHIR message is sent as (its requester's) [RND, as in BaRS' "
        "example message]",
    )
    args = ap.parse_args(argv)
    if not (1 <= args.concurrency <= 64 and 1 <= args.n <= 20_000):
        ap.error("--concurrency 1..64 and --n 1..20000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.message = Path(args.process_message).read_bytes() if args.process_message else None
    result = asyncio.run(run(args))
    save(result, "api")
    report(result)
    return 0 if result.get("complete") else 1


if __name__ == "__main__":
    sys.exit(main())
