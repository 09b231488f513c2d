"""``logs.bound``: what a delivery binds to its log lines is put back as it was afterwards,
outer values restored and new keys unbound, even when the handling raised."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from services.runtime.logs import bound


def bound_now() -> dict:
    return dict(structlog.contextvars.get_contextvars())


@pytest.fixture(autouse=True)
def own_context():
    """Each test starts from an empty log context; whatever was bound before is put back."""
    before = structlog.contextvars.get_contextvars()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**before)


def test_nested_bindings_are_put_back_as_they_were():
    structlog.contextvars.bind_contextvars(service="notify")
    with bound(routing_key="referral.assigned.v1", attempt=1):
        with bound(event_id="e-1", attempt=2):
            assert bound_now() == {
                "service": "notify",
                "routing_key": "referral.assigned.v1",
                "attempt": 2,
                "event_id": "e-1",
            }
        assert bound_now() == {
            "service": "notify",
            "routing_key": "referral.assigned.v1",
            "attempt": 1,
        }
    assert bound_now() == {"service": "notify"}
    with pytest.raises(RuntimeError), bound(event_id="e-2"):
        raise RuntimeError("handler failed")
    assert bound_now() == {"service": "notify"}


async def test_concurrent_deliveries_each_keep_their_own():
    seen: dict[str, str] = {}

    async def deliver(event_id: str) -> None:
        with bound(event_id=event_id):
            await asyncio.sleep(0)
            seen[event_id] = bound_now()["event_id"]
        assert "event_id" not in bound_now()

    await asyncio.gather(*(deliver(f"e-{n}") for n in range(5)))
    assert seen == {f"e-{n}": f"e-{n}" for n in range(5)}
