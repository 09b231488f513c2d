"""The channels: what was sent stays sent, whatever stops the rest; an unreachable
channel told from a refused message; every message carrying its key."""

from __future__ import annotations

import asyncio
import json

import aiosmtplib
import pytest

from services.notify.channels import (
    KEY_HEADER,
    FileChannel,
    NotTried,
    Outgoing,
    Router,
    SmtpChannel,
)
from services.notify.domain import Medium
from services.notify.settings import NotifySettings


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


async def test_a_refusal_of_one_message_does_not_stop_the_rest():
    class Refusing(Relay):
        async def send(self, message: Outgoing) -> None:
            if message.key == "k1":
                raise aiosmtplib.SMTPRecipientsRefused([])
            self.sent.append(message.key)

    relay = Refusing()
    results = await relay.send_many(mail(3))
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], aiosmtplib.SMTPRecipientsRefused)
    assert relay.sent == ["k0", "k2"]


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (aiosmtplib.SMTPConnectError("refused"), True),
        (ConnectionRefusedError(), True),
        (aiosmtplib.SMTPServerDisconnected("gone"), True),
        (aiosmtplib.SMTPReadTimeoutError("slow"), True),
        (TimeoutError(), True),
        (aiosmtplib.SMTPResponseException(421, "service not available"), True),
        (aiosmtplib.SMTPRecipientsRefused([]), False),
        (aiosmtplib.SMTPResponseException(550, "mailbox unavailable"), False),
        (aiosmtplib.SMTPResponseException(451, "try again later"), False),
        (ValueError("SMTP cannot deliver sms"), False),
    ],
)
def test_smtp_tells_an_unreachable_relay_from_a_refused_message(error, outage):
    assert SmtpChannel("relay.invalid", 25, "a@b.invalid").outage(error) is outage


def test_an_email_carries_its_key_the_same_on_every_send():
    channel = SmtpChannel("relay.invalid", 25, "linkwell@linkwell.invalid")
    message = Outgoing("r1.e1.team", Medium.EMAIL, "team@nhs.invalid", "s", "b")
    first, again = channel.email(message), channel.email(message)
    assert first["Message-ID"] == again["Message-ID"] == "<r1.e1.team@linkwell>"
    assert first[KEY_HEADER] == again[KEY_HEADER] == "r1.e1.team"
    assert KEY_HEADER == "X-Linkwell-Key"


async def test_a_spool_line_carries_its_key_and_an_unwritable_spool_is_an_outage(tmp_path):
    spool = FileChannel(tmp_path / "spool")
    message = Outgoing("r1.e1.person", Medium.SMS, "07700900123", "s", "b")
    assert await spool.send_many([message, message]) == [None, None]
    lines = [json.loads(line) for line in (tmp_path / "spool" / "sms.jsonl").open()]
    assert [line["key"] for line in lines] == ["r1.e1.person"] * 2
    await spool.probe()

    blocked = FileChannel(tmp_path / "a-file")
    (tmp_path / "a-file").write_text("not a directory")
    [error] = await blocked.send_many([message])
    assert isinstance(error, OSError) and blocked.outage(error)
    with pytest.raises(OSError):
        await blocked.probe()


def test_each_channel_is_one_lane_with_the_media_it_carries(tmp_path):
    spooled = Router.from_settings(NotifySettings(notify_spool_dir=tmp_path), "ns")
    assert [(c.name, media) for c, media in spooled.lanes()] == [
        ("spool", (Medium.EMAIL, Medium.SMS))
    ]
    mailed = Router.from_settings(
        NotifySettings(notify_spool_dir=tmp_path, notify_channel="smtp"), "ns"
    )
    assert sorted((c.name, c.batch, media) for c, media in mailed.lanes()) == [
        ("smtp", 1, (Medium.EMAIL,)),
        ("spool", 50, (Medium.SMS,)),
    ]


def test_the_key_travels_unfolded_and_unencoded():
    """A key is one word longer than 78 characters: folded at 78 it would go as RFC 2047
    encoded words, which a filter matching the key would not find."""
    channel = SmtpChannel("relay.invalid", 25, "linkwell@linkwell.invalid")
    key = "4d1c4a3e-6a43-4c1b-9a58-1f0b7c8e2d11.0f2b8a51-7f7e-4d6c-8b0b-2e4c1e7a9d33.person"
    wire = channel.wire(Outgoing(key, Medium.EMAIL, "sam@example.org", "s", "b"))
    assert f"\r\nX-Linkwell-Key: {key}\r\n".encode() in wire
    assert f"\r\nMessage-ID: <{key}@linkwell>\r\n".encode() in wire


async def test_a_line_cut_short_does_not_swallow_the_next_message(tmp_path):
    """A write cut short (a full disk, a crash) leaves half a line; the next batch starts
    on a line of its own, so its messages parse and only the torn fragment does not."""
    spool = FileChannel(tmp_path)
    (tmp_path / "sms.jsonl").write_text('{"key": "r1.e1.person", "to": "0770')
    message = Outgoing("r1.e1.person", Medium.SMS, "07700900123", "s", "b")
    assert await spool.send_many([message]) == [None]
    torn, whole = (tmp_path / "sms.jsonl").read_text().splitlines()
    assert json.loads(whole)["key"] == "r1.e1.person"
    with pytest.raises(json.JSONDecodeError):
        json.loads(torn)
