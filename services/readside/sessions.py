"""Who may see the dashboard, pure: the viewer an account makes, the cookies' names and
flags, the check that a post comes from the dashboard's own pages (Origin, else Referer,
and the session's CSRF token), and the audit records of sign-ins and views. No I/O.

Sessions live on the server (``<ns>_readside.session``): the browser holds a random token,
the table its SHA-256, and a session ends by signing out (a POST), by being idle, or by
age (``services/runtime/accounts.session_ended``, the same rule as the gateway's)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from contracts.events import AuditAction, AuditActorKind, AuditRecipientKind, AuditRecorded
from services.runtime.audit import disclosure

SERVICE = "readside"
LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PCN = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")  # an ODS code (or a synthetic PCN's)
CSRF_FIELD = "csrf"
THROTTLE_SECONDS = 15 * 60
ENDED = {
    "signed_out": "You have signed out.",
    "idle": "You were signed out because you had not used the dashboard for a while.",
    "expired": "You were signed out because you signed in a long time ago.",
}


@dataclass(frozen=True)
class Viewer:
    account_id: str
    kind: str  # pcn or commissioner
    pcn: str | None

    @property
    def exact(self) -> bool:
        """A PCN sees its own exact figures; a commissioner, suppressed ones."""
        return self.kind == "pcn"


def viewer_of(row: Any) -> Viewer:
    return Viewer(str(row["id"]), row["kind"], row["pcn"])


def account_kind(pcn: str | None, commissioner: bool) -> tuple[str, str | None]:
    """The kind and PCN of a new account from an operator's options; an empty or malformed
    PCN is refused (it never makes a commissioner), and so is naming both or neither."""
    if commissioner and pcn is None:
        return "commissioner", None
    if commissioner or pcn is None:
        raise ValueError("give either --pcn CODE or --commissioner")
    code = pcn.strip().upper()
    if not PCN.match(code):
        raise ValueError("--pcn must be a PCN's ODS code (letters, digits and -)")
    return "pcn", code


def login_ok(login: str) -> bool:
    return bool(LOGIN.match(login))


@dataclass(frozen=True)
class Cookies:
    """The session cookie (and the sign-in form's CSRF cookie): ``__Host-`` names and
    Secure when served over HTTPS; plain names without Secure in development on http."""

    secure: bool

    @property
    def session(self) -> str:
        return "__Host-lw_dashboard" if self.secure else "lw_dashboard"

    @property
    def csrf(self) -> str:
        return "__Host-lw_dashboard_csrf" if self.secure else "lw_dashboard_csrf"

    @property
    def sign_on(self) -> str:
        """The single sign-on's state, held by the browser that began it (the callback is
        refused in any other browser: RFC 6749 section 10.12)."""
        return "__Host-lw_dashboard_sso" if self.secure else "lw_dashboard_sso"

    def flags(self) -> dict[str, Any]:
        return {"path": "/", "httponly": True, "samesite": "strict", "secure": self.secure}

    def sign_on_flags(self) -> dict[str, Any]:
        # Lax: the provider sends the browser back by a top-level GET from its own site
        return {"path": "/", "httponly": True, "samesite": "lax", "secure": self.secure}


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: str | None, given: object) -> bool:
    return (
        isinstance(expected, str)
        and isinstance(given, str)
        and len(expected) >= 32
        and secrets.compare_digest(expected.encode(), given.encode())
    )


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(expected: str, origin: str | None, referer: str | None) -> bool:
    """Whether a post comes from ``expected`` (scheme://host[:port]): by its Origin header,
    or, without one, its Referer's origin. Neither, or ``Origin: null``: refused."""
    expected = expected.rstrip("/").lower()
    if origin:
        return origin.lower() == expected
    if referer:
        return origin_of(referer) == expected
    return False


def sign_in_record(viewer: Viewer | None, *, method: str, outcome: str) -> AuditRecorded:
    """A sign-in (``outcome`` ok) or a refused one: by account id when one is known, never
    the name typed in or the address it came from."""
    return disclosure(
        AuditAction.SIGN_IN,
        _recipient(viewer),
        viewer.pcn if viewer else None,
        by_service=SERVICE,
        by_kind=AuditActorKind.ACCOUNT,
        by=viewer.account_id if viewer else None,
        detail={"page": "dashboard", "method": method, "outcome": outcome},
    )


def view_record(viewer: Viewer, page: str, shown: int) -> AuditRecorded:
    """A page of figures served: which account, which PCN (or every one), how many rows."""
    return disclosure(
        AuditAction.PAGE_VIEW,
        _recipient(viewer),
        viewer.pcn,
        by_service=SERVICE,
        by_kind=AuditActorKind.ACCOUNT,
        by=viewer.account_id,
        detail={"page": page, "exact": str(viewer.exact).lower(), "rows": shown},
    )


def _recipient(viewer: Viewer | None) -> AuditRecipientKind:
    if viewer is not None and viewer.kind == "pcn":
        return AuditRecipientKind.TEAM
    return AuditRecipientKind.COMMISSIONER
