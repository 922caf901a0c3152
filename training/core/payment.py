"""Payment-date inference: P10 / P50 / P90 days to clearing from the quantile boosters.

The boosters predict days relative to an offset (days from t to the due date, plus the
contract's payment anchor feature: the customer's recent days late, 0 when unknown); their
predictions are sorted per row (quantiles never cross), the conformal shift widens P10 / P90,
and the offset is added back (floored at 0). training.payment_date fits the boosters and the
shift; this module is what scoring and serving apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.pit.columns import n_rows

QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
QUANTILE_KEYS: tuple[str, ...] = ("p10", "p50", "p90")


@dataclass(frozen=True)
class ConformalShift:
    """Days P10 is moved down (lo) and P90 up (hi) so each side misses `target_miss` of the
    observable rows of later slices; n_lo / n_hi: the rows each side was fitted on (0: kept
    at 0 for want of rows, or conformal correction off)."""

    lo: float = 0.0
    hi: float = 0.0
    n_lo: int = 0
    n_hi: int = 0
    target_miss: float | None = None

    def to_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "n_lo": self.n_lo, "n_hi": self.n_hi,
                "target_miss": self.target_miss}

    @classmethod
    def from_dict(cls, d: dict) -> ConformalShift:
        return cls(lo=float(d["lo"]), hi=float(d["hi"]), n_lo=int(d.get("n_lo", 0)),
                   n_hi=int(d.get("n_hi", 0)),
                   target_miss=None if d.get("target_miss") is None else float(d["target_miss"]))


def due_offset(rows) -> np.ndarray:
    """Days from the snapshot t to the net due date (negative once past due; NaN where either is
    missing). rows: a frame, or a mapping of datetime64 column arrays (serving)."""
    return ((np.asarray(rows["net_due_date"]) - np.asarray(rows["snapshot_time"]))
            / np.timedelta64(1, "D")).astype("float64")


def anchor_days(rows, anchor: str | None) -> np.ndarray:
    """The anchor feature's value per row (the customer's recent days late), 0 where missing.
    rows: a frame, or a mapping of column arrays (serving)."""
    if not anchor:
        return np.zeros(n_rows(rows))
    if anchor not in rows:
        raise ValueError(f"rows lack the payment-date anchor column {anchor!r}")
    a = pd.to_numeric(pd.Series(rows[anchor], copy=False)).to_numpy(dtype="float64",
                                                                    na_value=np.nan)
    return np.where(np.isnan(a), 0.0, a)


def payment_offset(rows, anchor: str | None) -> np.ndarray:
    """What the boosters' relative days are added to: days to the due date, plus the anchor
    feature (the contract's payment_anchor; None: the due date alone)."""
    return due_offset(rows) + anchor_days(rows, anchor)


def sorted_quantiles(predictions: dict[str, np.ndarray]) -> np.ndarray:
    """The P10 / P50 / P90 boosters' predictions (by QUANTILE_KEYS) as an (n, 3) matrix sorted
    per row (rearrangement: quantiles that never cross)."""
    return np.sort(np.column_stack([predictions[k] for k in QUANTILE_KEYS]), axis=1)


def predict_relative(boosters: dict, X: np.ndarray) -> np.ndarray:
    """(n, 3) quantiles of days relative to the offset, sorted per row so they never cross."""
    return sorted_quantiles({k: boosters[k].predict(X) for k in QUANTILE_KEYS})


def to_days(r: np.ndarray, offset: np.ndarray, shift: ConformalShift | None = None
            ) -> np.ndarray:
    """Days from t (n, 3): relative quantiles + offset, conformal shift applied, non-crossing
    and floored at 0."""
    r = np.array(r, dtype="float64", copy=True)
    if shift is not None:
        r[:, 0] = np.minimum(r[:, 0] - shift.lo, r[:, 1])
        r[:, 2] = np.maximum(r[:, 2] + shift.hi, r[:, 1])
    return np.maximum(r + np.asarray(offset, dtype="float64")[:, None], 0.0)


__all__ = ["QUANTILES", "QUANTILE_KEYS", "ConformalShift", "due_offset", "anchor_days",
           "payment_offset", "sorted_quantiles", "predict_relative", "to_days"]
