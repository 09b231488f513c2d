"""Single sign-on by OpenID Connect (the authorization code flow), optional: on when
``LINKWELL_DASHBOARD_OIDC_ISSUER`` and ``..._CLIENT_ID`` are set. NHS Care Identity
Service 2 is such a provider.

- ``POST /login/oidc`` (from the sign-in page: Origin and CSRF checked) keeps a random
  ``state`` (as its digest) and ``nonce`` server side for ten minutes and sends the person
  to the provider's authorization endpoint (Authlib builds the request).
- ``GET /login/oidc/callback`` takes the state back (once; unknown or old: refused),
  exchanges the code at the token endpoint (client secret, HTTP Basic), and verifies the
  id_token with the provider's published keys (JWKS, RS256/ES256): issuer, audience,
  expiry, and the nonce it was sent with; then any required claims. The subject claim
  names the account (``linkwell access account add --oidc-subject``); no account, or a
  disabled one: refused. Then a session as for a password, on the trail as ``method=oidc``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

import services.runtime.accounts as accounts

from . import sessions
from .settings import DashboardSettings
from .store import Accounts

PENDING_SECONDS = 600
ALGORITHMS = ["RS256", "ES256"]


class Refused(Exception):
    """The provider's answer does not sign anyone in (the reason is an id, for the log)."""


def verify_id_token(
    token: str, keys: KeySet, *, issuer: str, client_id: str, nonce: str, now: float
) -> dict[str, Any]:
    """The id_token's claims once its signature, issuer, audience, expiry and nonce hold
    (OpenID Connect Core 1.0, section 3.1.3.7); else ``Refused``."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise Refused(type(exc).__name__) from None
    return dict(decoded.claims)


def subject_of(claims: dict[str, Any], settings: DashboardSettings) -> str:
    """The value naming the account, once the required claims hold; else ``Refused``."""
    for name, value in settings.oidc_required_claims.items():
        if str(claims.get(name)) != value:
            raise Refused(f"claim_{name}")
    subject = claims.get(settings.oidc_subject_claim)
    if not isinstance(subject, str) or not subject or len(subject) > 200:
        raise Refused("no_subject")
    return subject


LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0;url=/"><title>Signed in - Linkwell</title></head>
<body><main><p>You are signed in. <a href="/">Continue to the dashboard</a>.</p></main>
</body></html>
"""


def landing(started: Response, cookies: sessions.Cookies) -> Response:
    """The session's page after the provider: a page of this site that moves on to ``/``,
    not a redirect. The browser came from the provider's site, so a redirect to ``/``
    would still be that cross-site navigation, and the SameSite=Strict session cookie
    would not go with it; a navigation this page starts is same-site."""
    page = HTMLResponse(
        LANDING,
        headers={
            "cache-control": "no-store",
            "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
            "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
        },
    )
    for value in started.headers.getlist("set-cookie"):
        page.headers.append("set-cookie", value)
    page.delete_cookie(cookies.sign_on, **cookies.sign_on_flags())
    return page


def oidc_routes(
    settings: DashboardSettings,
    own_pool: Callable[[], Any],
    schema: str,
    start_session: Callable[[sessions.Viewer, str], Awaitable[Response]],
    refuse: Callable[[Request, int, str, str], Response],
    check_post: Callable[[Request], Awaitable[dict[str, str] | Response]],
    cookies: sessions.Cookies,
    record: Callable[[Any], Awaitable[None]],
    http: httpx.AsyncClient | None = None,
) -> list[Route]:
    csrf_cookie = cookies.csrf
    client = http or httpx.AsyncClient(timeout=10)
    issuer = settings.oidc_issuer.rstrip("/")
    cached: dict[str, Any] = {}

    async def discovery() -> dict[str, Any]:
        if "config" not in cached:
            answer = await client.get(f"{issuer}/.well-known/openid-configuration")
            answer.raise_for_status()
            cached["config"] = answer.json()
        return cached["config"]

    async def keys(config: dict[str, Any]) -> KeySet:
        answer = await client.get(config["jwks_uri"])
        answer.raise_for_status()
        return KeySet.import_key_set(answer.json())

    async def begin(request: Request) -> Response:
        form = await check_post(request)
        if isinstance(form, Response):
            return form
        if not sessions.csrf_ok(request.cookies.get(csrf_cookie), form.get(sessions.CSRF_FIELD)):
            return refuse(request, 403, "csrf", "That form had expired. Go back and try again.")
        config = await discovery()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        async with own_pool().acquire() as conn:
            await Accounts(conn, schema).pending(accounts.digest(state), nonce)
        url = prepare_grant_uri(
            config["authorization_endpoint"],
            settings.oidc_client_id,
            "code",
            redirect_uri=settings.oidc_redirect_url,
            scope=settings.oidc_scope,
            state=state,
            nonce=nonce,
        )
        response = RedirectResponse(url, 303)
        response.set_cookie(
            cookies.sign_on, state, max_age=PENDING_SECONDS, **cookies.sign_on_flags()
        )
        return response

    async def callback(request: Request) -> Response:
        state = request.query_params.get("state", "")[:100]
        code = request.query_params.get("code", "")[:2000]
        nonce = None
        held = request.cookies.get(cookies.sign_on, "")
        if state and code and secrets.compare_digest(held.encode(), state.encode()):
            async with own_pool().acquire() as conn:
                nonce = await Accounts(conn, schema).take_pending(
                    accounts.digest(state), PENDING_SECONDS
                )
        if nonce is None:
            await record(sessions.sign_in_record(None, method="oidc", outcome="refused"))
            return refuse(request, 400, "oidc_state", "That sign-in had expired. Try again.")
        config = await discovery()
        try:
            answer = await client.post(
                config["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": settings.oidc_redirect_url,
                },
                auth=(settings.oidc_client_id, settings.oidc_client_secret.get_secret_value()),
            )
            if answer.status_code != 200 or "id_token" not in answer.json():
                raise Refused("token_endpoint")
            claims = verify_id_token(
                answer.json()["id_token"],
                await keys(config),
                issuer=config.get("issuer", issuer),
                client_id=settings.oidc_client_id,
                nonce=nonce,
                now=time.time(),
            )
            subject = subject_of(claims, settings)
            async with own_pool().acquire() as conn:
                row = await Accounts(conn, schema).by_subject(config.get("issuer", issuer), subject)
            if row is None or row["disabled_at"] is not None:
                raise Refused("no_account")
        except Refused as refused:
            await record(sessions.sign_in_record(None, method="oidc", outcome="refused"))
            return refuse(request, 403, f"oidc_{refused}", "That sign-in was not accepted.")
        return landing(await start_session(sessions.viewer_of(row), "oidc"), cookies)

    return [
        Route("/login/oidc", begin, methods=["POST"]),
        Route("/login/oidc/callback", callback, methods=["GET"]),
    ]
