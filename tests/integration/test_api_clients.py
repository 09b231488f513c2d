"""API credentials against the real database: the operator issues one (shown once, kept
as a digest), lists and revokes it; ``authenticate`` admits it as its organisation and
refuses a missing, wrong, expired or revoked one; the proxy's organisation header counts
only from the proxy's address with the proxy's credential."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from services.gateway import clients
from services.gateway.app import SERVICE as GATEWAY
from services.gateway.settings import GatewaySettings
from services.runtime.db import create_pool
from services.runtime.runner import migrate

from ..support import drain
from .conftest import asyncpg_connect

pytestmark = pytest.mark.integration

PROXY = "proxy-credential-" + "x" * 32


def tiny_app(pool: Any, own: GatewaySettings) -> Starlette:
    async def who(request: Request) -> JSONResponse:
        try:
            client = await clients.authenticate(request)
            clients.require_own_org(client, request.query_params.get("org", client.org))
        except clients.ClientRefused as refused:
            return JSONResponse(
                {"code": refused.code}, refused.status, headers=clients.www_authenticate(refused)
            )
        return JSONResponse(
            {"org": client.org, "agency_type": client.agency_type, "proxy": client.via_proxy}
        )

    app = Starlette(routes=[Route("/who", who)])
    clients.ClientAuth(pool, own).install(app)
    return app


@pytest.fixture
async def pool(settings, monkeypatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("LINKWELL_NAMESPACE", settings.namespace)
    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001,Y02345")
    monkeypatch.setenv("LINKWELL_GATEWAY_CLIENT_PEPPER", "pepper-for-tests")
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 2)
    try:
        yield pool
    finally:
        await pool.close()


async def call(app: Starlette, headers: dict[str, str], ip: str = "192.0.2.9", **params: str):
    transport = httpx.ASGITransport(app=app, client=(ip, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        return await http.get("/who", headers=headers, params=params)


def cli(*args: str) -> Any:
    from services.ops.cli import app

    return CliRunner().invoke(app, ["gateway", "client", *args])


async def test_issue_list_use_and_revoke_a_credential(pool, settings):
    from services.registry import SERVICE_DEFS
    from services.runtime import topology

    # the audit service's queue, which must confirm the operator's records of both
    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    first = await asyncio.to_thread(cli, "issue", "--org", "A81001", "--name", "Riverside EMIS")
    assert first.exit_code == 2 and "name and type" in first.output
    issued = await asyncio.to_thread(
        cli,
        "issue",
        "--org",
        "A81001",
        "--name",
        "Riverside EMIS",
        "--org-name",
        "Riverside Surgery",
        "--agency-type",
        "general_practice",
    )
    assert issued.exit_code == 0, issued.output
    token = re.search(r"lwk_\S+", issued.output).group(0)
    client_id = re.search(r"client (\S+) for A81001", issued.output).group(1)
    async with asyncpg_connect(settings) as conn:
        schema = settings.names.schema("gateway")
        digests = await conn.fetch(f'SELECT secret_digest FROM "{schema}".api_client')
    assert len(digests) == 1 and token.encode() not in bytes(digests[0]["secret_digest"])
    refused = await asyncio.to_thread(cli, "issue", "--org", "B99999", "--name", "x")
    assert refused.exit_code == 2 and "LINKWELL_GATEWAY_ORGANISATIONS" in refused.output

    app = tiny_app(pool, GatewaySettings())
    ok = await call(app, {"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json() == {
        "org": "A81001",
        "agency_type": "general_practice",
        "proxy": False,
    }
    other = await call(app, {"Authorization": f"Bearer {token}"}, org="Y02345")
    assert (other.status_code, other.json()["code"]) == (403, "not_permitted")
    missing = await call(app, {})
    assert (missing.status_code, missing.json()["code"]) == (401, "missing_credential")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await call(app, {"Authorization": f"Bearer {token[:-2]}xx"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_credential")
    no_longer = tiny_app(pool, GatewaySettings(gateway_organisations=("Y02345",)))
    dropped = await call(no_longer, {"Authorization": f"Bearer {token}"})
    assert (dropped.status_code, dropped.json()["code"]) == (403, "not_permitted")
    other_pepper = tiny_app(pool, GatewaySettings(gateway_client_pepper="another"))
    assert (await call(other_pepper, {"Authorization": f"Bearer {token}"})).status_code == 401

    listed = await asyncio.to_thread(cli, "list")
    assert listed.exit_code == 0 and client_id in listed.output and "active" in listed.output
    assert token not in listed.output
    revoked = await asyncio.to_thread(cli, "revoke", client_id)
    assert revoked.exit_code == 0, revoked.output
    after = await call(app, {"Authorization": f"Bearer {token}"})
    assert (after.status_code, after.json()["code"]) == (401, "credential_revoked")
    assert "revoked" in (await asyncio.to_thread(cli, "list", "--org", "A81001")).output
    assert (await asyncio.to_thread(cli, "revoke", "not-an-id")).exit_code == 2
    # both operator actions are on the audit trail, by client id, never the credential
    records = await drain(settings, settings.names.queue("audit"), count=2)
    data = [json.loads(m.body)["data"] for m in records]
    assert [(d["action"], d["recipient_org"], d["detail"]) for d in data] == [
        ("token_issued", "A81001", {"what": "api_client", "change": c, "client_id": client_id})
        for c in ("issued", "revoked")
    ]
    assert all(d["by_kind"] == "operator" for d in data)
    assert token not in json.dumps(data)


async def test_an_expired_credential_is_refused(pool):
    issued = await clients.issue(
        pool,
        organisation="Y02345",
        name="Food bank CRM",
        serves=("Y02345",),
        pepper="pepper-for-tests",
        expires_at=datetime.now(UTC) + timedelta(seconds=1),
        organisation_name="Eastfield Food Bank",
        agency_type="vcse",
    )
    app = tiny_app(pool, GatewaySettings())
    assert (await call(app, {"Authorization": f"Bearer {issued.token}"})).status_code == 200
    await asyncio.sleep(1.1)
    late = await call(app, {"Authorization": f"Bearer {issued.token}"})
    assert (late.status_code, late.json()["code"]) == (401, "credential_expired")


def _organisation(ods: str) -> str:
    resource = {
        "resourceType": "Organization",
        "identifier": [{"system": clients.ODS_SYSTEM, "value": ods}],
    }
    return base64.b64encode(json.dumps(resource).encode()).decode()


async def test_the_proxys_organisation_header_counts_only_from_the_proxy(pool):
    await clients.issue(
        pool,
        organisation="Y02345",
        name="Food bank CRM",
        serves=("Y02345",),
        pepper="pepper-for-tests",
        organisation_name="Eastfield Food Bank",
        agency_type="vcse",
    )
    own = GatewaySettings(gateway_proxy_addresses=("10.1.0.0/16",), gateway_proxy_credential=PROXY)
    app = tiny_app(pool, own)
    proxied = {
        "Authorization": f"Bearer {PROXY}",
        "NHSD-End-User-Organisation": _organisation("Y02345"),
    }
    ok = await call(app, proxied, ip="10.1.2.3")
    assert ok.status_code == 200 and ok.json() == {
        "org": "Y02345",
        "agency_type": "vcse",
        "proxy": True,
    }
    plain = {"Authorization": f"Bearer {PROXY}", "NHSD-End-User-Organisation-ODS": "Y02345"}
    assert (await call(app, plain, ip="10.1.2.3")).status_code == 200
    # the same credential and header from anywhere else: not recognised
    elsewhere = await call(app, proxied, ip="192.0.2.50")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (401, "invalid_credential")
    # from the proxy's address without the proxy's credential: the header means nothing
    no_credential = await call(app, {"NHSD-End-User-Organisation-ODS": "Y02345"}, ip="10.1.2.3")
    assert no_credential.status_code == 401
    unnamed = await call(app, {"Authorization": f"Bearer {PROXY}"}, ip="10.1.2.3")
    assert (unnamed.status_code, unnamed.json()["code"]) == (401, "missing_organisation")
    unknown = {"Authorization": f"Bearer {PROXY}", "NHSD-End-User-Organisation-ODS": "B99999"}
    assert (await call(app, unknown, ip="10.1.2.3")).status_code == 403
    # served but unknown to the gateway (no name, no agency type yet): refused
    nameless = {"Authorization": f"Bearer {PROXY}", "NHSD-End-User-Organisation-ODS": "A81001"}
    assert (await call(app, nameless, ip="10.1.2.3")).status_code == 403
    # proxy mode off: the proxy's credential is just a wrong token
    off = tiny_app(pool, GatewaySettings())
    assert (await call(off, proxied, ip="10.1.2.3")).status_code == 401
