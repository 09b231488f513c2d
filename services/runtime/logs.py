"""structlog JSON logging with identifiers bound and personal data kept out.

Handlers bind ``event_id``, ``event_type``, ``referral_id`` and ``correlation_id``
through contextvars. As a last line of defence every string value passes through
``redact``, which blanks anything shaped like an NHS number, email address or phone
number, including inside exception text.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_PATTERNS = [
    # ten digits, optionally grouped 3-3-4 (NHS numbers)
    re.compile(r"(?<![\w-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\w-])"),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    # UK phone numbers: +44 (optionally "(0)") or 0, then 9-10 digits, spaces or hyphens
    re.compile(r"(?<![\w-])(?:\+44[\s-]?(?:\(0\)[\s-]?)?|0)(?:\d[\s-]?){8,9}\d(?![\w-])"),
]
REDACTED = "[redacted]"
_SAFE_KEYS = frozenset({"timestamp", "level"})  # everything else may come from a sender


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _redact_values(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        if key not in _SAFE_KEYS and isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """The same redaction for libraries that log through the standard library."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure(service: str, level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stdout, format="%(message)s", level=level.upper(), force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    for noisy in ("aiormq", "aio_pika", "faststream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_values,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
