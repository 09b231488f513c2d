"""Enumerations shared by every event. Values are stable wire identifiers."""

from __future__ import annotations

from enum import StrEnum


class AgencyType(StrEnum):
    """Who made the referral (docs/domain.md#who-refers)."""

    GENERAL_PRACTICE = "general_practice"
    COMMUNITY_PHARMACY = "community_pharmacy"
    LOCAL_AUTHORITY = "local_authority"
    MULTIDISCIPLINARY_TEAM = "multidisciplinary_team"
    HOSPITAL_DISCHARGE = "hospital_discharge"
    ALLIED_HEALTH_PROFESSIONAL = "allied_health_professional"
    FIRE_SERVICE = "fire_service"
    POLICE = "police"
    JOB_CENTRE = "job_centre"
    SOCIAL_CARE = "social_care"
    HOUSING_ASSOCIATION = "housing_association"
    VCSE = "vcse"
    FAMILY_OR_CARER = "family_or_carer"
    SELF_REFERRAL = "self_referral"


class Need(StrEnum):
    """What the person is referred for; a referral usually names several."""

    LONELINESS = "loneliness"
    BEREAVEMENT = "bereavement"
    MENTAL_HEALTH = "mental_health"
    HEALTHY_LIFESTYLE = "healthy_lifestyle"
    LONG_TERM_CONDITION = "long_term_condition"
    FALLS_PREVENTION = "falls_prevention"
    CARER_SUPPORT = "carer_support"
    DAILY_LIVING = "daily_living"
    MONEY_AND_DEBT = "money_and_debt"
    HOUSING = "housing"
    EMPLOYMENT = "employment"
    LEGAL_ADVICE = "legal_advice"
    DOMESTIC_VIOLENCE = "domestic_violence"
    SUBSTANCE_MISUSE = "substance_misuse"
    ANTISOCIAL_BEHAVIOUR = "antisocial_behaviour"
    PARENTING = "parenting"
    SEND_SUPPORT = "send_support"
    LGBTQ_SUPPORT = "lgbtq_support"
    VOLUNTEERING = "volunteering"
    OTHER = "other"


class ContactPreference(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"


class ConsentMethod(StrEnum):
    VERBAL = "verbal"
    WRITTEN = "written"
    DIGITAL = "digital"


class Pathway(StrEnum):
    ADULT = "adult"
    CHILDREN_AND_YOUNG_PEOPLE = "children_and_young_people"


class ContactMode(StrEnum):
    PHONE = "phone"
    VIDEO = "video"
    FACE_TO_FACE = "face_to_face"
    HOME_VISIT = "home_visit"
    MESSAGE = "message"


class ContactOutcome(StrEnum):
    """What a link worker's contact showed.

    ``engaged``: the person took part and wants support (the first one codes acceptance);
    ``declined``: the person does not want social prescribing;
    ``not_reached``: an attempt that did not reach the person.
    """

    ENGAGED = "engaged"
    DECLINED = "declined"
    NOT_REACHED = "not_reached"


class ClosureReason(StrEnum):
    COMPLETED = "completed"
    DECLINED = "declined"
    UNABLE_TO_CONTACT = "unable_to_contact"
    MOVED_AWAY = "moved_away"
    REFERRED_ELSEWHERE = "referred_elsewhere"
    NOT_ELIGIBLE = "not_eligible"
    DECEASED = "deceased"
    OTHER = "other"


class RejectionCode(StrEnum):
    """Machine-readable reasons in ``referral.rejected.v1`` and ``event.rejected.v1``."""

    ENVELOPE_INVALID = "envelope_invalid"
    SCHEMA_INVALID = "schema_invalid"
    UNSUPPORTED_TYPE = "unsupported_type"
    NHS_NUMBER_INVALID = "nhs_number_invalid"
    CONSENT_MISSING = "consent_missing"
    CRISIS_REDIRECT = "crisis_redirect"
    SOURCE_MISMATCH = "source_mismatch"
    SENDER_UNVERIFIED = "sender_unverified"
    NOT_PERMITTED = "not_permitted"
    TOO_LARGE = "too_large"
    AT_CAPACITY = "at_capacity"
    UNKNOWN_LINK_WORKER = "unknown_link_worker"
    NOT_ACTIVE = "not_active"
    TIME_IMPLAUSIBLE = "time_implausible"


class ReferralStatusValue(StrEnum):
    """The step a ``referral.status.v1`` reports (what happened); ``TaskStatus`` says where
    the referral then stands."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WAITLISTED = "waitlisted"
    ASSIGNED = "assigned"
    JOINED = "joined"  # (v1, no longer told: a joined referral is told assigned or waitlisted)
    DUPLICATE = "duplicate"  # a resend: the answer is the referral's current status
    IN_PROGRESS = "in_progress"  # the person took up support at a first contact
    ON_HOLD = "on_hold"
    RESUMED = "resumed"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class TaskStatus(StrEnum):
    """HL7 Gravity closed-loop referral task statuses, as the referrer sees them
    (docs/domain.md#the-referral-lifecycle)."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class GpSharing(StrEnum):
    """What the person agreed their GP receives: codes only, or codes and the link
    worker's summaries (docs/domain.md#writing-back-to-the-gp-record)."""

    CODES_ONLY = "codes_only"
    CODES_AND_SUMMARIES = "codes_and_summaries"


class Instrument(StrEnum):
    """Wellbeing measures (docs/domain.md#wellbeing-measures). Items are sent in the
    instrument's own order: SWEMWBS its seven statements (each 1 to 5); ONS4 life
    satisfaction, worthwhile, happiness, anxiety (each 0 to 10)."""

    SWEMWBS = "swemwbs"
    ONS4 = "ons4"


class MeasurePoint(StrEnum):
    BASELINE = "baseline"
    REVIEW = "review"
    END = "end"


class ConnectionCategory(StrEnum):
    """What a community group or service a person is connected to offers."""

    PHYSICAL_ACTIVITY = "physical_activity"
    ARTS_AND_CREATIVITY = "arts_and_creativity"
    BEFRIENDING = "befriending"
    NATURE_AND_GARDENING = "nature_and_gardening"
    DEBT_AND_MONEY = "debt_and_money"
    HOUSING = "housing"
    EMPLOYMENT = "employment"
    LEARNING_AND_SKILLS = "learning_and_skills"
    VOLUNTEERING = "volunteering"
    PEER_SUPPORT = "peer_support"
    ADVICE_AND_INFORMATION = "advice_and_information"
    OTHER = "other"


class WithdrawnBy(StrEnum):
    REFERRER = "referrer"  # the sending organisation withdraws its referral
    PERSON = "person"  # the person withdrew consent (recorded by the team)


class WritebackFact(StrEnum):
    """One GP writeback per fact of an episode (accepted, declined, closed), or per plan,
    note or measurement; never more."""

    ACCEPTED = "accepted"
    DECLINED = "declined"
    CLOSED = "closed"
    PLAN = "plan"  # once per plan (each revision is one)
    NOTE = "note"  # once per shared note
    WELLBEING = "wellbeing"  # once per measurement
    CORRECTION = "correction"  # the NHS number or date of birth sent before was wrong
