"""PostgreSQL: one schema per service, a pool pinned to it, and plain-SQL migrations."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import asyncpg

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON and JSONB as Python values on every connection."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def counting_statements() -> bool:
    """LINKWELL_COUNT_STATEMENTS=1 (the benchmark): count every statement a pool sends."""
    return os.environ.get("LINKWELL_COUNT_STATEMENTS", "") == "1"


_TEXTS: dict[str, int] = {}


def _write_texts(path: str) -> None:
    ordered = sorted(_TEXTS.items(), key=lambda kv: -kv[1])
    Path(path).write_text(json.dumps([{"count": n, "query": q} for q, n in ordered], indent=1))


async def _init_counted(conn: asyncpg.Connection, service: str) -> None:
    from .metrics import STATEMENTS

    await init_connection(conn)
    counter = STATEMENTS.labels(service)
    texts = os.environ.get("LINKWELL_STATEMENT_TEXTS")  # a directory: which statements, how often
    if not texts:
        conn.add_query_logger(lambda _record: counter.inc())
        return
    if not _TEXTS:
        import atexit

        _TEXTS[""] = 0
        atexit.register(_write_texts, os.path.join(texts, f"{service}-statements.json"))

    def note(record: asyncpg.connection.LoggedQuery) -> None:
        counter.inc()
        query = " ".join(record.query.split())[:300]
        _TEXTS[query] = _TEXTS.get(query, 0) + 1

    conn.add_query_logger(note)


async def _keep(conn: asyncpg.Connection) -> None:
    return None


async def create_pool(dsn: str, schema: str, service: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        init=functools.partial(_init_counted, service=service)
        if counting_statements()
        else init_connection,
        # No reset round trip each time a connection is returned: handlers leave no session
        # state behind (every statement runs in a transaction; no LISTEN, no session locks,
        # no cursors; the search path is a connection parameter).
        reset=_keep,
        server_settings={"search_path": schema, "application_name": f"linkwell-{service}"},
    )


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path


def own_migrations(directory: Path) -> list[Migration]:
    """Just a directory's ``migrations/*.sql`` (a service's second schema)."""
    return [Migration(p.stem, p) for p in sorted((directory / "migrations").glob("*.sql"))]


def migrations_for(service_dir: Path) -> list[Migration]:
    """The runtime's tables (inbox, outbox) first, then the service's own."""
    found = [Migration(f"runtime/{p.stem}", p) for p in sorted(RUNTIME_MIGRATIONS.glob("*.sql"))]
    found += [Migration(p.stem, p) for p in sorted((service_dir / "migrations").glob("*.sql"))]
    return found


async def migrate(dsn: str, schema: str, migrations: list[Migration]) -> list[str]:
    """Apply what is not applied yet, in one transaction, under an advisory lock so that
    several replicas starting together migrate once. Returns the versions applied."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await _as_owner(conn, schema)
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for migration in migrations:
                if migration.version in done:
                    continue
                await conn.execute(migration.path.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", migration.version
                )
                applied.append(migration.version)
            return applied
    finally:
        await conn.close()


async def _as_owner(conn: asyncpg.Connection, schema: str) -> None:
    """Run the migrations as the schema's owner (its service's role, where ``linkwell db
    roles`` made one), so that what they create is the service's, not the administrator's."""
    owner = await conn.fetchval(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", schema
    )
    current = await conn.fetchval("SELECT quote_ident(current_user)")
    if owner and owner != current:
        await conn.execute(f"SET LOCAL ROLE {owner}")


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
