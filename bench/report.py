"""What bench/gateway.py and bench/api.py share: the two servers' processes on loopback,
the latency summary of a timed phase, the ratios of the endpoint to its bare twin, the
table printed and the results file written."""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
import statistics
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def start_server(
    serve: Callable[..., None], kind: str, env: dict[str, str], log_file: Path
) -> tuple[mp.Process, str]:
    """``serve(kind, port, env, ready, log_file)`` in a spawned process, once it is up."""
    ctx = mp.get_context("spawn")
    port = free_port()
    ready = ctx.Event()
    proc = ctx.Process(
        target=serve, args=(kind, port, env, ready, str(log_file)), name=f"bench-{kind}"
    )
    proc.start()
    if not ready.wait(60):
        proc.terminate()
        raise RuntimeError(f"the {kind} server did not start within 60 s")
    return proc, f"http://{LOOPBACK}:{port}"


def stop_server(proc: mp.Process) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(20)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def summary(
    latencies: list[float], elapsed: float, failures: dict[str, int], asked: int
) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "asked": asked,
        "ok": len(ordered),
        "failures": failures,
        "elapsed_s": round(elapsed, 3),
        "req_per_s": round(len(ordered) / elapsed, 1) if elapsed > 0 else None,
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else None,
    }


def ratios(measured: dict[str, Any], bare: dict[str, Any], name: str) -> dict[str, float]:
    """``name`` / bare: rate, p50 and p99."""
    return {
        f"req_per_s_{name}_over_bare": round(measured["req_per_s"] / bare["req_per_s"], 3),
        f"p50_{name}_over_bare": round(measured["p50_ms"] / bare["p50_ms"], 2),
        f"p99_{name}_over_bare": round(measured["p99_ms"] / bare["p99_ms"], 2),
    }


def table(result: dict[str, Any], rows: list[tuple[str, str]], name: str, width: int) -> None:
    """The timed phases (``rows``: result key, label), then the ratios ``name``/bare."""
    print(f"{'':{width}}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ok':>7}")
    for key, label in rows:
        r = result.get(key)
        if r:
            print(
                f"{label:{width}}{r['req_per_s']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}"
                f"{r['ok']:>7}{'  failures ' + str(r['failures']) if r['failures'] else ''}"
            )
    found = result.get("ratios", {})
    if found:
        print(
            f"ratios {name}/bare: req/s {found[f'req_per_s_{name}_over_bare']}, "
            f"p50 {found[f'p50_{name}_over_bare']}x, p99 {found[f'p99_{name}_over_bare']}x"
        )


def save(result: dict[str, Any], prefix: str) -> Path:
    """bench/results/<prefix>-<stamp>.json; its path goes in the result."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{prefix}-{stamp}.json"
    result["results_file"] = str(out.relative_to(ROOT))
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out
