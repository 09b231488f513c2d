"""Suppression of a published table (free of I/O): primary and secondary.

**Primary** suppression is the small-number rule ``disclosure.shown`` applies, NHS
England's usual rule for published counts (docs/domain.md#reporting-small-numbers): a
count from 1 to 7 is shown as ``*``, any other count is rounded to the nearest 5, 0 stays 0.

**Secondary** suppression: a table also publishes its totals (the ``total`` row is the sum
of the groups' rows in each column, and within a row ``received`` is ``accepted`` plus
``rejected``). A line (a column with its total, or a row's ``received`` with its two parts)
holding exactly one ``*`` would give that cell away by subtraction. So, until no line does,
each such line has one more cell suppressed: the smallest non-zero count of the line shown
so far (the "next-smallest cell" of the usual practice), or the line's total when it has
none. A line whose shown figures pin a ``*`` cell to a single value despite the rounding
(many small cells under one total) has its total suppressed too.

A cell suppressed this way is shown as ``*`` like any other, so a reader cannot tell a small
count from a protecting one: ``*`` means "not shown", not "1 to 7".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .disclosure import ROUND_TO, SMALLEST_SHOWN, SUPPRESSED, shown

Cell = tuple[str, str]  # (group, column)
TOTAL = "total"

# Within a row: received = accepted + rejected (figures.Figures).
ROW_SUMS: tuple[tuple[str, tuple[str, ...]], ...] = (("received", ("accepted", "rejected")),)


@dataclass(frozen=True)
class Line:
    """An equation a reader could subtract along: ``total`` is the sum of ``parts``."""

    total: Cell
    parts: tuple[Cell, ...]

    @property
    def cells(self) -> tuple[Cell, ...]:
        return (self.total, *self.parts)


def lines_of(
    groups: Sequence[str],
    columns: Sequence[str],
    total: str = TOTAL,
    row_sums: Iterable[tuple[str, tuple[str, ...]]] = ROW_SUMS,
) -> list[Line]:
    """The additive relations of a table of ``groups`` (and the ``total`` row) by
    ``columns``: each column over the groups, and each row sum whose columns are present."""
    lines = [Line((total, c), tuple((g, c) for g in groups)) for c in columns]
    for whole, parts in row_sums:
        if whole in columns and all(p in columns for p in parts):
            for g in (*groups, total):
                lines.append(Line((g, whole), tuple((g, p) for p in parts)))
    return lines


def bounds(value: int | str) -> tuple[int, int | None]:
    """What a reader knows of a cell from how it is shown: an exact 0, a rounded count
    (within 2 of what is shown), or ``*`` (at least 1; no upper bound, since a ``*`` may
    protect a large count). None: unbounded above."""
    if value == SUPPRESSED:
        return 1, None
    assert isinstance(value, int)
    if value == 0:
        return 0, 0
    half = ROUND_TO // 2
    return max(SMALLEST_SHOWN, value - half), value + half


def protect(exact: Mapping[Cell, int], lines: Sequence[Line]) -> dict[Cell, int | str]:
    """Every cell as it may be published: primary suppression, then secondary suppression
    along ``lines`` until no line gives a ``*`` cell away."""
    out: dict[Cell, int | str] = {cell: shown(n, exact=False) for cell, n in exact.items()}
    changed = True
    while changed:
        changed = False
        for line in lines:
            hidden = [c for c in line.cells if out.get(c) == SUPPRESSED]
            if not hidden:
                continue
            if len(hidden) == 1:
                _hide_one_more(out, exact, line)
                changed = True
            elif out.get(line.total) != SUPPRESSED and _pinned(out, line):
                out[line.total] = SUPPRESSED
                changed = True
    return out


def _hide_one_more(out: dict[Cell, int | str], exact: Mapping[Cell, int], line: Line) -> None:
    candidates = [c for c in line.parts if out.get(c) not in (SUPPRESSED, 0, None)]
    if candidates:
        smallest = min(candidates, key=lambda c: (exact[c], c))
        out[smallest] = SUPPRESSED
    elif out.get(line.total) != SUPPRESSED:
        out[line.total] = SUPPRESSED
    else:  # the total is the one hidden and every part is 0: the total is 0 (never here)
        raise AssertionError(f"a line with a hidden total and no part to hide: {line}")


def _pinned(out: Mapping[Cell, int | str], line: Line) -> bool:
    """Whether the line's shown total and parts leave some hidden part one value only."""
    _, high = bounds(out[line.total])
    assert high is not None
    known_low = known_high = 0
    hidden = 0
    for part in line.parts:
        if out.get(part) == SUPPRESSED:
            hidden += 1
        else:
            lo, hi = bounds(out[part])
            known_low += lo
            known_high += hi or 0
    # a hidden part is at least 1; the other hidden ones being at least 1 too, it is at
    # most this (and no more than 1 leaves it one value); they have no upper bound, so
    # nothing raises its lower bound above 1
    most = high - known_low - (hidden - 1)
    return most <= 1


def shown_table(
    rows: Mapping[str, Mapping[str, int]], columns: Sequence[str], total: str = TOTAL
) -> dict[str, dict[str, int | str]]:
    """A table of exact counts (group -> column -> count, with the ``total`` row) as it may be
    published."""
    groups = [g for g in rows if g != total]
    exact = {(g, c): rows[g][c] for g in (*groups, total) for c in columns}
    out = protect(exact, lines_of(groups, columns, total))
    return {g: {c: out[(g, c)] for c in columns} for g in (*groups, total)}
