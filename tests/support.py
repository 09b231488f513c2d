"""Test helpers: namespaced settings, publishing as an outside producer, and a tap that
records everything Linkwell emits."""

from __future__ import annotations

import json
import uuid
from typing import Any

from contracts.schema import example
from services.runtime.client import Tap, new_envelope, publish_inbound
from services.runtime.settings import Settings

__all__ = ["Tap", "example"]


def test_settings(amqp_url: str, database_url: str, **overrides: Any) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        database_url=database_url,
        namespace=f"t{uuid.uuid4().hex[:10]}",
        retry_delays=(0.2, 0.4),
        poll_interval=0.2,
        graceful_timeout=5.0,
        **overrides,
    )


def submission(
    reference: str | None = None,
    *,
    org: str = "A81001",
    pcn: str = "U12345",
    practice: str = "A81001",
    agency_type: str = "general_practice",
    **data_overrides: Any,
) -> dict[str, Any]:
    """A fresh, valid referral.submitted.v1 envelope (new id, new reference)."""
    env = new_envelope(
        "referral.submitted.v1",
        org,
        sender_reference=reference or f"REF-{uuid.uuid4().hex[:12]}",
        pcn=pcn,
        registered_practice=practice,
        **data_overrides,
    )
    env["data"]["referrer"]["agency_type"] = agency_type
    return env


inbound = new_envelope


def worker(pcn: str, worker_id: str, capacity: int) -> dict[str, Any]:
    return inbound(
        "linkworker.registered.v1", pcn, link_worker_id=worker_id, pcn=pcn, capacity=capacity
    )


async def publish(
    settings: Settings, envelope: dict[str, Any] | bytes, routing_key: str | None = None
) -> None:
    """Publish to <ns>.inbound exactly as an outside producer would, with plain aio-pika."""
    if isinstance(envelope, bytes):
        await publish_inbound(settings, envelope, routing_key or "referral.submitted.v1")
    else:
        await publish_inbound(
            settings, json.dumps(envelope).encode(), routing_key or envelope["type"]
        )
