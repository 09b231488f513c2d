"""NHS number validation (modulus 11), usable as a Pydantic field type.

An NHS number is ten digits; the tenth is a check digit computed from the first
nine with weights 10..2. A remainder giving a check digit of 10 means the number
is invalid. Integrators may send it with spaces or hyphens (``943 476 5919``);
it is normalised to the bare ten digits.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

_SEPARATORS = re.compile(r"[\s-]")
_TEN_DIGITS = re.compile(r"[0-9]{10}")  # ASCII only: str.isdigit() also takes other scripts


def nhs_check_digit(first_nine: str) -> int | None:
    """Return the modulus 11 check digit for nine digits, or None when none exists."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs_number(value: str) -> bool:
    digits = _SEPARATORS.sub("", value)
    if not _TEN_DIGITS.fullmatch(digits):
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def _normalise(value: object) -> object:
    if isinstance(value, str):
        return _SEPARATORS.sub("", value)
    return value


def _validate(value: str) -> str:
    if not is_valid_nhs_number(value):
        # The message never echoes the value: it is personal data.
        raise PydanticCustomError(
            "nhs_number_invalid",
            "NHS number must be ten digits with a valid modulus 11 check digit",
        )
    return value


NhsNumber = Annotated[
    str,
    BeforeValidator(_normalise),
    AfterValidator(_validate),
    Field(
        description="NHS number: ten digits, the last a modulus 11 check digit.",
        examples=["9434765919"],
        json_schema_extra={"pattern": "^[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}$"},
    ),
]


def synthetic_nhs_number(rng: random.Random | None = None) -> str:
    """A valid NHS number from the 999 range, which is reserved for testing: for examples,
    demos and tests, never a real person."""
    rng = rng or random.Random()
    while True:
        first = "999" + "".join(rng.choice("0123456789") for _ in range(6))
        check = nhs_check_digit(first)
        if check is not None:
            return first + str(check)


_SEQUENCE = itertools.count(random.SystemRandom().randrange(0, 500_000))


def unique_synthetic_nhs_number() -> str:
    """A synthetic NHS number (999 range) never handed out before by this process: for
    tests and benchmarks, where two referrals must not be the same person by chance."""
    while True:
        first = f"999{next(_SEQUENCE) % 1_000_000:06d}"
        check = nhs_check_digit(first)
        if check is not None:
            return first + str(check)
