"""The people's door, pure: the questions in order, what each answer must be, the referral
the answers make, and where a referral stands in plain words. No I/O.

Answers are kept as plain strings (and a list for needs) by question; each question
checks its own and says, for each field, what to do in words a person understands (the
NHS service manual's error messages: "Enter...", "Select...")."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.enums import AgencyType, ContactPreference, Need, ReferralStatusValue
from contracts.envelope import UK
from contracts.events import (
    Consent,
    ConsentMethod,
    Person,
    PersonContact,
    ReferralSubmitted,
    Referrer,
)
from contracts.limits import forbidden_character
from contracts.nhs import is_valid_nhs_number

from .practices import Practice

# every field's most characters (checked before anything else; the page says so)
MAX_NAME = 100
MAX_QUERY = 100
MAX_PHONE = 20
MAX_EMAIL = 254
MAX_FIELD = 254
MAX_ADJUSTMENTS = 500  # the contract's bound (PersonContact.adjustments); a textarea
LONG_FIELDS = {"adjustments": MAX_ADJUSTMENTS}  # fields longer than MAX_FIELD may be
MAX_FIELDS = 40

WHO = {"myself": AgencyType.SELF_REFERRAL, "someone_else": AgencyType.FAMILY_OR_CARER}

NEEDS_IN_PLAIN_WORDS: dict[Need, str] = {
    Need.LONELINESS: "Feeling lonely or cut off from other people",
    Need.BEREAVEMENT: "Coping after someone has died",
    Need.MENTAL_HEALTH: "Low mood, stress, worry or low confidence",
    Need.HEALTHY_LIFESTYLE: "Being more active, eating well or managing weight",
    Need.LONG_TERM_CONDITION: "Living with a long-term health condition",
    Need.FALLS_PREVENTION: "Worry about falling",
    Need.CARER_SUPPORT: "Looking after someone else",
    Need.DAILY_LIVING: "Managing day-to-day things at home",
    Need.MONEY_AND_DEBT: "Money, benefits or debt",
    Need.HOUSING: "Housing",
    Need.EMPLOYMENT: "Work, or finding work",
    Need.LEGAL_ADVICE: "Legal problems",
    Need.DOMESTIC_VIOLENCE: "Feeling unsafe at home",
    Need.SUBSTANCE_MISUSE: "Alcohol or drugs",
    Need.ANTISOCIAL_BEHAVIOUR: "Problems with neighbours or antisocial behaviour",
    Need.PARENTING: "Being a parent",
    Need.SEND_SUPPORT: "Special educational needs or disabilities",
    Need.LGBTQ_SUPPORT: "Support as an LGBTQ+ person",
    Need.VOLUNTEERING: "Volunteering or learning something new",
    Need.OTHER: "Something else",
}

CONTACT_IN_PLAIN_WORDS: dict[ContactPreference, str] = {
    ContactPreference.PHONE: "Phone call",
    ContactPreference.SMS: "Text message",
    ContactPreference.EMAIL: "Email",
    ContactPreference.LETTER: "Letter",
}

Errors = dict[str, str]  # field name -> what to do


@dataclass(frozen=True)
class Step:
    """One question page: its address, and the fields its form posts."""

    slug: str
    fields: tuple[str, ...]


STEPS: tuple[Step, ...] = (
    Step("crisis", ("crisis",)),
    Step("who", ("who",)),
    Step("name", ("given_name", "family_name")),
    Step("date-of-birth", ("dob_day", "dob_month", "dob_year")),
    Step("nhs-number", ("nhs_number",)),
    Step("gp", ("practice",)),
    Step("needs", ("needs",)),
    Step("contact", ("preferred", "phone", "email")),
    Step("adjustments", ("adjustments",)),
    Step("consent", ("consent",)),
)
SLUGS = tuple(s.slug for s in STEPS)


def step(slug: str) -> Step | None:
    return next((s for s in STEPS if s.slug == slug), None)


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def too_long(form: dict[str, Any]) -> bool:
    """A form with more fields, or a longer field, than any question takes."""
    if len(form) > MAX_FIELDS:
        return True
    values = [v for vs in form.values() for v in (vs if isinstance(vs, list) else [vs])]
    if len(values) > MAX_FIELDS:
        return True
    return any(
        len(v) > LONG_FIELDS.get(name, MAX_FIELD)
        for name, vs in form.items()
        for v in (vs if isinstance(vs, list) else [vs])
    )


def _clean(value: str) -> bool:
    return not forbidden_character(value)


def check(
    slug: str, form: dict[str, Any], practices: dict[str, Practice]
) -> tuple[dict[str, Any], Errors]:
    """The answers this page's form gives, and what is wrong with them (if anything)."""
    return _CHECKS[slug](form, practices)


def _crisis(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    value = _text(form, "crisis")
    if value not in ("yes", "no"):
        return {}, {"crisis": "Select yes if you need help right now"}
    return {"crisis": value}, {}


def _who(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    value = _text(form, "who")
    if value not in WHO:
        return {}, {"who": "Select who you are referring"}
    return {"who": value}, {}


_NAME = re.compile(r"^[^\d@<>{}\[\]\\/|_=+*#$%^~`]+$")


def _name(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    out = {}
    for field, label in (("given_name", "first name"), ("family_name", "last name")):
        value = _text(form, field)
        if not value:
            errors[field] = f"Enter a {label}"
        elif len(value) > MAX_NAME:
            errors[field] = f"The {label} must be {MAX_NAME} characters or fewer"
        elif not _clean(value) or not _NAME.match(value):
            errors[field] = (
                f"The {label} must only include letters, spaces, hyphens and apostrophes"
            )
        else:
            out[field] = value
    return ({}, errors) if errors else (out, {})


def _date_of_birth(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    parts = [_text(form, f) for f in ("dob_day", "dob_month", "dob_year")]
    if not all(parts):
        return {}, {"dob_day": "Enter a date of birth, including a day, month and year"}
    if not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        return {}, {"dob_day": "Date of birth must be a real date, in numbers"}
    day, month, year = (int(p) for p in parts)
    try:
        born = date(year, month, day)
    except ValueError:
        return {}, {"dob_day": "Date of birth must be a real date"}
    today = datetime.now(UK).date()
    if born > today:
        return {}, {"dob_day": "Date of birth must be in the past"}
    if year < today.year - 120:
        return {}, {"dob_day": "Check the year of birth: it must be a 4-digit year"}
    return {"date_of_birth": born.isoformat()}, {}


def _nhs_number(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    value = re.sub(r"[\s-]", "", _text(form, "nhs_number"))
    if not value:  # optional: most people do not know theirs; the team confirms it
        return {"nhs_number": ""}, {}
    if not value.isascii() or not value.isdigit() or len(value) != 10:
        return {}, {"nhs_number": "NHS number must be 10 numbers"}
    if not is_valid_nhs_number(value):
        return {}, {"nhs_number": "Check the NHS number: this is not a real NHS number"}
    return {"nhs_number": value}, {}


def _gp(form: dict[str, Any], practices: dict[str, Practice]) -> tuple[dict[str, Any], Errors]:
    code = _text(form, "practice")
    if code not in practices:
        return {}, {"practice": "Select a GP practice from the list"}
    return {"practice": code}, {}


def _needs(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    raw = form.get("needs", [])
    chosen = raw if isinstance(raw, list) else [raw]
    valid = [n.value for n in Need if n.value in chosen]
    if not valid or len(valid) != len(set(chosen)):
        return {}, {"needs": "Select what you would like help with"}
    return {"needs": valid}, {}


_PHONE = re.compile(r"^\+?[0-9 ]{10,16}$")


def _contact(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    preferred = _text(form, "preferred")
    phone, email = _text(form, "phone"), _text(form, "email")
    if preferred not in {c.value for c in ContactPreference}:
        return {}, {"preferred": "Select how you would like to be contacted"}
    errors: Errors = {}
    if phone and not _PHONE.match(phone):
        errors["phone"] = "Enter a phone number, like 01632 960 001 or 07700 900 982"
    if email:
        try:
            PersonContact(preferred=ContactPreference.EMAIL, email=email)
        except ValidationError:
            errors["email"] = "Enter an email address in the correct format, like name@example.com"
    if preferred in ("phone", "sms") and not phone and "phone" not in errors:
        errors["phone"] = "Enter a phone number to be called or sent a text message"
    if preferred == "email" and not email and "email" not in errors:
        errors["email"] = "Enter an email address to be emailed"
    if errors:
        return {}, errors
    return {"preferred": preferred, "phone": phone, "email": email}, {}


def _adjustments(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    """Optional, in the person's words; blank means none asked for."""
    value = _text(form, "adjustments")
    if len(value) > MAX_ADJUSTMENTS:
        return {}, {
            "adjustments": f"Reasonable adjustments must be {MAX_ADJUSTMENTS} characters or fewer"
        }
    if not _clean(value):
        odd = "Reasonable adjustments must only include letters, numbers and punctuation"
        return {}, {"adjustments": odd}
    return {"adjustments": value}, {}


def _consent(form: dict[str, Any], _: Any) -> tuple[dict[str, Any], Errors]:
    if _text(form, "consent") != "yes":
        return {}, {"consent": "Select that you agree, to send the referral"}
    return {"consent": "yes", "consented_at": datetime.now(UTC).isoformat()}, {}


_CHECKS = {
    "crisis": _crisis,
    "who": _who,
    "name": _name,
    "date-of-birth": _date_of_birth,
    "nhs-number": _nhs_number,
    "gp": _gp,
    "needs": _needs,
    "contact": _contact,
    "adjustments": _adjustments,
    "consent": _consent,
}

_ANSWERED_BY = {
    "crisis": "crisis",
    "who": "who",
    "name": "family_name",
    "date-of-birth": "date_of_birth",
    "nhs-number": "nhs_number",
    "gp": "practice",
    "needs": "needs",
    "contact": "preferred",
    "adjustments": "adjustments",
    "consent": "consent",
}


def next_unanswered(answers: dict[str, Any]) -> str | None:
    """The first question not answered yet, or None when all are (check your answers)."""
    return next((s.slug for s in STEPS if _ANSWERED_BY[s.slug] not in answers), None)


def in_crisis(answers: dict[str, Any]) -> bool:
    return answers.get("crisis") == "yes"


def new_reference() -> str:
    """A reference a person can read out on the phone: no 0/O, 1/I/L; about 40 bits."""
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    body = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"LW-{body[:4]}-{body[4:]}"


def normalise_reference(value: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", value.upper().replace("O", "0"))


def for_self(answers: dict[str, Any]) -> bool:
    return answers.get("who") != "someone_else"


def dob_fields(answers: dict[str, Any], form: dict[str, Any] | None = None) -> list[str]:
    if form is not None:
        return [str(form.get(f, ""))[:4] for f in ("dob_day", "dob_month", "dob_year")]
    if "date_of_birth" in answers:
        born = date.fromisoformat(answers["date_of_birth"])
        return [str(born.day), str(born.month), str(born.year)]
    return ["", "", ""]


def canonical_reference(reference: str) -> str:
    """``lw7k3mq9tz`` or ``LW 7K3M Q9TZ`` as ``LW-7K3M-Q9TZ``."""
    bare = normalise_reference(reference)
    if len(bare) == 10 and bare.startswith("LW"):
        return f"LW-{bare[2:6]}-{bare[6:]}"
    return reference


def referral(
    answers: dict[str, Any], reference: str, practice: Practice, scheme: str, now: datetime
) -> ReferralSubmitted:
    """The referral the answers make (raises ValueError if they do not make one)."""
    if in_crisis(answers) or answers.get("consent") != "yes":
        raise ValueError("no referral without consent, and none for a person in crisis")
    contact = PersonContact(
        preferred=ContactPreference(answers["preferred"]),
        phone=answers.get("phone") or None,
        email=answers.get("email") or None,
        adjustments=answers.get("adjustments") or None,
    )
    agency = WHO[answers["who"]]
    return ReferralSubmitted(
        sender_reference=reference,
        referrer=Referrer(
            agency_type=agency,
            organisation_name=scheme,
            professional_role=None,
        ),
        person=Person(
            nhs_number=answers.get("nhs_number") or None,
            given_name=answers["given_name"],
            family_name=answers["family_name"],
            date_of_birth=TypeAdapter(date).validate_python(answers["date_of_birth"]),
            contact=contact,
        ),
        registered_practice=practice.code,
        pcn=practice.pcn,
        needs=[Need(n) for n in answers["needs"]],
        consent=Consent(
            given=True,
            recorded_at=datetime.fromisoformat(answers["consented_at"]),
            method=ConsentMethod.DIGITAL,
        ),
        in_crisis=False,
        submitted_at=now,
    )


# ------------------------------------------------------------------ where it stands

STEPS_IN_PLAIN_WORDS: dict[str, tuple[str, str]] = {
    # step -> (heading, what it means)
    "received": (
        "Received",
        "We have the referral. It will be checked soon.",
    ),
    ReferralStatusValue.ACCEPTED: (
        "Accepted",
        "The referral has been accepted. The social prescribing team will find a link "
        "worker for it.",
    ),
    ReferralStatusValue.WAITLISTED: (
        "On the waiting list",
        "The referral is on the waiting list. A link worker will be in touch when one is "
        "free. We cannot say how long this will take.",
    ),
    ReferralStatusValue.ASSIGNED: (
        "A link worker has been found",
        "A link worker has the referral and will contact you.",
    ),
    ReferralStatusValue.JOINED: (
        "Added to existing support",
        "This referral has been added to support that is already in place.",
    ),
    ReferralStatusValue.IN_PROGRESS: (
        "Getting support",
        "A link worker is working with the person referred.",
    ),
    ReferralStatusValue.ON_HOLD: ("Paused", "Support is paused for now."),
    ReferralStatusValue.RESUMED: ("Support started again", "Support has started again."),
    ReferralStatusValue.CLOSED: ("Finished", "Support from the link worker has finished."),
    ReferralStatusValue.WITHDRAWN: ("Withdrawn", "The referral was withdrawn."),
    ReferralStatusValue.REJECTED: (
        "Not accepted",
        "We could not accept this referral. Please contact your GP practice, who can help.",
    ),
}


def in_plain_words(step_name: str) -> tuple[str, str]:
    return STEPS_IN_PLAIN_WORDS.get(step_name, STEPS_IN_PLAIN_WORDS["received"])


def later(step_name: str) -> bool:
    """Whether a status answer moves the page's step (a duplicate does not)."""
    return step_name in STEPS_IN_PLAIN_WORDS and step_name != ReferralStatusValue.DUPLICATE
