"""Size limits and character rules for everything that arrives from outside.

A message larger than ``MAX_BODY_BYTES`` is refused before it is parsed; one nested deeper
than the JSON decoder allows (about 1,000 levels; no event needs more than 6) is not JSON.
Identifiers are
printable ASCII without spaces; references also have a fixed alphabet; free text may hold
any printable Unicode, new lines and tabs, but never other control characters (NUL
included) or unpaired surrogates, which PostgreSQL and JSON encoders refuse.

Times a sender states are judged against Linkwell's clock with ``CLOCK_SKEW`` of slack
either way (``contracts.times``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAX_BODY_BYTES = 256 * 1024  # a referral is about 1 kB; a long plan about 20 kB
ID_PATTERN = r"^[\x21-\x7e]+$"  # printable ASCII, no spaces
# How far a sender's clock may be from Linkwell's: a time up to this far ahead of now, or
# this far before the referral was received, is believed. Five minutes is the tolerance
# Kerberos uses by default (MIT krb5.conf ``clockskew``, 300 s) for clocks kept by NTP,
# which keeps them within far less; a real contact is never minutes before its referral.
CLOCK_SKEW = timedelta(minutes=5)
# control characters other than tab, new line and carriage return; unpaired surrogates
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def forbidden_character(value: str) -> bool:
    return _FORBIDDEN.search(value) is not None


def _clean(value: str) -> str:
    if forbidden_character(value):
        # never echo the value: it may be personal
        raise PydanticCustomError(
            "text_characters", "text may not contain control characters or unpaired surrogates"
        )
    return value


SafeText = Annotated[str, AfterValidator(_clean)]
"""Free text: any printable Unicode, new lines and tabs; give it a ``max_length``."""
