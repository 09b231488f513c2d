"""Answers go only to the publisher the broker names (services/runtime/admission.py,
``answer_to``): a refusal of an inbound event is never sent to an organisation because the
event names it as its source."""

from __future__ import annotations

from services.runtime.admission import answer_to
from services.runtime.delivery import Delivery
from services.runtime.names import Names
from services.runtime.settings import Settings
from services.runtime.trust import grants

NAMES = Names("linkwell")


def test_without_user_id_nobody_is_answered():
    delivery = Delivery(NAMES.inbound, "referral.submitted.v1", user_id=None)
    assert answer_to(NAMES, frozenset(), delivery, "urn:linkwell:org:A81001") is None


def test_an_organisation_naming_another_is_answered_itself():
    delivery = Delivery(NAMES.inbound, "referral.submitted.v1", user_id="RXH01")
    assert answer_to(NAMES, frozenset(), delivery, "urn:linkwell:org:A81001") == "RXH01"


def test_outside_development_nobody_is_trusted_by_default():
    production = Settings(
        _env_file=None,
        LINKWELL_MODE="production",
        AMQP_URL="amqp://linkwell-intake:Zq8v7Kp2long@127.0.0.1/",
        DATABASE_URL="postgresql://linkwell_intake:Hk3m9Wq1long@127.0.0.1/linkwell",
    )
    assert production.trusted_users == frozenset()
    delivery = Delivery(NAMES.inbound, "referral.submitted.v1", user_id="guest")
    assert answer_to(NAMES, production.trusted_users, delivery, "urn:linkwell:org:A81001") is None
    assert answer_to(NAMES, grants("guest"), delivery, "urn:linkwell:org:A81001") == "A81001"
