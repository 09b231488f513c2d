"""Professionals' accounts: the pure parts shared with the dashboard live in
``services/runtime/accounts.py``; this name stays for the gateway's code."""

from services.runtime.accounts import (
    HASHER,
    MAX_EMAIL,
    MAX_PASSWORD,
    MIN_PASSWORD,
    Lifetimes,
    digest,
    email_ok,
    hash_password,
    invitation_usable,
    needs_rehash,
    new_token,
    normalise_email,
    password_matches,
    password_problem,
    session_ended,
)

__all__ = [
    "HASHER",
    "MAX_EMAIL",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "Lifetimes",
    "digest",
    "email_ok",
    "hash_password",
    "invitation_usable",
    "needs_rehash",
    "new_token",
    "normalise_email",
    "password_matches",
    "password_problem",
    "session_ended",
]
