"""The person's rights, as pure rules: what each service exports, erases and keeps (and on
which ground), the answer given late, the GP correction, and the document."""

from __future__ import annotations

import os
import stat
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts.enums import WritebackFact
from contracts.events import SubjectAction, SubjectAnswered, SubjectItem, SubjectRequested
from contracts.nhs import unique_synthetic_nhs_number
from services.intake import rights as intake
from services.notify import rights as notify
from services.ops import subject as ops
from services.outcomes import rights as outcomes
from services.runtime import subject
from services.triage import rights as triage

NOW = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
RID = uuid.UUID("0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30")


def req(action=SubjectAction.ACCESS, **data) -> SubjectRequested:
    data.setdefault("referral_ids", [RID])
    return SubjectRequested(
        request_id=uuid.uuid4(), action=action, reply_by=NOW + timedelta(seconds=30), **data
    )


def test_a_request_names_the_person_by_referral_or_by_nhs_number_and_birth_date_together():
    with pytest.raises(ValidationError, match="needs referral_ids"):
        req(SubjectAction.ERASE, referral_ids=[])
    with pytest.raises(ValidationError, match="find needs"):
        req(SubjectAction.FIND, referral_ids=[], nhs_number=unique_synthetic_nhs_number())
    with pytest.raises(ValidationError, match="go with rectify"):
        req(SubjectAction.RECTIFY)
    with pytest.raises(ValidationError, match="go with rectify"):
        req(SubjectAction.ERASE, new_date_of_birth=date(1980, 1, 1))
    with pytest.raises(ValidationError):
        req(SubjectAction.RECTIFY, new_nhs_number="1234567890")  # fails modulus 11
    found = req(
        SubjectAction.FIND,
        referral_ids=[],
        nhs_number=unique_synthetic_nhs_number(),
        date_of_birth=date(1980, 1, 1),
    )
    assert found.referral_ids == []


def test_what_is_kept_on_erasure_names_its_ground():
    with pytest.raises(ValueError, match="name the ground"):
        subject.Holding(what="x", source="y", kept="z", erase=False)
    done, kept = subject.erasure(intake.HOLDINGS)
    assert done == [f"erased: {intake.CONTACT.what}"]
    assert [k.what for k in kept] == [intake.REFERRAL.what, intake.SUBMISSIONS.what]
    assert "Art. 17(3)(c)" in kept[0].ground


@pytest.mark.parametrize(
    ("module", "erased"),
    [
        (intake, {"CONTACT"}),
        (notify, {"CONTACT", "MESSAGES"}),
        (outcomes, set()),  # the record of care
        (triage, set()),
    ],
)
def test_each_service_erases_what_it_may_and_keeps_the_rest_on_a_ground(module, erased):
    names = {n for n in dir(module) if isinstance(getattr(module, n), subject.Holding)}
    assert {n for n in names if getattr(module, n).erase} == erased
    for holding in module.HOLDINGS:
        assert holding.what and holding.source and holding.kept
        assert holding.erase or holding.ground in (subject.HEALTH_RECORD, subject.NO_PERSONAL_DATA)


def test_a_late_answer_carries_no_personal_data():
    r = req()
    item = SubjectItem(what="w", source="s", kept="k", referral_id=RID, content={"phone": "1"})
    on_time = subject.answer(r, "notify", NOW, referral_ids=[RID], items=[item])
    assert on_time.items == [item] and not on_time.late
    late = subject.answer(
        r, "notify", NOW + timedelta(seconds=31), referral_ids=[RID], items=[item]
    )
    assert late.late and late.items == [] and late.referral_ids == []


def test_intake_exports_the_referral_and_its_contact_details_as_their_own_items():
    sent = {
        "person": {
            "family_name": "Okafor",
            "contact": {"preferred": "phone", "phone": "07700900123"},
        },
        "needs": ["loneliness"],
    }
    referrals = [
        {"referral_id": RID, "sender": "A81001", "sender_reference": "R-1", "submission": sent}
    ]
    items = intake.export(referrals, [])
    assert [i.what for i in items] == [intake.REFERRAL.what, intake.CONTACT.what]
    assert "contact" not in items[0].content["as sent"]["person"]
    assert items[1].content["phone"] == "07700900123"


def test_the_gp_is_told_of_a_corrected_nhs_number_only_if_it_had_entries_under_the_old():
    right = unique_synthetic_nhs_number()
    assert outcomes.gp_told("9434765919", right, "A81001", written=True)
    assert not outcomes.gp_told("9434765919", right, "A81001", written=False)
    assert not outcomes.gp_told(right, right, "A81001", written=True)
    assert not outcomes.gp_told(None, right, "A81001", written=True)
    told = outcomes.correction(RID, "A81001", right, NOW)
    assert told.fact is WritebackFact.CORRECTION
    assert told.codes == []  # no code is invented for a correction of demographics
    assert told.nhs_number == right and str(RID) in told.summary


def test_the_audit_records_of_an_answer_are_ids_only():
    r = req(SubjectAction.ERASE)
    answered = subject.answer(r, "intake", NOW, referral_ids=[RID])
    [record] = subject.audit_records("intake", r, answered, "LINKWELL-OPS")
    assert record.action.value == "erasure" and record.referral_id == RID
    assert record.detail == {"request_id": str(r.request_id), "subject_action": "erase"}


def _answered(service: str, r: SubjectRequested, **data) -> SubjectAnswered:
    return subject.answer(r, service, NOW, **data)


def test_the_document_has_a_part_per_service_says_who_did_not_answer_and_escapes_values():
    r = req()
    item = SubjectItem(
        what="How to reach you",
        source="your referrer",
        kept="until erased",
        referral_id=RID,
        content={
            "address": "<script>alert(1)</script>",
            "nested": {"k": "v"},
            "needs": ["social_isolation", "debt"],
        },
    )
    got = ops.Collected(r, ["intake", "notify", "outcomes", "triage"])
    got.answers["notify"] = _answered("notify", r, referral_ids=[RID], items=[item])
    got.answers["intake"] = _answered("intake", r)
    doc = ops.document(got, NOW)
    assert "# Your data held by Linkwell" in doc
    assert "## Messages and contact details (notify)" in doc
    assert "### How to reach you" in doc
    assert "where it came from: your referrer" in doc and "how long it is kept: until erased" in doc
    assert "<script>" not in doc and "&lt;script&gt;" in doc
    assert "- needs: social isolation, debt" in doc  # plain words, not JSON
    assert "Not answered:** outcomes, triage" in doc
    assert "Holds nothing about you." in doc  # intake, here
    assert got.missing == ["outcomes", "triage"]


def test_the_export_file_is_readable_by_its_owner_alone(tmp_path):
    path = tmp_path / "export.md"
    path.write_text("old")
    os.chmod(path, 0o644)
    ops.write_private(path, "new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == "new"


def test_every_service_holding_personal_data_answers():
    assert ops.answering_services() == ["intake", "notify", "outcomes", "triage"]


def test_only_the_administrator_may_publish_a_request_and_each_service_its_answers():
    import json
    import re
    from pathlib import Path

    defs = json.loads((Path(__file__).parents[2] / "deploy/rabbitmq/definitions.json").read_text())
    key = "subject.requested.v1"
    answer = f"subject.answered.v1.{uuid.uuid4()}"
    for p in defs["topic_permissions"]:
        if p["exchange"].endswith(".inbound"):
            assert not re.search(p["write"], key), p["user"]
        if p["exchange"].endswith(".events") and p["user"] in {
            f"linkwell-{s}" for s in ops.answering_services()
        }:
            assert re.search(p["write"], answer), p["user"]
    admins = [u["name"] for u in defs["users"] if "administrator" in u.get("tags", "")]
    assert admins  # the operator: every permission (its own, not a topic grant)
