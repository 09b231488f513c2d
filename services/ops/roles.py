"""Least privilege in PostgreSQL: a role per service that reaches only its own schemas,
and a read-only role for the read side that can SELECT the reporting model and nothing
else.

- ``<ns>_<service>`` (``linkwell_intake``...): LOGIN, not a superuser, cannot create
  databases or roles; owns its schemas (``<ns>_<service>`` and any second schema, such as
  outcomes' ``<ns>_reporting``), so its migrations' tables are its own. No privilege on any
  other schema: another service's tables answer "permission denied".
- ``<ns>_readside``: USAGE on ``<ns>_reporting`` and SELECT on its tables (now and
  future ones outcomes creates): the dashboard and ``linkwell report``. It owns one schema
  of its own, ``<ns>_readside`` (the dashboard's accounts and sessions), the only one it
  can write; its transactions are read-only by default, and only the dashboard's
  sessions pool lifts that.
- ``public``: PUBLIC loses CREATE (and every other privilege) on the ``public`` schema.

Migrations run as each schema's owner: ``linkwell migrate``, run by an administrator,
switches to the owner role of a schema before applying its migrations
(services/runtime/db.py), so what they create belongs to the service.

Pure: ``statements`` builds the SQL; ``linkwell db roles`` prints or applies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

READSIDE = "readside"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_name(namespace: str, who: str) -> str:
    return f"{namespace}_{who}"


def statements(
    namespace: str,
    database: str,
    schemas: Mapping[str, Sequence[str]],
    reporting_schema: str,
    passwords: Mapping[str, str] | None = None,
    database_wide: bool = True,
    readside_schema: str | None = None,
) -> list[str]:
    """SQL that creates (or corrects) every role, idempotently. ``schemas``: each service's
    schemas; ``passwords``: by role name, where a role signs in with one;
    ``database_wide``: also take PUBLIC's privileges on the database and the ``public``
    schema (off only where the database is shared with other users, as in tests)."""
    passwords = passwords or {}
    sql = []
    if database_wide:
        sql += [
            f"REVOKE ALL ON DATABASE {ident(database)} FROM PUBLIC",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        ]
    owners = {}
    for service, owned in schemas.items():
        role = role_name(namespace, service)
        sql += _role(role, passwords.get(role))
        sql.append(f"GRANT CONNECT, TEMPORARY ON DATABASE {ident(database)} TO {ident(role)}")
        for schema in owned:
            owners[schema] = role
            sql += [
                f"CREATE SCHEMA IF NOT EXISTS {ident(schema)} AUTHORIZATION {ident(role)}",
                f"ALTER SCHEMA {ident(schema)} OWNER TO {ident(role)}",
                f"REVOKE ALL ON SCHEMA {ident(schema)} FROM PUBLIC",
                # what migrations made before the role existed becomes the service's too
                _own_everything(schema, role),
            ]
    reader = role_name(namespace, READSIDE)
    sql += _role(reader, passwords.get(reader))
    sql += [
        f"GRANT CONNECT ON DATABASE {ident(database)} TO {ident(reader)}",
        f"ALTER ROLE {ident(reader)} SET default_transaction_read_only = on",
    ]
    if readside_schema is not None:
        sql += [
            f"CREATE SCHEMA IF NOT EXISTS {ident(readside_schema)} AUTHORIZATION {ident(reader)}",
            f"ALTER SCHEMA {ident(readside_schema)} OWNER TO {ident(reader)}",
            f"REVOKE ALL ON SCHEMA {ident(readside_schema)} FROM PUBLIC",
            _own_everything(readside_schema, reader),
        ]
    if reporting_schema in owners:
        owner = owners[reporting_schema]
        sql += [
            f"GRANT USAGE ON SCHEMA {ident(reporting_schema)} TO {ident(reader)}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {ident(reporting_schema)} TO {ident(reader)}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(owner)} IN SCHEMA "
            f"{ident(reporting_schema)} GRANT SELECT ON TABLES TO {ident(reader)}",
        ]
    return sql


def _role(role: str, password: str | None) -> list[str]:
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    password_sql = f" PASSWORD {literal(password)}" if password else ""
    return [
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
        f"{literal(role)}) THEN CREATE ROLE {ident(role)}; END IF; END $$",
        f"ALTER ROLE {ident(role)} {attributes}{password_sql}",
    ]


def _own_everything(schema: str, role: str) -> str:
    return (
        "DO $$ DECLARE r record; BEGIN FOR r IN "
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
        f"c.relnamespace WHERE n.nspname = {literal(schema)} AND c.relkind IN "
        # tables take their own sequences and indexes with them
        "('r', 'p', 'v', 'm', 'f') LOOP "
        "EXECUTE format('ALTER %s %I.%I OWNER TO %I', CASE r.relkind WHEN 'v' THEN 'VIEW' "
        "WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN "
        f"'FOREIGN TABLE' ELSE 'TABLE' END, {literal(schema)}, r.relname, {literal(role)}); "
        "END LOOP; END $$"
    )
