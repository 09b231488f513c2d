"""The SMTP channel's batch: what was sent stays sent, whatever stops the rest."""

from __future__ import annotations

import asyncio

from services.notify.channels import NotTried, Outgoing, SmtpChannel
from services.notify.domain import Medium


class Relay(SmtpChannel):
    """A relay that takes ``delay`` seconds a message and refuses the ones named."""

    def __init__(self, delay: float = 0.0, refuse: frozenset[str] = frozenset()):
        super().__init__("relay.invalid", 25, "linkwell@linkwell.invalid")
        self.delay, self.refuse, self.sent = delay, refuse, []

    async def send(self, message: Outgoing) -> None:
        await asyncio.sleep(self.delay)
        if message.key in self.refuse:
            raise ConnectionRefusedError("550 refused")
        self.sent.append(message.key)


def mail(n: int) -> list[Outgoing]:
    return [Outgoing(f"k{i}", Medium.EMAIL, "team@nhs.invalid", "s", "b") for i in range(n)]


async def test_a_failure_stops_the_rest_and_keeps_what_was_sent():
    relay = Relay(refuse=frozenset({"k1"}))
    results = await relay.send_many(mail(4))
    assert results[0] is None and isinstance(results[1], ConnectionRefusedError)
    assert all(isinstance(r, NotTried) for r in results[2:])
    assert relay.sent == ["k0"]


async def test_a_slow_relay_leaves_the_rest_for_the_next_batch_not_failed():
    relay = Relay(delay=0.05)
    relay.BUDGET = 0.12
    results = await relay.send_many(mail(10))
    sent = [r for r in results if r is None]
    assert sent and len(sent) == len(relay.sent) < 10
    assert all(isinstance(r, NotTried) for r in results[len(sent) :])
