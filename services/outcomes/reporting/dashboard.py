"""The dashboard: server-rendered pages, no JavaScript, charts as inline SVG with the same
figures in a table beside each (for screen readers, and for copying).

- A PCN's token shows that PCN only, exact: the waiting list today, caseload against
  capacity per link worker, referrals by source this month, and waits this quarter.
- A commissioner's token shows every PCN this quarter, with small numbers suppressed
  (``disclosure``).

Nobody sees personal data on any page: the reporting model holds none. Tokens are issued
by ``linkwell access token issue``; the browser keeps one in an HttpOnly, SameSite=Strict
cookie after signing in.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import asyncpg

from contracts import UK

from . import disclosure, figures, tokens
from .model import ReferralRow, RosterRow
from .store import load

COOKIE = "linkwell_dashboard"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def label(value: str) -> str:
    return value.replace("_", " ")


# ------------------------------------------------------------------ charts


def bar_chart(ident: str, title: str, rows: list[tuple[str, float, str]], unit: str = "") -> str:
    """Horizontal bars: (label, value, shown text). An SVG image with a title and a
    description, then the same figures as a table."""
    height = 30 * len(rows) + 10
    peak = max((v for _, v, _ in rows), default=0) or 1
    bars = []
    for i, (name, value, shown) in enumerate(rows):
        y = 10 + 30 * i
        width = max(0.0, 300 * value / peak)
        bars.append(
            f'<text x="190" y="{y + 15}" text-anchor="end" class="axis">{esc(name)}</text>'
            f'<rect x="200" y="{y}" width="{width:.1f}" height="20" class="bar"></rect>'
            f'<text x="{205 + width:.1f}" y="{y + 15}" class="value">{esc(shown)}</text>'
        )
    summary = "; ".join(f"{name}: {shown}{unit}" for name, _, shown in rows) or "no data"
    table_rows = "".join(
        f'<tr><th scope="row">{esc(name)}</th><td>{esc(shown)}{esc(unit)}</td></tr>'
        for name, _, shown in rows
    )
    return (
        f'<figure aria-labelledby="{ident}-caption">'
        f'<svg role="img" aria-labelledby="{ident}-title {ident}-desc" width="560" '
        f'height="{height}" viewBox="0 0 560 {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-title">{esc(title)}</title>'
        f'<desc id="{ident}-desc">{esc(summary)}</desc>{"".join(bars)}</svg>'
        f'<figcaption id="{ident}-caption">{esc(title)}</figcaption>'
        f'<table><caption class="visually-hidden">{esc(title)}</caption>'
        f'<thead><tr><th scope="col">Group</th><th scope="col">Value</th></tr></thead>'
        f"<tbody>{table_rows}</tbody></table></figure>"
    )


# ------------------------------------------------------------------ pages


STYLE = """
body { font-family: Arial, Helvetica, sans-serif; color: #212b32; background: #f0f4f5;
       margin: 0; line-height: 1.5; }
header { background: #005eb8; color: #ffffff; padding: 1rem 2rem; }
header a { color: #ffffff; }
main { padding: 1rem 2rem; max-width: 70rem; }
section { background: #ffffff; padding: 1rem 1.5rem; margin-bottom: 1.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #768692; padding: 0.25rem 0.75rem; text-align: left; }
.bar { fill: #005eb8; } .axis, .value { fill: #212b32; font-size: 13px; }
.big { font-size: 2.5rem; font-weight: bold; }
.note { color: #4c6272; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
                   clip: rect(0 0 0 0); white-space: nowrap; }
label { display: block; font-weight: bold; margin-bottom: 0.25rem; }
input { font-size: 1rem; padding: 0.5rem; width: 30rem; max-width: 100%; }
button { font-size: 1rem; padding: 0.5rem 1rem; background: #007f3b; color: #ffffff;
         border: 0; margin-top: 0.5rem; }
"""


def page(title: str, body: str, signed_in: bool = True) -> str:
    out = '<p><a href="/logout">Sign out</a></p>' if signed_in else ""
    return (
        '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} - Linkwell</title><style>{STYLE}</style></head><body>"
        f'<header><p class="big" style="font-size:1.25rem;margin:0">Linkwell</p>{out}'
        f"</header><main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def login_page(error: str = "") -> str:
    problem = f'<p role="alert"><strong>{esc(error)}</strong></p>' if error else ""
    return page(
        "Sign in to the social prescribing dashboard",
        f'{problem}<form method="post" action="/login"><label for="token">Your access '
        'token</label><input id="token" name="token" type="password" autocomplete="off" '
        'required><br><button type="submit">Sign in</button></form><p class="note">Your '
        "organisation's Linkwell operator issues tokens.</p>",
        signed_in=False,
    )


def days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} days"


def pcn_page(pcn: str, referrals: list[ReferralRow], roster: list[RosterRow], now: datetime) -> str:
    """A PCN's own figures, exact."""
    today = now.astimezone(UK).date()
    waiting = sum(1 for r in referrals if r.waiting)
    workers = [w for w in roster if w.active]
    caseload = bar_chart(
        "caseload",
        "Caseload against capacity, per link worker",
        [(w.link_worker_id, w.caseload, f"{w.caseload} of {w.capacity}") for w in workers],
    )
    month = today.strftime("%Y-%m")
    this_month = Counter(
        r.agency_type for r in referrals if figures.uk_month(r.received_at) == month
    )
    sources = bar_chart(
        "sources",
        f"Referrals by source, {today:%B %Y}",
        [(label(k), v, str(v)) for k, v in sorted(this_month.items(), key=lambda i: -i[1])],
    )
    quarter = figures.Window.quarter(f"{today.year}Q{(today.month - 1) // 3 + 1}")
    [total] = [f for f in figures.report(referrals, [], quarter, "pcn") if f.group == "total"]
    waits = (
        "<table><caption>Waits for people referred this quarter</caption><thead><tr>"
        '<th scope="col">From acceptance to</th><th scope="col">Median</th>'
        '<th scope="col">90th percentile</th></tr></thead><tbody>'
        f'<tr><th scope="row">a link worker</th><td>{days(total.wait_assigned_median)}</td>'
        f"<td>{days(total.wait_assigned_p90)}</td></tr>"
        f'<tr><th scope="row">the first contact</th>'
        f"<td>{days(total.wait_first_contact_median)}</td>"
        f"<td>{days(total.wait_first_contact_p90)}</td></tr></tbody></table>"
    )
    body = (
        f'<p class="note">Your PCN\'s own figures, exact. Updated as events arrive; shown '
        f"{esc(now.astimezone(UK).strftime('%d %B %Y %H:%M'))}.</p>"
        f'<section aria-labelledby="waiting"><h2 id="waiting">Waiting list today</h2>'
        f'<p><span class="big">{waiting}</span> people are waiting for a link worker.</p>'
        "</section>"
        f'<section aria-labelledby="caseload-h"><h2 id="caseload-h">Caseload</h2>{caseload}'
        "</section>"
        f'<section aria-labelledby="sources-h"><h2 id="sources-h">Referrals this month</h2>'
        f"{sources}</section>"
        f'<section aria-labelledby="waits-h"><h2 id="waits-h">Waits</h2>{waits}</section>'
    )
    return page(f"Social prescribing in PCN {pcn}", body)


COLUMNS = [
    ("received", "Received"),
    ("accepted", "Accepted"),
    ("assigned", "Given a link worker"),
    ("first_contact", "First contact"),
    ("completed", "Completed"),
    ("wait_assigned_median", "Median days to a link worker"),
    ("coded", "Coded 871731000000106"),
]


def commissioner_page(referrals: list[ReferralRow], rejections: list[Any], now: datetime) -> str:
    """Every PCN this quarter, small numbers suppressed."""
    today = now.astimezone(UK).date()
    quarter = figures.Window.quarter(f"{today.year}Q{(today.month - 1) // 3 + 1}")
    rows = figures.report(referrals, rejections, quarter, "pcn")
    shown = [disclosure.disclosed(f, exact=False) for f in rows]
    head = "".join(f'<th scope="col">{esc(title)}</th>' for _, title in COLUMNS)
    body_rows = "".join(
        f'<tr><th scope="row">{esc(d["group"])}</th>'
        + "".join(f"<td>{esc(d.get(key, '-'))}</td>" for key, _ in COLUMNS)
        + "</tr>"
        for d in shown
    )
    received = bar_chart(
        "received",
        f"Referrals received by PCN, {quarter.label}",
        [
            (d["group"], _number(d["received"]), str(d["received"]))
            for d in shown
            if d["group"] != "total"
        ],
    )
    body = (
        f'<p class="note">Every PCN, {esc(quarter.label)}. Small numbers are suppressed as '
        "NHS England does for published figures: counts from 1 to 7 are shown as *, other "
        "counts are rounded to the nearest 5, and figures drawn from fewer than 8 people "
        "are not shown.</p>"
        f'<section aria-labelledby="pcns"><h2 id="pcns">Referrals by PCN</h2>'
        f"<table><caption>Referrals received in {esc(quarter.label)}, by PCN</caption>"
        f'<thead><tr><th scope="col">PCN</th>{head}</tr></thead><tbody>{body_rows}</tbody>'
        f"</table>{received}</section>"
    )
    return page("Social prescribing across PCNs", body)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


# ------------------------------------------------------------------ the ASGI application


class Dashboard:
    def __init__(self, pool: asyncpg.Pool, schema: str):
        self.pool = pool
        self.schema = schema

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/login" and method == "POST":
            await self.sign_in(receive, send)
        elif path == "/login":
            await respond(send, 200, login_page())
        elif path == "/logout":
            await respond(send, 303, "", [(b"location", b"/login"), _cookie("", 0)])
        elif path == "/":
            async with self.pool.acquire() as conn:
                viewer = await tokens.viewer(conn, self.schema, _token(scope))
                if viewer is None:
                    await respond(send, 303, "", [(b"location", b"/login")])
                    return
                referrals, rejections, roster = await load(conn, self.schema, viewer.pcn)
            now = datetime.now(UTC)
            if viewer.kind == "pcn":
                assert viewer.pcn is not None
                text = pcn_page(viewer.pcn, referrals, roster, now)
            else:
                text = commissioner_page(referrals, rejections, now)
            await respond(send, 200, text)
        else:
            await respond(send, 404, page("Not found", "<p>There is no such page.</p>", False))

    async def sign_in(self, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body") or len(body) > 4096:
                break
        token = (parse_qs(body.decode(errors="replace")).get("token") or [""])[0].strip()
        async with self.pool.acquire() as conn:
            viewer = await tokens.viewer(conn, self.schema, token)
        if viewer is None:
            await respond(send, 401, login_page("That token is not valid."))
            return
        await respond(send, 303, "", [(b"location", b"/"), _cookie(token, 8 * 3600)])


def _cookie(token: str, max_age: int) -> tuple[bytes, bytes]:
    return (
        b"set-cookie",
        f"{COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict".encode(),
    )


def _token(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value.startswith(b"Bearer "):
            return value[7:].decode(errors="replace")
        if name == b"cookie":
            for part in value.decode(errors="replace").split(";"):
                key, _, found = part.strip().partition("=")
                if key == COOKIE:
                    return found
    return None


async def respond(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
                (
                    b"content-security-policy",
                    b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                ),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
