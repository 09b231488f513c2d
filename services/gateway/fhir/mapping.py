"""Between FHIR and the contract, in one place (docs/architecture/fhir.md): a BaRS
``servicerequest-request`` message Bundle, or an HL7 Gravity (SDOHCC) Task for Referral
Management with its ServiceRequest, becomes a ``ReferralSubmitted``; Linkwell's answers
become a Task, a ServiceRequest, an OperationOutcome. Pure functions: no I/O.

Models: ``fhir.resources.R4B`` (FHIR 4.3.0). fhir.resources 7.x/8.x ship R5 as the default
package, R4B and STU3; no release with pydantic v2 has a 4.0.1 (R4) package. R4B changed
none of the elements read here from R4 (Bundle, MessageHeader, ServiceRequest, Task,
Patient, Organization, Consent keep their R4 shape), so R4 messages parse unchanged.

The models check structure and datatypes; the rule layer below checks what they do not:
the BaRS message event, the NHS number's system and check digit, ODS codes, the
registered practice, consent, the needs, and the SDOHCC Task invariants. Every refusal is
a ``Refusal``: HTTP status, the BaRS error code (``REC_*``, CodeSystem
``https://fhir.nhs.uk/Codesystem/http-error-codes``, as listed in the BaRS API
specification's error table, NHSDigital/booking-and-referral-fhir-api
specification/booking-and-referral.yaml, and its OperationOutcome examples), the FHIR
issue type (http://hl7.org/fhir/valueset-issue-type.html) and the FHIRPath of the
offending element.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from contracts.enums import (
    AgencyType,
    ConsentMethod,
    ContactPreference,
    Need,
    TaskStatus,
)
from contracts.envelope import UK
from contracts.events import Consent, Person, PersonContact, ReferralSubmitted, Referrer
from contracts.nhs import is_valid_nhs_number
from contracts.snomed import REGISTRY as SNOMED_REGISTRY
from contracts.snomed import SNOMED_CT_SYSTEM

# ------------------------------------------------------------------ identifiers and codes

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
# BaRS' own examples (ValidationRequest) spell the ODS system with a lower-case "id"; the
# UK Core identifier is "Id". Both are read as the ODS code; answers use "Id".
ODS_SYSTEMS = {ODS, "https://fhir.nhs.uk/id/ods-organization-code"}
BARS_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
SERVICEREQUEST_REQUEST = "servicerequest-request"
ERRORS = "https://fhir.nhs.uk/Codesystem/http-error-codes"  # as BaRS spells it, every time
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
SDOHCC_TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
TASK_PROFILE = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
)
# Linkwell's own code systems for what no national value set covers (the needs of social
# prescribing, the kind of referring agency, how consent was taken): Linkwell's enums,
# named as URNs so they are never mistaken for a national or SNOMED CT code system.
NEED_SYSTEM = "urn:linkwell:codesystem:need"
AGENCY_SYSTEM = "urn:linkwell:codesystem:agency-type"
CONSENT_METHOD_SYSTEM = "urn:linkwell:codesystem:consent-method"
# the type of a Task output naming a code written back to the GP record that is not a
# procedure (Linkwell's own, as above)
TASK_OUTPUT_SYSTEM = "urn:linkwell:codesystem:task-output"
# the receiver's own identifiers, for the ids it answers with
REFERENCE_SYSTEM = "urn:linkwell:referral-reference"

CANCELLED = {"revoked", "entered-in-error"}


@dataclass(frozen=True)
class Refusal(Exception):
    """Why a request is refused, as BaRS answers it."""

    status: int
    rec: str  # REC_BAD_REQUEST, REC_NOT_FOUND, REC_CONFLICT, REC_UNPROCESSABLE_ENTITY ...
    issue: str  # FHIR issue type: structure, required, value, invariant, duplicate ...
    diagnostics: str
    expression: str | None = None


def bad(issue: str, diagnostics: str, expression: str | None = None) -> Refusal:
    return Refusal(400, "REC_BAD_REQUEST", issue, diagnostics, expression)


def unprocessable(issue: str, diagnostics: str, expression: str | None = None) -> Refusal:
    return Refusal(422, "REC_UNPROCESSABLE_ENTITY", issue, diagnostics, expression)


def operation_outcome(refusal: Refusal) -> dict[str, Any]:
    """The OperationOutcome BaRS gives for a refusal (as its REC examples are shaped)."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": refusal.issue,
        "details": {
            "coding": [
                {"system": ERRORS, "code": refusal.rec, "display": refusal.rec.replace("_", " ")}
            ]
        },
        "diagnostics": refusal.diagnostics,
    }
    if refusal.expression:
        issue["expression"] = [refusal.expression]
    return {
        "resourceType": "OperationOutcome",
        "id": str(uuid.uuid4()),
        "meta": {
            "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"]
        },
        "issue": [issue],
    }


# ------------------------------------------------------------------ parsing with the models


def _path(root: str, loc: Iterable[Any]) -> str:
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) not in ("function-after", "function-before", "function-wrap"):
            out += f".{part}"
    return out


MAX_DEPTH = 40  # levels of JSON nesting; BaRS' example message has 11


def depth(value: object) -> int:
    """How deeply a JSON value nests (without recursing: hostile input is deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse(model: type[Any], body: dict[str, Any], root: str) -> Any:
    """The resource, or a 400 naming the first offending element. Unknown resource types
    inside are refused too (the models raise a KeyError for them), and JSON nested deeper
    than ``MAX_DEPTH`` before the models see it (they recurse)."""
    if depth(body) > MAX_DEPTH:
        raise bad("too-costly", f"nested more than {MAX_DEPTH} levels deep", root)
    try:
        return model.model_validate(body)
    except RecursionError:
        raise bad("too-costly", "nested too deeply", root) from None
    except ValidationError as error:
        first = error.errors()[0]
        raise bad(
            "structure",
            f"{first['msg']}"[:300],
            _path(root, first["loc"]),
        ) from None
    except (KeyError, TypeError, ValueError) as error:
        raise bad("not-supported", f"not a FHIR R4 resource: {str(error)[:100]}", root) from None


def resource_type_of(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("resourceType"), str):
        return body["resourceType"]
    return None


# ------------------------------------------------------------------ what a referral says


@dataclass(frozen=True)
class Sender:
    """Who is calling (the API client): its organisation's ODS code, name and kind."""

    org: str
    name: str
    agency_type: str
    client_id: str = ""  # the API client's id, for the audit trail's records of its reads


@dataclass(frozen=True)
class Inbound:
    """A referral (or its cancellation) as read from FHIR, before it is stored."""

    sender_reference: str
    cancel: bool
    referral: ReferralSubmitted | None  # None for a cancellation
    nhs_number: str | None = None
    date_of_birth: str | None = None
    requester_org: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


Resolve = Callable[[str | None], Any]
Practices = Callable[[str], Any]  # ODS code -> Practice (with .pcn) or None


def _codes(concepts: Iterable[Any] | None, system: str) -> list[str]:
    return [
        c.code
        for concept in concepts or []
        for c in (concept.coding or [])
        if c.system == system and c.code
    ]


def _ods(org: Any) -> str | None:
    for ident in getattr(org, "identifier", None) or []:
        if ident.system in ODS_SYSTEMS and ident.value:
            return ident.value.strip().upper()
    return None


def nhs_number_of(patient: Any, where: str = "Patient") -> str | None:
    """The NHS number (checked: 10 digits, modulus 11), or None if none is given."""
    for ident in patient.identifier or []:
        if ident.system == NHS_NUMBER:
            value = (ident.value or "").replace(" ", "")
            if not is_valid_nhs_number(value):
                raise unprocessable(
                    "value",
                    "the NHS number is not a valid NHS number (10 digits, modulus 11 check)",
                    f"{where}.identifier.where(system='{NHS_NUMBER}').value",
                )
            return value
    return None


def patient_digest(org: str, nhs_number: str) -> bytes:
    """What a search by NHS number compares (the number itself is not kept here)."""
    return hashlib.sha256(f"{org}|{nhs_number}".encode()).digest()


def _person(patient: Any, where: str) -> tuple[Person, str | None]:
    nhs = nhs_number_of(patient, where)
    name = (patient.name or [None])[0]
    given = (name.given or [None])[0] if name else None
    if not name or not given or not name.family:
        raise unprocessable("required", "the patient's given and family name", f"{where}.name")
    if patient.birthDate is None:
        raise unprocessable("required", "the patient's date of birth", f"{where}.birthDate")
    if not isinstance(patient.birthDate, date):
        raise unprocessable("value", "a full date of birth", f"{where}.birthDate")
    phone = email = None
    preferred = ContactPreference.LETTER
    ranked = sorted(patient.telecom or [], key=lambda t: t.rank or 99)
    for point in ranked:
        if point.system in ("phone", "sms") and phone is None and point.value:
            phone = point.value
        if point.system == "email" and email is None and point.value:
            email = point.value
    if ranked and ranked[0].system in ("phone", "sms", "email"):
        preferred = ContactPreference(ranked[0].system)
    try:
        person = Person(
            nhs_number=nhs,
            given_name=given,
            family_name=name.family,
            date_of_birth=patient.birthDate,
            contact=PersonContact(preferred=preferred, phone=phone, email=email),
        )
    except ValidationError as error:
        first = error.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        target = {
            "contact.phone": f"{where}.telecom.where(system='phone').value",
            "contact.email": f"{where}.telecom.where(system='email').value",
            "date_of_birth": f"{where}.birthDate",
        }.get(loc, f"{where}.name")
        raise unprocessable("value", f"{loc}: {first['msg']}"[:300], target) from None
    return person, nhs


def _consent(resources: list[tuple[str, Any]]) -> Consent:
    for where, consent in resources:
        if consent.status != "active":
            raise unprocessable(
                "value", "the person's consent must be active to refer", f"{where}.status"
            )
        methods = _codes(consent.category, CONSENT_METHOD_SYSTEM)
        if not methods or methods[0] not in ConsentMethod.__members__.values():
            raise unprocessable(
                "code-invalid",
                f"how consent was taken: a code of {CONSENT_METHOD_SYSTEM}"
                f" ({', '.join(m.value for m in ConsentMethod)})",
                f"{where}.category",
            )
        recorded = consent.dateTime
        if recorded is None:
            raise unprocessable("required", "when consent was given", f"{where}.dateTime")
        if not isinstance(recorded, datetime):  # a date only: that day, UK time
            recorded = datetime(recorded.year, recorded.month, recorded.day, tzinfo=UK)
        elif recorded.tzinfo is None:
            raise unprocessable("value", "consent time with its offset", f"{where}.dateTime")
        return Consent(given=True, recorded_at=recorded, method=ConsentMethod(methods[0]))
    raise unprocessable(
        "required", "the person's consent to the referral (a Consent resource)", "Consent"
    )


def _needs(sr: Any, where: str) -> list[Need]:
    codes = _codes(sr.reasonCode, NEED_SYSTEM) + _codes(sr.category, NEED_SYSTEM)
    if not codes:
        raise unprocessable(
            "required",
            f"what the person is referred for: ServiceRequest.reasonCode from {NEED_SYSTEM}",
            f"{where}.reasonCode",
        )
    known = {n.value for n in Need}
    for code in codes:
        if code not in known:
            raise unprocessable(
                "code-invalid", f"not a need Linkwell knows: {code[:40]}", f"{where}.reasonCode"
            )
    return [Need(c) for c in dict.fromkeys(codes)][: len(Need)]


def referral_from(
    sr: Any,
    where: str,
    resolve: Resolve,
    sender: Sender,
    requester_org: Any,
    consents: list[tuple[str, Any]],
    practices: Practices,
    submitted_at: datetime,
    full_url: str | None = None,
) -> Inbound:
    """A ServiceRequest (with what it points to) as the contract's referral."""
    reference = _sender_reference(sr, where, full_url)
    if sr.status in CANCELLED:
        return Inbound(reference, True, None)
    if sr.status != "active":
        raise unprocessable(
            "value", "a new referral is active (or revoked to cancel one)", f"{where}.status"
        )
    if sr.intent not in ("order", "plan", "proposal"):
        raise unprocessable("value", "a referral's intent is order or plan", f"{where}.intent")
    patient = resolve(sr.subject.reference if sr.subject else None)
    if patient is None or patient.get_resource_type() != "Patient":
        raise bad(
            "required", "the ServiceRequest's subject: a Patient in the message", f"{where}.subject"
        )
    person, nhs = _person(patient, "Patient")
    practice_ref = (patient.generalPractitioner or [None])[0]
    gp = resolve(practice_ref.reference) if practice_ref else None
    code = _ods(gp) if gp is not None and gp.get_resource_type() == "Organization" else None
    if code is None and practice_ref is not None and practice_ref.identifier is not None:
        if practice_ref.identifier.system in ODS_SYSTEMS:
            code = (practice_ref.identifier.value or "").upper() or None
    if code is None:
        raise unprocessable(
            "required",
            "the registered GP practice: Patient.generalPractitioner, an Organization with "
            "its ODS code",
            "Patient.generalPractitioner",
        )
    practice = practices(code) if re.fullmatch(r"[A-Z][0-9]{5}", code) else None
    if practice is None:
        raise unprocessable(
            "value",
            f"{code[:10]} is not a GP practice this scheme serves",
            "Patient.generalPractitioner",
        )
    agency = _codes(getattr(requester_org, "type", None), AGENCY_SYSTEM)
    agency_type = agency[0] if agency and agency[0] in set(AgencyType) else sender.agency_type
    org_name = getattr(requester_org, "name", None) or sender.name
    try:
        referral = ReferralSubmitted(
            sender_reference=reference,
            referrer=Referrer(agency_type=AgencyType(agency_type), organisation_name=org_name),
            person=person,
            registered_practice=code,
            pcn=practice.pcn,
            needs=_needs(sr, where),
            consent=_consent(consents),
            submitted_at=submitted_at,
        )
    except ValidationError as error:
        first = error.errors()[0]
        raise unprocessable(
            "value", f"{'.'.join(map(str, first['loc']))}: {first['msg']}"[:300], where
        ) from None
    return Inbound(
        reference,
        False,
        referral,
        nhs_number=nhs,
        date_of_birth=person.date_of_birth.isoformat(),
        requester_org=_ods(requester_org) if requester_org is not None else None,
    )


def _sender_reference(sr: Any, where: str, full_url: str | None = None) -> str:
    """The ServiceRequest's first identifier, else its id, else its entry's fullUrl."""
    value = None
    for ident in sr.identifier or []:
        if ident.value:
            value = ident.value
            break
    value = value or sr.id or full_url
    if not value or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", value):
        raise unprocessable(
            "value",
            "the ServiceRequest's identifier (the sender's reference: up to 64 letters, "
            "digits and ._:/-)",
            f"{where}.identifier",
        )
    return value


def _requester_org(ref: Any, resolve: Resolve) -> Any:
    """The requesting Organization: directly, or a PractitionerRole's organization."""
    found = resolve(ref.reference) if ref is not None else None
    if found is not None and found.get_resource_type() == "PractitionerRole":
        found = resolve(found.organization.reference) if found.organization else None
    if found is not None and found.get_resource_type() == "Organization":
        return found
    return None


def _check_requester(org: Any, sender: Sender, where: str) -> None:
    code = _ods(org) if org is not None else None
    if code is not None and code != sender.org:
        raise Refusal(
            403,
            "REC_FORBIDDEN",
            "forbidden",
            "the requesting organisation is not the caller's own",
            where,
        )


# ------------------------------------------------------------------ BaRS message bundle


def _resolver(entries: list[Any]) -> Resolve:
    by_ref: dict[str, Any] = {}
    for entry in entries:
        res = entry.resource
        if res is None:
            continue
        if entry.fullUrl:
            by_ref[entry.fullUrl] = res
        if res.id:
            by_ref[f"{res.get_resource_type()}/{res.id}"] = res
    return lambda ref: by_ref.get(ref) if ref else None


def from_message(body: dict[str, Any], sender: Sender, practices: Practices) -> Inbound:
    """A BaRS message Bundle (``servicerequest-request``)."""
    from fhir.resources.R4B.bundle import Bundle

    if resource_type_of(body) != "Bundle":
        raise bad("not-supported", "$process-message takes a Bundle", "Bundle")
    bundle = parse(Bundle, body, "Bundle")
    if bundle.type != "message":
        raise bad("invariant", "a message Bundle (type message)", "Bundle.type")
    entries = bundle.entry or []
    header = entries[0].resource if entries else None
    if header is None or header.get_resource_type() != "MessageHeader":
        raise bad("invariant", "a message starts with its MessageHeader", "Bundle.entry[0]")
    event = getattr(header, "eventCoding", None)
    if event is None or event.code != SERVICEREQUEST_REQUEST:
        raise unprocessable(
            "not-supported",
            "this receiver takes referrals (MessageHeader event servicerequest-request)",
            "Bundle.entry[0].resource.eventCoding.code",
        )
    if event.system not in (
        BARS_EVENTS,
        "https://fhir.nhs.uk/CodeSystem/message-event-servicerequest",
    ):
        raise unprocessable(
            "code-invalid",
            f"the event's system is {BARS_EVENTS}",
            "Bundle.entry[0].resource.eventCoding.system",
        )
    resolve = _resolver(entries)
    focus_ref = next(
        (
            f.reference
            for f in header.focus or []
            if resolve(f.reference) is not None
            and resolve(f.reference).get_resource_type() == "ServiceRequest"
        ),
        None,
    )
    focus = resolve(focus_ref)
    if focus is None:
        raise bad(
            "required",
            "the MessageHeader's focus: the ServiceRequest in the message",
            "Bundle.entry[0].resource.focus",
        )
    requester = _requester_org(focus.requester, resolve) or _requester_org(header.sender, resolve)
    _check_requester(requester, sender, "MessageHeader.sender")
    consents = [
        ("Consent", e.resource)
        for e in entries
        if e.resource is not None and e.resource.get_resource_type() == "Consent"
    ]
    at = bundle.timestamp if isinstance(bundle.timestamp, datetime) else None
    return referral_from(
        focus,
        "ServiceRequest",
        resolve,
        sender,
        requester,
        consents,
        practices,
        at if at is not None and at.tzinfo else datetime.now(UTC),
        focus_ref if focus_ref and focus_ref.startswith("urn:uuid:") else None,
    )


# ------------------------------------------------------------------ Gravity Task


def from_task(body: dict[str, Any], sender: Sender, practices: Practices) -> Inbound:
    """An SDOHCC Task for Referral Management (intent order, code fulfill, status
    requested) with its ServiceRequest contained, or a transaction Bundle of both."""
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.task import Task

    kind = resource_type_of(body)
    others: list[Any] = []
    if kind == "Bundle":
        bundle = parse(Bundle, body, "Bundle")
        if bundle.type != "transaction":
            raise bad(
                "invariant", "a Task with its ServiceRequest comes as a transaction", "Bundle.type"
            )
        others = [e for e in bundle.entry or [] if e.resource is not None]
        tasks = [e.resource for e in others if e.resource.get_resource_type() == "Task"]
        if len(tasks) != 1:
            raise bad("invariant", "one Task in the transaction", "Bundle.entry")
        task = tasks[0]
    elif kind == "Task":
        task = parse(Task, body, "Task")
    else:
        raise bad("not-supported", "POST /Task takes a Task (or a transaction Bundle)", kind)
    if task.intent != "order":
        raise unprocessable(
            "value", "a Task for Referral Management has intent order", "Task.intent"
        )
    if task.status != "requested":
        raise unprocessable(
            "value", "a new Task for Referral Management is requested", "Task.status"
        )
    if TASK_CODE not in _systems(task.code) or "fulfill" not in _codes([task.code], TASK_CODE):
        raise unprocessable("value", f"Task.code is fulfill ({TASK_CODE})", "Task.code")
    contained = {f"#{r.id}": r for r in task.contained or [] if r.id}
    bundled = _resolver(others)

    def resolve(ref: str | None) -> Any:
        if not ref:
            return None
        return contained.get(ref) or bundled(ref)

    sr = resolve(task.focus.reference if task.focus else None)
    if sr is None or sr.get_resource_type() != "ServiceRequest":
        raise bad(
            "required",
            "Task.focus: the ServiceRequest, contained or in the transaction",
            "Task.focus",
        )
    requester = _requester_org(task.requester, resolve) or _requester_org(sr.requester, resolve)
    _check_requester(requester, sender, "Task.requester")
    consents = [
        ("Consent", r)
        for r in [*(task.contained or []), *(e.resource for e in others)]
        if r.get_resource_type() == "Consent"
    ]
    return referral_from(
        sr,
        "Task.focus.resolve()",
        resolve,
        sender,
        requester,
        consents,
        practices,
        task.authoredOn if _aware(task.authoredOn) else datetime.now(UTC),
    )


def _systems(concept: Any) -> set[str]:
    return {c.system for c in (concept.coding or [])} if concept is not None else set()


def _aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def task_cancel(body: object) -> bool:
    """A requester's cancel: the Task (PUT) or a JSON Patch (PATCH) setting status
    cancelled. True if it asks to cancel; a 422 for any other change."""
    if isinstance(body, list):
        ops = [o for o in body if isinstance(o, dict)]
        if (
            ops
            and all(
                o.get("op") in ("replace", "add") and o.get("path") in ("/status", "/statusReason")
                for o in ops
            )
            and any(o.get("path") == "/status" and o.get("value") == "cancelled" for o in ops)
        ):
            return True
        raise unprocessable("not-supported", "a requester may only cancel its Task", "Task.status")
    if resource_type_of(body) == "Task" and isinstance(body, dict):
        if body.get("status") == "cancelled":
            return True
        raise unprocessable("not-supported", "a requester may only cancel its Task", "Task.status")
    raise bad("structure", "a Task, or a JSON Patch of its status", "Task")


# ------------------------------------------------------------------ answers


@dataclass(frozen=True)
class Coded:
    """A SNOMED CT code written back to the GP record, as the closure step tells it."""

    code: str
    display: str


@dataclass(frozen=True)
class Step:
    status: str  # a TaskStatus value
    at: datetime
    reason: str | None = None
    message: str | None = None
    codes: tuple[Coded, ...] = ()


RESULTING_ACTIVITY = {
    "coding": [
        {"system": SDOHCC_TEMP, "code": "resulting-activity", "display": "Resulting Activity"}
    ]
}
# A code written back that is not a procedure (an observable entity, a situation): the
# profile's PerformedActivityCode slice binds procedure codes only, so these are outputs of
# Linkwell's own type, beside the slice (Task.output is sliced open).
GP_RECORD_CODE = {
    "coding": [
        {
            "system": TASK_OUTPUT_SYSTEM,
            "code": "gp-record-code",
            "display": "Coded in the GP record",
        }
    ]
}


def code_outputs(codes: tuple[Coded, ...]) -> list[dict[str, Any]]:
    """The writeback codes as Task.output entries, per the SDOHCC Task for Referral
    Management profile: a SNOMED CT procedure (by its semantic tag in
    ``contracts/snomed.py``) is a ``PerformedActivityCode`` (type ``resulting-activity``,
    ``valueCodeableConcept``); any other code is a ``gp-record-code`` output. A code not in
    the registry is left out (nothing invented reaches an answer)."""
    out = []
    for c in codes:
        concept = SNOMED_REGISTRY.get(c.code)
        if concept is None:
            continue
        value = {
            "coding": [
                {"system": SNOMED_CT_SYSTEM, "code": concept.code, "display": concept.display}
            ],
            "text": concept.display,
        }
        kind = RESULTING_ACTIVITY if concept.semantic_tag == "procedure" else GP_RECORD_CODE
        out.append({"type": kind, "valueCodeableConcept": value})
    return out


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def task_resource(
    task_id: str,
    reference: str,
    sender_reference: str,
    org: str,
    submitted_at: datetime,
    steps: list[Step],
) -> dict[str, Any]:
    """Where a referral stands, as an SDOHCC Task for Referral Management."""
    last = steps[-1] if steps else Step(TaskStatus.RECEIVED.value, submitted_at)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "meta": {"profile": [TASK_PROFILE], "lastUpdated": _stamp(last.at)},
        "identifier": [{"system": REFERENCE_SYSTEM, "value": reference}],
        "status": last.status,
        "intent": "order",
        "code": {
            "coding": [
                {"system": TASK_CODE, "code": "fulfill", "display": "Fulfill the focal request"}
            ]
        },
        "focus": {
            "reference": f"ServiceRequest/{task_id}",
            "identifier": {"value": sender_reference},
        },
        "authoredOn": _stamp(submitted_at),
        "lastModified": _stamp(last.at),
        "requester": {"identifier": {"system": ODS, "value": org}},
    }
    if last.reason and last.status in ("rejected", "on-hold", "cancelled", "failed"):
        task["statusReason"] = {"text": last.reason}
    if last.status == "completed":
        outputs = [
            {"type": RESULTING_ACTIVITY, "valueString": step.message}
            for step in steps
            if step.message
        ]
        task["output"] = outputs + code_outputs(last.codes)
    return task


def service_request_resource(
    sr_id: str,
    reference: str,
    sender_reference: str,
    org: str,
    status: str,
    submitted_at: datetime,
) -> dict[str, Any]:
    """The receiver's view of a referral: ids and status only (no personal data)."""
    fhir_status = {
        "cancelled": "revoked",
        "completed": "completed",
        "rejected": "revoked",
        "failed": "revoked",
    }.get(status, "active")
    return {
        "resourceType": "ServiceRequest",
        "id": sr_id,
        "identifier": [
            {"system": REFERENCE_SYSTEM, "value": reference},
            {"value": sender_reference, "assigner": {"identifier": {"system": ODS, "value": org}}},
        ],
        "status": fhir_status,
        "intent": "order",
        "authoredOn": _stamp(submitted_at),
        "requester": {"identifier": {"system": ODS, "value": org}},
    }


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def accepted_message(
    request_id: str, reference: str, sr_id: str, header_id: str | None
) -> dict[str, Any]:
    """The synchronous answer to a message: the receiver's ids for the referral."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"linkwell:fhir:answer:{request_id}")),
        "type": "message",
        "timestamp": _stamp(datetime.now(UTC)),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'h:' + request_id)}",
                "resource": {
                    "resourceType": "MessageHeader",
                    "eventCoding": {"system": BARS_EVENTS, "code": "servicerequest-response"},
                    "source": {"endpoint": "urn:linkwell:gateway"},
                    "response": {"identifier": header_id or request_id, "code": "ok"},
                    "focus": [{"reference": f"ServiceRequest/{sr_id}"}],
                },
            },
            {
                "fullUrl": f"ServiceRequest/{sr_id}",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "id": sr_id,
                    "identifier": [{"system": REFERENCE_SYSTEM, "value": reference}],
                    "status": "active",
                    "intent": "order",
                    "subject": {"display": "as sent"},
                },
            },
        ],
    }


def header_id(body: dict[str, Any]) -> str | None:
    try:
        return str(body["entry"][0]["resource"].get("id") or "") or None
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
