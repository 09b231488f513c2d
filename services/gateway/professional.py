""" "Make a referral", for professionals at organisations the gateway serves: an invitation
sets a password, a sign-in makes a session (server side, ended by signing out, by being
idle, or by age), three questions and check your answers send a referral as the
organisation, and the organisation's referrals are listed with each one's step in plain
words and its Gravity task status, and can be withdrawn.

The public pages' pieces are reused: ``Gateway.form`` (rate limits, size, CSRF,
honeypot), its refusal pages, its cookies (HttpOnly, SameSite, Secure as configured) and
the security headers of ``guard.Guard``. Log lines carry account ids and event ids only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from contracts.enums import Need
from services.runtime.audit import AuditAction
from services.runtime.logs import get_logger

from . import accounts, domain, pro_actions, pro_domain
from .ratelimit import Window
from .store import Account, GatewayStore
from .submit import NotReady
from .withdraw import can_withdraw

if TYPE_CHECKING:
    from .web import Gateway

log = get_logger(__name__)
SESSION_COOKIE = "lw_session"
DRAFT_COOKIE = "lw_pro_draft"
THROTTLE_SECONDS = 15 * 60
ENDED = {
    "signed_out": "You have signed out.",
    "idle": "You were signed out because you had not used the service for a while.",
    "expired": "You were signed out because you signed in a long time ago.",
}
Signed = tuple[str, Account]


def pro_routes(gw: Gateway) -> list[Route]:
    s = gw.settings
    lifetimes = accounts.Lifetimes(
        timedelta(seconds=s.gateway_session_idle_seconds),
        timedelta(seconds=s.gateway_session_max_seconds),
    )
    per_account = Window(s.gateway_sign_ins_per_account, THROTTLE_SECONDS)
    per_client = Window(s.gateway_sign_ins_per_client, THROTTLE_SECONDS)
    served = set(s.gateway_organisations)

    def page(request: Request, name: str, title: str, status: int = 200, **ctx: Any) -> Response:
        return gw.page(request, f"pro/{name}.html", title, status, **ctx)

    def signed_out(reason: str) -> Response:
        response = RedirectResponse(f"/pro/sign-in?ended={reason}", 303)
        gw.drop_cookie(response, SESSION_COOKIE)
        return response

    async def signed_in(request: Request) -> Signed | Response:
        """The session's token and account, or the way to the sign-in page."""
        token = gw.read_cookie(request, SESSION_COOKIE)
        if not token or len(token) > 100:
            return RedirectResponse("/pro/sign-in", 303)
        async with gw.pool.acquire() as conn:
            store = GatewayStore(conn).accounts
            found = await store.session(accounts.digest(token))
            if found is None:
                return signed_out("signed_out")
            now = datetime.now(UTC)
            ended = accounts.session_ended(
                found.created_at, found.seen_at, found.ended_at, now, lifetimes
            )
            account = found.account
            if ended is None and (account.disabled_at or account.organisation not in served):
                ended = "signed_out"
            if ended is not None:
                await store.end(accounts.digest(token))
                log.info("session_ended", account_id=str(account.id), why=ended)
                return signed_out(ended)
            await store.seen(accounts.digest(token))
        return token, account

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def throttled(request: Request, wait: int) -> Response:
        minutes = max(1, (wait + 59) // 60)
        response = gw.refused(
            request,
            429,
            "sign_in_throttled",
            "Too many attempts to sign in",
            "For your security, signing in is paused after several attempts.",
            f"Wait {minutes} {'minute' if minutes == 1 else 'minutes'} and try again.",
            again="/pro/sign-in",
            again_text="Sign in",
        )
        response.headers["retry-after"] = str(wait)
        return response

    # ------------------------------------------------------------ accounts

    async def home(request: Request) -> Response:
        return RedirectResponse("/pro/referrals", 303)

    async def sign_in(request: Request) -> Response:
        ended = ENDED.get(request.query_params.get("ended", ""))
        ready = request.query_params.get("ready") == "1"
        if request.method == "GET":
            return page(request, "sign-in", "Sign in", ended=ended, ready=ready)
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        email = accounts.normalise_email(str(form.get("email", "")))
        password = str(form.get("password", ""))
        if not email or not password:
            errors = {"email": "Enter your email address and password"}
            return page(request, "sign-in", "Sign in", 400, errors=errors, email=email)
        key = accounts.digest(email).hex()
        if not per_client.allow(client_of(request)):
            return throttled(request, per_client.retry_after(client_of(request)))
        if not per_account.allow(key):
            return throttled(request, per_account.retry_after(key))
        async with gw.pool.acquire() as conn:
            account = await GatewayStore(conn).accounts.by_email(email)
        stored = account.password_hash if account else None
        usable = account is not None and not account.disabled_at and account.organisation in served
        if not accounts.password_matches(stored, password) or not usable or account is None:
            log.info("sign_in_refused")
            errors = {"email": "Enter a correct email address and password"}
            return page(request, "sign-in", "Sign in", 401, errors=errors, email=email)
        token = accounts.new_token()
        async with gw.pool.acquire() as conn, conn.transaction():
            store = GatewayStore(conn).accounts
            await store.signed_in(account.id, accounts.digest(token))
            if stored and accounts.needs_rehash(stored):
                await store.rehash(account.id, accounts.hash_password(password))
            await gw.audit(conn, AuditAction.SIGN_IN, account, {"page": "pro"})
        gw.wake()
        log.info("signed_in", account_id=str(account.id))
        response = RedirectResponse("/pro/referrals", 303)
        gw._cookie(response, SESSION_COOKIE, token, max_age=None)
        return response

    async def invitation(request: Request) -> Response:
        token = request.path_params["token"][:100]
        async with gw.pool.acquire() as conn:
            found = await GatewayStore(conn).accounts.invitation(accounts.digest(token))
        now = datetime.now(UTC)
        if found is None or not accounts.invitation_usable(found.expires_at, found.used_at, now):
            return gw.refused(
                request,
                410,
                "invitation_unusable",
                "This invitation link cannot be used",
                "It has been used already, or it is too old.",
                "Ask your administrator for a new invitation.",
            )
        account = found.account
        title = "Set your password"
        if request.method == "GET":
            return page(request, "invitation", title, invited=account, token=token)
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        password, again = str(form.get("password", "")), str(form.get("again", ""))
        problem = accounts.password_problem(password, again, account.email)
        if problem:
            errors = {"password": problem}
            return page(
                request, "invitation", title, 400, errors=errors, invited=account, token=token
            )
        hashed = accounts.hash_password(password)
        async with gw.pool.acquire() as conn, conn.transaction():
            store = GatewayStore(conn).accounts
            again = await store.invitation(accounts.digest(token), lock=True)
            if again is None or not accounts.invitation_usable(
                again.expires_at, again.used_at, datetime.now(UTC)
            ):
                return gw.expired(request)  # used meanwhile
            await store.accept(accounts.digest(token), account.id, hashed)
        log.info("password_set", account_id=str(account.id))
        return RedirectResponse("/pro/sign-in?ready=1", 303)

    async def sign_out(request: Request) -> Response:
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        token = gw.read_cookie(request, SESSION_COOKIE)
        if token and len(token) <= 100:
            async with gw.pool.acquire() as conn:
                await GatewayStore(conn).accounts.end(accounts.digest(token))
        log.info("signed_out")
        return signed_out("signed_out")

    # ------------------------------------------------------------ referrals

    async def referrals(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        _, account = who
        async with gw.pool.acquire() as conn, conn.transaction():
            listed = await GatewayStore(conn).submissions.of_organisation(account.organisation)
            # the page shows the organisation's referrals: on the trail before it is served
            detail = {"page": "pro_referrals", "shown": len(listed)}
            await gw.audit(conn, AuditAction.PAGE_VIEW, account, detail)
        gw.wake()
        shown = [
            {
                "reference": item.standing.reference,
                "sent_on": f"{item.standing.submitted_at:%-d %B %Y}",
                "sent_by": item.sent_by,
                "step": domain.in_plain_words(item.standing.step),
                "task_status": pro_domain.task_status_words(item.task_status),
                "withdrawable": can_withdraw(item.standing),
                "withdrawing": item.standing.withdrawn_at is not None
                and item.standing.step != "withdrawn",
            }
            for item in listed
        ]
        return page(
            request, "referrals", "Your organisation's referrals", account=account, referrals=shown
        )

    async def draft_of(request: Request, account: Account) -> tuple[str, Any] | None:
        token = gw.read_cookie(request, DRAFT_COOKIE)
        if not token or len(token) > 100:
            return None
        async with gw.pool.acquire() as conn:
            found = await GatewayStore(conn).drafts.owned(token, account.id)
        return (token, found) if found is not None else None

    async def start(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        token, key = accounts.new_token(), accounts.new_token()
        async with gw.pool.acquire() as conn:
            await GatewayStore(conn).drafts.create_for(
                token, key, gw.settings.gateway_draft_minutes, who[1].id
            )
        response = RedirectResponse("/pro/refer/person", 303)
        gw._cookie(response, DRAFT_COOKIE, token, max_age=None)
        return response

    def question(
        request: Request,
        slug: str,
        account: Account,
        answers: dict[str, Any],
        status: int = 200,
        **ctx: Any,
    ) -> Response:
        index = pro_domain.SLUGS.index(slug)
        return page(
            request,
            slug,
            pro_domain.TITLES[slug],
            status,
            account=account,
            answers=answers,
            back="/pro/referrals" if index == 0 else f"/pro/refer/{pro_domain.SLUGS[index - 1]}",
            dob=domain.dob_fields(answers, ctx.pop("form", None)),
            practices=gw.practices.all,
            needs=[(n.value, domain.NEEDS_IN_PLAIN_WORDS[n]) for n in Need],
            contacts=[(c.value, t) for c, t in domain.CONTACT_IN_PLAIN_WORDS.items()],
            methods=list(pro_domain.CONSENT_METHODS.items()),
            page_number=index + 1,
            **ctx,
        )

    async def ask(request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in pro_domain.PAGES:
            return gw.refused(request, 404, "not_found", "Page not found", "Check the address.")
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        _, account = who
        found = await draft_of(request, account)
        if found is None or found[1].reference is not None:
            return RedirectResponse("/pro/referrals", 303)
        token, draft = found
        if request.method == "GET":
            return question(request, slug, account, draft.answers)
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        values, errors = pro_domain.check(slug, form, {p.code: p for p in gw.practices.all})
        if errors:
            merged = {**draft.answers, **form}
            return question(request, slug, account, merged, 400, errors=errors, form=form)
        async with gw.pool.acquire() as conn:
            await GatewayStore(conn).drafts.answer(token, values, gw.settings.gateway_draft_minutes)
        following = pro_domain.next_unanswered({**draft.answers, **values})
        return RedirectResponse(f"/pro/refer/{following or 'check'}", 303)

    async def check(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        found = await draft_of(request, who[1])
        if found is None or found[1].reference is not None:
            return RedirectResponse("/pro/referrals", 303)
        answers = found[1].answers
        missing = pro_domain.next_unanswered(answers)
        if missing is not None:
            return RedirectResponse(f"/pro/refer/{missing}", 303)
        rows = pro_domain.rows(answers, gw.practices.get(answers["practice"]))
        return page(
            request,
            "check",
            pro_domain.TITLES["check"],
            account=who[1],
            rows=rows,
            form_key=found[1].form_key,
            back="/pro/refer/consent",
        )

    async def submit(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        token, key = gw.read_cookie(request, DRAFT_COOKIE), str(form.get("key", ""))
        if not token or not key:
            return gw.expired(request)
        try:
            await pro_actions.send(
                gw.pool,
                token=token,
                form_key=key,
                account=who[1],
                names=gw.names,
                practices=gw.practices,
            )
        except NotReady:
            return gw.expired(request)
        return RedirectResponse("/pro/refer/sent", 303)

    async def sent(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        found = await draft_of(request, who[1])
        if found is None or found[1].reference is None:
            return RedirectResponse("/pro/referrals", 303)
        response = page(
            request, "sent", "Referral sent", account=who[1], reference=found[1].reference
        )
        response.background = BackgroundTask(gw.wake)
        return response

    async def withdrawal(request: Request) -> Response:
        who = await signed_in(request)
        if isinstance(who, Response):
            return who
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        reference = domain.canonical_reference(str(form.get("reference", ""))[:20])
        if form.get("confirm") != "yes":
            return page(
                request,
                "withdraw",
                "Withdraw the referral",
                account=who[1],
                reference=reference,
                back="/pro/referrals",
            )
        if not await pro_actions.withdraw(gw.pool, gw.names, reference, who[1]):
            return gw.refused(
                request,
                409,
                "not_withdrawable",
                "This referral cannot be withdrawn",
                "It may have finished already, or not have been accepted yet.",
                again="/pro/referrals",
                again_text="Your organisation's referrals",
            )
        response = page(
            request,
            "withdraw",
            "Referral withdrawn",
            account=who[1],
            reference=reference,
            done=True,
        )
        response.background = BackgroundTask(gw.wake)
        return response

    return [
        Route("/pro", home),
        Route("/pro/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/pro/sign-out", sign_out, methods=["POST"]),
        Route("/pro/invitation/{token}", invitation, methods=["GET", "POST"]),
        Route("/pro/referrals", referrals),
        Route("/pro/refer", start, methods=["POST"]),
        Route("/pro/refer/check", check),
        Route("/pro/refer/send", submit, methods=["POST"]),
        Route("/pro/refer/sent", sent),
        Route("/pro/refer/{slug}", ask, methods=["GET", "POST"]),
        Route("/pro/withdraw", withdrawal, methods=["POST"]),
    ]
