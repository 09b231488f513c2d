"""The public contract: examples, generated schemas, routing keys, codings, envelope and
rejection reasons."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from contracts import schema
from contracts.enums import RejectionCode
from contracts.envelope import CloudEvent, RawEvent
from contracts.events import (
    EVENTS,
    ContactRecorded,
    Direction,
    EventRejected,
    GpCoding,
    GpWriteback,
    LinkWorkerRegistered,
    Party,
    ReferralAccepted,
    ReferralAssigned,
    ReferralClosed,
    ReferralIdentityConfirmed,
    ReferralRejected,
    ReferralStatus,
    ReferralSubmitted,
    ReferralWaitlisted,
    parse_event,
)
from contracts.rejections import reasons_from
from contracts.snomed import REGISTRY, SNOMED_CT_SYSTEM

EXAMPLES = sorted(schema.EXAMPLES_DIR.glob("*.json"))
SCHEMAS = sorted(schema.SCHEMA_DIR.glob("*.schema.json"))


def example(event_type: str) -> dict[str, Any]:
    return json.loads((schema.EXAMPLES_DIR / f"{event_type}.json").read_text())


def data_of(model: type) -> Any:
    return parse_event(model, example(model.TYPE)).data


# ---------------------------------------------------------------- examples and schemas


def test_there_is_an_example_per_event_type() -> None:
    assert EXAMPLES, "no examples found"
    assert {p.stem for p in EXAMPLES} == set(EVENTS)


def test_there_is_a_schema_per_event_type() -> None:
    assert {p.name.removesuffix(".schema.json") for p in SCHEMAS} == set(EVENTS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_against_its_model(path: Path) -> None:
    payload = json.loads(path.read_text())
    assert payload["type"] == path.stem
    spec = EVENTS[payload["type"]]
    event = parse_event(spec.model, path.read_bytes())
    assert event.type == spec.type
    assert isinstance(event.data, spec.model)
    # the dict form parses to the same event
    assert parse_event(spec.model, payload) == event


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_against_its_json_schema(path: Path) -> None:
    payload = json.loads(path.read_text())
    schema_doc = json.loads((schema.SCHEMA_DIR / f"{path.stem}.schema.json").read_text())
    Draft202012Validator.check_schema(schema_doc)
    validator = Draft202012Validator(schema_doc, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(payload)]
    assert errors == []


def test_json_schema_rejects_an_example_of_another_type() -> None:
    schema_doc = json.loads((schema.SCHEMA_DIR / "gp.writeback.v1.schema.json").read_text())
    validator = Draft202012Validator(schema_doc)
    assert not validator.is_valid(example("referral.accepted.v1"))


def test_json_schema_rejects_an_unknown_snomed_system() -> None:
    schema_doc = json.loads((schema.SCHEMA_DIR / "gp.writeback.v1.schema.json").read_text())
    payload = example("gp.writeback.v1")
    payload["data"]["codes"][0]["system"] = "http://loinc.org"
    assert not Draft202012Validator(schema_doc).is_valid(payload)


def test_schemas_are_up_to_date() -> None:
    assert schema.stale() == []


@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_schema_metadata_matches_the_registry(event_type: str) -> None:
    spec = EVENTS[event_type]
    doc = json.loads((schema.SCHEMA_DIR / f"{event_type}.schema.json").read_text())
    assert doc["properties"]["type"]["const"] == event_type
    assert doc["x-linkwell"]["direction"] == spec.model.DIRECTION.value
    assert doc["x-linkwell"]["routing_key"] == spec.routing_key_pattern


# ---------------------------------------------------------------- routing keys

INBOUND = [ReferralSubmitted, LinkWorkerRegistered, ContactRecorded, ReferralClosed]


@pytest.mark.parametrize("model", INBOUND, ids=lambda m: m.TYPE)
def test_inbound_types_route_by_bare_type(model: type) -> None:
    assert model.DIRECTION is Direction.INBOUND
    assert data_of(model).routing_key() == model.TYPE


def test_every_registered_type_is_inbound_or_emitted_and_emitted_ones_have_a_suffix() -> None:
    for spec in EVENTS.values():
        if spec.model.DIRECTION is Direction.INBOUND:
            assert spec.model.ROUTED_BY is None
        else:
            assert spec.model.ROUTED_BY is not None, spec.type


def test_assigned_routes_by_pcn() -> None:
    data = data_of(ReferralAssigned)
    assert data.routing_key() == "referral.assigned.v1.U12345"
    other = data.model_copy(update={"pcn": "U99999"})
    assert other.routing_key() == "referral.assigned.v1.U99999"


def test_waitlisted_routes_by_pcn() -> None:
    assert data_of(ReferralWaitlisted).routing_key() == "referral.waitlisted.v1.U12345"


def test_gp_writeback_routes_by_registered_practice() -> None:
    data = data_of(GpWriteback)
    assert data.routing_key() == "gp.writeback.v1.A81001"
    moved = data.model_copy(update={"registered_practice": "B82002"})
    assert moved.routing_key() == "gp.writeback.v1.B82002"


@pytest.mark.parametrize(
    "model",
    [ReferralAccepted, ReferralRejected, ReferralStatus, EventRejected],
    ids=lambda m: m.TYPE,
)
def test_answers_to_a_sender_route_by_sender(model: type) -> None:
    data = data_of(model)
    assert data.routing_key() == f"{model.TYPE}.{data.sender}"
    assert data.model_copy(update={"sender": "Z99"}).routing_key() == f"{model.TYPE}.Z99"


def test_envelope_subject_is_the_referral_id_except_for_rejections() -> None:
    accepted = data_of(ReferralAccepted)
    assert accepted.envelope(source="urn:linkwell:x:intake").subject == str(accepted.referral_id)
    assert data_of(ReferralRejected).envelope(source="urn:linkwell:x:intake").subject is None


# ---------------------------------------------------------------- GP codings


@pytest.mark.parametrize("code", sorted(REGISTRY))
def test_gp_coding_accepts_registered_codes(code: str) -> None:
    coding = GpCoding.of(REGISTRY[code])
    assert coding.system == SNOMED_CT_SYSTEM == "http://snomed.info/sct"
    assert coding.code == code


@pytest.mark.parametrize("code", ["871731000000107", "123456789", "", "871731000000106 "])
def test_gp_coding_refuses_codes_not_in_the_registry(code: str) -> None:
    with pytest.raises(ValidationError):
        GpCoding(code=code, display="anything")


@pytest.mark.parametrize(
    "system", ["http://loinc.org", "https://snomed.info/sct", "http://snomed.info/sct/", ""]
)
def test_gp_writeback_only_carries_snomed_ct(system: str) -> None:
    payload = example("gp.writeback.v1")
    payload["data"]["codes"][0]["system"] = system
    with pytest.raises(ValidationError):
        parse_event(GpWriteback, payload)


def test_registry_holds_exactly_the_traceable_codes() -> None:
    assert set(REGISTRY) == {"871731000000106", "871711000000103", "306098008", "718466001"}
    assert all(c.source for c in REGISTRY.values())


# ---------------------------------------------------------------- envelope


@pytest.mark.parametrize("version", ["0.3", "1", "1.1", None])
def test_envelope_requires_specversion_1_0(version: str | None) -> None:
    payload = example("contact.recorded.v1")
    payload["specversion"] = version
    with pytest.raises(ValidationError):
        parse_event(ContactRecorded, payload)


def test_envelope_requires_specversion() -> None:
    payload = example("contact.recorded.v1")
    del payload["specversion"]
    with pytest.raises(ValidationError):
        parse_event(ContactRecorded, payload)


@pytest.mark.parametrize("time", ["2026-11-26T14:05:00", "2026-11-26", "not a time"])
def test_envelope_requires_an_aware_time(time: str) -> None:
    payload = example("contact.recorded.v1")
    payload["time"] = time
    with pytest.raises(ValidationError):
        parse_event(ContactRecorded, payload)
    with pytest.raises(ValidationError):
        RawEvent.model_validate(payload)


def test_envelope_time_is_normalised_to_utc() -> None:
    payload = example("contact.recorded.v1")
    payload["time"] = "2026-11-26T15:05:00+01:00"
    event = parse_event(ContactRecorded, payload)
    assert event.time == datetime.fromisoformat("2026-11-26T14:05:00+00:00")
    assert event.time.utcoffset().total_seconds() == 0


def test_envelope_reads_the_sender_org_from_source() -> None:
    assert parse_event(ReferralSubmitted, example("referral.submitted.v1")).sender_org == "A81001"
    assert parse_event(ReferralAccepted, example("referral.accepted.v1")).sender_org is None


def test_envelope_round_trips_through_json() -> None:
    event = parse_event(ReferralSubmitted, example("referral.submitted.v1"))
    assert parse_event(ReferralSubmitted, event.to_json()) == event


def test_envelope_type_must_look_like_a_versioned_type() -> None:
    payload = example("contact.recorded.v1")
    payload["type"] = "ContactRecorded"
    with pytest.raises(ValidationError):
        CloudEvent[dict].model_validate(payload)


# ---------------------------------------------------------------- rejection reasons


def submitted_data() -> dict[str, Any]:
    return copy.deepcopy(example("referral.submitted.v1")["data"])


def reasons_for(data: dict[str, Any]) -> list:
    with pytest.raises(ValidationError) as info:
        ReferralSubmitted.model_validate(data)
    return reasons_from(info.value, "data.")


def test_missing_consent_is_consent_missing() -> None:
    data = submitted_data()
    del data["consent"]
    (reason,) = reasons_for(data)
    assert reason.code is RejectionCode.CONSENT_MISSING
    assert reason.field == "data.consent"


def test_missing_consent_given_is_consent_missing() -> None:
    data = submitted_data()
    del data["consent"]["given"]
    (reason,) = reasons_for(data)
    assert reason.code is RejectionCode.CONSENT_MISSING
    assert reason.field == "data.consent.given"


def test_bad_nhs_number_is_nhs_number_invalid_and_never_echoed() -> None:
    data = submitted_data()
    data["person"]["nhs_number"] = "943 476 5918"
    reasons = reasons_for(data)
    assert [(r.code, r.field) for r in reasons] == [
        (RejectionCode.NHS_NUMBER_INVALID, "data.person.nhs_number")
    ]
    for reason in reasons:
        assert "9434765918" not in reason.message
        assert "943 476 5918" not in reason.message


def test_no_reason_message_includes_an_input_value() -> None:
    data = submitted_data()
    data["person"]["nhs_number"] = "9990000019"
    data["person"]["given_name"] = "x" * 101
    data["person"]["contact"]["phone"] = "07700 9OO123"
    data["registered_practice"] = "a81001zz"
    data["needs"] = ["loneliness", "zither-lessons"]
    data["consent"]["method"] = "telepathy"
    del data["pcn"]
    reasons = reasons_for(data)
    assert {r.field for r in reasons} >= {
        "data.person.nhs_number",
        "data.person.given_name",
        "data.person.contact.phone",
        "data.registered_practice",
        "data.needs.1",
        "data.consent.method",
        "data.pcn",
    }
    secrets = ["9990000019", "x" * 20, "9OO123", "a81001zz", "zither-lessons", "telepathy"]
    for reason in reasons:
        for secret in secrets:
            assert secret not in reason.message, (reason.field, reason.message)


def test_other_schema_errors_are_schema_invalid() -> None:
    data = submitted_data()
    data["needs"] = []
    (reason,) = reasons_for(data)
    assert reason.code is RejectionCode.SCHEMA_INVALID
    assert reason.field == "data.needs"


def test_reasons_without_prefix_use_the_bare_path() -> None:
    data = submitted_data()
    data["person"]["nhs_number"] = "9990000019"
    with pytest.raises(ValidationError) as info:
        ReferralSubmitted.model_validate(data)
    (reason,) = reasons_from(info.value)
    assert reason.field == "person.nhs_number"


def test_a_non_object_data_is_reported_at_the_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        ReferralSubmitted.model_validate("not an object")
    (reason,) = reasons_from(info.value, "data.")
    assert reason.code is RejectionCode.SCHEMA_INVALID
    assert reason.field == "data"


@pytest.mark.parametrize(
    ("email", "part"),
    [("sam.smith@[10.0.0.999]", "10.0.0.999"), ("sam.smith@[IPv6:sam::smith]", "sam::smith")],
)
def test_invalid_email_reason_does_not_quote_the_address(email: str, part: str) -> None:
    data = submitted_data()
    data["person"]["contact"]["email"] = email
    (reason,) = reasons_for(data)
    assert reason.field == "data.person.contact.email"
    assert part not in reason.message


# ------------------------------------------------- NHS number optional, adjustments


def test_a_submission_without_an_nhs_number_is_valid_and_one_given_is_still_checked() -> None:
    data = submitted_data()
    del data["person"]["nhs_number"]
    assert ReferralSubmitted.model_validate(data).person.nhs_number is None
    data["person"]["nhs_number"] = "943 476 5918"
    assert [r.code for r in reasons_for(data)] == [RejectionCode.NHS_NUMBER_INVALID]


def test_the_json_schema_no_longer_requires_the_nhs_number_but_checks_one_given() -> None:
    doc = json.loads((schema.SCHEMA_DIR / "referral.submitted.v1.schema.json").read_text())
    payload = example("referral.submitted.v1")
    del payload["data"]["person"]["nhs_number"]
    assert Draft202012Validator(doc).is_valid(payload)
    payload["data"]["person"]["nhs_number"] = "12345"
    assert not Draft202012Validator(doc).is_valid(payload)


def test_adjustments_are_optional_free_text_of_at_most_500_characters() -> None:
    data = submitted_data()
    data["person"]["contact"]["adjustments"] = "Call, don't text.\nAn interpreter (Polish)."
    assert "Polish" in ReferralSubmitted.model_validate(data).person.contact.adjustments
    for bad in ("x" * 501, "", "large\x00print"):
        data["person"]["contact"]["adjustments"] = bad
        with pytest.raises(ValidationError):
            ReferralSubmitted.model_validate(data)


def test_accepted_v1_examples_of_before_still_validate_and_the_number_may_be_absent() -> None:
    """Additive: what was valid stays valid; consumers are told nhs_number may be absent."""
    payload = example("referral.accepted.v1")
    assert parse_event(ReferralAccepted, payload).data.nhs_number == payload["data"]["nhs_number"]
    del payload["data"]["nhs_number"]
    assert parse_event(ReferralAccepted, payload).data.nhs_number is None


def test_an_identity_confirmation_needs_a_valid_nhs_number() -> None:
    payload = example("referral.identity_confirmed.v1")
    assert parse_event(ReferralIdentityConfirmed, payload).data.nhs_number == "9434765919"
    payload["data"]["nhs_number"] = "9434765918"
    with pytest.raises(ValidationError):
        parse_event(ReferralIdentityConfirmed, payload)
    assert EVENTS[ReferralIdentityConfirmed.TYPE].parties == (Party.TEAMS,)


def test_status_codes_are_additive_and_only_from_the_registry() -> None:
    """``codes`` on referral.status.v1 is additive within v1: absent, it is empty; a code
    Linkwell cannot trace is a validation error, never passed on to a referrer."""
    env = example("referral.status.v1")
    older = copy.deepcopy(env)
    older["data"].pop("codes")
    assert parse_event(ReferralStatus, older).data.codes == []
    assert [c.code for c in parse_event(ReferralStatus, env).data.codes] == [
        "871731000000106",
        "718466001",
    ]
    bad = copy.deepcopy(env)
    bad["data"]["codes"] = [{"code": "123456789", "display": "invented"}]
    with pytest.raises(ValidationError):
        parse_event(ReferralStatus, bad)
    free_text = copy.deepcopy(env)
    free_text["data"]["codes"][0]["value"] = "a note about the person"
    with pytest.raises(ValidationError):
        parse_event(ReferralStatus, free_text)
