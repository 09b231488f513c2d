"""``linkwell report``: the evidence, from the reporting model (``<ns>_reporting``).

linkwell report [--quarter 2026Q3 | --from DATE --to DATE] [--by source] [--compare 2026Q2]
                [--format table|csv|json] [--pcn U12345] [--list-sizes FILE] [--plot FILE]
linkwell report rebuild
linkwell dashboard [--host 127.0.0.1] [--port 8090]
"""

from __future__ import annotations

import asyncio
import csv
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer

from contracts import UK
from services.outcomes.reporting import figures, render
from services.outcomes.reporting.store import Projection, load
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


async def _rows(settings: Settings, pcn: str | None) -> tuple[Any, Any, Any]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await load(conn, settings.names.schema("reporting"), pcn)
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
    referrals, rejections, _ = asyncio.run(_rows(settings, pcn))
    exact = pcn is not None
    if compare:
        before = parse_window(compare)
        rows: Any = figures.compare(referrals, rejections, before, window, by, list_sizes(sizes))
    else:
        rows = figures.report(referrals, rejections, window, by, list_sizes(sizes))
    write = {"table": render.table, "csv": render.to_csv, "json": render.to_json}[output]
    typer.echo(write(rows, bool(compare), exact=exact), nl=False)
    if plot is not None:
        from services.outcomes.reporting import plots  # matplotlib: only when drawing

        plots.plot(referrals, window, plot, exact)
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


def serve(host: str, port: int) -> None:
    """The dashboard, until interrupted."""
    import uvicorn

    from services.outcomes.reporting.dashboard import Dashboard
    from services.runtime.db import create_pool

    settings = Settings()

    class App:
        def __init__(self) -> None:
            self.inner: Dashboard | None = None

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                message = await receive()
                if message["type"] == "lifespan.startup":
                    pool = await create_pool(
                        settings.database_url,
                        settings.names.schema("outcomes"),
                        "dashboard",
                        4,
                    )
                    self.inner = Dashboard(pool, settings.names.schema("reporting"))
                    await send({"type": "lifespan.startup.complete"})
                    message = await receive()
                if message["type"] == "lifespan.shutdown" and self.inner is not None:
                    await self.inner.pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                return
            assert self.inner is not None
            await self.inner(scope, receive, send)

    uvicorn.run(App(), host=host, port=port, log_config=None, access_log=False)
