"""Fail closed outside development: TLS on every link that leaves the host, and no known
development secret.

``LINKWELL_MODE=development`` (the local quick start, the tests and the compose test
override set it) allows the plain, passwordless and sample-password links of a developer's
machine. Anything else is production: the settings refuse, naming the setting, to start
with a missing password, a known development one (``guest``, ``dev-*``, the sample
passwords of deploy/rabbitmq/definitions.json), or a link in the clear to another host.

``LINKWELL_TLS_CA`` names the certificate authority (a PEM file) the broker's and the
database's certificates must be signed by. With it, ``amqps://`` URLs get aiormq's
``cafile`` parameter and the database URL asyncpg's ``sslmode=verify-full`` and
``sslrootcert``: the server's certificate must chain to that CA and name the host
connected to, or the connection is refused.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", ""})
# verify-ca checks the chain only; verify-full also checks the host name (libpq, asyncpg)
VERIFYING_SSLMODES = frozenset({"verify-full"})
KNOWN_DEVELOPMENT = frozenset({"guest", "postgres", "password", "changeme", "secret"})


def is_development_secret(value: str | None) -> bool:
    """Missing, or one of the passwords this repository publishes."""
    if not value:
        return True
    return value.lower() in KNOWN_DEVELOPMENT or value.lower().startswith("dev-")


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for key, value in extra.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))


def amqp_with_ca(url: str, ca: str | None) -> str:
    if not ca or urlsplit(url).scheme != "amqps":
        return url
    return _with_query(url, {"cafile": ca})


def database_with_ca(url: str, ca: str | None) -> str:
    if not ca:
        return url
    return _with_query(url, {"sslmode": "verify-full", "sslrootcert": ca})


def production_problems(amqp_url: str | None, database_url: str, tls_ca: str | None) -> list[str]:
    """Why these links may not be used outside development (empty: they may). ``amqp_url``
    None: not set, for a process that does not use the broker (the dashboard); a service's
    runner refuses to start without it (``require_broker``)."""
    problems = []
    if amqp_url is not None:
        problems += _amqp_problems(amqp_url, tls_ca)
    problems += _database_problems(database_url)
    return problems


class Refused(ValueError):
    """A setting production does not accept (the message names it)."""


def require_broker(mode: str, amqp_set: bool) -> None:
    if mode != "development" and not amqp_set:
        raise Refused(
            "refusing to start outside development: AMQP_URL is not set (the service's own "
            "broker user and password, amqps://)"
        )


def _amqp_problems(amqp_url: str, tls_ca: str | None) -> list[str]:
    problems = []
    amqp = urlsplit(amqp_url)
    if is_development_secret(amqp.password):
        problems.append(
            f"AMQP_URL: the password of broker user {amqp.username or '(none)'!r} is missing "
            "or a known development one; give the user its own secret"
        )
    if amqp.scheme != "amqps" and (amqp.hostname or "") not in LOOPBACK:
        problems.append(
            "AMQP_URL: plain amqp:// to another host; use amqps:// with LINKWELL_TLS_CA"
        )
    if amqp.scheme == "amqps":
        query = dict(parse_qsl(amqp.query))
        if query.get("no_verify_ssl", "0") != "0":
            problems.append("AMQP_URL: no_verify_ssl turns certificate checks off")
        if not (tls_ca or query.get("cafile") or query.get("capath")):
            problems.append("AMQP_URL: amqps:// without LINKWELL_TLS_CA (the broker's CA)")
    return problems


def _database_problems(database_url: str) -> list[str]:
    problems = []
    db = urlsplit(database_url)
    if is_development_secret(db.password):
        problems.append(
            f"DATABASE_URL: the password of database role {db.username or '(none)'!r} is "
            "missing or a known development one; give the role its own secret"
        )
    sslmode = dict(parse_qsl(db.query)).get("sslmode")
    if (db.hostname or "") not in LOOPBACK and sslmode not in VERIFYING_SSLMODES:
        problems.append(
            "DATABASE_URL: to another host without sslmode=verify-full; set LINKWELL_TLS_CA "
            "(the database server's CA)"
        )
    return problems
