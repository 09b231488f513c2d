"""The professional door's rules, without I/O: passwords (argon2id), one-time tokens kept as
digests, when a session has ended, when an invitation can be used, the four pages' checks,
and the referral they make (as the organisation's own system would send it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway import accounts, pro_domain
from services.gateway.practices import Practice

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LIVES = accounts.Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=8))


@pytest.mark.parametrize(
    ("password", "again", "problem"),
    [
        ("short", "short", "12 characters or more"),
        ("x" * 129, "x" * 129, "128 characters or fewer"),
        ("correct horse battery", "correct horse batterY", "do not match"),
        ("sam.lee@example.org", "sam.lee@example.org", "not be your email"),
        ("sam.lee.smith", "sam.lee.smith", None),
        ("abababababab", "abababababab", "repeated"),
        ("correct horse battery", "correct horse battery", None),
    ],
)
def test_a_new_password_must_be_long_and_not_the_email(password, again, problem):
    found = accounts.password_problem(password, again, "sam.lee@example.org")
    assert (found is None) if problem is None else (problem in found)


def test_passwords_are_hashed_with_argon2id_and_checked():
    hashed = accounts.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$") and "correct" not in hashed
    assert accounts.hash_password("correct horse battery") != hashed  # salted
    assert accounts.password_matches(hashed, "correct horse battery")
    assert not accounts.password_matches(hashed, "correct horse batterz")
    assert not accounts.password_matches(None, "anything at all")  # no account, no password
    assert not accounts.password_matches("not a hash", "anything at all")
    assert not accounts.needs_rehash(hashed)


def test_tokens_are_random_and_kept_only_as_their_digest():
    first, second = accounts.new_token(), accounts.new_token()
    assert first != second and len(first) >= 40
    assert accounts.digest(first) == accounts.digest(first)
    assert len(accounts.digest(first)) == 32 and first.encode() not in accounts.digest(first)


def test_a_session_ends_when_signed_out_idle_or_too_old():
    signed_in = NOW - timedelta(hours=1)
    assert accounts.session_ended(signed_in, NOW - timedelta(minutes=5), None, NOW, LIVES) is None
    assert (
        accounts.session_ended(signed_in, NOW - timedelta(minutes=30), None, NOW, LIVES) == "idle"
    )
    old = NOW - timedelta(hours=8)
    assert accounts.session_ended(old, NOW, None, NOW, LIVES) == "expired"  # busy, but too old
    assert accounts.session_ended(signed_in, NOW, NOW, NOW, LIVES) == "signed_out"


def test_an_invitation_is_used_once_before_it_expires():
    later = NOW + timedelta(hours=1)
    assert accounts.invitation_usable(later, None, NOW)
    assert not accounts.invitation_usable(later, NOW, NOW)  # used
    assert not accounts.invitation_usable(NOW, None, NOW)  # expired


def test_emails_are_compared_in_lower_case_and_checked():
    assert accounts.normalise_email("  Sam.Lee@Example.ORG ") == "sam.lee@example.org"
    assert accounts.email_ok("sam.lee@example.org")
    assert not accounts.email_ok("sam.lee") and not accounts.email_ok("a@b")


PRACTICE = Practice(code="A81001", name="Riverside Surgery", postcode="TS18 1HU", pcn="U12345")
PERSON = {
    "given_name": "Robin",
    "family_name": "Quillfeather",
    "dob_day": "2",
    "dob_month": "5",
    "dob_year": "1948",
    "nhs_number": "943 476 5919",
    "practice": "A81001",
}


def test_the_referral_takes_four_pages_and_each_checks_its_answers():
    assert len(pro_domain.PAGES) + 1 <= 4  # three questions and check your answers
    values, errors = pro_domain.check("person", PERSON, {"A81001": PRACTICE})
    assert errors == {} and values["nhs_number"] == "9434765919"
    _, errors = pro_domain.check("person", {**PERSON, "practice": "B9"}, {"A81001": PRACTICE})
    assert errors == {"practice": "Select the person's GP practice"}
    _, errors = pro_domain.check("support", {"preferred": "phone"}, {})
    assert errors["needs"] == "Select what the person would like help with"
    assert "phone" in errors
    _, errors = pro_domain.check("consent", {"consent_method": "verbal"}, {})
    assert list(errors) == ["consent"]  # nothing is sent without the person's agreement
    values, errors = pro_domain.check("consent", {"consent": "yes", "consent_method": "verbal"}, {})
    assert errors == {} and values["consent_method"] == "verbal"


def test_the_referral_is_the_organisations_own_never_the_professionals_name():
    answers: dict = {}
    for slug, form in (
        ("person", PERSON),
        ("support", {"needs": ["loneliness"], "preferred": "phone", "phone": "07700 900456"}),
        ("consent", {"consent": "yes", "consent_method": "written"}),
    ):
        answers.update(pro_domain.check(slug, form, {"A81001": PRACTICE})[0])
    assert pro_domain.next_unanswered(answers) is None
    data = pro_domain.referral(
        answers,
        reference="LW-2345-6789",
        practice=PRACTICE,
        organisation_name="Eastfield Food Bank",
        agency_type="vcse",
        role="Volunteer coordinator",
        now=NOW,
    )
    assert data.referrer.agency_type == "vcse"
    assert data.referrer.organisation_name == "Eastfield Food Bank"
    assert data.referrer.professional_role == "Volunteer coordinator"
    assert (data.registered_practice, data.pcn) == ("A81001", "U12345")
    assert data.consent.method == "written" and not data.in_crisis
    with pytest.raises(ValueError):
        pro_domain.referral(
            {**answers, "consent": "no"},
            reference="LW-2345-6789",
            practice=PRACTICE,
            organisation_name="x",
            agency_type="vcse",
            role=None,
            now=NOW,
        )


def test_a_gravity_task_status_is_shown_in_plain_words():
    from contracts.enums import TaskStatus

    assert set(pro_domain.TASK_STATUS_IN_PLAIN_WORDS) == set(TaskStatus)
    assert pro_domain.task_status_words("in-progress") == "In progress"
    assert pro_domain.task_status_words(None) == "Not told yet"
    assert "self_referral" not in pro_domain.AGENCY_TYPES


def test_the_access_plan_trusts_the_gateway_for_the_organisations_its_professionals_serve(
    monkeypatch,
):
    from pathlib import Path

    from services.ops.access_cli import plan
    from services.runtime.settings import Settings

    monkeypatch.setenv("LINKWELL_GATEWAY_ORGANISATIONS", "A81001")
    organisations = Path(__file__).parents[2] / "deploy" / "rabbitmq" / "organisations.toml"
    trusted = plan(Settings(), organisations).trusted_users()
    assert trusted == ["linkwell-gateway=SELF-WEB|A81001"]


def test_cookies_are_httponly_with_the_configured_samesite_and_secure():
    from starlette.responses import Response

    from services.gateway.settings import GatewaySettings
    from services.gateway.web import Gateway

    for own, expected in (
        (GatewaySettings(), ("samesite=lax", False)),
        (
            GatewaySettings(gateway_cookie_samesite="strict", gateway_secure_cookies=True),
            ("samesite=strict", True),
        ),
    ):
        gateway = Gateway.__new__(Gateway)
        gateway.settings = own
        response = Response()
        gateway._cookie(response, "lw_session", "t" * 43, max_age=None)
        header = response.headers["set-cookie"].lower()
        assert "httponly" in header and expected[0] in header
        assert ("; secure" in header) is expected[1]
        # Secure cookies carry the __Host- prefix (this host only, path /, no Domain)
        assert header.startswith("__host-lw_session=") is expected[1]
        assert "domain=" not in header and "path=/" in header
