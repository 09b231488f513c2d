"""Secondary suppression: no ``*`` cell of a published table can be worked out from what is
shown. A reader is simulated by brute force: every table of counts consistent with the
published one (each shown count within its rounding, each ``*`` any count from 1 up, the
totals and row sums adding up) is enumerated, and each ``*`` cell must take more than one
value across them."""

from __future__ import annotations

import itertools
import random

import pytest

from services.readside import suppression
from services.readside.disclosure import SUPPRESSED, shown

CAP = 14  # a reader's guesses for a * cell: 1 to CAP (above every hidden count here)


def options(value: int | str) -> range:
    low, high = suppression.bounds(value)
    return range(low, (high if high is not None else CAP) + 1)


def consistent(value: int, published: int | str) -> bool:
    return value >= 1 if published == SUPPRESSED else shown(value, exact=False) == published


def column_readings(published: dict[str, int | str]) -> dict[str, set[int]]:
    """Every value each group of one column could have, given the column as shown."""
    groups = [g for g in published if g != "total"]
    seen: dict[str, set[int]] = {g: set() for g in groups}
    for values in itertools.product(*(options(published[g]) for g in groups)):
        if consistent(sum(values), published["total"]):
            for g, v in zip(groups, values, strict=True):
                seen[g].add(v)
    return seen


def table_readings(published: dict[str, dict[str, int | str]]) -> dict[tuple[str, str], set[int]]:
    """Every value each accepted / rejected / received cell could have, given a table of
    groups by (received, accepted, rejected) with its total row."""
    groups = [g for g in published if g != "total"]
    per_group = {
        g: [
            (a, r)
            for a in options(published[g]["accepted"])
            for r in options(published[g]["rejected"])
            if consistent(a + r, published[g]["received"])
        ]
        for g in groups
    }
    seen: dict[tuple[str, str], set[int]] = {}
    for choice in itertools.product(*(per_group[g] for g in groups)):
        accepted = sum(a for a, _ in choice)
        rejected = sum(r for _, r in choice)
        row = published["total"]
        if not (
            consistent(accepted, row["accepted"])
            and consistent(rejected, row["rejected"])
            and consistent(accepted + rejected, row["received"])
        ):
            continue
        for g, (a, r) in zip(groups, choice, strict=True):
            for column, v in (("accepted", a), ("rejected", r), ("received", a + r)):
                seen.setdefault((g, column), set()).add(v)
        for column, v in (("accepted", accepted), ("rejected", rejected)):
            seen.setdefault(("total", column), set()).add(v)
        seen.setdefault(("total", "received"), set()).add(accepted + rejected)
    return seen


def one_column(counts: dict[str, int]) -> dict[str, int | str]:
    rows = {g: {"n": n} for g, n in counts.items()}
    rows["total"] = {"n": sum(counts.values())}
    return {g: v["n"] for g, v in suppression.shown_table(rows, ["n"]).items()}


def table(counts: dict[str, tuple[int, int]]) -> tuple[dict, dict]:
    """Exact rows (accepted, rejected) per group, with received and the total row."""
    rows = {g: {"received": a + r, "accepted": a, "rejected": r} for g, (a, r) in counts.items()}
    rows["total"] = {
        c: sum(rows[g][c] for g in counts) for c in ("received", "accepted", "rejected")
    }
    return rows, suppression.shown_table(rows, ["received", "accepted", "rejected"])


def test_primary_suppression_alone_gives_small_counts_away() -> None:
    # what secondary suppression is for: twelve PCNs of 1 referral each, total 12 shown as
    # 10; a reader who knows each * is 1 to 7 and the total at most 12 knows every one is 1
    primary = {f"P{i:02}": shown(1, exact=False) for i in range(12)} | {"total": shown(12, False)}
    assert set(primary.values()) == {SUPPRESSED, 10}
    sums = [n for n in range(12, 12 * 7 + 1) if shown(n, exact=False) == primary["total"]]
    assert max(sums) == 12  # so each of the twelve is exactly 1


def test_the_next_smallest_cell_of_the_column_is_suppressed_too() -> None:
    published = one_column({"A": 3, "B": 12, "C": 30})
    assert published == {"A": SUPPRESSED, "B": SUPPRESSED, "C": 30, "total": 45}
    readings = column_readings(published)
    assert 3 in readings["A"] and len(readings["A"]) > 1
    assert 12 in readings["B"] and len(readings["B"]) > 1


def test_two_small_cells_already_protect_each_other() -> None:
    assert one_column({"A": 3, "B": 5, "C": 30}) == {
        "A": SUPPRESSED,
        "B": SUPPRESSED,
        "C": 30,
        "total": 40,
    }


def test_zeros_are_never_the_protecting_cell() -> None:
    published = one_column({"A": 4, "B": 0, "C": 12, "D": 40})
    assert published["B"] == 0 and published["C"] == SUPPRESSED and published["D"] == 40


def test_a_lone_small_cell_with_only_zeros_beside_it_hides_the_total() -> None:
    assert one_column({"A": 9, "B": 0, "C": 0}) == {"A": 10, "B": 0, "C": 0, "total": 10}
    published = one_column({"A": 5, "B": 0})
    assert published == {"A": SUPPRESSED, "B": 0, "total": SUPPRESSED}


def test_many_small_cells_under_one_total_do_not_pin_each_other() -> None:
    # twelve 1s under a total shown as 10: each * could only be 1, unless the total goes
    counts = {f"P{i:02}": 1 for i in range(12)}
    published = one_column(counts)
    assert published["total"] == SUPPRESSED


def test_rows_and_columns_together_give_nothing_away() -> None:
    rows, published = table({"A": (3, 0), "B": (12, 2), "C": (11, 9)})
    readings = table_readings(published)
    hidden = [(g, c) for g, r in published.items() for c, v in r.items() if v == SUPPRESSED]
    assert ("A", "accepted") in hidden and ("B", "rejected") in hidden
    for g, c in hidden:
        assert rows[g][c] in readings[(g, c)]
        assert len(readings[(g, c)]) > 1, (g, c, readings[(g, c)])


@pytest.mark.parametrize("seed", range(8))
def test_no_suppressed_value_can_be_derived_from_random_tables(seed: int) -> None:
    chance = random.Random(seed)
    counts = {
        g: (chance.choice([0, 1, 2, 4, 6, 9, 12]), chance.choice([0, 1, 3, 5, 8, 11])) for g in "AB"
    }
    rows, published = table(counts)
    readings = table_readings(published)
    for g, row in published.items():
        for c, value in row.items():
            assert rows[g][c] in readings[(g, c)]  # the reader's model holds the truth
            if value == SUPPRESSED:
                assert len(readings[(g, c)]) > 1, (counts, published, g, c)
            elif value != 0:
                assert value != SUPPRESSED and rows[g][c] >= 8


def test_months_are_published_once_ended_and_not_before() -> None:
    from datetime import UTC, datetime

    from services.readside import snapshots

    november = snapshots.month("2026-11")
    assert (november.start.isoformat(), november.end.isoformat()) == ("2026-11-01", "2026-11-30")
    assert snapshots.month("2026-12").end.isoformat() == "2026-12-31"
    with pytest.raises(ValueError):
        snapshots.month("2026-13")
    first = datetime(2026, 9, 20, tzinfo=UTC)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    assert snapshots.due(now, first, set()) == ["2026-09", "2026-10", "2026-11"]
    assert snapshots.due(now, first, {"2026-10"}) == ["2026-09", "2026-11"]
    # 23:30 UTC on 30 November is still November in the UK (GMT): not yet due
    assert snapshots.due(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), first, set())[-1] == "2026-10"
    assert snapshots.due(now, None, set()) == []
    assert snapshots.next_month_starts(now) == datetime(2027, 1, 1, tzinfo=UTC)
