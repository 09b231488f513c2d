"""Each consumer gets what it needs, no more: the table in
docs/architecture/minimal-events.md against the contract (each event's fields), the
services' declarations (who consumes what) and the handlers themselves (which fields each
one reads)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from contracts.events import (
    ACCEPTED_V1_UNTIL,
    EVENTS,
    Party,
    ReferralAccepted,
    ReferralAcceptedV2,
    ReferralContact,
    ReferralPlacement,
    ReferralRecorded,
)
from contracts.schema import example
from services.intake.domain import announcements
from services.registry import SERVICE_DEFS

DOC = Path(__file__).parents[2] / "docs" / "architecture" / "minimal-events.md"
REFERRER = "the referrer"
# what intake publishes about an acceptance
ANNOUNCED = (ReferralAcceptedV2, ReferralPlacement, ReferralContact, ReferralRecorded)
PERSONAL = {"nhs_number", "contact", "person_id", "gp_sharing"}


def table() -> dict[str, dict[str, set[str]]]:
    """event -> consumer -> fields, from the field-by-field table of the doc."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    section = DOC.read_text().split("## Field by field", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in EVENTS and cells[2] and cells[3]:
            out[cells[0]][cells[1]].add(cells[2])
    return out


def consumers(event_type: str) -> list[str]:
    return [name for name, svc in SERVICE_DEFS.items() if event_type in svc.routes]


def fields_read(service: str, event_type: str) -> set[str]:
    """The fields of the event's data the service's handler reads: every ``data.<field>``
    in its body. It must use the data only that way (never hand it on whole), or this
    could not vouch for it."""
    handler = SERVICE_DEFS[service].routes[event_type].handler
    handler = getattr(inspect.getmodule(handler), handler.__name__)  # unwrapped
    tree = ast.parse(textwrap.dedent(inspect.getsource(handler)))
    func = tree.body[0]
    assert isinstance(func, ast.AsyncFunctionDef)
    param = func.args.args[2].arg
    read, bare = set(), 0
    parents = {child: node for node in ast.walk(func) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and node.id == param and node is not func.args.args[2]:
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute):
                read.add(parent.attr)
            else:
                bare += 1
    assert bare == 0, f"{service} hands {event_type}'s data on whole"
    return read


def test_the_table_names_every_field_of_every_announced_event_and_nothing_else():
    doc = table()
    for model in ANNOUNCED:
        listed = set().union(*doc[model.TYPE].values())
        assert listed == set(model.model_fields), model.TYPE


@pytest.mark.parametrize("model", ANNOUNCED, ids=lambda m: m.TYPE)
def test_each_consumer_reads_exactly_the_fields_the_table_gives_it(model):
    doc = table()[model.TYPE]
    services = consumers(model.TYPE)
    expected = set(doc) - {REFERRER}
    assert set(services) == expected, "the table's consumers are the services that route it"
    for service in services:
        assert fields_read(service, model.TYPE) == doc[service], service
    # only the answer goes to an organisation; the rest are internal, one service each
    if Party.REFERRER in EVENTS[model.TYPE].parties:
        assert REFERRER in doc
    else:
        assert EVENTS[model.TYPE].parties == () and len(services) == 1


def test_person_fields_reach_only_the_service_that_needs_them():
    reaching: dict[str, set[str]] = defaultdict(set)
    for model in ANNOUNCED:
        for field in PERSONAL & set(model.model_fields):
            reaching[field] |= set(consumers(model.TYPE))
            assert Party.REFERRER not in EVENTS[model.TYPE].parties, (model.TYPE, field)
    assert reaching == {
        "contact": {"notify"},
        "nhs_number": {"outcomes"},
        "gp_sharing": {"outcomes"},
        "person_id": {"triage", "outcomes"},
    }


def test_no_service_consumes_the_deprecated_v1():
    assert consumers(ReferralAccepted.TYPE) == []
    assert "referral.accepted.v1" in EVENTS  # still published to integrators, for now


def accepted_v1(**data) -> ReferralAccepted:
    return ReferralAccepted.model_validate({**example("referral.accepted.v1")["data"], **data})


def test_intake_announces_each_consumer_its_own_event_until_v1_ends():
    a = accepted_v1()
    before = announcements(a, ACCEPTED_V1_UNTIL)
    after = announcements(a, ACCEPTED_V1_UNTIL + timedelta(days=1))
    assert [e.TYPE for e in before] == [ReferralAccepted.TYPE] + [m.TYPE for m in ANNOUNCED]
    assert [e.TYPE for e in after] == [m.TYPE for m in ANNOUNCED]
    v2, placement, contact, recorded = after
    body = v2.model_dump_json()
    for value in (a.nhs_number, a.contact.phone, str(a.person_id)):
        assert value not in body
    assert placement.nhs_number_known is True and "nhs_number" not in placement.model_dump()
    assert contact.contact == a.contact and recorded.nhs_number == a.nhs_number
    assert recorded.gp_sharing == a.gp_sharing and placement.person_id == a.person_id
    assert a.nhs_number not in contact.model_dump_json()
    assert a.contact.phone not in recorded.model_dump_json()
    # every referral's events agree on which referral and when
    assert {(e.referral_id, e.accepted_at) for e in after} == {(a.referral_id, a.accepted_at)}


def test_without_an_nhs_number_triage_is_told_it_is_unknown():
    a = accepted_v1(nhs_number=None)
    _, placement, _, recorded = announcements(a, date(2028, 1, 1))
    assert placement.nhs_number_known is False and recorded.nhs_number is None


def test_a_referral_without_a_person_id_is_not_announced():
    with pytest.raises(ValueError):
        announcements(accepted_v1(person_id=None), date(2028, 1, 1))


@pytest.mark.parametrize(
    ("event_type", "extra"),
    [
        ("referral.accepted.v2", {"nhs_number": "9990000018"}),
        ("referral.accepted.v2", {"person_id": "6f1d2c3b-4a59-4e68-8d7c-6b5a49382716"}),
        ("referral.placement.v1", {"nhs_number": "9990000018"}),
        ("referral.placement.v1", {"contact": {"preferred": "phone", "phone": "07700 900123"}}),
        ("referral.contact.v1", {"nhs_number": "9990000018"}),
        ("referral.recorded.v1", {"contact": {"preferred": "phone", "phone": "07700 900123"}}),
    ],
)
def test_an_event_carrying_a_field_its_consumer_must_not_get_is_refused(event_type, extra):
    from pydantic import ValidationError

    from contracts.events import parse_event

    envelope = example(event_type)
    envelope["data"].update(extra)
    with pytest.raises(ValidationError) as refused:
        parse_event(EVENTS[event_type].model, envelope)
    assert {e["type"] for e in refused.value.errors()} == {"extra_forbidden"}
