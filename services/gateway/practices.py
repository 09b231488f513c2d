"""The scheme's GP practices (a TOML file it configures) and finding one by name or
postcode. Pure: no I/O besides reading the file once."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import PcnCode, PracticeCode

MAX_RESULTS = 10
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}$")


class Practice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: PracticeCode
    name: str = Field(min_length=1, max_length=100)
    postcode: str = Field(min_length=5, max_length=8)
    pcn: PcnCode


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    practice: list[Practice] = Field(min_length=1)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text.upper())


@dataclass(frozen=True)
class Practices:
    all: tuple[Practice, ...]

    @classmethod
    def load(cls, path: Path) -> Practices:
        found = _File.model_validate(tomllib.loads(path.read_text())).practice
        codes = [p.code for p in found]
        if len(set(codes)) != len(codes):
            raise ValueError(f"{path}: a practice code is listed twice")
        return cls(tuple(sorted(found, key=lambda p: p.name)))

    def get(self, code: str) -> Practice | None:
        return next((p for p in self.all if p.code == code), None)

    def search(self, query: str) -> list[Practice]:
        """Practices whose name has every word of ``query`` (as the start of one of its
        words), or whose postcode starts with it (spaces ignored); at most MAX_RESULTS."""
        query = query.strip()[:100]
        if not query:
            return []
        compact = _compact(query)
        if len(compact) >= 2 and (
            _POSTCODE.match(compact) or re.match(r"^[A-Z]{1,2}[0-9]", compact)
        ):
            by_postcode = [p for p in self.all if _compact(p.postcode).startswith(compact)]
            if by_postcode:
                return by_postcode[:MAX_RESULTS]
        wanted = _words(query)
        if not wanted:
            return []
        found = [
            p for p in self.all if all(any(w.startswith(q) for w in _words(p.name)) for q in wanted)
        ]
        return found[:MAX_RESULTS]
