"""Wellbeing measures, free of I/O (docs/domain.md#wellbeing-measures).

- SWEMWBS: seven items, each 1 to 5; the raw total (7 to 35) is converted to a metric
  score with the published table (Warwick Medical School). Coded in the GP record as
  SNOMED CT 718466001 with the metric score as its value.
- ONS4 personal wellbeing: four items, each 0 to 10, in this order: life satisfaction,
  worthwhile, happiness, anxiety; each has the ONS bands (for anxiety, lower is better).
  No SNOMED CT code for ONS4 could be traced: it is sent as labelled values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.enums import Instrument, MeasurePoint

SWEMWBS_METRIC: dict[int, float] = {
    7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75, 14: 15.32,
    15: 15.84, 16: 16.36, 17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59, 21: 19.25,
    22: 19.98, 23: 20.73, 24: 21.54, 25: 22.35, 26: 23.21, 27: 24.11, 28: 25.03,
    29: 26.02, 30: 27.03, 31: 28.13, 32: 29.31, 33: 30.70, 34: 32.55, 35: 35.00,
}  # fmt: skip

ONS4_ITEMS = ("life satisfaction", "worthwhile", "happiness", "anxiety")
RANGES = {Instrument.SWEMWBS: (7, 1, 5), Instrument.ONS4: (4, 0, 10)}  # items, min, max


def problems(instrument: Instrument, items: list[int]) -> list[str]:
    """Why these items are not a measurement of this instrument (empty if they are)."""
    count, low, high = RANGES[instrument]
    found = []
    if len(items) != count:
        found.append(f"{instrument.value} has {count} items, not {len(items)}")
    wrong = [i + 1 for i, v in enumerate(items) if not low <= v <= high]
    if wrong:
        found.append(f"{instrument.value} items are {low} to {high}; item(s) {wrong} are not")
    return found


def swemwbs_metric(raw: int) -> float:
    return SWEMWBS_METRIC[raw]


def ons4_band(item: str, value: int) -> str:
    """The ONS threshold band of one ONS4 answer."""
    if item == "anxiety":
        return (
            "very low"
            if value <= 1
            else "low"
            if value <= 3
            else "medium"
            if value <= 5
            else "high"
        )
    return (
        "low" if value <= 4 else "medium" if value <= 6 else "high" if value <= 8 else "very high"
    )


@dataclass(frozen=True)
class Measurement:
    instrument: Instrument
    point: MeasurePoint
    items: tuple[int, ...]
    taken_at: datetime
    key: str = ""  # the event that recorded it

    @property
    def raw(self) -> int:
        return sum(self.items)

    @property
    def metric(self) -> float | None:
        return swemwbs_metric(self.raw) if self.instrument is Instrument.SWEMWBS else None

    @property
    def bands(self) -> dict[str, str]:
        if self.instrument is not Instrument.ONS4:
            return {}
        return {name: ons4_band(name, v) for name, v in zip(ONS4_ITEMS, self.items, strict=True)}

    def describe(self) -> str:
        if self.instrument is Instrument.SWEMWBS:
            return f"raw total {self.raw}, metric score {self.metric:.2f}"
        return ", ".join(
            f"{name} {value} ({self.bands[name]})"
            for name, value in zip(ONS4_ITEMS, self.items, strict=True)
        )


def change(baseline: Measurement, end: Measurement) -> str:
    """The change from a baseline to an end measurement of the same instrument."""
    if baseline.instrument is Instrument.SWEMWBS:
        assert baseline.metric is not None and end.metric is not None
        delta = end.metric - baseline.metric
        return (
            f"SWEMWBS metric score {baseline.metric:.2f} at baseline, {end.metric:.2f} at the "
            f"end: {delta:+.2f} (raw total {baseline.raw} to {end.raw})"
        )
    shifts = []
    for name in ONS4_ITEMS:
        before, after = baseline.bands[name], end.bands[name]
        shifts.append(f"{name} {before} to {after}" if before != after else f"{name} {after}")
    return "ONS4 " + ", ".join(shifts)


def paired(
    measurements: tuple[Measurement, ...], instrument: Instrument
) -> tuple[Measurement, Measurement] | None:
    """The first baseline and the last end measurement of an instrument, if both exist."""
    of = sorted((m for m in measurements if m.instrument is instrument), key=lambda m: m.taken_at)
    baseline = next((m for m in of if m.point is MeasurePoint.BASELINE), None)
    end = next((m for m in reversed(of) if m.point is MeasurePoint.END), None)
    return (baseline, end) if baseline and end else None
