"""The gateway's pure pieces: each question's checks, the referral the answers make, the
practice search, the rate limiter, the trust grants, and the vendored NHS.UK frontend."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.enums import AgencyType, Need
from services.gateway import domain
from services.gateway.practices import Practice, Practices
from services.gateway.ratelimit import Limits, Window
from services.gateway.settings import DEFAULT_PRACTICES, GatewaySettings
from services.runtime.admission import answer_to, check_sender
from services.runtime.delivery import Delivery
from services.runtime.names import Names
from services.runtime.settings import Settings
from services.runtime.trust import grants, speaks_for

ROOT = Path(__file__).resolve().parents[2]
PRACTICES = Practices.load(DEFAULT_PRACTICES)
BY_CODE = {p.code: p for p in PRACTICES.all}

ANSWERS = {
    "crisis": "no",
    "who": "myself",
    "given_name": "Alex",
    "family_name": "Example",
    "date_of_birth": "1961-11-07",
    "nhs_number": "9434765919",
    "practice": "A81001",
    "needs": ["loneliness"],
    "preferred": "sms",
    "phone": "07700 900123",
    "email": "",
    "adjustments": "",
    "consent": "yes",
    "consented_at": "2026-12-01T10:00:00+00:00",
}


def check(slug, **form):
    return domain.check(slug, form, BY_CODE)


# ------------------------------------------------------------------ questions


@pytest.mark.parametrize(
    ("slug", "form", "field"),
    [
        ("crisis", {}, "crisis"),
        ("crisis", {"crisis": "maybe"}, "crisis"),
        ("who", {"who": "my dog"}, "who"),
        ("name", {"given_name": "", "family_name": "X"}, "given_name"),
        ("name", {"given_name": "A" * 101, "family_name": "X"}, "given_name"),
        ("name", {"given_name": "<b>", "family_name": "X"}, "given_name"),
        ("name", {"given_name": "Al\x00ex", "family_name": "X"}, "given_name"),
        ("date-of-birth", {"dob_day": "31", "dob_month": "2", "dob_year": "1980"}, "dob_day"),
        ("date-of-birth", {"dob_day": "1", "dob_month": "1", "dob_year": "2999"}, "dob_day"),
        ("date-of-birth", {"dob_day": "1", "dob_month": "1", "dob_year": "80"}, "dob_day"),
        ("date-of-birth", {"dob_day": "\u0661", "dob_month": "1", "dob_year": "1980"}, "dob_day"),
        ("nhs-number", {"nhs_number": "943 476 5918"}, "nhs_number"),  # check digit
        ("nhs-number", {"nhs_number": "12345"}, "nhs_number"),
        ("gp", {"practice": "Z99999"}, "practice"),  # not in the scheme's list
        ("needs", {"needs": []}, "needs"),
        ("needs", {"needs": ["loneliness", "world_peace"]}, "needs"),
        ("contact", {"preferred": "pigeon"}, "preferred"),
        ("contact", {"preferred": "sms", "phone": "", "email": ""}, "phone"),
        ("contact", {"preferred": "email", "phone": "", "email": "not-an-address"}, "email"),
        ("contact", {"preferred": "phone", "phone": "call me", "email": ""}, "phone"),
        ("adjustments", {"adjustments": "x" * 501}, "adjustments"),
        ("adjustments", {"adjustments": "large\x00print"}, "adjustments"),
        ("consent", {}, "consent"),
        ("consent", {"consent": "no"}, "consent"),
    ],
)
def test_each_question_says_what_is_wrong_in_plain_words(slug, form, field):
    values, errors = check(slug, **form)
    assert values == {} and list(errors) == [field]
    message = errors[field]
    assert message[0].isupper() and not message.endswith(".")
    assert not re.search(r"\b(invalid|schema|field|value)\b", message, re.I)


def test_good_answers_are_kept_in_their_plain_form():
    assert check("date-of-birth", dob_day="07", dob_month="11", dob_year="1961") == (
        {"date_of_birth": "1961-11-07"},
        {},
    )
    assert check("nhs-number", nhs_number=" 943-476-5919 ")[0] == {"nhs_number": "9434765919"}
    assert check("name", given_name="Siân", family_name="O'Brien-Smith")[1] == {}
    values, _ = check("needs", needs=["bereavement", "loneliness"])
    assert values == {"needs": ["loneliness", "bereavement"]}  # the contract's order
    assert check("contact", preferred="letter", phone="", email="")[1] == {}


def test_the_nhs_number_and_adjustments_may_be_left_blank():
    assert check("nhs-number", nhs_number="  ") == ({"nhs_number": ""}, {})
    assert check("adjustments", adjustments="") == ({"adjustments": ""}, {})
    words = "Call, don't text.\nAn interpreter (Polish), please."
    assert check("adjustments", adjustments=f"  {words} ") == ({"adjustments": words}, {})
    # a blank answer is an answer: the questions go on past it
    blank = {**ANSWERS, "nhs_number": "", "adjustments": ""}
    assert domain.next_unanswered(blank) is None
    assert domain.next_unanswered({k: v for k, v in ANSWERS.items() if k != "adjustments"}) == (
        "adjustments"
    )


def test_without_an_nhs_number_the_referral_has_none_and_carries_the_adjustments():
    now = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    answers = {**ANSWERS, "nhs_number": "", "adjustments": "Large print, please"}
    data = domain.referral(answers, "LW-ABCD-EFGH", BY_CODE["A81001"], "Scheme", now)
    assert data.person.nhs_number is None
    assert data.person.contact.adjustments == "Large print, please"
    plain = domain.referral(ANSWERS, "LW-ABCD-EFGH", BY_CODE["A81001"], "Scheme", now)
    assert plain.person.nhs_number == "9434765919" and plain.person.contact.adjustments is None


def test_the_questions_go_in_order_and_check_your_answers_comes_last():
    assert domain.next_unanswered({}) == "crisis"
    assert domain.next_unanswered({"crisis": "no"}) == "who"
    assert domain.next_unanswered({k: v for k, v in ANSWERS.items() if k != "needs"}) == "needs"
    assert domain.next_unanswered(ANSWERS) is None


def test_a_form_longer_than_any_question_takes_is_too_long():
    assert not domain.too_long({"given_name": "A" * 100, "csrf": "x" * 43})
    assert domain.too_long({"given_name": "A" * 255})
    assert not domain.too_long({"adjustments": "A" * 500})  # a textarea: the contract's bound
    assert domain.too_long({"adjustments": "A" * 501})
    assert domain.too_long({f"f{i}": "x" for i in range(41)})
    assert domain.too_long({"needs": ["loneliness"] * 41})


def test_every_need_of_the_contract_has_plain_words():
    assert set(domain.NEEDS_IN_PLAIN_WORDS) == set(Need)
    assert all("_" not in words for words in domain.NEEDS_IN_PLAIN_WORDS.values())


# ------------------------------------------------------------------ the referral


def test_the_answers_make_a_self_referral_for_the_practices_pcn():
    now = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    data = domain.referral(ANSWERS, "LW-ABCD-EFGH", BY_CODE["A81005"], "Scheme", now)
    assert data.referrer.agency_type is AgencyType.SELF_REFERRAL
    assert (data.registered_practice, data.pcn) == ("A81005", "U12346")  # the PCN follows
    assert data.person.contact.phone == "07700 900123" and data.person.contact.email is None
    assert data.consent.given and data.consent.method == "digital"
    carer = domain.referral({**ANSWERS, "who": "someone_else"}, "LW-X", BY_CODE["A81001"], "S", now)
    assert carer.referrer.agency_type is AgencyType.FAMILY_OR_CARER


@pytest.mark.parametrize("change", [{"consent": "no"}, {"crisis": "yes"}])
def test_no_referral_without_consent_or_for_someone_in_crisis(change):
    with pytest.raises(ValueError):
        domain.referral({**ANSWERS, **change}, "LW-X", BY_CODE["A81001"], "S", datetime.now(UTC))


def test_references_are_readable_aloud_and_found_however_typed():
    seen = {domain.new_reference() for _ in range(200)}
    assert len(seen) == 200
    assert all(re.fullmatch(r"LW-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}", r) for r in seen)
    assert domain.normalise_reference("lw 7k3m q9tz") == domain.normalise_reference("LW-7K3M-Q9TZ")


def test_no_step_in_plain_words_gives_a_waiting_time():
    for heading, meaning in domain.STEPS_IN_PLAIN_WORDS.values():
        assert not re.search(r"\d|\b(days?|weeks?|months?)\b", heading + meaning)
    assert "waiting list" in domain.in_plain_words("waitlisted")[1]
    assert not domain.later("duplicate") and domain.later("assigned")


# ------------------------------------------------------------------ practices


def test_a_practice_is_found_by_name_or_postcode():
    assert [p.code for p in PRACTICES.search("riverside")] == ["A81001"]
    assert [p.code for p in PRACTICES.search("Queens park")] == ["A81002"]
    assert [p.code for p in PRACTICES.search("ts18 1hu")] == ["A81001"]
    assert {p.code for p in PRACTICES.search("TS18")} == {"A81001", "A81002", "A81006"}
    assert PRACTICES.search("") == [] and PRACTICES.search("nowhere at all") == []
    assert PRACTICES.search("<script>") == []


def test_a_practice_list_with_a_code_twice_is_refused(tmp_path):
    path = tmp_path / "practices.toml"
    entry = '[[practice]]\ncode = "A81001"\nname = "X"\npostcode = "TS1 1AA"\npcn = "U12345"\n'
    path.write_text(entry * 2)
    with pytest.raises(ValueError):
        Practices.load(path)
    with pytest.raises(ValueError):
        Practice(code="bad", name="X", postcode="TS1 1AA", pcn="U12345")


# ------------------------------------------------------------------ rate limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_allows_its_limit_then_says_how_long_to_wait():
    clock = Clock()
    window = Window(2, 60.0, clock)
    assert [window.allow("a"), window.allow("a"), window.allow("a")] == [True, True, False]
    assert window.allow("b")  # another client is not held up
    assert window.retry_after("a") == 60
    clock.now += 30
    assert not window.allow("a") and window.retry_after("a") == 30
    clock.now += 30.5
    assert window.allow("a")


def test_limits_per_client_everyone_and_sends():
    clock = Clock()
    limits = Limits.of(2, 3, 1, clock)
    assert [limits.post("a"), limits.post("a")] == [0, 0]
    assert limits.post("a") > 0  # this client
    assert limits.post("b") == 0
    assert limits.post("c") > 0  # everyone together
    assert limits.send("a") == 0 and limits.send("a") > 3000  # an hour's window


# ------------------------------------------------------------------ trust


def test_the_gateway_is_trusted_for_its_own_organisations_only():
    trusted = Settings(trusted_users="linkwell-gateway=SELF-WEB|A81001, ops").trusted_users
    assert trusted == grants("ops,linkwell-gateway=SELF-WEB|A81001")
    assert speaks_for(trusted, "linkwell-gateway", "SELF-WEB")
    assert speaks_for(trusted, "linkwell-gateway", "A81001")
    assert not speaks_for(trusted, "linkwell-gateway", "FNX01")
    assert not speaks_for(trusted, "linkwell-gateway", None)
    assert speaks_for(trusted, "ops", "FNX01")  # a plain grant: any organisation
    assert not speaks_for(trusted, None, "SELF-WEB")
    assert check_sender(trusted, "linkwell-gateway", "urn:linkwell:org:SELF-WEB") is None
    refused = check_sender(trusted, "linkwell-gateway", "urn:linkwell:org:FNX01")
    assert refused is not None and refused.code == "source_mismatch"


def test_a_refusal_of_the_gateways_event_is_answered_to_the_organisation_it_sent_for():
    names = Names("linkwell")
    trusted = grants("linkwell-gateway=SELF-WEB")
    delivery = Delivery(names.inbound, "referral.submitted.v1", user_id="linkwell-gateway")
    assert answer_to(names, trusted, delivery, "urn:linkwell:org:SELF-WEB") == "SELF-WEB"
    # claiming another organisation: that organisation is never told of what it did not send
    assert answer_to(names, trusted, delivery, "urn:linkwell:org:FNX01") is None


def test_the_gateway_serves_its_public_organisation_first():
    own = GatewaySettings(gateway_organisations="FNX01, SELF-WEB")
    assert own.serves == ("SELF-WEB", "FNX01")


# ------------------------------------------------------------------ the NHS.UK frontend


def test_the_vendored_nhsuk_frontend_is_the_pinned_version():
    script = (ROOT / "deploy" / "gateway" / "vendor-nhsuk.sh").read_text()
    pinned = re.search(r"^VERSION=(\S+)$", script, re.M).group(1)
    vendored = ROOT / "services" / "gateway" / "static" / "nhsuk"
    assert (vendored / "VERSION").read_text().strip() == pinned
    css = (vendored / "nhsuk-frontend.min.css").read_text()
    assert f'--nhsuk-frontend-version:"{pinned}"' in css
    assert f'const version="{pinned}"' in (vendored / "nhsuk-frontend.min.js").read_text()
    for image in re.findall(r"url\(/assets/(images/[^)]+)\)", css):  # served from /assets
        assert (vendored / image).exists(), image
