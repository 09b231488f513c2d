"""gateway, as the runner sees it: the answers to its own submissions it consumes, its
store and settings, and its pages, served in the same process once it consumes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from contracts.events import (
    AuditRecorded,
    EventRejected,
    ReferralAcceptedV2,
    ReferralDuplicate,
    ReferralRejected,
    ReferralStatus,
    ReferralSubmitted,
    ReferralWithdrawn,
)
from services.runtime.health import HealthServer
from services.runtime.outbox import OutboxRelay
from services.runtime.service import ServiceDef, routes

from .handlers import on_accepted, on_duplicate, on_rejected, on_status
from .retention import RETENTION
from .settings import GatewaySettings
from .store import GatewayStore

if TYPE_CHECKING:
    from services.runtime.poller import Poller
    from services.runtime.runner import Runner


class Pages:
    """The people's door on LINKWELL_GATEWAY_PORT (uvicorn, in the service's process)."""

    name = "pages"

    def __init__(self, runner: Runner):
        self.runner = runner
        self.server: HealthServer | None = None
        self.off = False

    async def ready(self) -> bool:
        """Listening (or turned off: LINKWELL_GATEWAY_PORT=0)."""
        return self.off or self.server is not None

    def wake(self) -> None:
        for poller in self.runner.pollers:
            if isinstance(poller, OutboxRelay):
                poller.wake()

    async def start(self) -> None:
        from .web import Gateway, create_app

        own: GatewaySettings = self.runner.own_settings
        if not own.gateway_port:
            self.off = True
            return
        if self.runner.pool is None:
            return
        gateway = Gateway(self.runner.pool, self.runner.names, own, wake=self.wake)
        server = HealthServer(create_app(gateway), own.gateway_host, own.gateway_port, "pages")
        await server.start()
        self.server = server  # ready from now on

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def push_dispatcher(runner: Runner) -> Poller:
    """The push dispatcher (``push.py``), loaded only when the service runs: it brings the
    HTTP client, as the pages bring the web framework."""
    from .push import dispatcher

    return dispatcher(runner)


SERVICE = ServiceDef(
    name="gateway",
    directory=Path(__file__).parent,
    description="The front door on the web: people refer themselves (referral.submitted.v1 "
    "through its outbox, as the organisations it serves) and see where a referral stands.",
    routes=routes(
        (ReferralAcceptedV2, on_accepted),
        (ReferralRejected, on_rejected),
        (ReferralDuplicate, on_duplicate),
        (ReferralStatus, on_status),
    ),
    emits=(
        AuditRecorded,
        EventRejected,
    ),
    store=GatewayStore,
    settings=GatewaySettings,
    retention=RETENTION,
    routing_words=lambda: GatewaySettings().serves,
    servers=(Pages,),
    pollers=(push_dispatcher,),
    publishes=(ReferralSubmitted, ReferralWithdrawn),
)
