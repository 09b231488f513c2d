"""API clients: an organisation's own system calling the gateway over HTTP (the JSON API
``/v1`` and the FHIR endpoints). Each credential belongs to one organisation the gateway
serves, is issued, listed, expired and revoked by an operator (``linkwell gateway
client``), and is presented as ``Authorization: Bearer <token>``.

The secret is 32 random bytes (``secrets.token_urlsafe``), shown once; the database keeps
only HMAC-SHA256(pepper, token). A slow password hash (argon2id, as the professionals'
passwords use) would protect nothing more here: it exists to slow guessing of low-entropy
secrets people choose, and a 256-bit random token cannot be guessed; but it would cost
tens of milliseconds and 64 MiB on every request, an easy way to exhaust the server. The
pepper (LINKWELL_GATEWAY_CLIENT_PEPPER) means a copy of the database alone does not let
anyone check a candidate token.

Proxy mode: behind NHS England's BaRS proxy (which authenticates senders itself) the
sender is the organisation the proxy names in its headers, trusted only when the request
comes from a configured proxy address AND presents the proxy's own credential
(docs/architecture/api-clients.md).

Every credential use is decided in one place, :func:`decide` (pure) called by
:func:`authenticate`; :data:`USE_HOOKS` are told each decision (an audit trail can listen
there)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg

from services.runtime.logs import get_logger

from .settings import GatewaySettings
from .store import ApiClientRow, GatewayStore

if TYPE_CHECKING:  # the operator's commands import this module without the web stack
    from starlette.requests import Request

log = get_logger(__name__)

TOKEN_PREFIX = "lwk_"
MAX_AUTHORIZATION = 200  # characters; a token is 47
_TOKEN = re.compile(r"^lwk_[A-Za-z0-9_-]{43}$")
_ODS = re.compile(r"^[A-Z0-9]{3,10}$")
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
# The BaRS proxy's organisation of the end user: a base64 FHIR Organization (BaRS
# implementation guide, Security and Authorisation: NHSD-End-User-Organisation); the plain
# ODS code form is accepted too.
ORG_HEADER = "nhsd-end-user-organisation"
ORG_ODS_HEADER = "nhsd-end-user-organisation-ods"
STATE_KEY = "api_clients"  # request.app.state.api_clients: the ClientAuth


@dataclass(frozen=True)
class ApiClient:
    client_id: str
    org: str  # ODS code: the organisation every request of this client acts for
    agency_type: str
    name: str
    organisation_name: str = ""
    via_proxy: bool = False


class ClientRefused(Exception):
    """Why a request gets no further: an HTTP status, a machine-readable code, words."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Use:
    """One decision about a credential: who (if known), from where, what came of it."""

    client_id: str | None
    org: str | None
    outcome: str  # "admitted" or a refusal code
    path: str
    at: datetime


USE_HOOKS: list[Callable[[Use], None]] = []


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str, pepper: str) -> bytes:
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).digest()


def bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 section 2.1), or None."""
    if not header or len(header) > MAX_AUTHORIZATION:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def decide(row: ApiClientRow | None, now: datetime) -> ApiClient:
    """The one place a presented credential is admitted or refused."""
    if row is None:
        raise ClientRefused(401, "invalid_credential", "The credential is not recognised.")
    if row.revoked_at is not None and row.revoked_at <= now:
        raise ClientRefused(401, "credential_revoked", "The credential has been revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise ClientRefused(401, "credential_expired", "The credential has expired.")
    return ApiClient(
        client_id=str(row.id),
        org=row.organisation,
        agency_type=row.agency_type,
        name=row.name,
        organisation_name=row.organisation_name,
    )


def require_own_org(client: ApiClient, org: str | None) -> None:
    """A client acts for its own organisation only."""
    if org != client.org:
        raise ClientRefused(
            403, "not_permitted", "This credential cannot act for another organisation."
        )


def proxy_ods(headers: dict[str, str]) -> str | None:
    """The sender's ODS code from the proxy's headers, or None if absent or unreadable."""
    plain = headers.get(ORG_ODS_HEADER)
    if plain is not None:
        plain = plain.strip().upper()
        return plain if _ODS.match(plain) else None
    encoded = headers.get(ORG_HEADER)
    if not encoded or len(encoded) > 4096:
        return None
    try:
        resource = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(resource, dict) or not isinstance(resource.get("identifier"), list):
        return None
    for identifier in resource["identifier"]:
        if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str) and _ODS.match(value.strip().upper()):
                return value.strip().upper()
    return None


def from_proxy(address: str | None, networks: tuple[str, ...]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


class ClientAuth:
    """What authentication needs: the pool and the settings (pepper, proxy)."""

    def __init__(self, pool: asyncpg.Pool, settings: GatewaySettings):
        self.pool = pool
        self.settings = settings
        self.pepper = settings.gateway_client_pepper.get_secret_value()
        proxy = settings.gateway_proxy_credential.get_secret_value()
        self.proxy_credential = proxy if len(proxy) >= 32 else ""

    def install(self, app: object) -> None:
        app.state.api_clients = self  # type: ignore[attr-defined]

    async def lookup(self, token: str) -> ApiClientRow | None:
        async with self.pool.acquire() as conn:
            return await GatewayStore(conn).api_clients.by_digest(token_digest(token, self.pepper))

    async def organisation(self, code: str) -> tuple[str, str] | None:
        async with self.pool.acquire() as conn:
            return await GatewayStore(conn).api_clients.organisation(code)

    async def authenticate(self, request: Request) -> ApiClient:
        now = datetime.now(UTC)
        address = request.client.host if request.client else None
        token = bearer(request.headers.get("authorization"))
        if token is None:
            raise ClientRefused(
                401, "missing_credential", "Send Authorization: Bearer <your API credential>."
            )
        if self.proxy_credential and hmac.compare_digest(
            token.encode(), self.proxy_credential.encode()
        ):
            return await self._proxied(request, address)
        if not _TOKEN.match(token):
            raise ClientRefused(401, "invalid_credential", "The credential is not recognised.")
        client = decide(await self.lookup(token), now)
        if client.org not in self.settings.serves:
            # no longer in LINKWELL_GATEWAY_ORGANISATIONS: the broker would not take its events
            raise ClientRefused(403, "not_permitted", "The gateway no longer sends for them.")
        return client

    async def _proxied(self, request: Request, address: str | None) -> ApiClient:
        if not from_proxy(address, self.settings.gateway_proxy_addresses):
            raise ClientRefused(401, "invalid_credential", "The credential is not recognised.")
        ods = proxy_ods({k.lower(): v for k, v in request.headers.items()})
        if ods is None:
            raise ClientRefused(
                401, "missing_organisation", "The proxy did not name the sending organisation."
            )
        if ods not in self.settings.serves:
            raise ClientRefused(403, "not_permitted", "The gateway does not send for them.")
        known = await self.organisation(ods)
        if known is None:
            raise ClientRefused(403, "not_permitted", "The gateway does not send for them.")
        return ApiClient(
            client_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:proxy:{ods}")),
            org=ods,
            agency_type=known[1],
            name="BaRS proxy",
            organisation_name=known[0],
            via_proxy=True,
        )


def _told(use: Use) -> None:
    for hook in USE_HOOKS:
        try:
            hook(use)
        except Exception:  # a listener's failure never decides a request
            log.exception("client_use_hook_failed")


async def authenticate(request: Request) -> ApiClient:
    """The API client a request comes from, or :class:`ClientRefused` (401: no credential,
    not recognised, expired, revoked; 403: a proxy naming an organisation not served).
    Needs ``ClientAuth(...).install(app)`` on the Starlette app serving the request."""
    auth: ClientAuth | None = getattr(request.app.state, STATE_KEY, None)
    if auth is None:
        raise RuntimeError("ClientAuth not installed on this app")
    try:
        client = await auth.authenticate(request)
    except ClientRefused as refused:
        log.info("client_refused", code=refused.code, path=request.url.path)
        _told(Use(None, None, refused.code, request.url.path, datetime.now(UTC)))
        raise
    _told(Use(client.client_id, client.org, "admitted", request.url.path, datetime.now(UTC)))
    return client


def www_authenticate(refused: ClientRefused) -> dict[str, str]:
    """The challenge a 401 carries (RFC 6750 section 3)."""
    if refused.status != 401:
        return {}
    if refused.code == "missing_credential":
        return {"WWW-Authenticate": 'Bearer realm="linkwell"'}
    return {"WWW-Authenticate": 'Bearer realm="linkwell", error="invalid_token"'}


# ------------------------------------------------------------ operator commands


@dataclass(frozen=True)
class Issued:
    client_id: uuid.UUID
    token: str


async def issue(
    pool: asyncpg.Pool,
    *,
    organisation: str,
    name: str,
    serves: tuple[str, ...],
    pepper: str,
    expires_at: datetime | None = None,
    organisation_name: str | None = None,
    agency_type: str | None = None,
) -> Issued:
    from . import pro_actions, pro_domain

    if organisation not in serves:
        raise pro_actions.NotServed(organisation)
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("give the client a name of 1 to 100 characters")
    if agency_type is not None and agency_type not in pro_domain.AGENCY_TYPES:
        raise ValueError(f"agency type must be one of {', '.join(pro_domain.AGENCY_TYPES)}")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ValueError("the expiry must be in the future")
    token = new_token()
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn)
        if not await store.accounts.organisation(organisation, organisation_name, agency_type):
            raise ValueError("first credential for this organisation: give its name and type")
        client_id = await store.api_clients.add(
            organisation, name, token_digest(token, pepper), expires_at
        )
    log.info("api_client_issued", client_id=str(client_id), organisation=organisation)
    return Issued(client_id, token)


async def listed(pool: asyncpg.Pool, organisation: str | None = None) -> list[ApiClientRow]:
    async with pool.acquire() as conn:
        return await GatewayStore(conn).api_clients.listed(organisation)


async def revoke(pool: asyncpg.Pool, client_id: uuid.UUID) -> str | None:
    """Revoke a client; its organisation, or None if there is no such client."""
    async with pool.acquire() as conn:
        org = await GatewayStore(conn).api_clients.revoke(client_id)
    if org is not None:
        log.info("api_client_revoked", client_id=str(client_id))
    return org


async def set_endpoint(pool: asyncpg.Pool, client_id: uuid.UUID, url: str | None) -> str | None:
    """Register (None: remove) a client's push endpoint; its organisation, or None."""
    async with pool.acquire() as conn:
        org = await GatewayStore(conn).api_clients.set_endpoint(client_id, url)
    if org is not None:
        log.info("api_client_endpoint", client_id=str(client_id), registered=url is not None)
    return org
