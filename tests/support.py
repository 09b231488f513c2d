"""Test helpers: namespaced settings, publishing as an outside producer, and a tap that
records everything Linkwell emits."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.runtime.client import Tap, publish_inbound
from services.runtime.settings import Settings

__all__ = ["Tap"]

EXAMPLES = Path(__file__).parent.parent / "contracts" / "examples"


def example(event_type: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{event_type}.json").read_text())


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
    env = example("referral.submitted.v1")
    env["id"] = str(uuid.uuid4())
    env["source"] = f"urn:linkwell:org:{org}"
    env["time"] = datetime.now(UTC).isoformat()
    data = env["data"]
    data["sender_reference"] = reference or f"REF-{uuid.uuid4().hex[:12]}"
    env["subject"] = data["sender_reference"]
    data["pcn"] = pcn
    data["registered_practice"] = practice
    data["referrer"]["agency_type"] = agency_type
    for key, value in data_overrides.items():
        data[key] = value
    return env


def inbound(event_type: str, org: str, **data: Any) -> dict[str, Any]:
    env = copy.deepcopy(example(event_type))
    env["id"] = str(uuid.uuid4())
    env["source"] = f"urn:linkwell:org:{org}"
    env["time"] = datetime.now(UTC).isoformat()
    env["data"].update({k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in data.items()})
    if "referral_id" in env["data"]:
        env["subject"] = env["data"]["referral_id"]
    else:
        env.pop("subject", None)
    return env


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
