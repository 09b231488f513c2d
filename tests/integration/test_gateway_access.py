"""The gateway as its own least-privilege broker user, as the access plan makes it: it may
publish referral.submitted.v1 and .withdrawn.v1 to <ns>.inbound and nothing else inbound;
intake, trusting it for its own organisation only (LINKWELL_TRUSTED_USERS grant
``user=SELF-WEB``), accepts what it sends as that organisation, and refuses what it
would send as any other, telling that other organisation nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from yarl import URL

from services.gateway.app import SERVICE as GATEWAY
from services.gateway.ratelimit import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.web import Gateway, create_app
from services.intake.app import SERVICE as INTAKE
from services.ops import access
from services.ops.access_cli import declared_publishers, declared_services
from services.runtime import topology
from services.runtime.db import create_pool
from services.runtime.publisher import Publisher
from services.runtime.runner import migrate
from services.runtime.trust import grant, grants

from ..support import Tap, submission
from .conftest import MANAGEMENT, running
from .test_access import attempt, publish_to, refused
from .test_gateway import Door

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class GatewayUser:
    name: str
    url: str


@pytest.fixture
async def gateway_user(settings) -> AsyncIterator[GatewayUser]:
    plan = access.AccessPlan(
        names=settings.names,
        services=declared_services(),
        organisations=access.Organisations(),
        publishers=declared_publishers(),
    )
    tag = uuid.uuid4().hex[:6]
    principal = dataclasses.replace(plan.service("gateway"), username=f"linkwell-gateway-{tag}")
    password = f"pw-{uuid.uuid4().hex}"
    admin = URL(settings.amqp_url)
    await topology.declare(settings, [INTAKE.topology, GATEWAY.topology])
    with access.ManagementApi(MANAGEMENT, admin.user or "guest", admin.password or "guest") as api:
        access.apply(
            api,
            [principal],
            access.vhost_of(settings.amqp_url),
            passwords={principal.username: password},
        )
    try:
        url = str(admin.with_user(principal.username).with_password(password))
        yield GatewayUser(principal.username, url)
    finally:
        with access.ManagementApi(
            MANAGEMENT, admin.user or "guest", admin.password or "guest"
        ) as api:
            api.delete_user(principal.username)


def test_the_access_plan_says_whom_the_gateway_sends_for(settings):
    plan = access.AccessPlan(
        names=settings.names,
        services=declared_services(),
        organisations=access.Organisations(),
        publishers=declared_publishers(),
    )
    principal = plan.service("gateway")
    assert "for SELF-WEB only" in principal.description
    assert plan.trusted_users() == [grant("linkwell-gateway", ("SELF-WEB",))]
    inbound = next(t for t in principal.topics if t.exchange == settings.names.inbound)
    assert re.search(inbound.write, "referral.submitted.v1")
    assert not re.search(inbound.write, "linkworker.registered.v1")
    assert not re.search(plan.service("intake").topics[0].write, "referral.submitted.v1")


async def test_the_broker_lets_the_gateway_publish_only_what_it_sends(settings, gateway_user):
    n, url = settings.names, gateway_user.url
    assert await attempt(url, publish_to(n.inbound, "referral.submitted.v1")) is None
    assert await attempt(url, publish_to(n.inbound, "referral.withdrawn.v1")) is None
    for key in ("linkworker.registered.v1", "referral.closed.v1", "contact.recorded.v1"):
        assert refused(await attempt(url, publish_to(n.inbound, key))), key
    assert refused(await attempt(url, publish_to(n.events, "referral.accepted.v1.SELF-WEB")))


async def test_intake_trusts_the_gateway_for_its_own_organisation_only(settings, gateway_user):
    intake_settings = settings.model_copy(
        update={"trusted_users": grants(f"{gateway_user.name}=SELF-WEB")}
    )
    ours, theirs = submission(org="SELF-WEB"), submission(org="FNX01")
    publisher = Publisher(gateway_user.url, app_id="test-gateway")
    await publisher.connect()
    assert publisher.user == gateway_user.name  # every message carries it as user_id
    try:
        async with (
            Tap(settings, "*.*.*.SELF-WEB") as own,
            Tap(settings, "*.*.*.FNX01") as victim,
            Tap(settings, "intake", exchange=settings.names.dead_letter) as dead,
            running(INTAKE, intake_settings),
        ):
            for envelope in (ours, theirs):
                await publisher.publish(
                    settings.names.inbound,
                    "referral.submitted.v1",
                    json.dumps(envelope).encode(),
                    message_id=envelope["id"],
                )
            await own.wait_for(lambda t: t.events("referral.accepted.v1"), 20, "accepted")
            [accepted] = own.events("referral.accepted.v1")
            assert accepted["data"]["submission_event_id"] == ours["id"]
            await dead.wait_for(lambda t: len(t.messages) == 1, what="the forgery dead-lettered")
            assert dead.messages[0][2]["x-linkwell-reason"] == "source_mismatch"
            await asyncio.sleep(0.5)
            assert victim.messages == []  # FNX01 is never told of what it did not send
    finally:
        await publisher.close()


async def test_a_referral_goes_round_as_the_gateway_user(settings, gateway_user):
    """The gateway service as its least-privilege user (topology declared by an
    administrator): its relay publishes the page's referral, intake (trusting it for
    SELF-WEB only) accepts it, and its consumer moves the status page to Accepted."""
    least = settings.model_copy(update={"amqp_url": gateway_user.url, "declare_topology": False})
    intake_settings = settings.model_copy(
        update={"trusted_users": grants(f"{gateway_user.name}=SELF-WEB")}
    )
    await migrate(settings, GATEWAY)
    pool = await create_pool(settings.database_url, settings.names.schema("gateway"), "t", 2)
    try:
        async with (
            running(INTAKE, intake_settings),
            running(
                GATEWAY,
                least,
            ) as gw,
        ):
            gateway = Gateway(
                pool,
                settings.names,
                GatewaySettings(gateway_port=0),
                wake=gw.pollers[0].wake,
                limits=Limits.of(999, 999, 999),  # it polls the status page
            )
            transport = httpx.ASGITransport(app=create_app(gateway), client=("192.0.2.7", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
                door = Door(gateway, client)
                await door.send(await door.answer_all())
                sent = await client.get("/refer/sent")
                reference = re.search(r"LW-[A-Z0-9]{4}-[A-Z0-9]{4}", sent.text).group(0)
                for _ in range(100):
                    page = await door.post(
                        "/status",
                        {
                            "reference": reference,
                            "dob_day": "7",
                            "dob_month": "11",
                            "dob_year": "1961",
                        },
                    )
                    if "Accepted" in page.text:
                        break
                    await asyncio.sleep(0.1)
                assert "Accepted" in page.text
    finally:
        await pool.close()
