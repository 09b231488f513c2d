"""``linkwell report``: the evidence, from the reporting model (``<ns>_reporting``), or with
``--synthetic`` from the synthetic model (``<ns>_synthetic``, filled by ``linkwell
synthetic``). The figures, disclosure, rendering and pictures are the read side's
(``services/readside``); ``rebuild`` is outcomes' projection, run again.

linkwell report [--quarter 2026Q3 | --from DATE --to DATE] [--by source] [--compare 2026Q2]
                [--format table|csv|json] [--pcn U12345] [--list-sizes FILE] [--plot FILE]
                [--synthetic]
linkwell report rebuild
linkwell report publish --period 2026-11 | --due
linkwell report published [--period 2026-11] [--format table|csv|json]
linkwell dashboard [--host 127.0.0.1] [--port 8090] [--synthetic]
linkwell synthetic [--referrals 1800] [--seed 1]
"""

from __future__ import annotations

import asyncio
import csv
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import asyncpg
import typer

from contracts import UK
from services.outcomes.reporting.store import Projection
from services.readside import figures, render
from services.readside.model import is_synthetic
from services.readside.store import load
from services.runtime.db import init_connection
from services.runtime.settings import Settings

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    help="Figures for practices, PCNs and commissioners, from the reporting model. Small "
    "numbers are suppressed (1 to 7 shown as *, other counts rounded to the nearest 5) "
    "unless --pcn asks for one PCN's own view, which is exact.",
)


def this_quarter(today: date | None = None) -> str:
    today = today or datetime.now(UK).date()
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


def window_of(quarter: str | None, start: str | None, end: str | None) -> figures.Window:
    if start or end:
        if not (start and end) or quarter:
            raise typer.BadParameter("give --from and --to together, or --quarter")
        return figures.Window.between(date.fromisoformat(start), date.fromisoformat(end))
    try:
        return figures.Window.quarter(quarter or this_quarter())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_window(text: str) -> figures.Window:
    """A quarter (2026Q2) or a date range (2026-04-01..2026-06-30)."""
    if ".." in text:
        start, _, end = text.partition("..")
        return figures.Window.between(date.fromisoformat(start), date.fromisoformat(end))
    return figures.Window.quarter(text)


def list_sizes(path: Path | None) -> dict[str, int] | None:
    """``code,list_size`` rows: registered patients per practice (or PCN)."""
    if path is None:
        return None
    with path.open(newline="") as f:
        return {row["code"].strip(): int(row["list_size"]) for row in csv.DictReader(f)}


SYNTHETIC = "synthetic"  # the synthetic model's schema: <ns>_synthetic


def model_schema(settings: Settings, synthetic: bool) -> str:
    return settings.names.schema(SYNTHETIC if synthetic else "reporting")


async def _rows(settings: Settings, pcn: str | None, synthetic: bool) -> tuple[Any, Any, Any]:
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"default_transaction_read_only": "on"}
    )
    try:
        return await load(conn, model_schema(settings, synthetic), pcn)
    finally:
        await conn.close()


@app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    quarter: Annotated[str | None, typer.Option(help="A calendar quarter, e.g. 2026Q3.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    by: Annotated[
        str, typer.Option(help="practice, pcn, source, need, pathway or month.")
    ] = "source",
    compare: Annotated[
        str | None,
        typer.Option(help="An earlier window to set beside it: 2026Q2 or FROM..TO."),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    pcn: Annotated[
        str | None, typer.Option(help="One PCN's own figures, exact (its own view).")
    ] = None,
    sizes: Annotated[
        Path | None,
        typer.Option(
            "--list-sizes",
            exists=True,
            dir_okay=False,
            help="CSV of code,list_size: registered patients, for PC-01 percentages.",
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw the window's pictures to this .png or .svg.")
    ] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="From the synthetic model (linkwell synthetic).")
    ] = False,
) -> None:
    """Print the figures of a window (this quarter by default)."""
    if ctx.invoked_subcommand is not None:
        return
    if by not in figures.GROUPINGS:
        raise typer.BadParameter(f"--by is one of {', '.join(figures.GROUPINGS)}")
    if output not in ("table", "csv", "json"):
        raise typer.BadParameter("--format is table, csv or json")
    window = window_of(quarter, start, end)
    settings = Settings()
    referrals, rejections, _ = asyncio.run(_rows(settings, pcn, synthetic))
    exact = pcn is not None
    marked = synthetic or is_synthetic(referrals, rejections)
    if compare:
        before = parse_window(compare)
        rows: Any = figures.compare(referrals, rejections, before, window, by, list_sizes(sizes))
    else:
        rows = figures.report(referrals, rejections, window, by, list_sizes(sizes))
    write = {"table": render.table, "csv": render.to_csv, "json": render.to_json}[output]
    typer.echo(write(rows, bool(compare), exact=exact, synthetic=marked), nl=False)
    if plot is not None:
        from services.readside import plots  # matplotlib: only when drawing

        plots.plot(referrals, window, plot, exact, synthetic=marked)
        typer.echo(f"pictures: {plot}", err=True)


@app.command()
def rebuild() -> None:
    """Rebuild the reporting model from what outcomes stores."""
    settings = Settings()

    async def go() -> dict[str, int]:
        conn = await asyncpg.connect(
            settings.database_url,
            server_settings={"search_path": settings.names.schema("outcomes")},
        )
        await init_connection(conn)
        try:
            async with conn.transaction():
                projection = Projection(conn, settings.names.schema("reporting"))
                return await projection.rebuild()
        finally:
            await conn.close()

    counts = asyncio.run(go())
    typer.echo("rebuilt: " + ", ".join(f"{n} {what}" for what, n in counts.items()))


@app.command(short_help="Publish ended months' figures for commissioners, frozen.")
def publish(
    period: Annotated[
        str | None, typer.Option(help="An ended calendar month, e.g. 2026-11.")
    ] = None,
    due: Annotated[
        bool,
        typer.Option("--due", help="Every ended month not published yet (what a schedule runs)."),
    ] = False,
) -> None:
    """Publish ended months' figures for commissioners, frozen; each publication recorded
    on the audit trail. A schedule runs ``--due`` (hourly, by cron or a timer); an operator
    publishes one month at once with ``--period``."""
    from services.ops import publishing
    from services.ops.audit_cli import operator, record_operator_action
    from services.readside import snapshots
    from services.runtime.audit import AuditAction

    if bool(period) == due:
        raise typer.BadParameter("give --period MONTH or --due")
    if period:
        try:
            snapshots.month(period)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    settings = Settings()
    schema = settings.names.schema("reporting")
    by = snapshots.SCHEDULE if due else operator()

    async def one(conn: asyncpg.Connection, month: str, now: datetime) -> str:
        async with conn.transaction():
            snapshot = await publishing.publish(conn, schema, month, by, now)
            if snapshot is None:
                return f"{month} was published already; it stays as it is"
            # in the transaction: no snapshot without its record on the audit trail
            await record_operator_action(
                settings,
                AuditAction.PUBLICATION,
                detail={"period": month, "what": "figures_snapshot", "published_by": by},
            )
            return f"published {month}: {len(snapshot.figures) - 1} groups and the total"

    async def go() -> list[str]:
        conn = await asyncpg.connect(settings.database_url)
        await init_connection(conn)
        try:
            now = datetime.now(UK)
            months = await publishing.due(conn, schema, now) if due else [period or ""]
            return [await one(conn, m, now) for m in months] or ["nothing due"]
        finally:
            await conn.close()

    try:
        typer.echo("\n".join(asyncio.run(go())))
    except ValueError as exc:
        typer.echo(f"not published: {exc}", err=True)
        raise typer.Exit(2) from None
    except (OSError, asyncpg.PostgresError, aio_pika.exceptions.AMQPError) as exc:
        typer.echo(f"not published: {type(exc).__name__}", err=True)
        raise typer.Exit(3) from None


@app.command("published", short_help="Print a snapshot exactly as it was published.")
def published_figures(
    period: Annotated[
        str | None, typer.Option(help="A published month, e.g. 2026-11 (the newest if not given).")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="From the synthetic model (linkwell synthetic).")
    ] = False,
) -> None:
    """Print a published snapshot as it was published: what commissioners see, for export."""
    from services.readside.store import snapshot, snapshot_periods

    if output not in ("table", "csv", "json"):
        raise typer.BadParameter("--format is table, csv or json")
    settings = Settings()
    schema = model_schema(settings, synthetic)

    async def go() -> Any:
        conn = await asyncpg.connect(
            settings.database_url, server_settings={"default_transaction_read_only": "on"}
        )
        await init_connection(conn)
        try:
            wanted = period or next(iter(p for p, _ in await snapshot_periods(conn, schema)), None)
            return await snapshot(conn, schema, wanted) if wanted else None
        finally:
            await conn.close()

    found = asyncio.run(go())
    if found is None:
        typer.echo(f"not published: {period or 'no month yet'}", err=True)
        raise typer.Exit(1)
    typer.echo(render.published(found, output), nl=False)


def address(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}/"


def serve(host: str, port: int, synthetic: bool = False) -> None:
    """The dashboard, until interrupted; says where it is first."""
    import uvicorn

    from services.readside.web import serving

    settings = Settings()
    schema = model_schema(settings, synthetic)
    url = address(host, port)
    lines = [f"Dashboard{' (SYNTHETIC data)' if synthetic else ''}: {url}"]
    if url != f"http://{host}:{port}/":
        lines.append(f"  listening on {host}:{port}")
    lines.append(
        f"  reads {schema}, read-only; sessions in {settings.names.schema('readside')}; "
        "sign in with an account (linkwell access account add)"
    )
    if settings.mode == "development":
        lines.append("  development: cookies without Secure or __Host- (plain http on this host)")
    lines.append("  Ctrl-C stops it")
    typer.echo("\n".join(lines))
    app = serving(settings, schema, synthetic=synthetic)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


async def fill_synthetic(
    settings: Settings, referrals: int, seed: int
) -> tuple[Any, list[tuple[str, str]]]:
    """Migrate ``<ns>_synthetic`` (the reporting model's tables), fill it with a year of
    synthetic referrals, and make two dashboard accounts for it (made afresh each time,
    with new passwords): a commissioner's and one PCN's."""
    from services.outcomes.app import SERVICE as OUTCOMES
    from services.readside import migrate_own, synthetic
    from services.readside.store import fill_synthetic as fill
    from services.readside.store import replace_account
    from services.runtime import accounts
    from services.runtime.db import migrate, own_migrations

    schema = model_schema(settings, True)
    own = settings.names.schema("readside")
    year = synthetic.generate(referrals, datetime.now(UK), seed)

    async def go() -> list[tuple[str, str]]:
        await migrate(settings.database_url, schema, own_migrations(OUTCOMES.schemas["reporting"]))
        await migrate_own(settings)
        conn = await asyncpg.connect(settings.database_url)
        try:
            await fill(conn, schema, year)
            await publish_synthetic(conn, schema)
            issued = []
            pcn = synthetic.PCNS[0][0]
            for kind, login, of in (
                ("commissioner", "synthetic-commissioner", None),
                ("pcn", f"synthetic-{pcn.lower()}", pcn),
            ):
                password = accounts.new_token()
                hashed = accounts.hash_password(password)
                await replace_account(conn, own, login, kind, of, hashed)
                issued.append((login, password))
            return issued
        finally:
            await conn.close()

    return year, await go()


async def publish_synthetic(conn: asyncpg.Connection, schema: str) -> None:
    """The synthetic model's ended months, published as outcomes would (after a refill,
    the synthetic snapshots are replaced: only a *_synthetic schema allows that)."""
    from services.ops import publishing
    from services.outcomes.reporting.store import first_row_at
    from services.readside import snapshots

    if not schema.endswith("_synthetic"):
        raise ValueError(f"only a *_synthetic schema is republished, not {schema}")
    await init_connection(conn)
    now = datetime.now(UK)
    async with conn.transaction():
        await conn.execute(f'TRUNCATE "{schema}".figures_snapshot')
        for period in snapshots.due(now, await first_row_at(conn, schema), set()):
            await publishing.publish(conn, schema, period, snapshots.SCHEDULE, now)
