"""Delivery channels. A channel sends one message; the dispatcher retries on failure,
so a channel may see a message more than once and should use ``key`` to deduplicate
where its medium allows (the SMTP channel sends it as the Message-ID)."""

from __future__ import annotations

import asyncio
import json
import os
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


class Channel(Protocol):
    async def send(self, message: Outgoing) -> None: ...


class FileChannel:
    """Appends each message as a JSON line to ``<dir>/<medium>.jsonl``: a spool another
    process (a print room, an SMS gateway, a test) can read. fsynced before returning."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = asyncio.Lock()

    def _write(self, message: Outgoing) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {
                "key": message.key,
                "to": message.address,
                "subject": message.subject,
                "body": message.body,
                "queued_at": datetime.now(UTC).isoformat(),
            }
        )
        with open(self.directory / f"{message.medium.value}.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def send(self, message: Outgoing) -> None:
        async with self._lock:
            await asyncio.to_thread(self._write, message)


class SmtpChannel:
    """Email through an SMTP relay (for NHS organisations, typically NHSmail's)."""

    def __init__(self, host: str, port: int, sender: str):
        self.host, self.port, self.sender = host, port, sender

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

    async def send(self, message: Outgoing) -> None:
        await self.channels[message.medium].send(message)
