"""Delivery channels. A channel sends a batch of messages; the dispatcher retries what
failed, so a channel may see a message more than once and should use ``key`` to
deduplicate where its medium allows (the SMTP channel sends it as the Message-ID)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from .domain import Medium
from .settings import NotifySettings


@dataclass(frozen=True)
class Outgoing:
    key: str
    medium: Medium
    address: str
    subject: str
    body: str


class NotTried(Exception):
    """A channel stopped at an earlier failure: this message was not tried (no attempt
    is counted; it is due again at once)."""


class Channel(Protocol):
    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        """Send in order; for each message None (sent) or why not. A channel may stop at
        the first failure: the messages after it are then ``NotTried``."""
        ...


class FileChannel:
    """Appends each message as a JSON line to ``<dir>/<medium>.jsonl``: a spool another
    process (a print room, an SMS gateway, a test) can read, deduplicating by ``key``.
    A batch is written with one fsync per file before returning."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = asyncio.Lock()

    def _write(self, messages: list[Outgoing]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat()
        by_file: dict[str, list[str]] = {}
        for message in messages:
            by_file.setdefault(message.medium.value, []).append(
                json.dumps(
                    {
                        "key": message.key,
                        "to": message.address,
                        "subject": message.subject,
                        "body": message.body,
                        "queued_at": stamp,
                    }
                )
            )
        for medium, lines in by_file.items():
            with open(self.directory / f"{medium}.jsonl", "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, messages)
            except Exception as exc:
                return [exc] * len(messages)
        return [None] * len(messages)


class SmtpChannel:
    """Email through an SMTP relay (for NHS organisations, typically NHSmail's)."""

    def __init__(self, host: str, port: int, sender: str):
        self.host, self.port, self.sender = host, port, sender

    BUDGET = 60.0  # seconds a batch may take: the rest wait for the next one

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        """One by one, each with its own timeout; a failure stops the rest (the relay is
        likely down), as does the batch's time budget. What was sent stays sent."""
        out: list[Exception | None] = []
        deadline = time.monotonic() + self.BUDGET
        for message in messages:
            if time.monotonic() > deadline:
                break
            try:
                await self.send(message)
            except Exception as exc:
                out.append(exc)
                break
            out.append(None)
        return out + [NotTried()] * (len(messages) - len(out))

    async def send(self, message: Outgoing) -> None:
        if message.medium is not Medium.EMAIL:
            raise ValueError(f"SMTP cannot deliver {message.medium.value}")
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.address
        email["Subject"] = message.subject
        email["Message-ID"] = f"<{message.key}@linkwell>"
        email.set_content(message.body)
        await aiosmtplib.send(email, hostname=self.host, port=self.port, timeout=30)


class Router:
    """Picks the channel for each medium: email by configuration, the rest spooled."""

    def __init__(self, channels: dict[Medium, Channel]):
        self.channels = channels

    @classmethod
    def from_settings(cls, settings: NotifySettings, namespace: str) -> Router:
        spool = FileChannel(settings.notify_spool_dir / namespace)
        email: Channel = spool
        if settings.notify_channel == "smtp":
            email = SmtpChannel(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
        return cls({Medium.EMAIL: email, Medium.SMS: spool})

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        """Each message through its medium's channel; results in the messages' order."""
        results: dict[int, Exception | None] = {}
        by_channel: dict[int, tuple[Channel, list[int]]] = {}
        for n, message in enumerate(messages):
            channel = self.channels[message.medium]
            by_channel.setdefault(id(channel), (channel, []))[1].append(n)
        for channel, indexes in by_channel.values():
            sent = await channel.send_many([messages[n] for n in indexes])
            results.update(zip(indexes, sent, strict=True))
        return [results[n] for n in range(len(messages))]
