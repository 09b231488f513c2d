"""Live referrals during a bulk import: how soon a GP's referral is accepted and assigned
while ``linkwell import`` sends a scheme's file through the same pipeline.

    .venv/bin/python bench/fairness.py --rows 20000

For each mode (``paced``: the import as it runs today, giving way while the pipeline's
queues are long; ``flood``: ``--no-pace``, every row published as fast as the broker
confirms, as imports did before), in a fresh namespace: starts the services, registers a
roster with room for everyone, imports ``--rows`` referrals as one organisation and, from
another organisation, submits a live referral every ``--live-every`` seconds until the
last imported referral is placed. It reports each mode's live publish -> accepted and
publish -> assigned (p50/p99), how long the import took to be accepted and placed, and
that every imported referral was accepted exactly once. Both modes run in the same run,
so the flood is the baseline. Results go to bench/results/fairness-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aio_pika  # noqa: E402

from bench.pipeline import (  # noqa: E402
    RESULTS,
    Publisher,
    environment,
    log,
    now,
    summary,
    teardown,
    wait_until,
)
from services.ops.client import broker_user  # noqa: E402
from services.ops.importer import run_import  # noqa: E402
from services.runtime.settings import Settings  # noqa: E402
from tests.stack import ProcessStack  # noqa: E402
from tests.support import submission, worker  # noqa: E402

IMPORTER = "IMPORT-1"
LIVE = "A81001"  # a GP practice referring as usual
PLACES_PER_WORKER = 400  # below the contract's 500


class Watch:
    """A private queue bound to the answers of both organisations and every placement:
    when each referral was accepted and placed, by sender reference."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.placed: dict[str, float] = {}
        self.ref_of: dict[str, str] = {}  # referral_id -> sender_reference
        self.early: dict[str, float] = {}  # referral_id -> placed before its acceptance came
        self.accepted_count: Counter[str] = Counter()

    async def start(self, connection: aio_pika.abc.AbstractConnection, settings: Settings) -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in (
            f"referral.accepted.v1.{IMPORTER}",
            f"referral.accepted.v1.{LIVE}",
            "referral.assigned.v1.*",
            "referral.waitlisted.v1.*",
        ):
            await queue.bind(settings.names.events, key)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        t = now()
        try:
            body = json.loads(message.body)
            kind, data = body["type"], body.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return
        rid = str(data.get("referral_id", ""))
        if kind == "referral.accepted.v1":
            ref = str(data.get("sender_reference"))
            self.accepted_count[ref] += 1
            if ref not in self.accepted:
                self.accepted[ref] = t
                self.ref_of[rid] = ref
                if rid in self.early:
                    self.placed.setdefault(ref, self.early.pop(rid))
        elif rid in self.ref_of:
            self.placed.setdefault(self.ref_of[rid], t)
        else:
            self.early.setdefault(rid, t)


async def one_mode(args: argparse.Namespace, pace: bool) -> dict[str, Any]:
    mode = "paced" if pace else "flood"
    namespace = f"fair{uuid.uuid4().hex[:10]}"
    settings = Settings(
        namespace=namespace,
        amqp_url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        database_url=os.environ.get(
            "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        http_port=0,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = RESULTS / f"fairness-{stamp}-{namespace}"
    stack = ProcessStack(settings, log_dir)
    result: dict[str, Any] = {"mode": mode, "namespace": namespace}
    try:
        log(f"{mode}: starting the services in namespace {namespace!r}")
        await stack.start_all()
        workers = 2
        pcns = [f"U{20000 + i}" for i in range(math.ceil(args.rows / (workers * 300)) + 1)]
        connection = await aio_pika.connect(settings.amqp_url)
        async with connection:
            watch = Watch()
            await watch.start(connection, settings)
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(settings.names.inbound, ensure=False)
            pub = Publisher(channel, exchange, 64, broker_user(settings.amqp_url))
            for pcn in pcns:
                for j in range(workers):
                    env = worker(pcn, f"fair-{pcn.lower()}-{j}", PLACES_PER_WORKER)
                    await pub.publish(json.dumps(env).encode(), env["type"], lambda t: None)
            warm = []
            for pcn in pcns:
                env = submission(f"WARM-{uuid.uuid4().hex[:10]}", org=LIVE, pcn=pcn)
                warm.append(env["data"]["sender_reference"])
                await pub.publish(json.dumps(env).encode(), env["type"], lambda t: None)
            if not await wait_until(
                lambda: all(r in watch.placed for r in warm), now() + args.ready_timeout, "warm-up"
            ):
                raise RuntimeError("warm-up referrals were not placed")
            log(f"{mode}: roster of {len(pcns)} PCNs taken, warm-up placed")

            path = log_dir / "import.jsonl"
            path.write_text(
                "".join(
                    json.dumps(
                        submission(f"IMP-{i:06d}", org=IMPORTER, pcn=pcns[i % len(pcns)])["data"]
                    )
                    + "\n"
                    for i in range(args.rows)
                )
            )
            imported = {f"IMP-{i:06d}" for i in range(args.rows)}
            sent_at: dict[str, float] = {}
            t0 = now()
            importing = asyncio.create_task(
                run_import(settings, path, IMPORTER, report=lambda _: None, pace=pace)
            )

            def all_placed() -> bool:
                return len(imported.intersection(watch.placed)) == args.rows

            async def live() -> None:
                i = 0
                while not all_placed():
                    env = submission(f"LIVE-{i:05d}-{uuid.uuid4().hex[:6]}", org=LIVE,
                                     pcn=pcns[i % len(pcns)])  # fmt: skip
                    ref = env["data"]["sender_reference"]
                    pub.submit(
                        json.dumps(env).encode(),
                        env["type"],
                        lambda t, r=ref: sent_at.__setitem__(r, t),
                        env["id"],
                    )
                    i += 1
                    await asyncio.sleep(args.live_every)

            live_task = asyncio.create_task(live())
            outcome = await importing
            sent_s = now() - t0
            log(
                f"{mode}: import sent {outcome.sent} rows in {sent_s:.1f} s; waiting for placements"
            )
            ok = await wait_until(
                all_placed,
                now() + args.timeout,
                "every imported referral to be placed",
                progress=lambda: len(imported.intersection(watch.placed)),
                stall=args.stall,
            )
            placed_s = now() - t0
            live_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live_task
            live_refs = list(sent_at)
            await wait_until(
                lambda: all(r in watch.placed for r in live_refs), now() + 60, "live placements"
            )
        accepted_after = [watch.accepted[r] - sent_at[r] for r in live_refs if r in watch.accepted]
        placed_after = [watch.placed[r] - sent_at[r] for r in live_refs if r in watch.placed]
        twice = sum(1 for r in imported if watch.accepted_count[r] > 1)
        result.update(
            complete=ok,
            rows=args.rows,
            import_sent_s=round(sent_s, 1),
            import_placed_s=round(placed_s, 1),
            import_rate_per_s=round(args.rows / placed_s, 1) if placed_s else None,
            import_paused_s=round(outcome.paused, 1),
            imported_accepted=len(imported.intersection(watch.accepted)),
            imported_accepted_twice=twice,
            live_sent=len(live_refs),
            live_accepted=summary(accepted_after),
            live_assigned=summary(placed_after),
            live_not_placed=len([r for r in live_refs if r not in watch.placed]),
            live_each=[  # seconds after the import began: sent, accepted, placed (ms after sent)
                [
                    round(sent_at[r] - t0, 2),
                    round((watch.accepted[r] - sent_at[r]) * 1000) if r in watch.accepted else None,
                    round((watch.placed[r] - sent_at[r]) * 1000) if r in watch.placed else None,
                ]
                for r in live_refs
            ],
        )
    finally:
        result["cleanup_problems"] = await teardown(settings, stack, [])
    return result


def report(result: dict[str, Any]) -> None:
    print()
    print(f"import of {result['args']['rows']:,} rows, a live referral every "
          f"{result['args']['live_every']} s (same run, same machine)")  # fmt: skip
    print(f"{'mode':8} {'import placed':>14} {'live accepted p50/p99 ms':>26} "
          f"{'live assigned p50/p99 ms':>26} {'live':>5} {'twice':>6}")  # fmt: skip
    for m in result["modes"]:
        if "live_accepted" not in m:
            print(f"{m['mode']:8} failed: {m.get('error')}")
            continue
        a, p = m["live_accepted"], m["live_assigned"]
        print(
            f"{m['mode']:8} {m['import_placed_s']:>12} s "
            f"{a.get('p50_ms', '-'):>12} / {a.get('p99_ms', '-'):>10}   "
            f"{p.get('p50_ms', '-'):>12} / {p.get('p99_ms', '-'):>10}  "
            f"{m['live_sent']:>5} {m['imported_accepted_twice']:>6}"
        )


async def main(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    if task is not None:  # SIGTERM: stop the services and remove the namespace first
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Settings()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "environment": await environment(base),
        "loadavg_at_start": os.getloadavg(),
        "modes": [],
    }
    code = 0
    for pace in [p for p in (False, True) if args.modes in ("both", "paced" if p else "flood")]:
        try:
            m = await one_mode(args, pace)
        except Exception as exc:
            m = {"mode": "paced" if pace else "flood", "error": f"{type(exc).__name__}: {exc}"}
            log(f"failed: {m['error']}")
            code = 1
        result["modes"].append(m)
        if not m.get("complete") or m.get("imported_accepted_twice"):
            code = code or 2
    result["finished_at"] = datetime.now(UTC).isoformat()
    out = RESULTS / f"fairness-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    report(result)
    print(f"\nresults: {out.relative_to(ROOT)}")
    return code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000, help="referrals in the imported file")
    ap.add_argument("--live-every", type=float, default=0.5, help="seconds between live referrals")
    ap.add_argument("--modes", choices=("both", "paced", "flood"), default="both")
    ap.add_argument("--timeout", type=float, default=None, help="seconds to wait for placements")
    ap.add_argument("--stall", type=float, default=60.0)
    ap.add_argument("--ready-timeout", type=float, default=90.0)
    args = ap.parse_args(argv)
    if args.timeout is None:
        args.timeout = 120 + 0.2 * args.rows
    return args


if __name__ == "__main__":
    started = time.monotonic()
    code = asyncio.run(main(parse_args()))
    log(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(code)
