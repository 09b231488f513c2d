"""What a professional's pages (and the administrator's invite command) change, each in
one transaction: an invitation; a referral sent (the submission, its
``referral.submitted.v1`` in the outbox for ``<ns>.inbound`` as the professional's
organisation, the draft emptied); a withdrawal (``referral.withdrawn.v1``, as that
organisation). The events are the ones an organisation's own system would send over
AMQP: its source, its sender reference, its referrer; nothing says which door."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from contracts.envelope import org_source
from services.runtime.logs import get_logger
from services.runtime.names import Names
from services.runtime.outbox import enqueue

from . import accounts, domain, pro_domain
from .practices import Practices
from .store import Account, GatewayStore, check_digest
from .submit import NotReady, Sent, event_id_for
from .withdraw import send_withdrawal

log = get_logger(__name__)


class NotServed(Exception):
    """The organisation is not one the gateway serves (LINKWELL_GATEWAY_ORGANISATIONS)."""


async def invite(
    pool: asyncpg.Pool,
    *,
    organisation: str,
    email: str,
    serves: tuple[str, ...],
    hours: int,
    organisation_name: str | None = None,
    agency_type: str | None = None,
    role: str | None = None,
) -> tuple[uuid.UUID, str]:
    """An account for ``email`` at ``organisation`` (made, or its password reset and its
    sessions ended) and a new one-time invitation: the account id and the token (only its
    digest is kept)."""
    if organisation not in serves:
        raise NotServed(organisation)
    email = accounts.normalise_email(email)
    if not accounts.email_ok(email):
        raise ValueError("not an email address")
    if agency_type is not None and agency_type not in pro_domain.AGENCY_TYPES:
        raise ValueError(f"agency type must be one of {', '.join(pro_domain.AGENCY_TYPES)}")
    token = accounts.new_token()
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn).accounts
        if not await store.organisation(organisation, organisation_name, agency_type):
            raise ValueError("first invitation for this organisation: give its name and type")
        account = await store.invite(organisation, email, role, accounts.digest(token), hours)
    log.info("invited", account_id=str(account))
    return account, token


async def send(
    pool: asyncpg.Pool,
    *,
    token: str,
    form_key: str,
    account: Account,
    names: Names,
    practices: Practices,
) -> Sent:
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn)
        before = await store.submissions.reference_of(form_key)
        if before is not None:
            return Sent(before, new=False)
        draft = await store.drafts.owned(token, account.id, lock=True)
        if draft is None or draft.form_key != form_key:
            raise NotReady("no such draft")
        if draft.reference is not None:
            return Sent(draft.reference, new=False)
        if pro_domain.next_unanswered(draft.answers) is not None:
            raise NotReady("not finished")
        practice = practices.get(draft.answers["practice"])
        if practice is None:
            raise NotReady("practice no longer listed")
        reference = domain.new_reference()
        data = pro_domain.referral(
            draft.answers,
            reference=reference,
            practice=practice,
            organisation_name=account.organisation_name,
            agency_type=account.agency_type,
            role=account.role,
            now=datetime.now(UTC),
        )
        event = data.envelope(
            source=org_source(account.organisation), event_id=event_id_for(form_key)
        )
        check = check_digest(reference, draft.answers["date_of_birth"])
        added = await store.submissions.add(
            reference, form_key, event.id, account.organisation, check, account.id
        )
        if not added:
            raise NotReady("sent concurrently")
        await enqueue(conn, event, names.inbound, data.routing_key())
        await store.drafts.sent(token, reference)
    log.info("referral_sent", event_id=event.id, account_id=str(account.id))
    return Sent(reference, new=True)


async def withdraw(pool: asyncpg.Pool, names: Names, reference: str, account: Account) -> bool:
    """True if the referral (one of the account's organisation's) is, now or already,
    being withdrawn; False if it is not theirs or cannot be."""
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn).submissions
        standing = await store.standing_in(reference, account.organisation, lock=True)
        done, event_id = await send_withdrawal(
            conn, standing, reference, names, "withdrawn by the referrer"
        )
    if event_id is not None:
        log.info("withdrawal_sent", event_id=event_id, account_id=str(account.id))
    return done
