"""Every broker and database name, derived from the namespace so stacks never collide."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Names:
    ns: str

    @property
    def inbound(self) -> str:
        """Topic exchange outside producers publish to, routing key = event type."""
        return f"{self.ns}.inbound"

    @property
    def events(self) -> str:
        """Topic exchange Linkwell publishes everything it emits to."""
        return f"{self.ns}.events"

    @property
    def dead_letter(self) -> str:
        """Direct exchange for dead letters, routing key = service name."""
        return f"{self.ns}.dead-letter"

    @property
    def unrouted(self) -> str:
        """Alternate exchange of inbound messages no service binds (intake answers them)."""
        return f"{self.ns}.unrouted"

    @property
    def events_unrouted(self) -> str:
        """Alternate exchange and queue of emitted events no subscriber binds yet."""
        return f"{self.ns}.events.unrouted"

    def queue(self, service: str) -> str:
        return f"{self.ns}.{service}"

    def retry_exchange(self, service: str) -> str:
        """Direct exchange a service parks retries on (routing key = the delay queue)."""
        return f"{self.ns}.{service}.retry"

    def retry_queue(self, service: str, delay_seconds: float) -> str:
        return f"{self.ns}.{service}.retry.{round(delay_seconds * 1000)}ms"

    def organisation_queue(self, user: str) -> str:
        """The queue an organisation consumes its own events from."""
        return f"{self.ns}.org.{user}"

    @staticmethod
    def dead_letter_of(queue: str) -> str:
        """Where an organisation's queue puts what its consumer rejects."""
        return f"{queue}.dead-letter"

    def dead_letter_queue(self, service: str) -> str:
        return f"{self.ns}.{service}.dead-letter"

    def schema(self, service: str) -> str:
        return f"{self.ns}_{service}"

    def source(self, service: str) -> str:
        """CloudEvents ``source`` of what a service emits."""
        return f"urn:linkwell:{self.ns}:{service}"
