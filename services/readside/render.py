"""Figures as text: an aligned plain-text table for a terminal, CSV and JSON (free of I/O).

All three are made from the same disclosed values (``disclosure.disclosed``), so they
carry the same numbers: suppressed by default, exact only when asked (a PCN's own view).
Each takes either the rows of ``figures.report`` or, with ``comparison=True``, those of
``figures.compare``.

Synthetic figures (``synthetic=True``: rows from ``linkwell synthetic``) say so in each:
the table's first line, a leading ``data`` column reading ``SYNTHETIC`` on every CSV row,
and ``"synthetic": true`` with a note in JSON.

Flattened names (CSV columns, comparison rows) are the Figures' field names, plus
``ons4_shifts.<item>.<better|same|worse>`` and ``rejected_by_reason.<code>``.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from services.outcomes.wellbeing import ONS4_ITEMS

from .disclosure import EXACT, FIELDS, RULE, disclosed, disclosed_comparison
from .figures import COUNTS, SHIFTS, Comparison, Figures, Window
from .model import SYNTHETIC_NOTE

Rows = Sequence[Figures] | Sequence[Comparison]

# Column headings of the table's sections (figures as columns, one row per group).
SECTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "Referrals",
        {
            "received": "received",
            "rejected": "rejected",
            "accepted": "accepted",
            "waitlisted": "waitlisted",
            "assigned": "assigned",
            "first_contact": "first contact",
            "declined": "declined",
            "withdrawn": "withdrawn",
            "completed": "completed",
        },
    ),
    (
        "Waits in days from acceptance, and contacts",
        {
            "wait_assigned_median": "link worker median",
            "wait_assigned_p90": "link worker p90",
            "wait_first_contact_median": "first contact median",
            "wait_first_contact_p90": "first contact p90",
            "contacts_per_person": "contacts per person",
        },
    ),
    (
        "Outcomes",
        {
            "coded": "coded (PC-01)",
            "coded_percent": "coded % of list",
            "swemwbs_pairs": "SWEMWBS pairs",
            "swemwbs_mean_change": "SWEMWBS mean change",
            "ons4_pairs": "ONS4 pairs",
            "awaiting_nhs_number": "NHS number awaited",
        },
    ),
)
LABELS = {key: label for _, headings in SECTIONS for key, label in headings.items()}
NOTES = (
    "Referrals count in the window they were received in; what happened to them later",
    "(waits, contacts, completion, measures) follows that cohort. Rejections count when",
    "they were rejected; coded counts the people coded in the window (PC-01).",
)


def table(
    rows: Rows, comparison: bool = False, *, exact: bool = False, synthetic: bool = False
) -> str:
    """Aligned plain-text columns with a header row per section, for a terminal.

    Plain figures: one row per group (``total`` last) in sections of a few columns each
    (referrals, waits, outcomes, ONS4 band shifts as ``better/same/worse``, rejection
    reasons), so it stays readable however many groups there are. A comparison: a row
    per group and, side by side under each figure's label, its value before and after and
    (for counts) the change and change %."""
    values = _disclosed(rows, comparison, exact)
    lines = [_title(rows, comparison), *textwrap.wrap(EXACT if exact else RULE, 88), *NOTES]
    if synthetic:
        lines = [*textwrap.wrap(SYNTHETIC_NOTE, 88), "", *lines]
    if comparison:
        lines += _comparison_sections(values)
    else:
        lines += _plain_sections(values)
    return "\n".join(lines) + "\n"


def to_csv(
    rows: Rows, comparison: bool = False, *, exact: bool = False, synthetic: bool = False
) -> str:
    """CSV with a header row. Plain figures: one row per group, a column per flattened
    figure. A comparison: one row per group and figure, with before, after, change and
    change_percent. Leading columns say the window(s), grouping and whether suppressed;
    a suppressed value is ``*`` and a missing one empty."""
    values = _disclosed(rows, comparison, exact)
    out = io.StringIO()
    plain = csv.writer(out, lineterminator="\n")
    writer: Any = _Marked(plain) if synthetic else plain
    suppressed = "no" if exact else "yes"
    if comparison:
        before, after = _windows(rows)
        writer.writerow(
            [
                *("window_before", "window_after", "grouping", "suppressed", "group"),
                *("figure", "before", "after", "change", "change_percent"),
            ]
        )
        for v in values:
            for key, was, now, change, percent in _comparison_rows(v):
                writer.writerow(
                    [
                        *(before.label, after.label, _grouping(rows), suppressed, v["group"]),
                        *(key, _raw(was), _raw(now), _raw(change), _raw(percent)),
                    ]
                )
    else:
        (window,) = _windows(rows)
        keys = _flat_keys(values)
        writer.writerow(["window", "grouping", "suppressed", "group", *keys])
        for v in values:
            flat = dict(flatten(v))
            writer.writerow(
                [window.label, _grouping(rows), suppressed, v["group"]]
                + [_raw(flat.get(k, 0)) for k in keys]
            )
    return out.getvalue()


def to_json(
    rows: Rows, comparison: bool = False, *, exact: bool = False, synthetic: bool = False
) -> str:
    """JSON: the window(s) (label, start, end), the grouping, whether suppressed, the rule,
    and per group the disclosed values (``*`` for suppressed, null for none)."""
    values = _disclosed(rows, comparison, exact)
    head: dict[str, Any]
    if comparison:
        before, after = _windows(rows)
        head = {"before": _window(before), "after": _window(after)}
    else:
        (window,) = _windows(rows)
        head = {"window": _window(window)}
    document = {
        **head,
        "grouping": _grouping(rows),
        "suppressed": not exact,
        "rule": RULE,
        "synthetic": synthetic,
        **({"note": SYNTHETIC_NOTE} if synthetic else {}),
        "groups": values,
    }
    return json.dumps(document, indent=2) + "\n"


class _Marked:
    """A CSV writer whose every row starts with the ``data`` column: SYNTHETIC."""

    def __init__(self, writer: Any):
        self.writer, self.header = writer, True

    def writerow(self, row: list[Any]) -> None:
        self.writer.writerow(["data" if self.header else "SYNTHETIC", *row])
        self.header = False


def flatten(values: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A disclosed Figures as (flattened name, value) pairs, ``group`` left out."""
    for key in FIELDS:
        yield key, values[key]
    for item, shifts in values["ons4_shifts"].items():
        for shift, count in shifts.items():
            yield f"ons4_shifts.{item}.{shift}", count
    for code, count in values["rejected_by_reason"].items():
        yield f"rejected_by_reason.{code}", count


def label(key: str) -> str:
    """A flattened name in words, for a comparison table."""
    if key.startswith("rejected_by_reason."):
        return f"rejected: {key.split('.', 1)[1]}"
    if key.startswith("ons4_shifts."):
        item, _, shift = key.split(".", 1)[1].partition(".")
        return f"ONS4 {item}: " + (f"people {shift}" if shift else "/".join(SHIFTS))
    words = LABELS[key]
    return f"wait to {words}" if key.startswith("wait_") else words


# ------------------------------------------------------------------------------ workings


def _disclosed(rows: Rows, comparison: bool, exact: bool) -> list[dict[str, Any]]:
    if not rows:
        raise ValueError("nothing to show: no rows")
    kind = Comparison if comparison else Figures
    if not all(isinstance(r, kind) for r in rows):
        raise TypeError(f"comparison={comparison} needs rows of {kind.__name__}")
    if comparison:
        return [disclosed_comparison(r, exact) for r in rows]  # type: ignore[arg-type]
    return [disclosed(r, exact) for r in rows]  # type: ignore[arg-type]


def _windows(rows: Rows) -> tuple[Window, ...]:
    first = rows[0]
    if isinstance(first, Comparison):
        return first.before.window, first.after.window
    return (first.window,)


def _grouping(rows: Rows) -> str:
    first = rows[0]
    return first.before.by if isinstance(first, Comparison) else first.by


def _window(window: Window) -> dict[str, str]:
    return {
        "label": window.label,
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
    }


def _title(rows: Rows, comparison: bool) -> str:
    windows = _windows(rows)
    if comparison:
        when = f"{windows[0].describe()} compared with {windows[1].describe()}"
    else:
        when = windows[0].describe()
    return f"Referral figures by {_grouping(rows)}, {when}"


def _flat_keys(values: list[dict[str, Any]]) -> list[str]:
    """Every flattened name, reasons being the union over the groups (sorted)."""
    keys = [k for k, _ in flatten(values[0]) if not k.startswith("rejected_by_reason.")]
    reasons = sorted({code for v in values for code in v["rejected_by_reason"]})
    return keys + [f"rejected_by_reason.{code}" for code in reasons]


def _plain_sections(values: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for title, headings in SECTIONS:
        cells = [[v["group"], *(_cell(v[k]) for k in headings)] for v in values]
        lines += ["", title, *_aligned(["group", *headings.values()], cells)]
    cells = [
        [v["group"], *(_shifts(v["ons4_shifts"][item]) for item in ONS4_ITEMS)] for v in values
    ]
    title = "ONS4 bands, people " + " / ".join(SHIFTS) + " (anxiety: a lower band is better)"
    lines += ["", title, *_aligned(["group", *ONS4_ITEMS], cells)]
    reasons = sorted({code for v in values for code in v["rejected_by_reason"]})
    if reasons:
        cells = [
            [v["group"], *(_cell(v["rejected_by_reason"].get(c, 0)) for c in reasons)]
            for v in values
        ]
        title = "Rejected submissions by reason (one with two reasons counts under each)"
        lines += ["", title, *_aligned(["group", *reasons], cells)]
    return lines


def _comparison_rows(v: dict[str, Any]) -> Iterator[tuple[str, Any, Any, Any, Any]]:
    """(flattened name, before, after, change, change %) of one group; change only for
    counts (ONS4 shifts and derived figures have none)."""
    before, after = dict(flatten(v["before"])), dict(flatten(v["after"]))
    for key in dict.fromkeys([*before, *after]):
        counted = key in COUNTS or key.startswith("rejected_by_reason.")
        yield (
            key,
            before.get(key, 0),
            after.get(key, 0),
            v["change"].get(key) if counted else None,
            v["change_percent"].get(key) if counted else None,
        )


def _comparison_sections(values: list[dict[str, Any]]) -> list[str]:
    """Figures side by side under a spanning label, as many as fit in ``WIDTH``: counts
    with before, after, change and change %, the rest (and ONS4 shifts, one per item as
    better/same/worse) with before and after. Order: ``FIELDS``, ONS4 items, reasons."""
    reasons = sorted({k for v in values for k in v["change"] if k not in COUNTS})
    order = [*FIELDS, *(f"ons4_shifts.{item}" for item in ONS4_ITEMS), *reasons]
    cells: dict[str, list[list[str]]] = {key: [] for key in order}
    for v in values:
        found = {key: row for key, *row in _comparison_rows(v)}
        for key in order:
            if key.startswith("ons4_shifts."):
                item = key.split(".", 1)[1]
                cells[key].append([_shifts(v[w]["ons4_shifts"][item]) for w in ("before", "after")])
                continue
            was, now, change, percent = found.get(key, (0, 0, 0, None))
            row = [_cell(was), _cell(now)]
            if key in COUNTS or key.startswith("rejected_by_reason."):
                row += [_signed(change), _signed(percent)]
            cells[key].append(row)
    groups = [v["group"] for v in values]
    first = max(len(g) for g in ["group", *groups])
    spans = [_Span.of(label(key), cells[key]) for key in order]
    lines: list[str] = []
    block: list[_Span] = []
    for span in [*spans, None]:
        if span is not None and first + sum(s.width + 4 for s in [*block, span]) <= WIDTH:
            block.append(span)
            continue
        if block:
            lines += ["", *_spanned(first, groups, block)]
        block = [span] if span is not None else []
    return lines


SUBHEADINGS = ("before", "after", "change", "change %")
WIDTH = 110  # the widest a comparison table's line grows (unless one figure is wider)


@dataclass
class _Span:
    """One figure of a comparison table: its label over its columns, and their widths."""

    label: str
    rows: list[list[str]]
    widths: list[int]

    @classmethod
    def of(cls, title: str, rows: list[list[str]]) -> _Span:
        count = len(rows[0])
        widths = [
            max(len(x) for x in [SUBHEADINGS[i], *(r[i] for r in rows)]) for i in range(count)
        ]
        spare = len(title) + 6 - (sum(widths) + 2 * (count - 1))  # room for "-- label --"
        if spare > 0:  # a long label widens the first column
            widths[0] += spare
        return cls(title, rows, widths)

    @property
    def width(self) -> int:
        return sum(self.widths) + 2 * (len(self.widths) - 1)


def _spanned(first: int, groups: list[str], spans: list[_Span]) -> list[str]:
    """A comparison block: a line of labels centred over their columns, a line of column
    headings, and a row per group; figures four spaces apart, columns two."""
    labels = "    ".join(f" {s.label} ".center(s.width, "-") for s in spans)
    heads = "    ".join(
        "  ".join(h.rjust(w) for h, w in zip(SUBHEADINGS, s.widths, strict=False)) for s in spans
    )
    lines = [(" " * first + "    " + labels).rstrip(), "group".ljust(first) + "    " + heads]
    for i, group in enumerate(groups):
        row = "    ".join(
            "  ".join(c.rjust(w) for c, w in zip(s.rows[i], s.widths, strict=True)) for s in spans
        )
        lines.append((group.ljust(first) + "    " + row).rstrip())
    return lines


def _aligned(headings: list[str], cells: list[list[str]]) -> list[str]:
    """Columns two spaces apart: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [headings, *cells]) for i in range(len(headings))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(headings), *(line(row) for row in cells)]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _signed(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.1f}"
    if isinstance(value, int):
        return f"{value:+d}"
    return str(value)


def _shifts(shifts: dict[str, Any]) -> str:
    return "/".join(_cell(shifts[s]) for s in SHIFTS)


def _raw(value: Any) -> Any:
    """A value for CSV: None is an empty cell; everything else as it is."""
    return "" if value is None else value


# ------------------------------------------------------------------ published snapshots


def published(snapshot: dict[str, Any], output: str) -> str:
    """A published snapshot (``store.snapshot``) as CSV, JSON or a table: the figures
    exactly as they were published, never recomputed."""
    rows: list[dict[str, Any]] = snapshot["figures"]
    from .snapshots import COUNTS, DERIVED

    known = ["group", *COUNTS, *DERIVED]  # jsonb keeps no key order: the published order
    columns = known + sorted({k for r in rows for k in r} - set(known))
    marked = SYNTHETIC_NOTE if snapshot["synthetic"] else None
    when = snapshot["published_at"].isoformat()
    if output == "json":
        document = {
            "period": snapshot["period"],
            "published_at": when,
            "rule": snapshot["rule"],
            "figures": rows,
        }
        if marked:
            document["synthetic"] = marked
        return json.dumps(document, indent=2) + "\n"
    if output == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["data", "period", "published_at", *columns])
        for row in rows:
            writer.writerow(
                ["SYNTHETIC" if marked else "", snapshot["period"], when]
                + ["" if row.get(c) is None else row.get(c) for c in columns]
            )
        return out.getvalue()
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in columns]
    lines = [marked] if marked else []
    lines.append(f"Figures for period {snapshot['period']}, published {when}")
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        lines.append(
            "  ".join(
                str(row.get(c) if row.get(c) is not None else "-").ljust(w)
                for c, w in zip(columns, widths, strict=True)
            ).rstrip()
        )
    lines.append(snapshot["rule"])
    return "\n".join(lines) + "\n"
