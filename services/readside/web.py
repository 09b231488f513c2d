"""The dashboard: a Starlette application, pages rendered on the server from Jinja2 templates
(``templates/``), no JavaScript, charts as inline SVG with the same figures in a table
beside each (for screen readers, and for copying).

- A PCN's account shows that PCN only, exact: the waiting list today, caseload against
  capacity per link worker, referrals by source this month, and waits this quarter.
- A commissioner's account shows every PCN in a published month: the frozen snapshot
  published once the month ended (``snapshots``, ``services/ops/publishing.py``),
  small numbers and the cells that would give them away suppressed (``suppression``),
  with a picker of the published months. Never the live model: its figures do not change
  as referrals arrive.

It reads the reporting model through a read-only pool (``store.read_only_pool``) and
never writes it. Nobody sees personal data on any page: the model holds none. Each
person has an account (``linkwell access account add``) and signs in to a server-side session
(``sessions``, ``docs/architecture/sessions.md``); each sign-in and each page of figures
is on the audit trail before it is answered. A synthetic model (``linkwell synthetic``), or any
model holding a synthetic row, puts a banner on every page.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

import services.runtime.accounts as accounts
from contracts import UK
from contracts.events import AuditRecorded
from services.runtime.logs import get_logger
from services.runtime.ratelimit import Window
from services.runtime.settings import Settings

from . import figures, sessions
from .model import SYNTHETIC_DETAIL, SYNTHETIC_LEAD, ReferralRow, RosterRow, is_synthetic
from .settings import DashboardSettings
from .store import Accounts, load, snapshot, snapshot_periods

log = get_logger(__name__)
MAX_FORM = 4096
TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every value escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,  # a missing value fails the test, never shows
    )
)
HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make a form post Origin: null
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
}
COLUMNS = [
    ("received", "Received"),
    ("accepted", "Accepted"),
    ("assigned", "Given a link worker"),
    ("first_contact", "First contact"),
    ("completed", "Completed"),
    ("wait_assigned_median", "Median days to a link worker"),
    ("coded", "Coded in the GP record as referred to social prescribing"),
]
NOT_YET = "not yet"


def label(value: str) -> str:
    return value.replace("_", " ")


def days(value: float | None) -> str:
    return NOT_YET if value is None else f"{value:.1f} days"


def cell(value: object) -> str:
    """A disclosed figure as a table shows it: never a bare None."""
    if value is None:
        return NOT_YET
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def this_quarter(now: datetime) -> figures.Window:
    today = now.astimezone(UK).date()
    return figures.Window.quarter(f"{today.year}Q{(today.month - 1) // 3 + 1}")


# ------------------------------------------------------------------ what each page shows


def caseloads(roster: list[RosterRow]) -> list[dict[str, Any]]:
    """Active workers, each drawn against their own capacity."""
    return [
        {
            "name": w.link_worker_id,
            "caseload": w.caseload,
            "capacity": w.capacity,
            "fraction": min(1.0, w.caseload / w.capacity) if w.capacity > 0 else 1.0,
            "over": w.caseload > w.capacity,
            "shown": f"{w.caseload} of {w.capacity}",
        }
        for w in roster
        if w.active
    ]


def pcn_view(
    pcn: str, referrals: list[ReferralRow], roster: list[RosterRow], now: datetime
) -> dict[str, Any]:
    """A PCN's own figures, exact."""
    today = now.astimezone(UK).date()
    month = today.strftime("%Y-%m")
    this_month = Counter(
        r.agency_type for r in referrals if figures.uk_month(r.received_at) == month
    )
    quarter = this_quarter(now)
    [total] = [f for f in figures.report(referrals, [], quarter, "pcn") if f.group == "total"]
    return {
        "title": f"Social prescribing in PCN {pcn}",
        "shown_at": now.astimezone(UK).strftime("%d %B %Y %H:%M"),
        "waiting": sum(1 for r in referrals if r.waiting),
        "workers": caseloads(roster),
        "month": f"{today:%B %Y}",
        "sources": [
            {"name": label(k), "value": v, "shown": str(v)}
            for k, v in sorted(this_month.items(), key=lambda i: (-i[1], i[0]))
        ],
        "quarter": quarter.label,
        "waits": [
            ("a link worker", days(total.wait_assigned_median), days(total.wait_assigned_p90)),
            (
                "the first contact",
                days(total.wait_first_contact_median),
                days(total.wait_first_contact_p90),
            ),
        ],
    }


SNAPSHOT_COLUMNS = [
    ("received", "Received"),
    ("accepted", "Accepted"),
    ("rejected", "Rejected"),
    ("assigned", "Given a link worker"),
    ("first_contact", "First contact"),
    ("completed", "Completed"),
    ("wait_assigned_median", "Median days to a link worker"),
    ("coded", "Coded in the GP record as referred to social prescribing"),
]


def commissioner_view(
    published: list[tuple[str, datetime]], snapshot: dict[str, Any] | None
) -> dict[str, Any]:
    """Every PCN in one published month: the frozen snapshot as it was published (small
    numbers and the cells that would give them away suppressed), never the live model."""
    periods = [
        {"period": p, "selected": snapshot is not None and p == snapshot["period"]}
        for p, _ in published
    ]
    base = {"title": "Social prescribing across PCNs", "periods": periods}
    if snapshot is None:
        return base | {
            "period": None,
            "published_on": None,
            "headings": [],
            "rows": [],
            "received": [],
        }
    shown = snapshot["figures"]
    return base | {
        "period": snapshot["period"],
        "published_on": snapshot["published_at"].astimezone(UK).strftime("%d %B %Y"),
        "headings": [title for _, title in SNAPSHOT_COLUMNS],
        "rows": [
            {"group": d["group"], "cells": [cell(d.get(key)) for key, _ in SNAPSHOT_COLUMNS]}
            for d in shown
        ],
        "received": [
            {
                "name": d["group"],
                "value": float(d["received"]) if isinstance(d["received"], int | float) else 0,
                "shown": str(d["received"]),
            }
            for d in shown
            if d["group"] != "total"
        ],
    }


# ------------------------------------------------------------------ the application

Recorder = Callable[[AuditRecorded], Awaitable[None]]


def create_app(
    pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
    schema: str,
    *,
    sessions_pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
    sessions_schema: str,
    record: Recorder,
    settings: DashboardSettings | None = None,
    mode: str = "production",
    synthetic: bool = False,
    lifespan: Any = None,
    clock: Callable[[], float] = time.monotonic,
    oidc_http: Any = None,
) -> Starlette:
    """The dashboard over ``schema`` (read-only), its people's accounts and sessions in
    ``sessions_schema``. Pools are given, or callables giving them once the lifespan has
    opened them. ``record`` puts an audit record on the trail (confirmed) or raises: a
    sign-in or a page of figures is answered only after it. ``synthetic`` marks every page
    (it is also marked whenever a page's rows hold a synthetic one)."""
    settings = settings or DashboardSettings()
    record = wrap_recorder(record)
    cookies = sessions.Cookies(settings.cookies_secure(mode))
    lifetimes = accounts.Lifetimes(
        timedelta(seconds=settings.session_idle_seconds),
        timedelta(seconds=settings.session_max_seconds),
    )
    per_account = Window(settings.sign_ins_per_account, sessions.THROTTLE_SECONDS, clock)
    per_client = Window(settings.sign_ins_per_client, sessions.THROTTLE_SECONDS, clock)

    def the_pool() -> asyncpg.Pool:
        return pool if isinstance(pool, asyncpg.Pool) else pool()

    def own_pool() -> asyncpg.Pool:
        return sessions_pool if isinstance(sessions_pool, asyncpg.Pool) else sessions_pool()

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        context = {
            "signed_in": True,
            "csrf": "",
            "synthetic": synthetic,
            "synthetic_lead": SYNTHETIC_LEAD,
            "synthetic_detail": SYNTHETIC_DETAIL,
            **context,
        }
        return TEMPLATES.TemplateResponse(
            request, name, context, status_code=status, headers=HEADERS
        )

    def refused(request: Request, status: int, reason: str, message: str) -> Response:
        log.info("dashboard_refused", reason=reason, status=status)
        context = {"title": "Not done", "message": message, "signed_in": False}
        return page(request, "refused.html", context, status)

    def login_page(request: Request, error: str = "", status: int = 200) -> Response:
        csrf = request.cookies.get(cookies.csrf) or sessions.new_csrf()
        ended = sessions.ENDED.get(request.query_params.get("ended", ""), "")
        response = page(
            request,
            "login.html",
            {
                "title": "Sign in to the social prescribing dashboard",
                "error": error,
                "ended": ended,
                "csrf": csrf,
                "oidc": settings.oidc_enabled,
                "page_title": ("Error: " if error else "")
                + "Sign in to the social prescribing dashboard",
                "signed_in": False,
            },
            status,
        )
        response.set_cookie(cookies.csrf, csrf, max_age=None, **cookies.flags())
        return response

    def signed_out(reason: str) -> Response:
        response = RedirectResponse(f"/login?ended={reason}", 303, headers=HEADERS)
        response.delete_cookie(cookies.session, **cookies.flags())
        return response

    def expected_origin(request: Request) -> str:
        if settings.origin:
            return settings.origin
        return f"{request.url.scheme}://{request.headers.get('host', '')}"

    async def posted(request: Request) -> dict[str, str] | Response:
        """A post's form, once it comes from the dashboard's own pages; else the refusal."""
        if not sessions.same_origin(
            expected_origin(request), request.headers.get("origin"), request.headers.get("referer")
        ):
            return refused(request, 403, "cross_site", "That form did not come from this site.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return refused(request, 413, "too_large", "That form was too large.")
        return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def current(request: Request) -> tuple[bytes, sessions.Viewer, str] | Response:
        """The session's digest, viewer and CSRF token, or the way to the sign-in page."""
        token = request.cookies.get(cookies.session)
        if not token or len(token) > 100:
            return RedirectResponse("/login", 303, headers=HEADERS)
        key = accounts.digest(token)
        async with own_pool().acquire() as conn:
            store = Accounts(conn, sessions_schema)
            found = await store.session(key)
            if found is None:
                return signed_out("signed_out")
            ended = accounts.session_ended(
                found["created_at"],
                found["seen_at"],
                found["ended_at"],
                datetime.now(UTC),
                lifetimes,
            )
            if ended is None and found["disabled_at"] is not None:
                ended = "signed_out"
            if ended is not None:
                await store.end(key)
                log.info("session_ended", account_id=str(found["id"]), why=ended)
                return signed_out(ended)
            await store.seen(key)
        return key, sessions.viewer_of(found), found["csrf"]

    async def start_session(viewer: sessions.Viewer, method: str) -> Response:
        token, csrf = accounts.new_token(), sessions.new_csrf()
        async with own_pool().acquire() as conn:
            store = Accounts(conn, sessions_schema)
            # a session past its absolute expiry admits no one: its row goes (the sign-in
            # stays on the audit trail)
            await store.forget_sessions(settings.session_max_seconds)
            await store.start(accounts.digest(token), uuid.UUID(viewer.account_id), csrf)
        try:
            await record(sessions.sign_in_record(viewer, method=method, outcome="ok"))
        except Unrecorded:  # not on the trail: no session
            async with own_pool().acquire() as conn:
                await Accounts(conn, sessions_schema).end(accounts.digest(token))
            raise
        log.info("signed_in", account_id=viewer.account_id, method=method)
        response = RedirectResponse("/", 303, headers=HEADERS)
        response.set_cookie(cookies.session, token, max_age=None, **cookies.flags())
        return response

    async def home(request: Request) -> Response:
        who = await current(request)
        if isinstance(who, Response):
            return who
        _, viewer, csrf = who
        async with the_pool().acquire() as conn:
            if viewer.kind != "pcn":  # a commissioner sees published snapshots only
                published = await snapshot_periods(conn, schema)
                wanted = request.query_params.get("period") or (
                    published[0][0] if published else ""
                )
                frozen = await snapshot(conn, schema, wanted) if wanted else None
                if wanted and frozen is None:
                    raise HTTPException(404)
        if viewer.kind != "pcn":
            view = commissioner_view(published, frozen)
            marked = {"synthetic": synthetic or bool(frozen and frozen["synthetic"]), "csrf": csrf}
            rows = len(frozen["figures"]) if frozen else 0
            # on the trail before the figures are served; unrecorded, they are not shown
            await record(sessions.view_record(viewer, "commissioner", rows))
            return page(request, "commissioner.html", view | marked)
        async with the_pool().acquire() as conn:
            referrals, rejections, roster = await load(conn, schema, viewer.pcn)
        now = datetime.now(UTC)
        marked = {"synthetic": synthetic or is_synthetic(referrals, rejections), "csrf": csrf}
        assert viewer.pcn is not None
        view = pcn_view(viewer.pcn, referrals, roster, now)
        await record(sessions.view_record(viewer, "pcn", len(referrals)))
        return page(request, "pcn.html", view | marked)

    async def login(request: Request) -> Response:
        return login_page(request)

    async def sign_in(request: Request) -> Response:
        form = await posted(request)
        if isinstance(form, Response):
            return form
        if not sessions.csrf_ok(request.cookies.get(cookies.csrf), form.get(sessions.CSRF_FIELD)):
            return refused(request, 403, "csrf", "That form had expired. Go back and try again.")
        login_name = form.get("login", "").strip().lower()
        password = form.get("password", "")
        client = client_of(request)
        key = accounts.digest(login_name).hex()
        for window, who in ((per_client, client), (per_account, key)):
            if not window.allow(who):
                wait = window.retry_after(who)
                await record(sessions.sign_in_record(None, method="password", outcome="throttled"))
                response = login_page(
                    request,
                    "Signing in is paused after several attempts. Wait "
                    f"{max(1, (wait + 59) // 60)} minutes and try again.",
                    429,
                )
                response.headers["retry-after"] = str(wait)
                return response
        row = None
        if sessions.login_ok(login_name) and len(password) <= accounts.MAX_PASSWORD:
            async with own_pool().acquire() as conn:
                row = await Accounts(conn, sessions_schema).by_login(login_name)
        stored = row["password_hash"] if row else None
        if not accounts.password_matches(stored, password) or row is None or row["disabled_at"]:
            await record(sessions.sign_in_record(None, method="password", outcome="refused"))
            log.info("sign_in_refused")
            return login_page(request, "Enter a correct account name and password.", 401)
        if stored and accounts.needs_rehash(stored):
            async with own_pool().acquire() as conn:
                await Accounts(conn, sessions_schema).rehash(
                    row["id"], accounts.hash_password(password)
                )
        return await start_session(sessions.viewer_of(row), "password")

    async def logout(request: Request) -> Response:
        form = await posted(request)
        if isinstance(form, Response):
            return form
        who = await current(request)
        if isinstance(who, Response):
            return who
        key, viewer, csrf = who
        if not sessions.csrf_ok(csrf, form.get(sessions.CSRF_FIELD)):
            return refused(request, 403, "csrf", "That form had expired. Go back and try again.")
        async with own_pool().acquire() as conn:
            await Accounts(conn, sessions_schema).end(key)
        log.info("signed_out", account_id=viewer.account_id)
        return signed_out("signed_out")

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "not_found.html", {"title": "Not found", "signed_in": False}, 404)

    async def unrecorded(request: Request, exc: Exception) -> Response:
        log.warning("audit_unconfirmed", error=type(exc.__cause__ or exc).__name__)
        return refused(
            request, 503, "audit_unconfirmed", "The dashboard cannot be used just now. Try later."
        )

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/login", login, methods=["GET"]),
        Route("/login", sign_in, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
    if settings.oidc_enabled:
        from .oidc import oidc_routes

        routes += oidc_routes(
            settings,
            own_pool,
            sessions_schema,
            start_session,
            refused,
            posted,
            cookies,
            record,
            oidc_http,
        )
    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, Unrecorded: unrecorded},
        lifespan=lifespan,
    )


class Unrecorded(Exception):
    """The audit trail did not confirm a record: the page is not served."""


def wrap_recorder(publish: Recorder) -> Recorder:
    async def recorded(data: AuditRecorded) -> None:
        try:
            await publish(data)
        except Exception as exc:
            raise Unrecorded from exc

    return recorded


def serving(settings: Settings, schema: str, *, synthetic: bool) -> Starlette:
    """The dashboard as ``linkwell dashboard`` runs it: the pools and the broker connection
    (for the audit trail) opened on startup."""
    import aio_pika

    from services.runtime.audit import publish_record

    from .store import read_only_pool
    from .store import sessions_pool as open_sessions_pool

    held: dict[str, Any] = {}
    own = settings.names.schema("readside")
    connecting = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        held["pool"] = await read_only_pool(settings.database_url, schema)
        held["own"] = await open_sessions_pool(settings.database_url, own)
        try:
            yield
        finally:
            if "amqp" in held:
                await held["amqp"].close()
            await held["own"].close()
            await held["pool"].close()

    async def publish(data: AuditRecorded) -> None:
        # the broker is reached at the first record, so the sign-in page serves without
        # it; until it answers, nobody signs in and no figures are shown
        async with connecting:
            if "amqp" not in held:
                held["amqp"] = await aio_pika.connect_robust(settings.amqp_url, timeout=10)
        await publish_record(settings, data, sessions.SERVICE, held["amqp"])

    return create_app(
        lambda: held["pool"],
        schema,
        sessions_pool=lambda: held["own"],
        sessions_schema=own,
        record=publish,
        mode=settings.mode,
        synthetic=synthetic,
        lifespan=lifespan,
    )
