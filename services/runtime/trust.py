"""Who may publish an inbound event for another organisation: the grants of
``LINKWELL_TRUSTED_USERS``.

An organisation's broker user publishes for itself only (its username is its code). A
grant ``user`` lets that broker user speak for any organisation (Linkwell's operators,
local development); a grant ``user=ORG1|ORG2`` for those organisations only: the gateway,
which publishes what people and professionals send through its pages as the
organisations it serves, and for no other (``linkwell access show`` prints its grant).
"""

from __future__ import annotations


def grants(value: str) -> frozenset[str]:
    """``"guest, linkwell-gateway=SELF-WEB|A81001"`` as the set of grants
    ``{"guest", "linkwell-gateway=SELF-WEB", "linkwell-gateway=A81001"}``."""
    out: set[str] = set()
    for part in filter(None, (p.strip() for p in value.split(","))):
        user, _, orgs = (s.strip() for s in part.partition("="))
        if not orgs:
            out.add(user)
        out |= {f"{user}={org.strip()}" for org in orgs.split("|") if org.strip()}
    return frozenset(out)


def grant(user: str, organisations: list[str] | tuple[str, ...]) -> str:
    """The setting's entry that trusts ``user`` for these organisations only."""
    return f"{user}={'|'.join(organisations)}"


def speaks_for(trusted: frozenset[str], user_id: str | None, org: str | None) -> bool:
    """Whether broker user ``user_id`` may publish for organisation ``org``."""
    if user_id is None:
        return False
    return user_id in trusted or (bool(org) and f"{user_id}={org}" in trusted)
