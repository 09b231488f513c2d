"""Enumerations shared by every event. Values are stable wire identifiers."""

from __future__ import annotations

from enum import StrEnum


class AgencyType(StrEnum):
    """Who made the referral (shared/domain.md, 'Who refers')."""

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


class ReferralStatusValue(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WAITLISTED = "waitlisted"
    ASSIGNED = "assigned"


class WritebackFact(StrEnum):
    """One GP writeback is sent per fact and referral, never more."""

    ACCEPTED = "accepted"
    DECLINED = "declined"
    CLOSED = "closed"
