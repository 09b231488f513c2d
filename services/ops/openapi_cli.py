"""``linkwell openapi``: the gateway's OpenAPI document, generated from the contracts.

linkwell openapi write    regenerate contracts/openapi/gateway.json
linkwell openapi check    exit 1 if the committed document is stale
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.ops import openapi

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The gateway's OpenAPI 3.1 document, generated from the contracts: write, check.",
)

Doc = Annotated[Path, typer.Option("--path", dir_okay=False, help="The document's file.")]


@app.command(short_help="Regenerate the gateway's OpenAPI document.")
def write(path: Doc = openapi.DOC) -> None:
    """Regenerate the gateway's OpenAPI document."""
    typer.echo(f"wrote {openapi.write(path)}")


@app.command(short_help="Fail if the committed document is stale.")
def check(path: Doc = openapi.DOC) -> None:
    """Fail if the committed OpenAPI document differs from a freshly generated one."""
    if openapi.stale(path):
        typer.echo(f"{path} is stale: run `linkwell openapi write`", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path} up to date")
