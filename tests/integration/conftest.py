"""Fixtures shared by the integration tests: organisations with their own broker users,
and a service running for the length of a test."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from yarl import URL

from services.ops import access
from services.ops.access_cli import declared_services
from services.registry import SERVICE_DEFS
from services.runtime import topology
from services.runtime.runner import Runner
from services.runtime.service import ServiceDef
from services.runtime.settings import Settings

MANAGEMENT = "http://127.0.0.1:15672"


@dataclasses.dataclass
class Orgs:
    agency: str
    other_agency: str
    team: str
    other_team: str
    integrator: str
    practice: str
    intake_user: str
    passwords: dict[str, str]

    def url(self, settings: Settings, user: str) -> str:
        base = URL(settings.amqp_url)
        return str(base.with_user(user).with_password(self.passwords[user]))


@pytest.fixture
async def orgs(settings: Settings) -> AsyncIterator[Orgs]:
    """Unique organisations for this test's namespace, applied to the broker, removed after."""
    tag = uuid.uuid4().hex[:6].upper()
    number = uuid.uuid4().int % 99_999
    team, other_team = f"U{number:05d}", f"U{number + 1:05d}"  # PCN codes: U + 5 digits
    practice = f"P{tag}"
    organisations = access.Organisations(
        agency=[access.Agency(code=f"AG{tag}"), access.Agency(code=f"AH{tag}")],
        team=[access.Team(pcn=team), access.Team(pcn=other_team)],
        gp_integrator=[access.GpIntegrator(user=f"gp-{tag.lower()}", practices=[practice])],
    )
    plan = access.AccessPlan(
        names=settings.names,
        services=declared_services(),
        organisations=organisations,
    )
    # intake's own least-privilege user, named uniquely so parallel runs do not collide
    intake = dataclasses.replace(plan.service("intake"), username=f"linkwell-intake-{tag.lower()}")
    principals = [p for p in plan.principals() if p.kind != "admin" and p.kind != "service"]
    principals.append(intake)
    passwords = {p.username: f"pw-{uuid.uuid4().hex}" for p in principals}
    admin = URL(settings.amqp_url)
    # as `linkwell topology` does, as the administrator
    await topology.declare(settings, [s.topology for s in SERVICE_DEFS.values()])
    queues = access.organisation_queues(principals)
    await topology.declare_organisation_queues(settings, queues)
    with access.ManagementApi(MANAGEMENT, admin.user or "guest", admin.password or "guest") as api:
        access.apply(api, principals, access.vhost_of(settings.amqp_url), passwords=passwords)
    try:
        yield Orgs(
            agency=f"AG{tag}",
            other_agency=f"AH{tag}",
            team=team,
            other_team=other_team,
            integrator=f"gp-{tag.lower()}",
            practice=practice,
            intake_user=intake.username,
            passwords=passwords,
        )
    finally:
        with access.ManagementApi(
            MANAGEMENT, admin.user or "guest", admin.password or "guest"
        ) as api:
            for p in principals:
                api.delete_user(p.username)


@contextlib.asynccontextmanager
async def asyncpg_connect(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running(service: ServiceDef, settings: Settings) -> AsyncIterator[Runner]:
    runner = Runner(service, settings)
    try:
        await runner.start()
        yield runner
    finally:
        await runner.stop()
