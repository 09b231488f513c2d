"""Who may do what on the broker: one RabbitMQ user per service and per organisation,
each with the least it needs, written as a definitions file or applied to a running
broker through the management API.

An organisation's broker username is its organisation code (the ``<CODE>`` of its
``urn:linkwell:org:<CODE>`` source), so intake can take the sender from the AMQP
``user_id`` the broker has checked. Permissions are regular expressions on names;
topic permissions are regular expressions on routing keys (checked on publish, and on
bind for reading), so a user can only bind its own queue with its own keys:

- an agency publishes ``referral.submitted.*`` to ``<ns>.inbound`` and reads its own
  acknowledgements, rejections and status updates;
- a link worker team (username = its PCN's code) publishes link worker events and reads
  its PCN's assignments and waitlistings;
- a GP-system integrator reads ``gp.writeback.*`` for its practices;
- each service reads its own queues and publishes only the events it produces.

Each organisation reads one queue, ``<ns>.org.<username>``, and its dead letters,
``<ns>.org.<username>.dead-letter`` (what its own consumer rejected).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

from contracts.envelope import OrgCode
from contracts.events import EVENTS, AuditRecorded, Direction, EventData, Party
from services.runtime.names import Names
from services.runtime.trust import grant

NOTHING = "^$"
ADMIN = "linkwell-admin"
DASHBOARD = "linkwell-readside"  # the read side's broker user (its audit records)


def _of(direction: Direction, *parties: Party) -> tuple[type[EventData], ...]:
    """The contract's types of this direction that name any of these parties."""
    return tuple(
        spec.model
        for spec in EVENTS.values()
        if spec.model.DIRECTION is direction and set(parties) & set(spec.parties)
    )


# The organisation policy, derived from the contract (``contracts.events.Party``).
AGENCY_PUBLISHES = _of(Direction.INBOUND, Party.AGENCIES)
AGENCY_READS = _of(Direction.EMITTED, Party.REFERRER, Party.SENDER)  # routed by sender
TEAM_PUBLISHES = _of(Direction.INBOUND, Party.TEAMS)
TEAM_READS_PCN = _of(Direction.EMITTED, Party.TEAMS)  # routed by PCN
TEAM_READS_OWN = _of(Direction.EMITTED, Party.SENDER)  # answers to what the team sent
INTEGRATOR_READS = _of(Direction.EMITTED, Party.GP_INTEGRATORS)  # routed by practice


# ------------------------------------------------------------------ the organisations file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Agency(_Strict):
    code: OrgCode
    description: str = ""


class Team(_Strict):
    pcn: OrgCode
    description: str = ""


class GpIntegrator(_Strict):
    user: str = Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")
    practices: list[OrgCode | Literal["*"]] = Field(min_length=1)
    description: str = ""


class Organisations(_Strict):
    """``deploy/rabbitmq/organisations.toml``: who may connect, besides the services."""

    agency: list[Agency] = []
    team: list[Team] = []
    gp_integrator: list[GpIntegrator] = []

    @classmethod
    def load(cls, path: Path) -> Organisations:
        return cls.model_validate(tomllib.loads(path.read_text()))


# ------------------------------------------------------------------ principals


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class Principal:
    username: str
    kind: str
    configure: str
    write: str
    read: str
    topics: tuple[TopicPermission, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    # an organisation's one queue, made for it and bound to <ns>.events with these keys
    queue: str | None = None
    bindings: tuple[str, ...] = ()


def organisation_queues(principals: Iterable[Principal]) -> dict[str, tuple[str, ...]]:
    """Each organisation's queue and the routing keys it is bound with on <ns>.events."""
    return {p.queue: p.bindings for p in principals if p.queue is not None}


def _alternatives(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words)))


def _exact(*names: str) -> str:
    return f"^({_alternatives(names)})$"


def _keys(models: Iterable[type[EventData]]) -> str:
    return f"^({_alternatives(m.TYPE for m in models)})$"


@dataclass(frozen=True)
class Publisher:
    """A service that publishes inbound events as the organisations it serves (the
    gateway): which types, for which organisations."""

    types: tuple[str, ...]
    serves: tuple[str, ...]


@dataclass(frozen=True)
class AccessPlan:
    """Every principal for one namespace: the administrator, each service (what it may
    publish is what it declares it emits: ``ServiceDef.emits``) and each organisation."""

    names: Names
    services: dict[str, tuple[str, ...]]  # each service and the types it emits
    organisations: Organisations
    admin: str = ADMIN
    publishers: dict[str, Publisher] = field(default_factory=dict)

    def trusted_users(self) -> list[str]:
        """Intake's grants (``LINKWELL_TRUSTED_USERS``): each publishing service's broker
        user is trusted for the organisations it serves, and for no other."""
        return [
            grant(f"linkwell-{name}", p.serves) for name, p in self.publishers.items() if p.serves
        ]

    def _org(
        self,
        username: str,
        kind: str,
        publishes: tuple[type[EventData], ...],
        bindings: list[str],
        description: str,
    ) -> Principal:
        """An organisation declares nothing (a queue it could declare could dead-letter
        into any exchange, past the topic permissions): it consumes the one queue made for
        it, already bound to its own events, and publishes only its own event types."""
        n = self.names
        queue = n.organisation_queue(username)
        return Principal(
            username=username,
            kind=kind,
            configure=NOTHING,
            write=_exact(n.inbound) if publishes else NOTHING,
            read=_exact(queue, n.dead_letter_of(queue)),  # and what its consumer rejected
            topics=(
                TopicPermission(n.inbound, _keys(publishes) if publishes else NOTHING, NOTHING),
                TopicPermission(n.events, NOTHING, NOTHING),
            ),
            description=description,
            queue=queue,
            bindings=tuple(sorted(bindings)),
        )

    def agency(self, agency: Agency) -> Principal:
        keys = [f"{m.TYPE}.{agency.code}" for m in AGENCY_READS]
        return self._org(agency.code, "agency", AGENCY_PUBLISHES, keys, agency.description)

    def team(self, team: Team) -> Principal:
        keys = [f"{m.TYPE}.{team.pcn}" for m in (*TEAM_READS_PCN, *TEAM_READS_OWN)]
        return self._org(team.pcn, "team", TEAM_PUBLISHES, keys, team.description)

    def integrator(self, integrator: GpIntegrator) -> Principal:
        practices = ["*"] if "*" in integrator.practices else integrator.practices
        keys = [f"{m.TYPE}.{p}" for m in INTEGRATOR_READS for p in practices]
        return self._org(integrator.user, "gp_integrator", (), keys, integrator.description)

    def service(self, name: str) -> Principal:
        """A service configures nothing (an administrator's ``linkwell topology`` declares
        its queues), reads only its own queue, and publishes only its own events, its
        dead letters and its retries."""
        n = self.names
        produces = self.services[name]
        publisher = self.publishers.get(name)
        inbound = (n.inbound,) if publisher else ()
        description = f"the {name} service"
        if publisher:
            description += (
                f"; publishes {', '.join(publisher.types)} for {', '.join(publisher.serves)}"
                " only: intake trusts it for those organisations and no other"
            )
        return Principal(
            username=f"linkwell-{name}",
            kind="service",
            configure=NOTHING,
            write=_exact(n.events, n.dead_letter, n.retry_exchange(name), *inbound),
            read=_exact(n.queue(name)),
            topics=(
                TopicPermission(
                    n.inbound,
                    f"^({_alternatives(publisher.types)})$" if publisher else NOTHING,
                    NOTHING,
                ),
                TopicPermission(n.events, f"^({_alternatives(produces)})\\.[^.]+$", NOTHING),
            ),
            description=description,
        )

    def dashboard(self) -> Principal:
        """The dashboard (the read side, ``linkwell dashboard``): no queue, no outbox; it
        publishes its audit records (each sign-in and page of figures) and nothing else."""
        n = self.names
        return Principal(
            username=DASHBOARD,
            kind="service",
            configure=NOTHING,
            write=_exact(n.events),
            read=NOTHING,
            topics=(
                TopicPermission(n.inbound, NOTHING, NOTHING),
                TopicPermission(n.events, f"^{re.escape(AuditRecorded.TYPE)}\\.[^.]+$", NOTHING),
            ),
            description="the dashboard: publishes its own audit records only",
        )

    def principals(self) -> list[Principal]:
        out = [
            Principal(
                self.admin,
                "admin",
                ".*",
                ".*",
                ".*",
                tags=("administrator",),
                description="operators: migrate, topology, dlq, access",
            )
        ]
        out += [self.service(name) for name in self.services]
        out.append(self.dashboard())
        out += [self.agency(a) for a in self.organisations.agency]
        out += [self.team(t) for t in self.organisations.team]
        out += [self.integrator(g) for g in self.organisations.gp_integrator]
        usernames = [p.username for p in out]
        duplicates = {u for u in usernames if usernames.count(u) > 1}
        if duplicates:
            raise ValueError(f"more than one principal named {', '.join(sorted(duplicates))}")
        return out


# ------------------------------------------------------------------ passwords


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def check_password(password: str, hashed: str) -> bool:
    try:
        raw = base64.b64decode(hashed, validate=True)
    except (ValueError, TypeError):
        return False
    return len(raw) == 36 and secrets.compare_digest(password_hash(password, raw[:4]), hashed)


def password_env(username: str) -> str:
    return "LINKWELL_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", username.upper())


def sample_password(username: str) -> str:
    """Development only: the committed sample definitions use these."""
    return f"dev-{username}"


def vhost_of(amqp_url: str) -> str:
    path = URL(amqp_url).path
    return "/" if path in ("", "/") else path.removeprefix("/")


# ------------------------------------------------------------------ definitions


def definitions(
    principals: list[Principal],
    vhost: str,
    passwords: dict[str, str] | None,
    policies: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A RabbitMQ definitions file (``load_definitions``, ``rabbitmqctl
    import_definitions``). Password hashes are salted, so they differ run to run.
    ``passwords`` None: every user without a password hash (an empty one: RabbitMQ lets no
    one sign in as it with a password), the committed sample; the development stack fills
    in its development passwords at start (``deploy/rabbitmq/dev-definitions.sh``)."""
    return _definitions(principals, vhost, passwords, policies)


def _definitions(
    principals: list[Principal],
    vhost: str,
    passwords: dict[str, str] | None,
    policies: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """(see ``definitions``)
    ``policies``: the retention policies (``services.runtime.retention.queue_policies``)."""
    return {
        "policies": [{"vhost": vhost, **p} for p in policies or []],
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": p.username,
                "password_hash": "" if passwords is None else password_hash(passwords[p.username]),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": list(p.tags),
                "limits": {},
            }
            for p in principals
        ],
        "permissions": [
            {
                "user": p.username,
                "vhost": vhost,
                "configure": p.configure,
                "write": p.write,
                "read": p.read,
            }
            for p in principals
        ],
        "topic_permissions": [
            {
                "user": p.username,
                "vhost": vhost,
                "exchange": t.exchange,
                "write": t.write,
                "read": t.read,
            }
            for p in principals
            for t in p.topics
        ],
    }


def passwords_for(principals: list[Principal], *, sample: bool) -> dict[str, str]:
    """Each user's password: the sample one, or ``LINKWELL_PASSWORD_<USER>`` from the
    environment (an error names every one that is missing)."""
    if sample:
        return {p.username: sample_password(p.username) for p in principals}
    missing = [
        password_env(p.username) for p in principals if password_env(p.username) not in os.environ
    ]
    if missing:
        raise KeyError("set " + ", ".join(missing))
    return {p.username: os.environ[password_env(p.username)] for p in principals}


def without_secrets(defs: dict[str, Any]) -> dict[str, Any]:
    """The definitions with password hashes removed, for comparing two generations."""
    users = [{k: v for k, v in u.items() if k != "password_hash"} for u in defs["users"]]
    return {**defs, "users": users}


# ------------------------------------------------------------------ a running broker


@dataclass
class Applied:
    created: dict[str, str] = field(default_factory=dict)  # username -> new password
    updated: list[str] = field(default_factory=list)


class ManagementApi:
    """The few management API calls ``apply`` needs (httpx, synchronous: an ops command)."""

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 10.0):
        import httpx

        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api", auth=(user, password), timeout=timeout
        )

    def __enter__(self) -> ManagementApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def _ok(self, response: Any) -> Any:
        if response.status_code >= 400:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:300]}"
            )
        return response

    def user_exists(self, name: str) -> bool:
        response = self.http.get(f"/users/{_q(name)}")
        if response.status_code == 404:
            return False
        self._ok(response)
        return True

    def put_user(self, name: str, tags: tuple[str, ...], password: str | None) -> None:
        body: dict[str, Any] = {"tags": ",".join(tags)}
        if password is not None:
            body["password"] = password
        else:  # keep the password: send back the stored hash
            current = self._ok(self.http.get(f"/users/{_q(name)}")).json()
            body["password_hash"] = current["password_hash"]
            body["hashing_algorithm"] = current["hashing_algorithm"]
        self._ok(self.http.put(f"/users/{_q(name)}", json=body))

    def delete_user(self, name: str) -> None:
        response = self.http.delete(f"/users/{_q(name)}")
        if response.status_code != 404:
            self._ok(response)

    def names(self, kind: str, vhost: str) -> list[str]:
        """The names of a vhost's ``queues`` or ``exchanges``."""
        response = self.http.get(f"/{kind}/{_q(vhost)}", params={"columns": "name"})
        return [item["name"] for item in self._ok(response).json()]

    def delete(self, kind: str, vhost: str, name: str) -> None:
        self._ok(self.http.delete(f"/{kind}/{_q(vhost)}/{_q(name)}"))

    def put_vhost(self, vhost: str) -> None:
        self._ok(self.http.put(f"/vhosts/{_q(vhost)}"))

    def put_policy(self, vhost: str, policy: dict[str, Any]) -> None:
        body = {k: v for k, v in policy.items() if k != "name"}
        self._ok(self.http.put(f"/policies/{_q(vhost)}/{_q(policy['name'])}", json=body))

    def put_permissions(self, vhost: str, p: Principal) -> None:
        # Topic permissions first: a new user has no access to the vhost until its
        # permissions are set, so there is no moment with vhost access and no topic
        # permissions (which RabbitMQ reads as "any routing key"). Only ever PUT: the 3.10
        # API's DELETE drops all of a user's topic permissions, so stale entries are left.
        for t in p.topics:
            self._ok(
                self.http.put(
                    f"/topic-permissions/{_q(vhost)}/{_q(p.username)}",
                    json={"exchange": t.exchange, "write": t.write, "read": t.read},
                )
            )
        body = {"configure": p.configure, "write": p.write, "read": p.read}
        self._ok(self.http.put(f"/permissions/{_q(vhost)}/{_q(p.username)}", json=body))


def _q(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def apply(
    api: ManagementApi,
    principals: list[Principal],
    vhost: str,
    *,
    passwords: dict[str, str] | None = None,
    reset_passwords: bool = False,
    policies: list[dict[str, Any]] | None = None,
) -> Applied:
    """Create missing users (with the given password, else a new random one, returned
    once), keep existing users' passwords unless told to reset them, and set every
    user's permissions and topic permissions exactly. Idempotent."""
    passwords = passwords or {}
    result = Applied()
    api.put_vhost(vhost)
    for policy in policies or []:  # the retention policies: set, never removed here
        api.put_policy(vhost, policy)
    for p in principals:
        if not api.user_exists(p.username):
            password = passwords.get(p.username) or secrets.token_urlsafe(24)
            api.put_user(p.username, p.tags, password)
            result.created[p.username] = password
        else:
            password = passwords.get(p.username) if reset_passwords else None
            if reset_passwords and password is None:
                password = secrets.token_urlsafe(24)
            api.put_user(p.username, p.tags, password)
            if password is not None:
                result.created[p.username] = password
            result.updated.append(p.username)
        api.put_permissions(vhost, p)
    return result
