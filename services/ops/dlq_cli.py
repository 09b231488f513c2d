"""``linkwell dlq``: look at dead letters, and replay them once their cause is fixed.

linkwell dlq list [--service S ...] [--json]
linkwell dlq replay --service S (--id ID ... | --reason R | --all) [--dry-run]

Shows identifiers and the failure only, never a message's contents (see
``services.runtime.dlq``). Plain aligned text, so that it pipes, greps and diffs; ``--json``
for scripts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from aio_pika.exceptions import ChannelNotFoundEntity

from services.ops import dlq
from services.ops.audit_cli import record_or_fail
from services.registry import SERVICE_DEFS
from services.runtime.audit import AuditAction
from services.runtime.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Dead-letter queues: list what failed and why; replay once the cause is fixed.",
)

COLUMNS = (
    "SERVICE",
    "ID",
    "TYPE",
    "SENDER",
    "REASON",
    "ATTEMPTS",
    "FAILED AT (UTC)",
    "AGE",
    "ORIGIN",
    "DETAIL",
)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _row(letter: dlq.DeadLetter, now: datetime) -> tuple[str, ...]:
    failed = (
        letter.failed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if letter.failed_at else "-"
    )
    origin = "-"
    if letter.original_exchange is not None:
        origin = f"{letter.original_exchange or '(default)'} {letter.original_routing_key or ''}"
    return (
        letter.service,
        letter.id,
        letter.event_type or "-",
        letter.sender or "-",
        letter.reason if letter.replayable else f"{letter.reason} (not replayable)",
        "-" if letter.attempts is None else str(letter.attempts),
        failed,
        age(letter.age_seconds(now)),
        origin.strip(),
        letter.detail or "-",
    )


def table(letters: Sequence[dlq.DeadLetter], now: datetime) -> str:
    """Aligned plain text, one dead letter a line, in queue order; detail last, in full."""
    rows = [COLUMNS, *(_row(letter, now) for letter in letters)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _services(chosen: Sequence[str] | None) -> list[str]:
    unknown = [s for s in chosen or () if s not in SERVICE_DEFS]
    if unknown:
        raise typer.BadParameter(
            f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICE_DEFS)}",
            param_hint="--service",
        )
    return list(dict.fromkeys(chosen)) if chosen else list(SERVICE_DEFS)


T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except ChannelNotFoundEntity as exc:
        typer.echo(f"linkwell dlq: {exc} (run `linkwell topology` first?)", err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_(
    service: Annotated[
        list[str] | None,
        typer.Option("--service", "-s", help="Only this service (repeat for several)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON, for scripts.")] = False,
) -> None:
    """Show every dead letter, leaving it in place; never its contents.

    For each: id, type, sender, reason, attempts, when it failed (and how long ago), where
    it was first published, the (redacted) detail; in queue order."""
    settings = Settings()
    services = _services(service)
    listing = _run(dlq.peek(settings, services))
    letters = listing.letters
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps([letter.as_json(now) for letter in letters], indent=2))
    elif letters:
        typer.echo(table(letters, now))
        counts = {s: sum(1 for letter in letters if letter.service == s) for s in services}
        typer.echo("\n" + ", ".join(f"{s}: {n}" for s, n in counts.items()))
    else:
        typer.echo(f"no dead letters ({', '.join(services)})")
    for queue in listing.missing_queues:
        typer.echo(f"linkwell dlq: no queue {queue} (run `linkwell topology` first?)", err=True)
    if listing.missing_queues:
        raise typer.Exit(2)


@app.command(short_help="Send chosen dead letters back to their service.")
def replay(
    service: Annotated[str, typer.Option("--service", "-s", help="The service whose DLQ.")],
    ids: Annotated[
        list[str] | None,
        typer.Option("--id", help="A dead letter's ID as `list` shows it (repeatable)."),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Every dead letter with this reason.")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, change nothing.")] = False,
) -> None:
    """Send chosen dead letters back to their service, once the cause is fixed.

    Each goes to the service's own queue (no other subscriber sees it again) and leaves
    the dead-letter queue once the broker has confirmed the copy. Safe to repeat: the
    service drops an event it has already handled. Exits 1 if an --id is not in the queue
    (then nothing is replayed) or a chosen message could not be replayed."""
    _services([service])
    try:
        chosen = dlq.select(ids or (), reason, everything)
    except ValueError:
        raise typer.BadParameter("give exactly one of --id, --reason or --all") from None
    settings = Settings()
    result = _run(dlq.replay(settings, service, chosen, requested_ids=ids or (), dry_run=dry_run))
    if result.missing:
        for missing in result.missing:
            typer.echo(f"not in {result.queue}: {missing}", err=True)
        typer.echo("nothing replayed", err=True)
        raise typer.Exit(1)
    if result.replayed and not dry_run:
        record_or_fail(
            AuditAction.DLQ_REPLAY,
            detail={"service": service, "replayed": len(result.replayed)},
        )
    verb = "would replay" if dry_run else "replayed"
    if result.replayed:
        typer.echo(f"{verb} {len(result.replayed)} to {result.target}:")
        for letter in result.replayed:
            typer.echo(f"  {letter.id}  {letter.event_type or '-'}  {letter.reason}")
    elif not result.not_replayable and result.failed is None:
        typer.echo(f"nothing to replay in {result.queue}")
    for letter in result.not_replayable:
        typer.echo(
            f"left in {result.queue}, not replayable: {letter.id} ({letter.detail})", err=True
        )
    if result.failed is not None:
        typer.echo(f"stopped, the rest left in {result.queue}: {result.failed}", err=True)
    if not result.order_kept:
        typer.echo(f"note: another peek was running; {result.queue} order may differ", err=True)
    raise typer.Exit(0 if result.ok else 1)
