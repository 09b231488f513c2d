"""The people's door over HTTP (Starlette, Jinja2, the NHS.UK frontend): one question a
page, an error summary, check your answers, a confirmation with a reference, and a
status page. Works without JavaScript. Every refusal is a page that says what to do.

Log lines carry ids and outcomes only: never an answer, a reference with a date of
birth, a query, or a client's address."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from contracts.enums import Need
from services.runtime import audit
from services.runtime.audit import AuditAction, AuditActorKind, AuditRecipientKind
from services.runtime.logs import get_logger
from services.runtime.names import Names

from . import api, domain, guard
from .clients import ClientAuth
from .practices import Practices
from .professional import pro_routes
from .ratelimit import Limits
from .settings import GatewaySettings
from .status import status_routes
from .store import GatewayStore
from .submit import NotReady, event_id_for, send

log = get_logger(__name__)
HERE = Path(__file__).parent
DRAFT_COOKIE = "lw_draft"


class Gateway:
    """What the pages need: the database, names, settings, the practices, the limits, and
    a way to wake the outbox relay once a page has been sent."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        names: Names,
        settings: GatewaySettings,
        wake: Callable[[], None] = lambda: None,
        limits: Limits | None = None,
        authenticate: Callable[[Any], Awaitable[Any]] | None = None,
    ):
        self.pool = pool
        self.names = names
        self.settings = settings
        self.wake = wake
        self.authenticate = authenticate  # API clients (None: services.gateway.clients)
        self.practices = Practices.load(settings.gateway_practices)
        self.limits = limits or Limits.of(
            settings.gateway_client_posts_per_minute,
            settings.gateway_global_posts_per_minute,
            settings.gateway_client_sends_per_hour,
        )
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape()
        )

    async def record(
        self,
        conn: asyncpg.Connection,
        action: AuditAction,
        recipient_kind: AuditRecipientKind,
        recipient_org: str | None,
        **fields: Any,
    ) -> None:
        """A disclosure by the gateway, on the trail in ``conn``'s open transaction (the
        page's or the read's own); the relay sends it once that commits."""
        await audit.enqueue_record(
            conn,
            self.names,
            "gateway",
            audit.disclosure(action, recipient_kind, recipient_org, by_service="gateway", **fields),
        )

    async def audit(
        self, conn: asyncpg.Connection, action: AuditAction, account: Any, detail: dict[str, Any]
    ) -> None:
        """A signed-in professional's sign-in or view, on the trail in ``conn``'s open
        transaction (by account id and organisation; never the email)."""
        await self.record(
            conn,
            action,
            AuditRecipientKind.PROFESSIONAL,
            account.organisation,
            by_kind=AuditActorKind.ACCOUNT,
            by=str(account.id),
            detail=detail,
        )

    async def audit_reads(
        self, conn: asyncpg.Connection, org: str, client_id: str, read: str, standings: Any
    ) -> None:
        """What an API client was shown of its own referrals (where each stands: its step
        and task status), on the trail in ``conn``'s open transaction: one record for each
        referral in the answer, by the client's id (``read`` names the resource)."""
        for standing in standings:
            detail = {"read": read, "client_id": client_id}
            for key in ("reference", "event_id"):  # the submission, as the client knows it
                if getattr(standing, key, None):
                    detail[key] = str(getattr(standing, key))
            await self.record(
                conn,
                AuditAction.STATUS,
                AuditRecipientKind.REFERRER,
                org,
                referral_id=standing.referral_id,
                detail=detail,
            )

    # ------------------------------------------------------------ rendering

    def page(
        self, request: Request, template: str, title: str, status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        csrf = self.read_cookie(request, guard.CSRF_COOKIE) or guard.new_token()
        context = {"scheme": self.settings.gateway_scheme_name, "title": title, "csrf": csrf}
        context.setdefault("errors", {})
        context.update(ctx)
        html = self.env.get_template(template).render(**context)
        response = HTMLResponse(html, status_code=status)
        if self.read_cookie(request, guard.CSRF_COOKIE) != csrf:
            self._cookie(response, guard.CSRF_COOKIE, csrf, max_age=None)
        return response

    def refused(
        self, request: Request, status: int, reason: str, title: str, *message: str, **ctx: Any
    ) -> HTMLResponse:
        log.info("refused", reason=reason, status=status)
        return self.page(request, "refused.html", title, status, message=message, **ctx)

    def cookie_name(self, name: str) -> str:
        """A cookie's name as set: ``__Host-`` first wherever cookies are Secure, so that
        the browser keeps it only from this host, over HTTPS, for every path, and no
        sibling domain can plant one."""
        return f"__Host-{name}" if self.settings.gateway_secure_cookies else name

    def read_cookie(self, request: Request, name: str) -> str | None:
        return request.cookies.get(self.cookie_name(name))

    def drop_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(
            self.cookie_name(name), path="/", secure=self.settings.gateway_secure_cookies
        )

    def _cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            self.cookie_name(name),
            value,
            max_age=max_age,
            httponly=True,
            samesite=self.settings.gateway_cookie_samesite,
            secure=self.settings.gateway_secure_cookies,
            path="/",
        )

    # ------------------------------------------------------------ posts

    async def form(self, request: Request) -> dict[str, Any] | Response:
        """The posted form as a dict, or the page refusing it: rate limits, size, CSRF,
        honeypot, in that order. Nothing is stored for a refused post."""
        client = request.client.host if request.client else "unknown"
        wait = self.limits.post(client)
        if wait:
            return self.too_many(request, wait)
        try:
            raw = await request.form(max_files=0, max_fields=domain.MAX_FIELDS)
        except Exception:
            return self.too_large(request)
        form: dict[str, Any] = {}
        for key in raw:
            values = [v for v in raw.getlist(key) if isinstance(v, str)]
            form[key] = values if key == "needs" or len(values) > 1 else values[0]
        if domain.too_long(form):
            return self.too_large(request)
        if not guard.csrf_ok(
            self.read_cookie(request, guard.CSRF_COOKIE), form.get(guard.CSRF_FIELD)
        ):
            return self.refused(
                request,
                403,
                "csrf",
                "This page has expired",
                "For your security, the form could not be used. Nothing was sent.",
                "Start again: you will need to answer the questions again.",
            )
        if guard.honeypot_filled(form):
            return self.refused(
                request,
                400,
                "honeypot",
                "Sorry, we could not accept this form",
                "Nothing was sent. If you were filling in the form yourself, start again.",
            )
        return form

    def too_many(self, request: Request, wait: int) -> HTMLResponse:
        minutes = max(1, (wait + 59) // 60)
        response = self.refused(
            request,
            429,
            "rate_limited",
            "Too many attempts",
            "There have been too many attempts from your connection. Nothing was sent.",
            f"Wait {minutes} {'minute' if minutes == 1 else 'minutes'} and try again.",
        )
        response.headers["retry-after"] = str(wait)
        return response

    def too_large(self, request: Request) -> HTMLResponse:
        return self.refused(
            request,
            413,
            "too_large",
            "Your answers are too long",
            "An answer was longer than this form takes. Nothing was sent.",
            "Go back and shorten it, then try again.",
        )

    # ------------------------------------------------------------ drafts

    def token(self, request: Request) -> str | None:
        value = self.read_cookie(request, DRAFT_COOKIE)
        return value if value and len(value) < 100 else None

    async def draft(self, request: Request) -> tuple[str, Any] | None:
        token = self.token(request)
        if token is None:
            return None
        async with self.pool.acquire() as conn:
            found = await GatewayStore(conn).drafts.get(token)
        return (token, found) if found is not None else None

    def expired(self, request: Request) -> HTMLResponse:
        minutes = self.settings.gateway_draft_minutes
        return self.refused(
            request,
            410,
            "draft_expired",
            "Your answers have been deleted",
            f"To protect your information, answers are deleted {minutes} minutes after the "
            "last one, and nothing was sent.",
            "Start again to refer yourself or someone you care for.",
        )


TITLES = {
    "crisis": "Do you need help right now?",
    "who": "Who are you referring?",
    "name": "Name",
    "date-of-birth": "Date of birth",
    "nhs-number": "NHS number",
    "gp": "GP practice",
    "needs": "What would you like help with?",
    "contact": "How should a link worker contact you?",
    "adjustments": "Reasonable adjustments",
    "consent": "Do you agree to this referral?",
}


def _back(slug: str) -> str:
    index = domain.SLUGS.index(slug)
    return "/refer" if index == 0 else f"/refer/{domain.SLUGS[index - 1]}"


def create_app(gw: Gateway) -> Starlette:
    async def home(request: Request) -> Response:
        return RedirectResponse("/refer", 303)

    async def start(request: Request) -> Response:
        if request.method == "GET":
            return gw.page(request, "start.html", "Refer yourself for social prescribing")
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        token, key = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        async with gw.pool.acquire() as conn:
            await GatewayStore(conn).drafts.create(token, key, gw.settings.gateway_draft_minutes)
        response = RedirectResponse("/refer/crisis", 303)
        gw._cookie(response, DRAFT_COOKIE, token, max_age=None)  # gone when the browser closes
        return response

    def question(
        request: Request, slug: str, answers: dict[str, Any], status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        change = bool(ctx.pop("change", request.query_params.get("change")))
        extra: dict[str, Any] = {}
        if slug == "needs":
            extra["needs"] = [(n.value, domain.NEEDS_IN_PLAIN_WORDS[n]) for n in Need]
        if slug == "contact":
            extra["contacts"] = [(c.value, t) for c, t in domain.CONTACT_IN_PLAIN_WORDS.items()]
        if slug == "gp" and "chosen" not in ctx:
            extra["chosen"] = gw.practices.get(answers.get("practice", ""))
        return gw.page(
            request,
            f"{slug}.html",
            TITLES[slug],
            status,
            answers=answers,
            for_self=domain.for_self(answers),
            back="/refer/check" if change else _back(slug),
            change=change,
            dob=domain.dob_fields(answers, ctx.pop("form", None)),
            max_adjustments=domain.MAX_ADJUSTMENTS,
            **extra,
            **ctx,
        )

    async def ask(request: Request) -> Response:
        slug = request.path_params["slug"]
        if domain.step(slug) is None:
            return gw.refused(request, 404, "not_found", "Page not found", "Check the address.")
        found = await gw.draft(request)
        if found is None:
            return gw.expired(request)
        token, draft = found
        if draft.reference is not None:
            return RedirectResponse("/refer/sent", 303)
        if request.method == "GET":
            return question(request, slug, draft.answers)
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        change = form.get("change") == "1"
        if slug == "gp" and form.get("action") == "search":
            query = str(form.get("query", ""))[: domain.MAX_QUERY]
            results = gw.practices.search(query)
            return question(
                request,
                slug,
                draft.answers,
                query=query,
                searched=True,
                results=results,
                chosen=None,
                change=change,
            )
        values, errors = domain.check(slug, form, {p.code: p for p in gw.practices.all})
        if errors:
            return question(
                request,
                slug,
                {**draft.answers, **form},
                400,
                errors=errors,
                form=form,
                change=change,
                searched=slug == "gp",
                chosen=None,
                results=gw.practices.search(str(form.get("query", ""))),
            )
        async with gw.pool.acquire() as conn:
            drafts = GatewayStore(conn).drafts
            if slug == "crisis" and values["crisis"] == "yes":
                await drafts.forget(token)  # not queued: nothing kept
                log.info("crisis_redirect")
                return RedirectResponse("/refer/urgent-help", 303)
            await drafts.answer(token, values, gw.settings.gateway_draft_minutes)
        answers = {**draft.answers, **values}
        following = domain.next_unanswered(answers)
        if change or following is None:
            return RedirectResponse("/refer/check", 303)
        return RedirectResponse(f"/refer/{following}", 303)

    async def urgent(request: Request) -> Response:
        response = gw.page(request, "urgent.html", "Get help now")
        gw.drop_cookie(response, DRAFT_COOKIE)
        return response

    async def check(request: Request) -> Response:
        found = await gw.draft(request)
        if found is None:
            return gw.expired(request)
        _, draft = found
        if draft.reference is not None:
            return RedirectResponse("/refer/sent", 303)
        missing = domain.next_unanswered(draft.answers)
        if missing is not None or domain.in_crisis(draft.answers):
            return RedirectResponse(f"/refer/{missing or 'crisis'}", 303)
        return gw.page(
            request,
            "check.html",
            "Check your answers",
            rows=_rows(gw, draft.answers),
            form_key=draft.form_key,
            back="/refer/consent",
        )

    async def submit(request: Request) -> Response:
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        client = request.client.host if request.client else "unknown"
        token, key = gw.token(request), str(form.get("key", ""))
        if token is None or not key:
            return gw.expired(request)
        async with gw.pool.acquire() as conn:
            again = await GatewayStore(conn).submissions.reference_of(key) is not None
        if not again and (wait := gw.limits.send(client)):  # a double click is not counted
            return gw.too_many(request, wait)
        try:
            sent = await send(
                gw.pool,
                token=token,
                form_key=key,
                names=gw.names,
                organisation=gw.settings.gateway_public_org,
                practices=gw.practices,
                scheme=gw.settings.gateway_scheme_name,
            )
        except NotReady:
            return gw.expired(request)
        if not sent.new:
            log.info("resubmission", event_id=event_id_for(key))
        return RedirectResponse("/refer/sent", 303)

    async def sent(request: Request) -> Response:
        found = await gw.draft(request)
        if found is None or found[1].reference is None:
            return gw.expired(request)
        page = gw.page(
            request,
            "sent.html",
            "Referral sent",
            reference=found[1].reference,
            for_self=domain.for_self(found[1].answers),
        )
        # the relay is woken once this page has been served (the page never waits on the
        # broker); a browser that never comes here waits for the relay's safety poll
        page.background = BackgroundTask(gw.wake)
        return page

    async def too_large(scope: dict[str, Any], receive: Any, send_: Any) -> None:
        if api.is_api(scope["path"]):
            await api.too_large()(scope, receive, send_)
            return
        await gw.too_large(Request(scope, receive))(scope, receive, send_)

    async def failed(request: Request, exc: Exception) -> Response:
        log.error("page_failed", error=type(exc).__name__)  # never the exception's text
        if api.is_api(request.url.path):
            return api.failed()
        return gw.page(
            request,
            "refused.html",
            "Sorry, there is a problem with the service",
            500,
            message=(
                "Try again later. If you sent a referral and saw its reference, it was sent.",
            ),
        )

    app = Starlette(
        exception_handlers={500: failed},
        routes=[
            Route("/", home),
            Route("/refer", start, methods=["GET", "POST"]),
            Route("/refer/urgent-help", urgent),
            Route("/refer/check", check),
            Route("/refer/send", submit, methods=["POST"]),
            Route("/refer/sent", sent),
            Route("/refer/{slug}", ask, methods=["GET", "POST"]),
            *status_routes(gw),
            *pro_routes(gw),
            *api.api_routes(gw),
            Mount("/assets", StaticFiles(directory=HERE / "static" / "nhsuk"), name="assets"),
            Mount("/own", StaticFiles(directory=HERE / "static" / "own"), name="own"),
        ],
    )
    ClientAuth(gw.pool, gw.settings).install(app)
    people = guard.Guard(app, too_large)
    from .fhir import web as fhir_web

    systems = fhir_web.routes(gw, gw.authenticate)

    async def door(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Systems' FHIR requests to the FHIR door, everything else to the people's."""
        if scope["type"] == "http" and fhir_web.is_fhir_path(scope["path"]):
            await systems(scope, receive, send)
        else:
            await people(scope, receive, send)

    return door  # type: ignore[return-value]


def _rows(gw: Gateway, answers: dict[str, Any]) -> list[tuple[str, list[str], str]]:
    practice = gw.practices.get(answers["practice"])
    born = date.fromisoformat(answers["date_of_birth"])
    contact = [domain.CONTACT_IN_PLAIN_WORDS[domain.ContactPreference(answers["preferred"])]]
    contact += [v for v in (answers.get("phone"), answers.get("email")) if v]
    nhs = answers.get("nhs_number") or ""
    return [
        ("Who", ["Myself" if domain.for_self(answers) else "Someone I care for"], "who"),
        ("Name", [f"{answers['given_name']} {answers['family_name']}"], "name"),
        ("Date of birth", [f"{born:%-d %B %Y}"], "date-of-birth"),
        ("NHS number", [f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if nhs else "Not known"], "nhs-number"),
        ("GP practice", [f"{practice.name}, {practice.postcode}" if practice else ""], "gp"),
        ("Help with", [domain.NEEDS_IN_PLAIN_WORDS[Need(n)] for n in answers["needs"]], "needs"),
        ("Contact", contact, "contact"),
        ("Adjustments", [answers.get("adjustments") or "None"], "adjustments"),
        ("Agreement", ["Agreed to be referred"], "consent"),
    ]
