"""Log redaction, settings from the environment, and names derived from the namespace."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.runtime.names import Names
from services.runtime.redaction import REDACTED, redact, redact_values
from services.runtime.settings import Settings

SERVICES = ("intake", "triage", "notify", "outcomes")

# ---------------------------------------------------------------- redact


@pytest.mark.parametrize(
    "secret",
    [
        "9434765919",
        "943 476 5919",
        "943-476-5919",
        "sam.example@nhs.net",
        "first.last+tag@example.co.uk",
        "07700 900123",
        "07700900123",
        "+44 7700 900123",
        "+447700900123",
        "020 7946 0018",
    ],
)
def test_redact_removes_personal_identifiers(secret: str) -> None:
    for text in (secret, f"value {secret} end", f"({secret})", f"key={secret}; next"):
        out = redact(text)
        assert secret not in out
        assert REDACTED in out
    assert redact(f"value {secret} end") == f"value {REDACTED} end"


def test_redact_inside_exception_text() -> None:
    text = "ValueError: person 9990000018 <sam@example.org> tel 07700 900123 not found"
    assert redact(text) == f"ValueError: person {REDACTED} <{REDACTED}> tel {REDACTED} not found"


@pytest.mark.parametrize(
    "safe",
    [
        "0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30",
        "12345678-1234-4234-8234-123456789012",  # a UUID that is nearly all digits
        "01234567-0123-4123-8123-012345678901",
        "2026-11-23T09:15:00Z",
        "2026-11-23T09:15:00.123456+00:00",
        "2026-11-23 09:15:00+00:00",
        "A81001",
        "U12345",
        "lw-u12345-01",
        "linkwell.intake.retry.500ms",
        "EMIS-2026-000123",
        "referral.assigned.v1.U12345",
    ],
)
def test_redact_leaves_ids_timestamps_and_org_codes_intact(safe: str) -> None:
    assert redact(safe) == safe
    assert redact(f"id={safe} at {safe}") == f"id={safe} at {safe}"


def test_redact_keeps_the_safe_parts_of_a_mixed_line() -> None:
    line = (
        "referral 0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30 from A81001 in U12345 at "
        "2026-11-23T09:15:00Z for 943 476 5919"
    )
    assert redact(line) == line.replace("943 476 5919", REDACTED)


def test_log_processor_redacts_values_but_not_safe_keys() -> None:
    event = {
        "event": "failed for 9434765919",
        "referral_id": "0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30",
        "detail": "email sam@example.org",
        "count": 3,
    }
    out = redact_values(None, "info", dict(event))
    assert out["event"] == f"failed for {REDACTED}"
    assert out["detail"] == f"email {REDACTED}"
    assert out["referral_id"] == event["referral_id"]
    assert out["count"] == 3


# ---------------------------------------------------------------- settings

ENV_VARS = (
    "LINKWELL_NAMESPACE",
    "LINKWELL_RETRY_DELAYS",
    "AMQP_URL",
    "DATABASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = Settings()
    assert settings.namespace == "linkwell"
    assert settings.retry_delays == (0.5, 5.0, 30.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.5,2", (0.5, 2.0)), ("1", (1.0,)), (" 0.25 , 4 ,", (0.25, 4.0))],
)
def test_retry_delays_are_read_from_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[float, ...]
) -> None:
    monkeypatch.setenv("LINKWELL_RETRY_DELAYS", raw)
    assert Settings().retry_delays == expected


@pytest.mark.parametrize("raw", ["0,2", "-1", "", ",", "soon"])
def test_retry_delays_must_be_positive_numbers(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("LINKWELL_RETRY_DELAYS", raw)
    with pytest.raises(ValidationError):
        Settings()


def test_namespace_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKWELL_NAMESPACE", "test_42")
    settings = Settings()
    assert settings.namespace == "test_42"
    assert settings.names == Names("test_42")


@pytest.mark.parametrize(
    "namespace",
    ["Linkwell", "LINKWELL", "link.well", "linkwell.test", "1linkwell", "", "a-b", "a" * 31],
)
def test_bad_namespaces_are_refused(monkeypatch: pytest.MonkeyPatch, namespace: str) -> None:
    monkeypatch.setenv("LINKWELL_NAMESPACE", namespace)
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(ValidationError):
        Settings(namespace=namespace)


# ---------------------------------------------------------------- names


def all_names(names: Names) -> list[str]:
    out = [names.inbound, names.events, names.dead_letter, names.unrouted]
    for service in SERVICES:
        out += [
            names.queue(service),
            names.dead_letter_queue(service),
            names.schema(service),
            names.source(service),
            *(names.retry_queue(service, d) for d in (0.5, 5.0, 30.0)),
        ]
    return out


def test_every_name_is_derived_from_the_namespace() -> None:
    for ns in ("linkwell", "t_1a2b"):
        for name in all_names(Names(ns)):
            assert ns in name


def test_broker_names_start_with_the_namespace() -> None:
    names = Names("ns1")
    assert names.inbound == "ns1.inbound"
    assert names.events == "ns1.events"
    assert names.queue("intake").startswith("ns1.")
    assert names.retry_queue("intake", 0.5) == "ns1.intake.retry.500ms"
    assert names.schema("intake") == "ns1_intake"
    assert names.source("intake") == "urn:linkwell:ns1:intake"


def test_names_within_a_namespace_are_distinct() -> None:
    names = all_names(Names("linkwell"))
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("a", "b"), [("linkwell", "test_1"), ("a", "a_b"), ("ns", "ns2"), ("t1", "t1_intake")]
)
def test_two_namespaces_share_no_name(a: str, b: str) -> None:
    assert not set(all_names(Names(a))) & set(all_names(Names(b)))


def test_only_a_uuid_subject_is_bound_to_logs_as_a_referral_id():
    from services.runtime.consumer import _referral_id

    assert (
        _referral_id("0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30")
        == "0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30"
    )
    assert _referral_id("Jane Smith 943 476 5919") is None
    assert _referral_id(None) is None


def test_standard_library_log_records_are_redacted():
    import logging

    from services.runtime.redaction import RedactingFilter

    record = logging.LogRecord(
        "aiormq", logging.WARNING, __file__, 1, "returned %s", ("9434765919 sam@example.org",), None
    )
    RedactingFilter().filter(record)
    assert "9434765919" not in record.getMessage()
    assert "sam@example.org" not in record.getMessage()
