""" "Make a referral", pure: the professional's pages (three questions and check your
answers), what each must be (the public questions' own checks, worded for someone
referring another person), the referral they make, and a Gravity task status in plain
words. No I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import TypeAdapter

from contracts.enums import AgencyType, ContactPreference, Need, TaskStatus
from contracts.events import (
    Consent,
    ConsentMethod,
    Person,
    PersonContact,
    ReferralSubmitted,
    Referrer,
)

from . import domain
from .practices import Practice

# page -> the public questions whose checks it runs, in order
PAGES: dict[str, tuple[str, ...]] = {
    "person": ("name", "date-of-birth", "nhs-number", "gp"),
    "support": ("needs", "contact"),
    "consent": (),
}
SLUGS = tuple(PAGES)
TITLES = {
    "person": "Who are you referring?",
    "support": "What would they like help with?",
    "consent": "Has the person agreed to this referral?",
    "check": "Check the referral",
}
# the public questions speak to the person; these speak to the professional about them
REWORDED = {
    "Select what you would like help with": "Select what the person would like help with",
    "Select how you would like to be contacted": "Select how the person would like to be contacted",
    "Select a GP practice from the list": "Select the person's GP practice",
}
CONSENT_METHODS = {
    ConsentMethod.VERBAL.value: "They told me (in person or on the phone)",
    ConsentMethod.WRITTEN.value: "They agreed in writing",
}
AGENCY_TYPES = tuple(
    a.value for a in AgencyType if a not in (AgencyType.SELF_REFERRAL, AgencyType.FAMILY_OR_CARER)
)

TASK_STATUS_IN_PLAIN_WORDS: dict[str, str] = {
    TaskStatus.RECEIVED: "Received",
    TaskStatus.ACCEPTED: "Accepted",
    TaskStatus.REJECTED: "Rejected",
    TaskStatus.IN_PROGRESS: "In progress",
    TaskStatus.ON_HOLD: "On hold",
    TaskStatus.COMPLETED: "Completed",
    TaskStatus.CANCELLED: "Cancelled",
    TaskStatus.FAILED: "Failed",
}


def task_status_words(value: str | None) -> str:
    """A Gravity task status as the list shows it ("Not told yet" before the first)."""
    if value is None:
        return "Not told yet"
    return TASK_STATUS_IN_PLAIN_WORDS.get(value, value)


def check(
    slug: str, form: dict[str, Any], practices: dict[str, Practice]
) -> tuple[dict[str, Any], domain.Errors]:
    """The answers one page gives, and what is wrong with them."""
    if slug == "consent":
        return _consent(form)
    values: dict[str, Any] = {}
    errors: domain.Errors = {}
    for question in PAGES[slug]:
        got, wrong = domain.check(question, form, practices)
        values.update(got)
        errors.update({k: REWORDED.get(v, v) for k, v in wrong.items()})
    return ({}, errors) if errors else (values, {})


def _consent(form: dict[str, Any]) -> tuple[dict[str, Any], domain.Errors]:
    agreed = form.get("consent") == "yes"
    method = form.get("consent_method")
    errors: domain.Errors = {}
    if method not in CONSENT_METHODS:
        errors["consent_method"] = "Select how the person agreed"
    if not agreed:
        errors["consent"] = "Confirm that the person agreed, to send the referral"
    if errors:
        return {}, errors
    return {
        "consent": "yes",
        "consent_method": method,
        "consented_at": datetime.now(UTC).isoformat(),
    }, {}


_ANSWERED_BY = {"person": "practice", "support": "preferred", "consent": "consent"}


def next_unanswered(answers: dict[str, Any]) -> str | None:
    return next((s for s in SLUGS if _ANSWERED_BY[s] not in answers), None)


def rows(answers: dict[str, Any], practice: Practice | None) -> list[tuple[str, list[str], str]]:
    """Check your answers: (what, the answer's lines, the page that changes it)."""
    born = date.fromisoformat(answers["date_of_birth"])
    nhs = answers.get("nhs_number") or ""
    contact = [domain.CONTACT_IN_PLAIN_WORDS[ContactPreference(answers["preferred"])]]
    contact += [v for v in (answers.get("phone"), answers.get("email")) if v]
    return [
        ("Name", [f"{answers['given_name']} {answers['family_name']}"], "person"),
        ("Date of birth", [f"{born:%-d %B %Y}"], "person"),
        ("NHS number", [f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}" if nhs else "Not known"], "person"),
        ("GP practice", [f"{practice.name}, {practice.postcode}" if practice else ""], "person"),
        ("Help with", [domain.NEEDS_IN_PLAIN_WORDS[Need(n)] for n in answers["needs"]], "support"),
        ("Contact", contact, "support"),
        ("Agreement", [CONSENT_METHODS[answers["consent_method"]]], "consent"),
    ]


def referral(
    answers: dict[str, Any],
    *,
    reference: str,
    practice: Practice,
    organisation_name: str,
    agency_type: str,
    role: str | None,
    now: datetime,
) -> ReferralSubmitted:
    """The referral a professional's answers make: the same fields an organisation's own
    system sends over AMQP (its name and kind, the professional's role, never their name)."""
    if answers.get("consent") != "yes":
        raise ValueError("no referral without the person's agreement")
    return ReferralSubmitted(
        sender_reference=reference,
        referrer=Referrer(
            agency_type=AgencyType(agency_type),
            organisation_name=organisation_name,
            professional_role=role,
        ),
        person=Person(
            nhs_number=answers.get("nhs_number"),
            given_name=answers["given_name"],
            family_name=answers["family_name"],
            date_of_birth=TypeAdapter(date).validate_python(answers["date_of_birth"]),
            contact=PersonContact(
                preferred=ContactPreference(answers["preferred"]),
                phone=answers.get("phone") or None,
                email=answers.get("email") or None,
            ),
        ),
        registered_practice=practice.code,
        pcn=practice.pcn,
        needs=[Need(n) for n in answers["needs"]],
        consent=Consent(
            given=True,
            recorded_at=datetime.fromisoformat(answers["consented_at"]),
            method=ConsentMethod(answers["consent_method"]),
        ),
        in_crisis=False,
        submitted_at=now,
    )
