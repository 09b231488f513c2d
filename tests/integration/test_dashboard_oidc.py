"""Single sign-on to the dashboard against a fake OpenID provider (a small Starlette app
serving discovery, JWKS and a token endpoint that signs an id_token): a person with an
account for their subject is signed in; a bad or replayed state, a wrong nonce and a
token signed by another key are refused."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.outcomes.app import SERVICE as OUTCOMES
from services.readside import migrate_own
from services.readside.settings import DashboardSettings
from services.readside.store import Accounts, read_only_pool, sessions_pool
from services.readside.web import create_app
from services.runtime.db import drop_schema
from services.runtime.runner import migrate

pytestmark = pytest.mark.integration

ISSUER = "https://idp.test"
BASE = "http://dash.test"
CLIENT = "linkwell-dashboard"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def provider(codes: dict[str, dict]) -> Starlette:
    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/authorize",
                "token_endpoint": f"{ISSUER}/token",
                "jwks_uri": f"{ISSUER}/jwks",
            }
        )

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [KEY.as_dict(private=False)]})

    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if request.headers.get("authorization", "")[:6] != "Basic ":
            return JSONResponse({"error": "invalid_client"}, 401)
        given = codes.pop(str(form["code"]), None)
        if given is None:
            return JSONResponse({"error": "invalid_grant"}, 400)
        claims, key = given
        now = int(time.time())
        signed = jwt.encode(
            {"alg": "RS256", "kid": "k1"},
            {"iss": ISSUER, "aud": CLIENT, "iat": now, "exp": now + 300, **claims},
            key,
        )
        return JSONResponse({"access_token": "at", "token_type": "Bearer", "id_token": signed})

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/token", token, methods=["POST"]),
        ]
    )


@pytest.fixture
async def sso(settings):
    await migrate(settings, OUTCOMES)
    await migrate_own(settings)
    own = settings.names.schema("readside")
    reporting = settings.names.schema("reporting")
    pool = await read_only_pool(settings.database_url, reporting, 1)
    writable = await sessions_pool(settings.database_url, own, 2)
    async with writable.acquire() as conn:
        await Accounts(conn, own).add("ali.u1", "pcn", "U00001", None, (ISSUER, "5550001"))
    codes: dict[str, tuple] = {}
    recorded: list = []

    async def record(data):
        recorded.append(data)

    idp = httpx.AsyncClient(transport=httpx.ASGITransport(app=provider(codes)))
    app = create_app(
        pool,
        reporting,
        sessions_pool=writable,
        sessions_schema=own,
        record=record,
        settings=DashboardSettings(
            oidc_issuer=ISSUER,
            oidc_client_id=CLIENT,
            oidc_client_secret="s3cret",
            oidc_redirect_url=f"{BASE}/login/oidc/callback",
            oidc_subject_claim="uid",
            oidc_required_claims='{"acr": "AAL3"}',
        ),
        mode="development",
        oidc_http=idp,
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    try:
        yield http, codes, recorded
    finally:
        await http.aclose()
        await idp.aclose()
        await pool.close()
        await writable.close()
        await drop_schema(settings.database_url, own)


async def to_provider(http: httpx.AsyncClient) -> dict[str, str]:
    page = await http.get("/login")
    assert "single sign-on" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    sent = await http.post("/login/oidc", data={"csrf": csrf}, headers={"origin": BASE})
    assert sent.status_code == 303
    where = urlsplit(sent.headers["location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == f"{ISSUER}/authorize"
    query = {k: v[0] for k, v in parse_qs(where.query).items()}
    assert query["client_id"] == CLIENT and query["response_type"] == "code"
    return query


async def test_a_person_signs_in_through_the_provider(sso):
    http, codes, recorded = sso
    asked = await to_provider(http)
    codes["c1"] = ({"uid": "5550001", "acr": "AAL3", "nonce": asked["nonce"], "sub": "x"}, KEY)
    back = await http.get("/login/oidc/callback", params={"code": "c1", "state": asked["state"]})
    # a page of the dashboard that moves on to / (a redirect would still be the provider's
    # cross-site navigation, without the SameSite=Strict session cookie)
    assert back.status_code == 200 and 'content="0;url=/"' in back.text
    assert "lw_dashboard_sso" not in http.cookies  # the state's cookie is spent
    home = await http.get("/")
    assert home.status_code == 200 and "PCN U00001" in home.text
    assert recorded[0].detail["method"] == "oidc" and recorded[0].detail["outcome"] == "ok"
    # the state is used once
    codes["c2"] = ({"uid": "5550001", "acr": "AAL3", "nonce": asked["nonce"], "sub": "x"}, KEY)
    again = await http.get("/login/oidc/callback", params={"code": "c2", "state": asked["state"]})
    assert again.status_code == 400


@pytest.mark.parametrize(
    "case", ["bad_state", "wrong_nonce", "other_key", "missing_claim", "no_account"]
)
async def test_the_provider_s_answer_is_refused(sso, case):
    http, codes, recorded = sso
    asked = await to_provider(http)
    claims = {"uid": "5550001", "acr": "AAL3", "nonce": asked["nonce"], "sub": "x"}
    key, state = KEY, asked["state"]
    if case == "bad_state":
        state = "not-the-state-we-sent"
    elif case == "wrong_nonce":
        claims["nonce"] = "another"
    elif case == "other_key":
        key = OTHER_KEY
    elif case == "missing_claim":
        claims["acr"] = "AAL1"
    else:
        claims["uid"] = "5559999"
    codes["c1"] = (claims, key)
    back = await http.get("/login/oidc/callback", params={"code": "c1", "state": state})
    assert back.status_code == (400 if case == "bad_state" else 403)
    assert "lw_dashboard" not in http.cookies
    assert (await http.get("/")).status_code == 303
    assert [r.detail["outcome"] for r in recorded] == ["refused"]


async def test_a_callback_in_another_browser_signs_nobody_in(sso):
    """Login CSRF: someone begins a sign-in, signs in at the provider as themself and sends
    the callback address to a victim; the victim's browser holds no state cookie."""
    http, codes, recorded = sso
    asked = await to_provider(http)
    codes["c1"] = ({"uid": "5550001", "acr": "AAL3", "nonce": asked["nonce"], "sub": "x"}, KEY)
    http.cookies.delete("lw_dashboard_sso")  # the victim's browser: it never began this
    back = await http.get("/login/oidc/callback", params={"code": "c1", "state": asked["state"]})
    assert back.status_code == 400
    assert "lw_dashboard" not in http.cookies
    assert [r.detail["outcome"] for r in recorded] == ["refused"]


async def test_the_sign_on_post_must_come_from_the_dashboard(sso):
    http, _, _ = sso
    page = await http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    cross = await http.post(
        "/login/oidc", data={"csrf": csrf}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    token_less = await http.post("/login/oidc", data={}, headers={"origin": BASE})
    assert token_less.status_code == 403
