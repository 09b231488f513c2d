"""API clients, pure: the bearer header read strictly, one decision per credential
(unknown, revoked, expired, admitted), a client kept to its own organisation, and the
proxy's organisation header read only in its documented forms."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway import clients
from services.gateway.clients import ApiClient, ClientRefused
from services.gateway.settings import GatewaySettings
from services.gateway.store import ApiClientRow

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def row(**over: object) -> ApiClientRow:
    values: dict[str, object] = {
        "id": uuid.UUID(int=7),
        "organisation": "A81001",
        "name": "Riverside EMIS",
        "created_at": NOW - timedelta(days=3),
        "expires_at": None,
        "revoked_at": None,
        "organisation_name": "Riverside Surgery",
        "agency_type": "general_practice",
    }
    values.update(over)
    return ApiClientRow(**values)  # type: ignore[arg-type]


def test_a_token_is_random_prefixed_and_its_digest_depends_on_the_pepper():
    first, second = clients.new_token(), clients.new_token()
    assert first != second and first.startswith("lwk_") and len(first) == 47
    assert clients._TOKEN.match(first)
    assert clients.token_digest(first, "a") != clients.token_digest(first, "b")
    assert clients.token_digest(first, "a") == clients.token_digest(first, "a")
    assert first.encode() not in clients.token_digest(first, "a")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer lwk_abc", "lwk_abc"),
        ("bearer   lwk_abc ", "lwk_abc"),
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("Bearer " + "x" * 300, None),
        ("lwk_abc", None),
    ],
)
def test_the_bearer_header_is_read_strictly(header, token):
    assert clients.bearer(header) == token


def test_one_decision_refuses_unknown_revoked_and_expired_credentials():
    with pytest.raises(ClientRefused) as unknown:
        clients.decide(None, NOW)
    assert (unknown.value.status, unknown.value.code) == (401, "invalid_credential")
    with pytest.raises(ClientRefused) as revoked:
        clients.decide(row(revoked_at=NOW - timedelta(seconds=1)), NOW)
    assert (revoked.value.status, revoked.value.code) == (401, "credential_revoked")
    with pytest.raises(ClientRefused) as expired:
        clients.decide(row(expires_at=NOW), NOW)
    assert (expired.value.status, expired.value.code) == (401, "credential_expired")
    admitted = clients.decide(row(expires_at=NOW + timedelta(days=1)), NOW)
    assert admitted == ApiClient(
        client_id=str(uuid.UUID(int=7)),
        org="A81001",
        agency_type="general_practice",
        name="Riverside EMIS",
        organisation_name="Riverside Surgery",
    )


def test_a_client_acts_for_its_own_organisation_only():
    client = clients.decide(row(), NOW)
    clients.require_own_org(client, "A81001")
    for other in ("Y02345", "a81001", None, ""):
        with pytest.raises(ClientRefused) as refused:
            clients.require_own_org(client, other)
        assert (refused.value.status, refused.value.code) == (403, "not_permitted")


def _organisation(ods: str, system: str = clients.ODS_SYSTEM) -> str:
    resource = {"resourceType": "Organization", "identifier": [{"system": system, "value": ods}]}
    return base64.b64encode(json.dumps(resource).encode()).decode()


def test_the_proxys_organisation_header_is_read_in_its_two_forms_and_nothing_else():
    assert clients.proxy_ods({"nhsd-end-user-organisation-ods": " a81001 "}) == "A81001"
    assert clients.proxy_ods({"nhsd-end-user-organisation": _organisation("Y02345")}) == "Y02345"
    assert clients.proxy_ods({}) is None
    assert clients.proxy_ods({"nhsd-end-user-organisation-ods": "A81001; drop"}) is None
    assert clients.proxy_ods({"nhsd-end-user-organisation": "not base64!"}) is None
    assert clients.proxy_ods({"nhsd-end-user-organisation": _organisation("A1", "x")}) is None
    not_json = base64.b64encode(b"[1, 2").decode()
    assert clients.proxy_ods({"nhsd-end-user-organisation": not_json}) is None
    a_list = base64.b64encode(b"[1, 2]").decode()
    assert clients.proxy_ods({"nhsd-end-user-organisation": a_list}) is None


def test_only_configured_addresses_are_the_proxy():
    networks = ("10.0.0.0/24", "2001:db8::1")
    assert clients.from_proxy("10.0.0.9", networks)
    assert clients.from_proxy("2001:db8::1", networks)
    assert not clients.from_proxy("10.0.1.9", networks)
    assert not clients.from_proxy("10.0.0.9", ())
    assert not clients.from_proxy("not-an-address", networks)
    assert not clients.from_proxy(None, networks)


def test_proxy_settings_fail_loudly_on_a_typo(monkeypatch):
    monkeypatch.setenv("LINKWELL_GATEWAY_PROXY_ADDRESSES", "10.0.0.0/24, 192.0.2.7")
    assert GatewaySettings().gateway_proxy_addresses == ("10.0.0.0/24", "192.0.2.7")
    monkeypatch.setenv("LINKWELL_GATEWAY_PROXY_ADDRESSES", "10.0.0.0/33")
    with pytest.raises(ValueError):
        GatewaySettings()


def test_a_short_proxy_credential_turns_proxy_mode_off():
    short = clients.ClientAuth(None, GatewaySettings(gateway_proxy_credential="too-short"))  # type: ignore[arg-type]
    assert short.proxy_credential == ""
    long = clients.ClientAuth(None, GatewaySettings(gateway_proxy_credential="p" * 32))  # type: ignore[arg-type]
    assert long.proxy_credential == "p" * 32
