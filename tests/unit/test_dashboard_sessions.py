"""The dashboard's session rules, pure: cookie names and flags, where a post may come
from, the CSRF comparison, which account an operator's options make, and what the audit
records of sign-ins and views hold."""

from __future__ import annotations

import pytest

from services.readside import sessions
from services.readside.settings import DashboardSettings


def test_cookies_are_host_prefixed_and_secure_outside_development():
    secure = sessions.Cookies(DashboardSettings().cookies_secure("production"))
    assert secure.session == "__Host-lw_dashboard" and secure.csrf.startswith("__Host-")
    assert secure.flags() == {"path": "/", "httponly": True, "samesite": "strict", "secure": True}
    dev = sessions.Cookies(DashboardSettings().cookies_secure("development"))
    assert dev.session == "lw_dashboard" and dev.flags()["secure"] is False
    forced = DashboardSettings(secure_cookies=True).cookies_secure("development")
    assert forced is True


@pytest.mark.parametrize(
    "origin,referer,ok",
    [
        ("https://dash.example", None, True),
        ("https://DASH.example", None, True),
        ("https://evil.example", "https://dash.example/login", False),
        ("null", None, False),
        (None, "https://dash.example/login?x=1", True),
        (None, "https://dash.example.evil.example/", False),
        ("http://dash.example", None, False),
        (None, None, False),
    ],
)
def test_a_post_must_come_from_the_dashboard(origin, referer, ok):
    assert sessions.same_origin("https://dash.example", origin, referer) is ok


def test_csrf_tokens_compare_whole():
    token = sessions.new_csrf()
    assert sessions.csrf_ok(token, token)
    assert not sessions.csrf_ok(token, token[:-1])
    assert not sessions.csrf_ok(None, token) and not sessions.csrf_ok("short", "short")
    assert not sessions.csrf_ok(token, None)


def test_an_empty_pcn_never_makes_a_commissioner():
    assert sessions.account_kind(None, True) == ("commissioner", None)
    assert sessions.account_kind(" u12345 ", False) == ("pcn", "U12345")
    for pcn, commissioner in (("", False), ("  ", False), ("", True), (None, False), ("U1", True)):
        with pytest.raises(ValueError):
            sessions.account_kind(pcn, commissioner)


def test_records_hold_ids_only():
    viewer = sessions.Viewer("7c9e6679-7425-40de-944b-e07fc1f90ae7", "pcn", "U12345")
    ok = sessions.sign_in_record(viewer, method="password", outcome="ok")
    assert ok.by == viewer.account_id and ok.recipient_org == "U12345"
    assert ok.recipient_kind == "team" and ok.by_service == "readside"
    refused = sessions.sign_in_record(None, method="password", outcome="refused")
    assert refused.by is None and refused.recipient_org is None
    assert refused.detail == {"page": "dashboard", "method": "password", "outcome": "refused"}
    view = sessions.view_record(sessions.Viewer(viewer.account_id, "commissioner", None), "c", 9)
    assert view.action == "page_view" and view.recipient_kind == "commissioner"
    assert view.detail["exact"] == "false"


def test_required_claims_come_from_json():
    settings = DashboardSettings(oidc_required_claims='{"acr": "AAL3"}')
    assert settings.oidc_required_claims == {"acr": "AAL3"}
    assert not settings.oidc_enabled
