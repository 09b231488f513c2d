"""Sending a form: in one transaction, the submission (once per form key), its
``referral.submitted.v1`` in the outbox for ``<ns>.inbound``, and the draft emptied. The
page says "sent" only after that commit, so from then on the referral cannot be lost:
the relay publishes it (as the gateway's broker user, which the broker vouches for) and
intake drops a second copy of the same event id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from contracts.envelope import org_source
from services.runtime.logs import get_logger
from services.runtime.names import Names
from services.runtime.outbox import enqueue

from . import domain
from .practices import Practices
from .store import GatewayStore, check_digest

log = get_logger(__name__)


@dataclass(frozen=True)
class Sent:
    reference: str
    new: bool  # False: this form was sent before (a double click, a resubmission)


class NotReady(Exception):
    """The draft is gone (expired) or not finished: nothing was sent."""


def event_id_for(form_key: str) -> str:
    """The submission's event id, derived from its form key: the same form is the same
    event, however often it is posted."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:gateway:form:{form_key}"))


async def send(
    pool: asyncpg.Pool,
    *,
    token: str,
    form_key: str,
    names: Names,
    organisation: str,
    practices: Practices,
    scheme: str,
) -> Sent:
    async with pool.acquire() as conn, conn.transaction():
        store = GatewayStore(conn)
        before = await store.submissions.reference_of(form_key)
        if before is not None:
            return Sent(before, new=False)
        draft = await store.drafts.get(token, lock=True)
        if draft is None or draft.form_key != form_key:
            raise NotReady("no such draft")
        if draft.reference is not None:
            return Sent(draft.reference, new=False)
        if domain.next_unanswered(draft.answers) is not None or domain.in_crisis(draft.answers):
            raise NotReady("not finished")
        practice = practices.get(draft.answers["practice"])
        if practice is None:
            raise NotReady("practice no longer listed")
        reference = domain.new_reference()
        data = domain.referral(draft.answers, reference, practice, scheme, datetime.now(UTC))
        event = data.envelope(source=org_source(organisation), event_id=event_id_for(form_key))
        check = check_digest(reference, draft.answers["date_of_birth"])
        if not await store.submissions.add(reference, form_key, event.id, organisation, check):
            raise NotReady("sent concurrently")  # the form's other post committed first
        await enqueue(conn, event, names.inbound, data.routing_key())
        await store.drafts.sent(token, reference)
    log.info("referral_sent", event_id=event.id, organisation=organisation)
    return Sent(reference, new=True)
