"""The dashboard: a Starlette application, pages rendered on the server from Jinja2 templates
(``templates/``), no JavaScript, charts as inline SVG with the same figures in a table
beside each (for screen readers, and for copying).

- A PCN's token shows that PCN only, exact: the waiting list today, caseload against
  capacity per link worker, referrals by source this month, and waits this quarter.
- A commissioner's token shows every PCN in a published month: the frozen snapshot
  published once the month ended (``snapshots``, ``services/ops/publishing.py``),
  small numbers and the cells that would give them away suppressed (``suppression``),
  with a picker of the published months. Never the live model: its figures do not change
  as referrals arrive.

It reads the reporting model through a read-only pool (``store.read_only_pool``) and
never writes it. Nobody sees personal data on any page: the model holds none. Tokens are
issued by ``linkwell access token issue``; the browser keeps one in an HttpOnly,
SameSite=Strict cookie after signing in. A synthetic model (``linkwell synthetic``), or any
model holding a synthetic row, puts a banner on every page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
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

from contracts import UK

from . import figures, tokens
from .model import SYNTHETIC_DETAIL, SYNTHETIC_LEAD, ReferralRow, RosterRow, is_synthetic
from .store import load, snapshot, snapshot_periods

COOKIE = "linkwell_dashboard"
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
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
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


def create_app(
    pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
    schema: str,
    *,
    synthetic: bool = False,
    lifespan: Any = None,
) -> Starlette:
    """The dashboard over ``schema``. ``pool`` is a pool, or a callable giving the pool
    once the lifespan has opened it. ``synthetic`` marks every page (it is also marked
    whenever a page's rows hold a synthetic one)."""

    def the_pool() -> asyncpg.Pool:
        return pool if isinstance(pool, asyncpg.Pool) else pool()

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        context = {
            "signed_in": True,
            "synthetic": synthetic,
            "synthetic_lead": SYNTHETIC_LEAD,
            "synthetic_detail": SYNTHETIC_DETAIL,
            **context,
        }
        return TEMPLATES.TemplateResponse(
            request, name, context, status_code=status, headers=HEADERS
        )

    def login_page(request: Request, error: str = "", status: int = 200) -> Response:
        return page(
            request,
            "login.html",
            {
                "title": "Sign in to the social prescribing dashboard",
                "error": error,
                "page_title": ("Error: " if error else "")
                + "Sign in to the social prescribing dashboard",
                "signed_in": False,
            },
            status,
        )

    async def home(request: Request) -> Response:
        async with the_pool().acquire() as conn:
            viewer = await tokens.viewer(conn, schema, _token(request))
            if viewer is None:
                return RedirectResponse("/login", 303, headers=HEADERS)
            if viewer.kind != "pcn":  # a commissioner sees published snapshots only
                published = await snapshot_periods(conn, schema)
                wanted = request.query_params.get("period") or (
                    published[0][0] if published else ""
                )
                frozen = await snapshot(conn, schema, wanted) if wanted else None
                if wanted and frozen is None:
                    raise HTTPException(404)
                view = commissioner_view(published, frozen)
                marked = {"synthetic": synthetic or bool(frozen and frozen["synthetic"])}
                return page(request, "commissioner.html", view | marked)
            referrals, rejections, roster = await load(conn, schema, viewer.pcn)
        now = datetime.now(UTC)
        marked = {"synthetic": synthetic or is_synthetic(referrals, rejections)}
        assert viewer.pcn is not None
        view = pcn_view(viewer.pcn, referrals, roster, now)
        return page(request, "pcn.html", view | marked)

    async def login(request: Request) -> Response:
        return login_page(request)

    async def sign_in(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return login_page(request, "That sign-in form was too large.", 413)
        token = (parse_qs(body.decode(errors="replace")).get("token") or [""])[0].strip()
        async with the_pool().acquire() as conn:
            viewer = await tokens.viewer(conn, schema, token)
        if viewer is None:
            return login_page(
                request,
                "That token is not valid. Check it was copied whole (it begins lwd_), "
                "or ask your Linkwell operator for a new one.",
                401,
            )
        response = RedirectResponse("/", 303, headers=HEADERS)
        response.set_cookie(
            COOKIE, token, max_age=8 * 3600, path="/", httponly=True, samesite="strict"
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", 303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "not_found.html", {"title": "Not found", "signed_in": False}, 404)

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login, methods=["GET"]),
            Route("/login", sign_in, methods=["POST"]),
            Route("/logout", logout, methods=["GET"]),
        ],
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer "):
        return header[7:]
    return request.cookies.get(COOKIE)


def serving(dsn: str, schema: str, *, synthetic: bool) -> Starlette:
    """The dashboard as ``linkwell dashboard`` runs it: the pool opened on startup."""
    from .store import read_only_pool

    held: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        held["pool"] = await read_only_pool(dsn, schema)
        try:
            yield
        finally:
            await held["pool"].close()

    return create_app(lambda: held["pool"], schema, synthetic=synthetic, lifespan=lifespan)
