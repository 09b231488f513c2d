"""Least privilege in PostgreSQL (``linkwell db roles``): each service's role reaches only
its own schemas, migrations run as the schema owner, and the read side can only SELECT the
reporting model. Against the local PostgreSQL, in the test's own namespace (its roles are
dropped afterwards)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.ops import roles
from services.readside import migrate_own
from services.registry import SERVICE_DEFS
from services.runtime.runner import migrate


def as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{role}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def with_roles(settings):
    names = settings.names
    schemas = {name: s.schema_names(names) for name, s in SERVICE_DEFS.items()}
    database = urlsplit(settings.database_url).path.lstrip("/") or "postgres"
    sql = roles.statements(
        settings.namespace,
        database,
        schemas,
        names.schema("reporting"),
        database_wide=False,
        readside_schema=names.schema("readside"),
    )
    everyone = [roles.role_name(settings.namespace, n) for n in [*schemas, roles.READSIDE]]
    admin = await asyncpg.connect(settings.database_url)
    try:
        for statement in sql:
            await admin.execute(statement)
        # as the administrator: each schema's migrations run as its owner
        for service in SERVICE_DEFS.values():
            await migrate(settings, service)
        await migrate_own(settings)
        yield settings
    finally:
        for service in SERVICE_DEFS.values():
            for schema in service.schema_names(names):
                await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.execute(f'DROP SCHEMA IF EXISTS "{names.schema("readside")}" CASCADE')
        for role in everyone:
            await admin.execute(
                f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                f"EXECUTE 'DROP OWNED BY \"{role}\"'; EXECUTE 'DROP ROLE \"{role}\"'; "
                "END IF; END $$"
            )
        await admin.close()


async def test_a_service_cannot_read_another_services_tables(with_roles):
    settings = with_roles
    ns = settings.namespace
    triage = await asyncpg.connect(as_role(settings.database_url, f"{ns}_triage"))
    try:
        assert await triage.fetchval("SELECT current_user") == f"{ns}_triage"
        assert not await triage.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        # its own tables: yes
        await triage.fetch(f'SELECT * FROM "{ns}_triage".referral LIMIT 1')
        # intake's referrals (names, dates of birth): no
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await triage.fetch(f'SELECT * FROM "{ns}_intake".referral LIMIT 1')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await triage.execute(f'CREATE TABLE "{ns}_intake".planted (x int)')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await triage.fetch(f'SELECT * FROM "{ns}_reporting".referral_fact LIMIT 1')
    finally:
        await triage.close()


async def test_migrations_ran_as_each_schema_owner(with_roles):
    settings = with_roles
    ns = settings.namespace
    admin = await asyncpg.connect(settings.database_url)
    try:
        owners = await admin.fetch(
            "SELECT schemaname, tableowner FROM pg_tables WHERE schemaname LIKE $1",
            f"{ns}\\_%",
        )
    finally:
        await admin.close()
    assert owners
    for row in owners:
        service = row["schemaname"].removeprefix(f"{ns}_")
        expected = f"{ns}_outcomes" if service == "reporting" else f"{ns}_{service}"
        assert row["tableowner"] == expected, row


async def test_the_read_side_only_reads_the_reporting_model(with_roles):
    settings = with_roles
    ns = settings.namespace
    reader = await asyncpg.connect(as_role(settings.database_url, f"{ns}_readside"))
    try:
        await reader.fetch(f'SELECT * FROM "{ns}_reporting".referral_fact LIMIT 1')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.fetch(f'SELECT * FROM "{ns}_outcomes".inbox LIMIT 1')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.fetch(f'SELECT * FROM "{ns}_intake".referral LIMIT 1')
        with pytest.raises(
            (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError)
        ):
            await reader.execute(f'DELETE FROM "{ns}_reporting".referral_fact')
        # its own schema (accounts and sessions): writable, once the read-only default is
        # lifted as the dashboard's sessions pool does; the reporting model still is not
        await reader.execute("SET default_transaction_read_only = off")
        await reader.execute(
            f'INSERT INTO "{ns}_readside".sign_in_pending (state_digest, nonce)'
            " VALUES ('\\x00', 'n')"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.execute(f'DELETE FROM "{ns}_reporting".referral_fact')
    finally:
        await reader.close()


def test_the_roles_sql_takes_publics_privileges():
    sql = roles.statements("linkwell", "linkwell", {"intake": ["linkwell_intake"]}, "x")
    assert 'REVOKE ALL ON DATABASE "linkwell" FROM PUBLIC' in sql
    assert "REVOKE ALL ON SCHEMA public FROM PUBLIC" in sql
    assert any("NOSUPERUSER" in s and '"linkwell_intake"' in s for s in sql)
    assert not any("GRANT" in s and "x" in s.split() for s in sql)
