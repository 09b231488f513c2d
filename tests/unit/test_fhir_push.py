"""The pure parts of pushing a step back to a BaRS sender: the backoff schedule, when a
delivery is given up, which endpoints may be registered, the request message's id, and
the servicerequest-response Bundle (validated with fhir.resources R4B)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.messageheader import MessageHeader
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from services.gateway.fhir import push

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def delivery(status: str = "accepted", reason: str | None = None, **kw) -> push.Delivery:
    values = dict(
        id=7,
        reference="LW-ABC123",
        client_id=uuid.uuid4(),
        endpoint="https://ehr.example.org/fhir/$process-message",
        status=status,
        reason=reason,
        at=NOW - timedelta(minutes=3),
        attempts=0,
        created_at=NOW - timedelta(minutes=2),
        fhir_id=uuid.UUID("00000000-0000-5000-8000-000000000001"),
        sender_reference="RND-SP-0001",
        organisation="RND",
        submitted_at=NOW - timedelta(days=1),
        request_message_id="1cbdfb97-5859-48a4-8301-d54eab818d68",
        referral_id=uuid.uuid4(),
    )
    values.update(kw)
    return push.Delivery(**values)


def test_backoff_doubles_from_one_second_to_at_most_an_hour():
    assert [push.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert push.backoff(13) == 3600.0 and push.backoff(1000) == 3600.0
    assert push.backoff(0) == 1.0


def test_a_delivery_is_given_up_at_its_attempt_limit_or_its_age():
    young = NOW - timedelta(minutes=1)
    rule = {"max_attempts": 3, "max_age": timedelta(hours=24)}
    assert not push.give_up(2, young, NOW, **rule)
    assert push.give_up(3, young, NOW, **rule)
    assert push.give_up(1, NOW - timedelta(hours=24), NOW, **rule)
    assert not push.give_up(1, NOW - timedelta(hours=23, minutes=59), NOW, **rule)


@pytest.mark.parametrize(
    ("url", "development", "ok"),
    [
        ("https://ehr.example.org/fhir/$process-message", False, True),
        ("http://ehr.example.org/fhir", False, False),
        ("http://127.0.0.1:8080/fhir", True, True),
        ("ftp://ehr.example.org/", True, False),
        ("https://user:secret@ehr.example.org/", False, False),
        ("https:///no-host", False, False),
        ("https://ehr.example.org/#frag", False, False),
        ("", False, False),
        ("https://e.org/" + "a" * 600, False, False),
    ],
)
def test_only_https_endpoints_outside_development(url, development, ok):
    if ok:
        assert push.check_endpoint(url, development=development) == url
    else:
        with pytest.raises(ValueError):
            push.check_endpoint(url, development=development)


def test_the_request_message_id_is_the_header_id_else_its_entry_else_the_request_id():
    with_id = {"id": "b-1", "entry": [{"fullUrl": "urn:uuid:aaa", "resource": {"id": "hdr-1"}}]}
    assert push.request_message_id(with_id, "req") == "hdr-1"
    bundle_id = {"id": "b-1", "entry": [{"fullUrl": "urn:uuid:aaa", "resource": {}}]}
    assert push.request_message_id(bundle_id, "req") == "b-1"
    no_id = {"entry": [{"fullUrl": "urn:uuid:aaa", "resource": {}}]}
    assert push.request_message_id(no_id, "req") == "aaa"
    assert push.request_message_id({"entry": []}, "req") == "req"
    assert push.request_message_id("not a bundle", "req") == "req"


def test_the_response_message_is_a_valid_bars_servicerequest_response():
    d = delivery("completed")
    body = push.response_message(d, NOW)
    bundle = Bundle.model_validate(body)  # R4B: structure and datatypes
    assert bundle.type == "message"
    header = MessageHeader.model_validate(body["entry"][0]["resource"])
    assert header.eventCoding.system == "https://fhir.nhs.uk/CodeSystem/message-events-bars"
    assert header.eventCoding.code == "servicerequest-response"
    assert header.response.identifier == d.request_message_id
    assert header.response.code == "ok"
    assert header.focus[0].reference == f"ServiceRequest/{d.fhir_id}"
    assert header.meta.profile == [
        "https://fhir.nhs.uk/StructureDefinition/BARSMessageHeader-servicerequest-response"
    ]
    assert [e.fullUrl for e in bundle.entry][1:] == [
        f"ServiceRequest/{d.fhir_id}",
        f"Task/{d.fhir_id}",
    ]
    assert body["entry"][1]["fullUrl"] == f"ServiceRequest/{d.fhir_id}"
    sr = ServiceRequest.model_validate(body["entry"][1]["resource"])
    assert sr.status == "completed" and sr.intent == "order"
    # no personal data in a push: the subject is the request's, by words only
    assert body["entry"][1]["resource"]["subject"] == {"display": "as sent"}


def test_the_service_request_status_follows_the_step_and_carries_its_reason():
    active = push.response_message(delivery("accepted"), NOW)["entry"][1]["resource"]
    assert active["status"] == "active" and "note" not in active
    rejected = push.response_message(delivery("rejected", "outside the area"), NOW)
    sr = rejected["entry"][1]["resource"]
    assert sr["status"] == "revoked" and sr["note"] == [{"text": "outside the area"}]
    task = Task.model_validate(rejected["entry"][2]["resource"])
    assert task.status == "rejected" and task.statusReason.text == "outside the area"
    assert task.focus.reference == f"ServiceRequest/{sr['id']}"


def test_a_completed_step_pushed_carries_the_codes_written_back_as_the_tasks_outputs():
    from services.gateway.fhir.mapping import Coded

    code = Coded("871731000000106", "Referral to social prescribing service")
    body = push.response_message(delivery("completed", codes=(code,)), NOW)
    task = Task.model_validate(body["entry"][2]["resource"])
    assert task.status == "completed"
    concepts = [o.valueCodeableConcept for o in task.output or [] if o.valueCodeableConcept]
    assert [(c.coding[0].system, c.coding[0].code) for c in concepts] == [
        ("http://snomed.info/sct", "871731000000106")
    ]
    accepted = push.response_message(delivery("accepted"), NOW)["entry"][2]["resource"]
    assert not accepted.get("output")


def test_a_retry_sends_the_same_message_id_and_headers():
    d = delivery()
    again = delivery(attempts=3, client_id=d.client_id)
    assert push.headers(d) == push.headers(again)
    assert push.headers(d)["X-Request-Id"] == push.response_message(d)["entry"][0]["resource"]["id"]
    assert push.headers(d)["X-Correlation-Id"] == d.request_message_id
    other = delivery(id=8)
    assert push.headers(other)["X-Request-Id"] != push.headers(d)["X-Request-Id"]


def test_only_a_fhir_id_from_the_senders_body_is_sent_back():
    # anything else (a header could not carry it) is replaced by the checked X-Request-Id
    assert push.request_message_id({"entry": [{"resource": {"id": "café"}}]}, "req-1") == "req-1"
    assert push.request_message_id({"id": "x" * 65, "entry": [{}]}, "req-1") == "req-1"
    fhir_id = "1cbdfb97-5859-48a4-8301-d54eab818d68"
    assert push.request_message_id({"entry": [{"resource": {"id": fhir_id}}]}, "r") == fhir_id


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/fhir",
        "https://10.0.0.5/fhir",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/fhir",
        "https://☃☃--.example/",
    ],
)
def test_an_endpoint_inside_the_network_or_unsendable_is_refused(url):
    with pytest.raises(ValueError):
        push.check_endpoint(url, development=False)


def test_a_name_is_pushed_to_only_while_it_resolves_to_public_addresses():
    assert push.public_addresses(["93.184.215.14"])
    assert not push.public_addresses(["93.184.215.14", "10.0.0.5"])  # one inside: refused
    assert not push.public_addresses(["127.0.0.1"]) and not push.public_addresses([])
