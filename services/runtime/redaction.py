"""Personal data kept out of logs and dead-letter details
(``docs/architecture/redaction.md``).

``redact`` removes:

- anything shaped like an NHS number, email address, UK phone number or a bare date
  (dates of birth; timestamps with a time of day are kept);
- the personal values of the message being handled (names, date of birth, contact
  details, NHS number: ``personal_data``), wherever they appear, in any case. A name
  has no shape, so it is removed by value: the consumer registers the message's
  personal fields for the duration of its handling;
- any value logged under a personal key (``given_name``, ``date_of_birth``...).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

_PATTERNS = [
    # ten digits, optionally grouped 3-3-4 (NHS numbers)
    re.compile(r"(?<![\w-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\w-])"),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    # UK phone numbers: +44 (optionally "(0)") or 0, then 9-10 digits, spaces or hyphens
    re.compile(r"(?<![\w-])(?:\+44[\s-]?(?:\(0\)[\s-]?)?|0)(?:\d[\s-]?){8,9}\d(?![\w-])"),
    # bare dates (a date of birth), not timestamps: 1958-04-12, 12/04/1958, 12.4.1958
    re.compile(r"(?<![\w.:-])\d{4}-\d{1,2}-\d{1,2}(?![\w:-]|[ T]\d{1,2}:)"),
    re.compile(r"(?<![\w/.-])\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(?![\w/-]|\.\d)"),
    # 12 April 1958, 12 Apr 1958
    re.compile(
        r"(?i)(?<!\w)\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
        r"[a-z]*\.?,?\s+\d{4}(?!\w)"
    ),
    # Python reprs of dates in exception text: datetime.date(1958, 4, 12)
    re.compile(r"date\(\d{4},\s*\d{1,2},\s*\d{1,2}\)"),
]
REDACTED = "[redacted]"
_SAFE_KEYS = frozenset({"timestamp", "level"})  # everything else may come from a sender
# Fields that hold personal data in any Linkwell event; their values are removed by value.
PERSONAL_KEYS = frozenset(
    {
        "nhs_number",
        "given_name",
        "family_name",
        "name",
        "full_name",
        "preferred_name",
        "date_of_birth",
        "dob",
        "phone",
        "mobile",
        "email",
        "address",
        "postcode",
        "person",
        "contact",
        "adjustments",  # reasonable adjustments: in the person's words
    }
)
# Under a personal key but not personal: the choice of channel ("phone", "email").
_NOT_PERSONAL = frozenset({"preferred"})
_PERSONAL: contextvars.ContextVar[_Personal | None] = contextvars.ContextVar(
    "linkwell_personal", default=None
)


MAX_PERSONAL_VALUES = 64  # a person has a handful; a sender cannot make us compile more
MAX_PERSONAL_LENGTH = 200
MAX_NODES = 10_000


def personal_values(data: Any) -> set[str]:
    """Every string under a personal key, at any depth, of a decoded message (iterative,
    and bounded: the message is not validated yet)."""
    found: set[str] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    visited = 0
    while stack and visited < MAX_NODES and len(found) < MAX_PERSONAL_VALUES:
        node, personal = stack.pop()
        visited += 1
        if isinstance(node, dict):
            for key, value in node.items():
                name = key.lower() if isinstance(key, str) else ""
                if name not in _NOT_PERSONAL:
                    stack.append((value, personal or name in PERSONAL_KEYS))
        elif isinstance(node, list):
            stack.extend((item, personal) for item in node)
        elif personal and isinstance(node, str | int) and not isinstance(node, bool):
            text = str(node).strip()[:MAX_PERSONAL_LENGTH]
            if len(text) >= 2:
                found.add(text)
                found.update(p for p in re.split(r"[\s,]+", text) if len(p) >= 3)
    return set(sorted(found, key=len, reverse=True)[:MAX_PERSONAL_VALUES])


class _Personal:
    """A message's personal values, collected and compiled only when something is first
    redacted while it is handled (most messages log nothing that needs it)."""

    __slots__ = ("_pattern", "_source")

    def __init__(self, source: Any):
        self._source = source
        self._pattern: re.Pattern[str] | bool | None = False  # False: not compiled yet

    def pattern(self) -> re.Pattern[str] | None:
        if self._pattern is False:
            values = self._source() if callable(self._source) else self._source
            ordered = sorted(set(values), key=len, reverse=True)
            self._pattern = (
                re.compile(
                    "|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for v in ordered), re.IGNORECASE
                )
                if ordered
                else None
            )
        return self._pattern  # type: ignore[return-value]


@contextlib.contextmanager
def personal_data(values: Iterable[str]) -> Iterator[None]:
    """Within this block, ``redact`` also removes these values wherever they appear."""
    token = _PERSONAL.set(_Personal(list(values)))
    try:
        yield
    finally:
        _PERSONAL.reset(token)


@contextlib.contextmanager
def personal_data_of(data: Any) -> Iterator[None]:
    """``personal_data`` for a decoded message's ``data`` (or a function that returns it),
    collected lazily."""
    token = _PERSONAL.set(_Personal(lambda: personal_values(data() if callable(data) else data)))
    try:
        yield
    finally:
        _PERSONAL.reset(token)


_SHAPED = re.compile(r"[0-9@]")  # every shape redacted holds a digit or an @


def redact(text: str) -> str:
    known = _PERSONAL.get()
    if known is not None:
        pattern = known.pattern()
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    if _SHAPED.search(text) is None:
        return text
    for shape in _PATTERNS:
        text = shape.sub(REDACTED, text)
    return text


def _scrub(value: Any, key: str | None = None) -> Any:
    if key is not None and key.lower() in PERSONAL_KEYS:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_scrub(v) for v in value]
    return value


def redact_values(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        if key not in _SAFE_KEYS:
            event_dict[key] = _scrub(value, key)
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
