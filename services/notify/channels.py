"""Delivery channels. A channel sends a batch of messages (at most its ``batch``: what a
crash between a send and its commit can repeat), tells an outage (``outage``: it could
not be reached) from a refusal of one message, and can be probed without a message.

The dispatcher retries what failed, and a crash can repeat what was in flight, so the
receiving side may see a message more than once: every message carries its ``key``,
the same on every send, for it to drop a repeat (the SMTP channel sends it as the
Message-ID and the ``X-Linkwell-Key`` header, the spool as each line's ``key``)."""

from __future__ import annotations

import asyncio
import email.policy
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import BinaryIO, Protocol

import aiosmtplib

from .domain import Medium
from .settings import NotifySettings

KEY_HEADER = "X-Linkwell-Key"  # the message's key, for a relay or mailbox to drop a repeat
WIRE = email.policy.SMTP.clone(max_line_length=998)


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
    name: str  # for metrics and logs
    batch: int  # messages sent (and then marked) together

    def outage(self, error: Exception) -> bool:
        """Did this failure come from the channel being unreachable (rather than its
        refusing this one message)?"""
        ...

    async def probe(self) -> None:
        """Raise unless the channel can be reached (no message is sent)."""
        ...

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        """Send in order; for each message None (sent) or why not. A channel may stop at
        the first failure: the messages after it are then ``NotTried``."""
        ...


class FileChannel:
    """Appends each message as a JSON line to ``<dir>/<medium>.jsonl``: a spool another
    process (a print room, an SMS gateway, a test) can read, deduplicating by ``key``.
    A batch is written with one fsync per file before returning. A write cut short
    leaves a line that does not parse; the next write starts on a line of its own, and
    the message cut short comes again whole (it was not marked sent)."""

    name = "spool"
    batch = 50  # lines written with one fsync per file

    # Spool files hold addresses and messages: readable by the service's user alone.
    FILE_MODE = 0o600
    DIRECTORY_MODE = 0o700
    PRUNE_EVERY = 3600.0  # seconds between prunes of lines past the retention limit

    def __init__(self, directory: Path, retain_seconds: float | None = None):
        self.directory = directory
        self.retain_seconds = retain_seconds
        self._lock = asyncio.Lock()
        self._pruned_at = float("-inf")

    def _prepare(self) -> None:
        self.directory.mkdir(mode=self.DIRECTORY_MODE, parents=True, exist_ok=True)
        os.chmod(self.directory, self.DIRECTORY_MODE)  # one made before, or under a umask

    def _open(self, path: Path) -> BinaryIO:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, self.FILE_MODE)
        os.fchmod(fd, self.FILE_MODE)  # a file created before files were private
        return os.fdopen(fd, "ab+")

    def prune(self, now: datetime) -> dict[str, int]:
        """Rewrite each spool file without the lines queued before the retention limit
        (and lines cut short: their messages were sent again whole). Readers go by each
        line's ``key``, never by position. Returns the lines removed per file."""
        removed: dict[str, int] = {}
        if self.retain_seconds is None or not self.directory.exists():
            return removed
        for path in sorted(self.directory.glob("*.jsonl")):
            kept: list[bytes] = []
            gone = 0
            with open(path, "rb") as f:
                for line in f:
                    if spool_line_kept(line, now, self.retain_seconds):
                        kept.append(line if line.endswith(b"\n") else line + b"\n")
                    else:
                        gone += 1
            if not gone:
                continue
            fresh = path.with_suffix(".jsonl.pruning")
            with self._open(fresh) as f:
                f.truncate(0)
                f.write(b"".join(kept))
                f.flush()
                os.fsync(f.fileno())
            os.replace(fresh, path)
            removed[path.stem] = gone
        return removed

    def _write(self, messages: list[Outgoing]) -> None:
        self._prepare()
        if (
            self.retain_seconds is not None
            and time.monotonic() - self._pruned_at > self.PRUNE_EVERY
        ):
            self.prune(datetime.now(UTC))
            self._pruned_at = time.monotonic()
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
            with self._open(self.directory / f"{medium}.jsonl") as f:
                text = "".join(line + "\n" for line in lines)
                if _torn(f):  # a write cut short (a full disk, a crash): end that line
                    text = "\n" + text
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())

    def outage(self, error: Exception) -> bool:
        return isinstance(error, OSError)  # a full disk, a lost mount, a permission

    async def probe(self) -> None:
        def writable() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not os.access(self.directory, os.W_OK):
                raise PermissionError(f"cannot write to {self.directory}")

        await asyncio.to_thread(writable)

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, messages)
            except Exception as exc:
                return [exc] * len(messages)
        return [None] * len(messages)


def spool_line_kept(line: bytes, now: datetime, retain_seconds: float) -> bool:
    """Whether a spool line is within the retention limit: a whole line whose
    ``queued_at`` is no older than ``retain_seconds`` at ``now``."""
    try:
        queued = datetime.fromisoformat(json.loads(line)["queued_at"])
    except (ValueError, KeyError, TypeError):
        return False  # cut short (sent again whole) or not ours
    if queued.tzinfo is None:
        return False
    return (now - queued).total_seconds() <= retain_seconds


def _torn(f: BinaryIO) -> bool:
    """Does the file end in the middle of a line?"""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return False
    f.seek(size - 1)
    torn = f.read(1) != b"\n"
    f.seek(0, os.SEEK_END)
    return torn


class SmtpChannel:
    """Email through an SMTP relay (for NHS organisations, typically NHSmail's). One
    message a batch: each email is marked sent in its own commit right after the relay
    accepts it, so a crash can repeat at most the one email in flight."""

    name = "smtp"
    batch = 1
    BUDGET = 60.0  # seconds a batch may take: the rest wait for the next one
    TIMEOUT = 30.0  # seconds for one send
    PROBE_TIMEOUT = 10.0  # seconds for a probe (a relay that does not answer holds it up)

    def __init__(self, host: str, port: int, sender: str):
        self.host, self.port, self.sender = host, port, sender

    def outage(self, error: Exception) -> bool:
        """Unreachable: no connection, a dropped one, no answer in time (``OSError``, which
        aiosmtplib's connection and timeout errors are), or 421 (service not available).
        Any other answer refused this message, and it backs off on its own."""
        if isinstance(error, OSError):
            return True
        return isinstance(error, aiosmtplib.SMTPResponseException) and error.code == 421

    async def probe(self) -> None:
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.PROBE_TIMEOUT)
        await smtp.connect()
        try:
            await smtp.noop()
        finally:
            smtp.close()

    async def send_many(self, messages: list[Outgoing]) -> list[Exception | None]:
        """One by one, each with its own timeout; an outage stops the rest (they are
        ``NotTried``), as does the batch's time budget. What was sent stays sent."""
        out: list[Exception | None] = []
        deadline = time.monotonic() + self.BUDGET
        for message in messages:
            if time.monotonic() > deadline:
                break
            try:
                await self.send(message)
            except Exception as exc:
                out.append(exc)
                if self.outage(exc):
                    break
                continue
            out.append(None)
        return out + [NotTried()] * (len(messages) - len(out))

    def email(self, message: Outgoing) -> EmailMessage:
        """The email for ``message``; its key, the same on every send, is both the
        Message-ID's left part and the ``X-Linkwell-Key`` header."""
        if message.medium is not Medium.EMAIL:
            raise ValueError(f"SMTP cannot deliver {message.medium.value}")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Message-ID"] = f"<{message.key}@linkwell>"
        mail[KEY_HEADER] = message.key
        mail.set_content(message.body)
        return mail

    def wire(self, message: Outgoing) -> bytes:
        """The email as sent. Headers are folded at RFC 5322's 998 characters, not 78, so
        that the key header, one long word, travels as it is (folded at 78 it would be
        sent as RFC 2047 encoded words, which a filter matching the key would miss)."""
        return self.email(message).as_bytes(policy=WIRE)

    async def send(self, message: Outgoing) -> None:
        await aiosmtplib.send(
            self.wire(message),
            sender=self.sender,
            recipients=[message.address],
            hostname=self.host,
            port=self.port,
            timeout=self.TIMEOUT,
        )


class Router:
    """Picks the channel for each medium: email by configuration, the rest spooled."""

    def __init__(self, channels: dict[Medium, Channel]):
        self.channels = channels

    @classmethod
    def from_settings(cls, settings: NotifySettings, namespace: str) -> Router:
        spool = FileChannel(
            settings.notify_spool_dir / namespace,
            retain_seconds=settings.notify_retain_spool_days * 86_400,
        )
        email: Channel = spool
        if settings.notify_channel == "smtp":
            email = SmtpChannel(settings.smtp_host, settings.smtp_port, settings.smtp_sender)
        return cls({Medium.EMAIL: email, Medium.SMS: spool})

    def lanes(self) -> list[tuple[Channel, tuple[Medium, ...]]]:
        """Each channel once, with the media it carries."""
        lanes: dict[int, tuple[Channel, list[Medium]]] = {}
        for medium, channel in self.channels.items():
            lanes.setdefault(id(channel), (channel, []))[1].append(medium)
        return [(channel, tuple(media)) for channel, media in lanes.values()]
