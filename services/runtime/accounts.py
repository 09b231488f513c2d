"""People's accounts (the gateway's professionals, the dashboard's readers), pure: what
a password must be, how it is hashed (argon2id),
the one-time tokens of invitations and sessions (the browser or the link holds the token,
the database its SHA-256), and when a session has ended. No I/O.

The password rules follow NIST SP 800-63B section 5.1.1 (memorised secrets): a minimum
length and no composition rules, at least 64 characters allowed, and a check against
values obviously tied to the account; the scheme asks for 12 characters, more than that
standard's floor of 8."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD = 12
MAX_PASSWORD = 128
MAX_EMAIL = 254

# argon2-cffi's defaults: argon2id with RFC 9106's second recommended profile (t=3, 64 MiB)
HASHER = PasswordHasher()


@functools.cache
def _nobody() -> str:
    """Verified against when no account has the email, so an unknown address takes as long.
    Made on first use, not on import: a hash takes 64 MiB and a tenth of a second, which
    every process importing this module (every service) would otherwise pay at start."""
    return HASHER.hash(secrets.token_urlsafe(16))


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def normalise_email(value: str) -> str:
    return value.strip().lower()


def email_ok(value: str) -> bool:
    return len(value) <= MAX_EMAIL and bool(_EMAIL.match(value))


def password_problem(password: str, again: str, email: str) -> str | None:
    """What is wrong with a new password (None: nothing), in the words the page shows."""
    if len(password) < MIN_PASSWORD:
        return f"Your password must be {MIN_PASSWORD} characters or more"
    if len(password) > MAX_PASSWORD:
        return f"Your password must be {MAX_PASSWORD} characters or fewer"
    if password != again:
        return "The passwords do not match"
    lowered = password.lower()
    if lowered == email.lower() or lowered == email.split("@")[0].lower():
        return "Your password must not be your email address"
    if len(set(password)) < 4:
        return "Your password must not be one or two characters repeated"
    return None


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` hashes; with nothing stored (no account,
    or an invitation not used yet) the same work is done, and the answer is False."""
    try:
        return HASHER.verify(stored or _nobody(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return HASHER.check_needs_rehash(stored)


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta


def session_ended(
    created_at: datetime,
    seen_at: datetime,
    ended_at: datetime | None,
    now: datetime,
    lifetimes: Lifetimes,
) -> str | None:
    """Why a session no longer admits anyone (``signed_out``, ``idle``, ``expired``), or
    None while it does."""
    if ended_at is not None:
        return "signed_out"
    if now - created_at >= lifetimes.absolute:
        return "expired"
    if now - seen_at >= lifetimes.idle:
        return "idle"
    return None


def invitation_usable(expires_at: datetime, used_at: datetime | None, now: datetime) -> bool:
    return used_at is None and now < expires_at
