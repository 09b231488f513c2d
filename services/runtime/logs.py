"""structlog JSON logging, one line per record, with identifiers bound and personal data
kept out.

Handlers bind ``event_id``, ``event_type``, ``referral_id`` and ``correlation_id``
through contextvars. Every value logged, including exception text and tracebacks and the
standard library's records, passes through ``redaction``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import structlog

from .redaction import RedactingFilter, redact_values


class JsonFormatter(logging.Formatter):
    """Standard-library records (asyncio, uvicorn...) as one JSON line each, like ours."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "event": record.getMessage(),
            "logger": record.name,
            "level": record.levelname.lower(),
            "service": self.service,
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
        }
        if record.exc_text:
            body["exception"] = record.exc_text
        return json.dumps(body)


def configure(service: str, level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stdout, level=level.upper(), force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
        handler.setFormatter(JsonFormatter(service))
    for noisy in ("aiormq", "aio_pika", "faststream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_values,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """``values`` bound to every log line of this context while it runs, then each key put
    back as it was (bound to its former value, or unbound), as structlog's
    ``bound_contextvars`` does, but by the tokens of its own setting: that one reads the
    whole context on the way in, and it runs for every event handled."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
