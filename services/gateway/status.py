"""The status page (a referral's reference and the date of birth of the person referred
show where it stands, in plain words) and withdrawing a referral from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.runtime.audit import AuditAction, AuditRecipientKind
from services.runtime.logs import get_logger

from . import domain
from .store import GatewayStore, check_digest
from .withdraw import can_withdraw, withdraw

if TYPE_CHECKING:
    from .web import Gateway

log = get_logger(__name__)


def status_routes(gw: Gateway) -> list[Route]:
    async def status(request: Request) -> Response:
        if request.method == "GET":
            return gw.page(request, "status.html", "Check a referral", dob=["", "", ""])
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        client = request.client.host if request.client else "unknown"
        reference = str(form.get("reference", ""))[:20].strip().upper()
        values, errors = domain.check("date-of-birth", form, {})
        if not reference:
            errors = {"reference": "Enter the reference", **errors}
        if errors:
            return gw.page(
                request,
                "status.html",
                "Check a referral",
                400,
                errors=errors,
                reference=reference,
                dob=domain.dob_fields({}, form),
            )
        wait = gw.limits.send(client)
        if wait:
            return gw.too_many(request, wait)
        async with gw.pool.acquire() as conn, conn.transaction():
            standing = await GatewayStore(conn).submissions.standing(
                domain.canonical_reference(reference),
                check_digest(reference, values["date_of_birth"]),
            )
            if standing is not None:  # where a referral stands, shown to the person
                await gw.record(
                    conn,
                    AuditAction.PAGE_VIEW,
                    AuditRecipientKind.PERSON,
                    None,
                    referral_id=standing.referral_id,
                    detail={"page": "status"},
                )
        if standing is not None:
            gw.wake()
        if standing is None:
            log.info("status_not_found")
            return gw.page(
                request,
                "status.html",
                "Check a referral",
                404,
                not_found=True,
                reference=reference,
                dob=domain.dob_fields({}, form),
            )
        heading, meaning = domain.in_plain_words(standing.step)
        return gw.page(
            request,
            "status.html",
            f"Referral {standing.reference}",
            standing=standing,
            heading=heading,
            meaning=meaning,
            sent_on=f"{standing.submitted_at:%-d %B %Y}",
            withdrawable=can_withdraw(standing),
            dob=domain.dob_fields(values),
        )

    async def withdrawal(request: Request) -> Response:
        form = await gw.form(request)
        if isinstance(form, Response):
            return form
        reference = domain.canonical_reference(str(form.get("reference", ""))[:20].strip().upper())
        values, errors = domain.check("date-of-birth", form, {})
        if errors:
            return gw.expired(request)
        if form.get("confirm") != "yes":  # the question first; nothing is looked up yet
            return gw.page(
                request,
                "withdraw.html",
                "Withdraw the referral",
                reference=reference,
                dob=domain.dob_fields(values),
                back="/status",
            )
        client = request.client.host if request.client else "unknown"
        wait = gw.limits.send(client)
        if wait:
            return gw.too_many(request, wait)
        check = check_digest(reference, values["date_of_birth"])
        if not await withdraw(gw.pool, gw.names, reference, check):
            return gw.refused(
                request,
                409,
                "not_withdrawable",
                "This referral cannot be withdrawn here",
                "It may have finished already, or not have been accepted yet.",
                "Check where it is, or contact your GP practice.",
                again="/status",
                again_text="Check a referral",
            )
        page = gw.page(
            request, "withdraw.html", "Referral withdrawn", done=True, reference=reference
        )
        page.background = BackgroundTask(gw.wake)
        return page

    return [
        Route("/status", status, methods=["GET", "POST"]),
        Route("/status/withdraw", withdrawal, methods=["POST"]),
    ]
