"""The FHIR mapping and its rule layer, without I/O: the public examples read as the
contract's referral, and each rule's refusal (status, BaRS code, issue type, FHIRPath)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.gateway.fhir import mapping
from services.gateway.fhir.mapping import Refusal, Sender, Step
from services.gateway.practices import Practices
from services.gateway.settings import DEFAULT_PRACTICES

EXAMPLES = Path(__file__).parents[1] / "fhir_examples"
PRACTICES = Practices.load(DEFAULT_PRACTICES).get
RND = Sender("RND", "Emergency service", "hospital_discharge")
FOOD = Sender("Y02345", "Eastfield Food Bank", "vcse")


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def bars() -> dict[str, Any]:
    return example("bars/servicerequest-request-social-prescribing.json")


def resource(bundle: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def refused(fn: Any, body: Any, sender: Sender = RND) -> Refusal:
    with pytest.raises(Refusal) as caught:
        fn(body, sender, PRACTICES)
    return caught.value


def test_the_bars_example_reads_as_the_contracts_referral():
    inbound = mapping.from_message(bars(), RND, PRACTICES)
    referral = inbound.referral
    assert not inbound.cancel and inbound.sender_reference == "RND-SP-0001"
    assert referral.person.given_name == "Julie" and referral.person.family_name == "Jones"
    assert referral.person.nhs_number == "9434765919"
    assert (referral.registered_practice, referral.pcn) == ("A81001", "U12345")
    assert referral.consent.given and referral.consent.method == "verbal"
    assert referral.referrer.agency_type == "hospital_discharge"  # the API client's kind


def test_the_gravity_example_reads_as_the_contracts_referral():
    inbound = mapping.from_task(
        example("gravity/Task-requested-social-prescribing.json"), FOOD, PRACTICES
    )
    assert inbound.sender_reference == "Y02345-T-0001"
    assert [n.value for n in inbound.referral.needs] == ["housing"]
    assert inbound.referral.referrer.organisation_name == "Eastfield Food Bank"
    assert inbound.referral.person.contact.preferred == "phone"


def test_a_gravity_transaction_bundle_is_read_like_a_contained_service_request():
    task = example("gravity/Task-requested-social-prescribing.json")
    contained = task.pop("contained")
    for r in contained:
        r["id"] = r["id"]
    task["focus"] = {"reference": "ServiceRequest/sr"}
    task["requester"] = {"reference": "Organization/req"}
    contained[0]["subject"] = {"reference": "Patient/pat"}
    contained[0]["supportingInfo"] = [{"reference": "Consent/consent"}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": task}] + [{"resource": r} for r in contained],
    }
    assert mapping.from_task(bundle, FOOD, PRACTICES).sender_reference == "Y02345-T-0001"


def test_the_published_validation_example_is_refused_for_its_nhs_number():
    found = refused(mapping.from_message, example("bars/servicerequest-request.json"))
    assert (found.status, found.rec, found.issue) == (422, "REC_UNPROCESSABLE_ENTITY", "value")
    assert found.expression.startswith("Patient.identifier.where(system=")


def _change(path: str, value: Any) -> dict[str, Any]:
    body = bars()
    kind, _, element = path.partition(".")
    target = body if kind == "Bundle" else resource(body, kind)
    if value is None:
        target.pop(element)
    else:
        target[element] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "status", "rec", "issue", "expression"),
    [
        ("Bundle.type", "collection", 400, "REC_BAD_REQUEST", "invariant", "Bundle.type"),
        (
            "MessageHeader.eventCoding",
            {"system": mapping.BARS_EVENTS, "code": "booking-request"},
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "not-supported",
            "Bundle.entry[0].resource.eventCoding.code",
        ),
        (
            "MessageHeader.focus",
            [],
            400,
            "REC_BAD_REQUEST",
            "required",
            "Bundle.entry[0].resource.focus",
        ),
        (
            "ServiceRequest.status",
            "on-hold",
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "value",
            "ServiceRequest.status",
        ),
        (
            "ServiceRequest.reasonCode",
            None,
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "required",
            "ServiceRequest.reasonCode",
        ),
        (
            "ServiceRequest.reasonCode",
            [{"coding": [{"system": mapping.NEED_SYSTEM, "code": "spaceflight"}]}],
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "code-invalid",
            "ServiceRequest.reasonCode",
        ),
        (
            "Patient.generalPractitioner",
            None,
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "required",
            "Patient.generalPractitioner",
        ),
        (
            "Patient.birthDate",
            None,
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "required",
            "Patient.birthDate",
        ),
        ("Patient.birthDate", "1959-13-01", 400, "REC_BAD_REQUEST", "structure", None),
        ("Consent.status", "rejected", 422, "REC_UNPROCESSABLE_ENTITY", "value", "Consent.status"),
        (
            "Consent.category",
            [],
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "code-invalid",
            "Consent.category",
        ),
    ],
)
def test_each_rule_refuses_with_its_code_and_the_offending_element(
    path, value, status, rec, issue, expression
):
    found = refused(mapping.from_message, _change(path, value))
    assert (found.status, found.rec, found.issue) == (status, rec, issue), found
    if expression is not None:
        assert found.expression == expression
    else:
        assert found.expression.startswith("Bundle.entry[")


def test_an_unknown_practice_and_a_missing_consent_are_unprocessable():
    body = bars()
    for entry in body["entry"]:
        if entry["fullUrl"] == "urn:uuid:c8c21609-cb27-4958-8eb2-37c76f3def85":
            entry["resource"]["identifier"][0]["value"] = "B99999"
    assert refused(mapping.from_message, body).expression == "Patient.generalPractitioner"
    body = bars()
    body["entry"] = [e for e in body["entry"] if e["resource"]["resourceType"] != "Consent"]
    assert refused(mapping.from_message, body).diagnostics.startswith("the person's consent")


def test_another_organisations_message_is_forbidden():
    found = refused(mapping.from_message, bars(), FOOD)
    assert (found.status, found.rec) == (403, "REC_FORBIDDEN")


def test_unknown_resource_types_are_refused_not_raised():
    body = bars()
    body["entry"].append({"fullUrl": "urn:uuid:x", "resource": {"resourceType": "Spaceship"}})
    found = refused(mapping.from_message, body)
    assert (found.status, found.issue) == (400, "not-supported")
    assert refused(mapping.from_message, {"resourceType": "Patient"}).status == 400
    assert refused(mapping.from_message, ["not", "an", "object"]).status == 400


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"intent": "plan"}, "Task.intent"),
        ({"status": "accepted"}, "Task.status"),
        ({"code": {"coding": [{"system": mapping.TASK_CODE, "code": "approve"}]}}, "Task.code"),
        ({"focus": {"reference": "#nothing"}}, "Task.focus"),
    ],
)
def test_the_sdohcc_task_invariants(change, expression):
    task = example("gravity/Task-requested-social-prescribing.json")
    task.update(change)
    assert refused(mapping.from_task, task, FOOD).expression == expression


def test_a_revoked_service_request_is_a_cancellation():
    inbound = mapping.from_message(
        example("bars/servicerequest-request-revoked.json"), RND, PRACTICES
    )
    assert inbound.cancel and inbound.referral is None
    assert inbound.sender_reference == "RND-SP-0001"


def test_a_requesters_cancel_is_only_a_cancel():
    assert mapping.task_cancel([{"op": "replace", "path": "/status", "value": "cancelled"}])
    assert mapping.task_cancel({"resourceType": "Task", "status": "cancelled"})
    for other in (
        [{"op": "replace", "path": "/status", "value": "completed"}],
        [{"op": "replace", "path": "/owner", "value": {}}],
        {"resourceType": "Task", "status": "completed"},
    ):
        with pytest.raises(Refusal):
            mapping.task_cancel(other)


def test_the_operation_outcome_has_the_shape_of_the_bars_examples():
    published = example("bars/OperationOutcome/409-REC_CONFLICT-duplicate.json")["issue"][0]
    ours = mapping.operation_outcome(
        Refusal(409, "REC_CONFLICT", "duplicate", "again", "ServiceRequest.identifier")
    )["issue"][0]
    assert ours["code"] == published["code"]
    assert ours["details"]["coding"][0]["system"] == published["details"]["coding"][0]["system"]
    assert ours["details"]["coding"][0]["code"] == "REC_CONFLICT"
    assert ours["expression"] == ["ServiceRequest.identifier"]


def test_a_task_tells_its_latest_status_its_reason_and_on_completion_its_outputs():
    at = datetime(2026, 11, 30, 10, tzinfo=UTC)
    steps = [Step("accepted", at, None, "accepted"), Step("on-hold", at, "in hospital", "held")]
    held = mapping.task_resource("t1", "LW-AAAA-BBBB", "ref", "Y02345", at, steps)
    assert held["status"] == "on-hold" and held["statusReason"]["text"] == "in hospital"
    assert "output" not in held
    done = mapping.task_resource(
        "t1", "LW-AAAA-BBBB", "ref", "Y02345", at, [*steps, Step("completed", at, None, "closed")]
    )
    assert [o["valueString"] for o in done["output"]] == ["accepted", "held", "closed"]
    assert "statusReason" not in done
    # what a Task says validates against the R4B model
    from fhir.resources.R4B.task import Task

    Task.model_validate(copy.deepcopy(done))


@pytest.mark.parametrize("levels", [45, 200, 5000])
def test_deeply_nested_json_is_refused_before_the_models_recurse(levels):
    ext: dict[str, Any] = {"url": "x", "valueString": "y"}
    for _ in range(levels):
        ext = {"url": "x", "extension": [ext]}
    body = bars()
    body["entry"][0]["resource"]["extension"] = [ext]
    found = refused(mapping.from_message, body)
    assert (found.status, found.issue) == (400, "too-costly")
    assert mapping.depth(bars()) <= mapping.MAX_DEPTH
    assert mapping.depth(example("gravity/Task-requested-social-prescribing.json")) <= 20


def test_the_completed_task_lists_the_codes_written_back_as_the_profile_slices_them():
    """A procedure is the SDOHCC PerformedActivityCode (resulting-activity, a
    CodeableConcept); an observable entity is an output of Linkwell's own type; a code
    outside the registry never reaches an answer; before completed there are no outputs."""
    at = datetime(2026, 11, 20, 15, 55, tzinfo=UTC)
    codes = (
        mapping.Coded("871731000000106", "Referral to social prescribing service"),
        mapping.Coded("718466001", "SWEMWBS score"),
        mapping.Coded("999999999", "not a registry code"),
    )
    closed = Step("completed", at, None, "ended", codes)
    task = mapping.task_resource("t", "r", "s", "A81001", at, [closed])
    coded = [
        (o["type"]["coding"][0]["code"], o["valueCodeableConcept"]["coding"][0])
        for o in task["output"]
        if "valueCodeableConcept" in o
    ]
    assert coded == [
        (
            "resulting-activity",
            {
                "system": "http://snomed.info/sct",
                "code": "871731000000106",
                "display": "Referral to social prescribing service",
            },
        ),
        (
            "gp-record-code",
            {"system": "http://snomed.info/sct", "code": "718466001", "display": "SWEMWBS score"},
        ),
    ]
    cancelled = Step("cancelled", at, "declined", "ended", codes)
    assert "output" not in mapping.task_resource("t", "r", "s", "A81001", at, [cancelled])
