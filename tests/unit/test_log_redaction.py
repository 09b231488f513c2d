"""The production log pipeline (structlog JSON) never prints personal data: not in
messages, bound values, nested values, exception messages or tracebacks, nor through
the standard library's loggers."""

from __future__ import annotations

import io
import json
import logging
import re
import string

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from contracts.schema import example
from services.runtime.logs import configure, get_logger
from services.runtime.redaction import (
    REDACTED,
    RedactingFilter,
    personal_data,
    personal_values,
    redact,
)

SUBMITTED = example("referral.submitted.v1")
PERSON = SUBMITTED["data"]["person"]
SECRETS = [
    PERSON["given_name"],
    PERSON["family_name"],
    PERSON["date_of_birth"],
    PERSON["nhs_number"],
    PERSON["contact"]["phone"],
]


@pytest.fixture
def lines(capsys):
    """Configure logging as a service does; return a function reading the JSON lines.
    Afterwards the root logger's handlers and level are put back as they were: a handler
    left on this test's captured stream would write to a closed file in every later test
    (and say so, "--- Logging error ---", on whatever stderr is then)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure("intake", "DEBUG")
    capsys.readouterr()

    def read() -> list[dict]:
        out = capsys.readouterr().out
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    yield read
    structlog.reset_defaults()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_the_example_person_has_what_we_claim_to_remove():
    values = personal_values(SUBMITTED["data"])
    for secret in SECRETS:
        assert secret in values
    assert "phone" not in values  # the chosen channel is not personal
    assert SUBMITTED["data"]["sender_reference"] not in values


def test_an_exception_carrying_personal_data_is_logged_without_it(lines):
    log = get_logger("test")
    with (
        structlog.contextvars.bound_contextvars(
            event_id="e-1", referral_id="0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30", correlation_id="c-1"
        ),
        personal_data(personal_values(SUBMITTED["data"])),
    ):
        try:
            raise ValueError(
                f"cannot file {PERSON['given_name'].upper()} {PERSON['family_name']} "
                f"(born 12 April 1958, datetime.date(1958, 4, 12), {PERSON['date_of_birth']}) "
                f"nhs {PERSON['nhs_number']} tel {PERSON['contact']['phone']} "
                "mail sam.example@nhs.net"
            )
        except ValueError:
            log.exception("handler_failed", person={"given_name": "Sam"}, note="Dear Sam")
    [line] = lines()
    text = json.dumps(line)
    for secret in [*SECRETS, "Sam", "SAM", "12 April 1958", "1958, 4, 12", "sam.example@nhs.net"]:
        assert secret not in text, secret
    assert line["event_id"] == "e-1" and line["correlation_id"] == "c-1"
    assert line["referral_id"] == "0b8f4a52-3c1d-4e8a-9a57-6f0c2d9e1b30"
    assert line["service"] == "intake" and line["level"] == "error"
    assert "ValueError: cannot file" in line["exception"]  # the diagnosis survives
    assert line["person"] == REDACTED


def test_standard_library_loggers_are_redacted_too(lines):
    [handler] = [  # the one configure() installed (pytest adds its own)
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactingFilter) for f in h.filters)
    ]
    stream = io.StringIO()
    handler.stream = stream  # (setStream would flush the previous one)
    with personal_data(["Ffion Llewelyn-Jones"]):
        try:
            raise KeyError("Ffion Llewelyn-Jones")
        except KeyError:
            logging.getLogger("linkwell.test").exception(
                "lost %s at %s", "Ffion Llewelyn-Jones", "07700 900123"
            )
    out = stream.getvalue()
    assert "Ffion" not in out and "Llewelyn" not in out and "07700" not in out
    assert "lost" in out and "KeyError" in out


def test_outside_a_message_bare_dates_are_removed_and_timestamps_kept():
    assert redact("born 1958-04-12") == f"born {REDACTED}"
    assert redact("born 12/04/1958.") == f"born {REDACTED}."
    assert redact("at 2026-11-23T09:15:00Z") == "at 2026-11-23T09:15:00Z"
    assert redact("at 2026-11-23 09:15:00+00:00") == "at 2026-11-23 09:15:00+00:00"


def test_names_are_removed_as_whole_words_only():
    with personal_data(["Al"]):
        assert redact("Al called; ALL done; al.") == f"{REDACTED} called; ALL done; {REDACTED}."


names = st.text(alphabet=string.ascii_letters + "'-", min_size=2, max_size=20).filter(
    lambda n: n[0].isalpha() and n[-1].isalpha()
)


@given(given_name=names, family_name=names)
def test_any_name_of_the_message_is_removed_from_any_text(given_name, family_name):
    data = {"person": {"given_name": given_name, "family_name": family_name}}
    with personal_data(personal_values(data)):
        out = redact(f"KeyError: '{given_name} {family_name}' not found for {family_name}")
    for name in (given_name, family_name):
        assert not re.search(rf"(?<!\w){re.escape(name)}(?!\w)", out, re.IGNORECASE), out


def test_personal_values_are_bounded_whatever_the_sender_sends():
    import time

    hostile = {"person": {"given_name": [f"n{i:06d}" for i in range(200_000)]}}
    started = time.perf_counter()
    values = personal_values(hostile)
    with personal_data(values):
        redact("anything")
    assert len(values) <= 64
    assert time.perf_counter() - started < 2.0
    deep: list = []
    node = deep
    for _ in range(100_000):  # nested far beyond Python's recursion limit
        node.append([])
        node = node[0]
    assert personal_values({"person": deep}) == set()
