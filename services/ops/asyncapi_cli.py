"""``linkwell asyncapi``: each service's AsyncAPI document, generated from the code.

linkwell asyncapi write    regenerate contracts/asyncapi/<service>.json
linkwell asyncapi check    exit 1, with a diff summary, if a committed document is stale
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.ops import asyncapi
from services.registry import SERVICE_DEFS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Each service's AsyncAPI document, generated from the code: write, check.",
)

Directory = Annotated[
    Path, typer.Option("--dir", file_okay=False, help="Where the documents are kept.")
]


@app.command(short_help="Regenerate every service's AsyncAPI document.")
def write(directory: Directory = asyncapi.DOCS_DIR) -> None:
    """Regenerate every service's AsyncAPI document (namespace linkwell, placeholder server)."""
    for path in asyncapi.write(SERVICE_DEFS.values(), directory):
        typer.echo(f"wrote {path}")


@app.command(short_help="Fail if a committed document is stale.")
def check(directory: Directory = asyncapi.DOCS_DIR) -> None:
    """Fail if any committed AsyncAPI document differs from a freshly generated one."""
    stale = asyncapi.stale(SERVICE_DEFS.values(), directory)
    for summary in stale.values():
        typer.echo(summary, err=True)
    if stale:
        typer.echo(
            f"stale AsyncAPI documents: {', '.join(stale)}; run `linkwell asyncapi write`",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{len(SERVICE_DEFS)} AsyncAPI documents up to date in {directory}")
