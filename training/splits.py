"""Time-based train / calibration / test splits with label maturity.

A split is a window of snapshot times ending at a cut-off c (inclusive). Nothing that happened after
c may reach a model trained or calibrated on that split, so each split's rows are re-labelled with
what was knowable at c (`censor_at`): a row whose outcome came after c (or never came) gets NaN
labels, `censored` True, and `observed_days` truncated to c - t. The test split is re-labelled at
the test end the same way.

Censoring then has to be handled without biasing the targets. Among the rows open at c, the ones
that will turn out late are over-represented, so simply dropping censored rows makes the world look
punctual. Three derived targets avoid that by selecting rows on their *dates* only (never on their
outcome), so the selected rows are a fair sample:
- `target_late`: the late flag is knowable for every row whose late-threshold instant
  (net due date + grace + 1 day) is <= c: either it cleared before (label known) or it was still
  open then, which is late by definition. `risk_used` marks those rows.
- `target_bucket`: the delay bucket of a late row is knowable once c is past the last bucket edge
  (net due + last edge + 1 day): cleared (label known) or still open (last bucket). `bucket_used`.
- `target_very_late`: paid more than the very-late threshold (ModelContract.very_late_days, 30
  days with the defaults) after the due date, or written off; knowable like the late flag once
  the threshold instant (net due date + threshold + 1 day) is <= c. `very_late_used`.
- `target_days_to_clear`: days from t to clearing, right-clipped at the payment horizon H, is
  knowable for every row with t + H <= c. `payment_used`. A write-off is not a payment: it counts
  as never cleared (target H). (Quantiles below H are unaffected by the
  clip; an estimate at H reads "H days or later".)
A closed frame - every row's outcome known by c, as in a ledger extract of settled invoices such
as the IBM sample - has nothing open to bias, so the three date rules are lifted there and every
row is used with its real label (`closed_at`). One row still open switches them back on.
Rows of snapshot kinds the models do not learn from (e.g. "now") stay in their split and are
counted, never dropped; rows after the test end are counted in `after_test_end`.

Beyond the three splits (training.pipeline uses them to calibrate, then refits): `rolling_folds`
gives out-of-time steps - slices as long as the calibration slice ending at the calibration end,
each with the rows before it labelled at the slice's start - and `refit_frame` the train +
calibration rows labelled at the calibration end. Neither ever reads a test row or a label known
only after the calibration end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from training.core.contract import very_late_buckets, very_late_threshold

SPLIT_NAMES: tuple[str, ...] = ("train", "calibration", "test")
_DAY = pd.Timedelta(days=1)
_REQUIRED = ("invoice_id", "snapshot_time", "snapshot_kind", "net_due_date", "label_late",
             "label_delay_bucket", "label_days_late", "label_days_to_clear", "label_written_off",
             "censored", "observed_days", "outcome_time")
_LABELS_NAN = ("label_late", "label_days_late", "label_days_to_clear")


@dataclass(frozen=True)
class Cutoffs:
    """Inclusive ends of the three windows; `start` is the first snapshot."""

    start: pd.Timestamp
    train_end: pd.Timestamp
    calibration_end: pd.Timestamp
    test_end: pd.Timestamp

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class SplitResult:
    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame
    cutoffs: Cutoffs
    counts: pd.DataFrame  # one row per split (+ "after_test_end"); rows add up to the input
    rows: pd.DataFrame | None = None  # the input rows (not copied), for refits and folds

    def frame(self, name: str) -> pd.DataFrame:
        return getattr(self, name)


@dataclass(frozen=True)
class Fold:
    """One out-of-time step: fit on `fit` (snapshots <= start, labelled at start), predict
    `predict` (start < snapshot <= end, labelled at the calibration end)."""

    start: pd.Timestamp
    end: pd.Timestamp
    fit: pd.DataFrame
    predict: pd.DataFrame


def relabel(rows: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp,
            label_end: pd.Timestamp, config: PaydelayConfig) -> pd.DataFrame:
    """Rows with lo < snapshot <= hi (lo None: from the start), labelled as known at label_end."""
    t = rows["snapshot_time"]
    mask = (t <= hi) if lo is None else ((t > lo) & (t <= hi))
    return add_targets(censor_at(rows.loc[mask.to_numpy()], label_end), label_end, config)


def refit_frame(split: SplitResult, config: PaydelayConfig) -> pd.DataFrame:
    """Train + calibration rows (snapshots <= calibration_end) labelled at calibration_end: what a
    final model may learn from once the calibration slice has served its purpose."""
    if split.rows is None:
        raise ValueError("this split does not carry its input rows (build it with split_rows)")
    c = split.cutoffs
    return relabel(split.rows, None, c.calibration_end, c.calibration_end, config)


def fold_windows(split: SplitResult, n_folds: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) of up to n_folds consecutive slices as long as the calibration slice, the
    last one being the calibration slice itself, oldest first; slices starting before the first
    snapshot are left out."""
    c = split.cutoffs
    length = c.calibration_end - c.train_end
    windows = [(c.train_end, c.calibration_end)]
    for k in range(1, n_folds):
        end = c.train_end - (k - 1) * length
        start = end - length
        if start <= c.start:
            break
        windows.insert(0, (start, end))
    return windows


def fold_at(split: SplitResult, config: PaydelayConfig, start: pd.Timestamp,
            end: pd.Timestamp) -> Fold:
    """The out-of-time fold predicting (start, end]: the rows before it labelled at its start,
    its rows labelled at calibration_end. The calibration slice's fold is (train, calibration)
    as split_rows made them (no copy). Built one at a time by the trainer, so only one fold's
    frames are held at once."""
    c = split.cutoffs
    if (start, end) == (c.train_end, c.calibration_end):
        return Fold(start, end, split.train, split.calibration)
    if split.rows is None:
        raise ValueError("this split does not carry its input rows (build it with split_rows)")
    return Fold(start, end, relabel(split.rows, None, start, start, config),
                relabel(split.rows, start, end, c.calibration_end, config))


def rolling_folds(split: SplitResult, config: PaydelayConfig, n_folds: int) -> list[Fold]:
    """Every fold of `fold_windows` (each slice's rows labelled at calibration_end - the most
    any calibration may know - and predicted by a model fitted on the rows before it, labelled
    at the slice's start). The last fold is (train, calibration) as split_rows made them."""
    windows = fold_windows(split, n_folds)
    if split.rows is None and len(windows) > 1:
        raise ValueError("this split does not carry its input rows (build it with split_rows)")
    return [fold_at(split, config, start, end) for start, end in windows]


def check_rows(rows: pd.DataFrame, what: str = "rows") -> None:
    """Clear error naming the missing label/key columns."""
    missing = [c for c in _REQUIRED if c not in rows.columns]
    if missing:
        raise ValueError(f"{what} lack column(s) {missing}: expected the output of "
                         "features.pit.build.build_training_set (keys + labels + features)")
    if rows["snapshot_time"].isna().any():
        bad = rows.index[rows["snapshot_time"].isna()][:5].tolist()
        raise ValueError(f"{what}: snapshot_time is missing on rows {bad}")


def data_end(rows: pd.DataFrame) -> pd.Timestamp:
    """End of observation: the latest snapshot, outcome, or end of a censored row's observation."""
    obs_end = rows["snapshot_time"] + pd.to_timedelta(rows["observed_days"].astype("float64"),
                                                      unit="D")
    return max(rows["snapshot_time"].max(), rows["outcome_time"].max(),
               obs_end.max().round("s"))


def resolve_cutoffs(rows: pd.DataFrame, config: PaydelayConfig) -> Cutoffs:
    """Dates from the config when given, else fractions of [first snapshot, data end]."""
    tc = config.training
    start = rows["snapshot_time"].min()
    end = pd.Timestamp(tc.test_end) if tc.test_end else data_end(rows)
    span = end - start
    train_end = (pd.Timestamp(tc.train_end) if tc.train_end
                 else (start + span * tc.train_fraction).floor("D"))
    cal_end = (pd.Timestamp(tc.calibration_end) if tc.calibration_end
               else (start + span * (tc.train_fraction + tc.calibration_fraction)).floor("D"))
    if not start <= train_end < cal_end < end:
        raise ValueError(
            f"cut-offs must satisfy first snapshot ({start}) <= train_end ({train_end}) < "
            f"calibration_end ({cal_end}) < test_end ({end}); check training.train_end / "
            "calibration_end / test_end or the fractions")
    return Cutoffs(start, train_end, cal_end, end)


def late_from(net_due_date: pd.Series, grace_days: int) -> pd.Series:
    """First instant at which a still-open invoice counts as late (due date + grace + 1 day)."""
    return net_due_date.dt.normalize() + (grace_days + 1) * _DAY


def censor_at(rows: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Labels as they were knowable at `cutoff`: outcomes after it become censored. The frame
    is copied shallowly (pandas copy-on-write: the feature columns are shared with `rows`, the
    label columns replaced), so a split does not hold a second copy of a million rows'
    features."""
    out = rows.copy(deep=False)
    known = (~out["censored"].astype("boolean").fillna(True).to_numpy(dtype=bool)
             & out["outcome_time"].notna().to_numpy()
             & (out["outcome_time"] <= cutoff).fillna(False).to_numpy(dtype=bool))
    unknown = ~known
    for col in _LABELS_NAN:
        out[col] = out[col].astype("float64").mask(unknown)
    out["label_delay_bucket"] = out["label_delay_bucket"].astype("Int8").mask(unknown)
    out["label_written_off"] = out["label_written_off"].astype("boolean").fillna(False) \
        .astype(bool).mask(unknown, False)
    out["censored"] = unknown
    out["outcome_time"] = out["outcome_time"].mask(unknown)
    to_cut = (cutoff - out["snapshot_time"]) / _DAY
    out["observed_days"] = np.minimum(out["observed_days"].astype("float64"), to_cut)
    return out


def closed_at(rows: pd.DataFrame) -> bool:
    """True when every row of a censored frame has its outcome (nothing open at the cut-off): the
    date rules that keep open rows from biasing the targets have nothing to protect against."""
    return bool(len(rows)) and not rows["censored"].to_numpy(dtype=bool).any()


def add_targets(rows: pd.DataFrame, cutoff: pd.Timestamp, config: PaydelayConfig) -> pd.DataFrame:
    """Append target_* and *_used columns for a frame already censored at `cutoff` (module doc).
    The new columns are joined in one step (copy-on-write: the rows' columns are shared, not
    copied)."""
    fc, tc = config.features, config.training
    out = rows
    new: dict[str, np.ndarray] = {}
    kind_ok = out["snapshot_kind"].astype(str).isin(tc.snapshot_kinds).to_numpy()
    known = ~out["censored"].to_numpy(dtype=bool)
    open_at_cut = ~known
    closed = closed_at(out)

    late_mature = closed | (late_from(out["net_due_date"], fc.grace_days) <= cutoff).fillna(False) \
        .to_numpy(dtype=bool)
    target_late = out["label_late"].to_numpy(dtype="float64").copy()
    target_late[open_at_cut & late_mature] = 1.0
    target_late[~late_mature] = np.nan  # known early payers alone would bias towards on time
    new["target_late"] = target_late
    new["risk_used"] = kind_ok & late_mature & ~np.isnan(target_late)

    last_bucket = len(fc.bucket_edges)
    bucket_mature = closed | ((out["net_due_date"].dt.normalize()
                               + (fc.bucket_edges[-1] + 1) * _DAY)
                              <= cutoff).fillna(False).to_numpy(dtype=bool)
    bucket = out["label_delay_bucket"].astype("float64").to_numpy().copy()
    bucket[open_at_cut & bucket_mature] = last_bucket
    bucket[~bucket_mature] = np.nan
    new["target_bucket"] = bucket
    new["bucket_used"] = kind_ok & bucket_mature & (target_late == 1.0) & ~np.isnan(bucket)

    # Very late (paid more than very_late_days days after due, or written off): knowable like
    # the late flag, once the threshold instant (due + days + 1) is <= c: cleared before (label
    # known) or still open then, which is very late by definition.
    vl_days = config_very_late_days(config)
    vl_mature = closed | (late_from(out["net_due_date"], vl_days) <= cutoff).fillna(False) \
        .to_numpy(dtype=bool)
    written_off = out["label_written_off"].to_numpy(dtype=bool)
    days_late = out["label_days_late"].to_numpy(dtype="float64")
    target_vl = np.where(known, (written_off | (days_late > vl_days)).astype("float64"),
                         np.nan)
    target_vl[open_at_cut & vl_mature] = 1.0
    target_vl[~vl_mature] = np.nan
    new["target_very_late"] = target_vl
    new["very_late_used"] = kind_ok & vl_mature & ~np.isnan(target_vl)

    horizon = float(tc.payment_horizon_days)
    pay_mature = closed | ((out["snapshot_time"] + horizon * _DAY) <= cutoff).to_numpy(dtype=bool)
    # A write-off is not a payment: for the payment date it counts as never cleared.
    days = np.where(out["label_written_off"].to_numpy(dtype=bool), np.inf,
                    out["label_days_to_clear"].to_numpy(dtype="float64"))
    clipped = np.where(known, np.minimum(days, horizon), horizon)
    new["target_days_to_clear"] = np.where(pay_mature, clipped, np.nan)
    new["payment_used"] = kind_ok & pay_mature & ~np.isnan(new["target_days_to_clear"])
    joined = pd.concat([rows.drop(columns=[c for c in new if c in rows.columns]),
                        pd.DataFrame(new, index=rows.index)], axis=1)
    joined.attrs = dict(rows.attrs)
    return joined


def config_very_late_days(config: PaydelayConfig) -> int:
    """The very-late threshold of a model trained with `config` (ModelContract.very_late_days)."""
    fc = config.features
    very_late = (very_late_buckets(tuple(fc.bucket_edges), config.evaluation.backtest_late_days)
                 or [len(fc.bucket_edges)])
    return very_late_threshold(tuple(fc.bucket_edges), fc.grace_days, very_late)


def _counts(name: str, frame: pd.DataFrame, lo, hi) -> dict:
    return {
        "split": name, "start": lo, "end": hi, "rows": len(frame),
        "invoices": frame["invoice_id"].nunique(),
        "censored": int(frame["censored"].sum()) if "censored" in frame else 0,
        "risk_used": int(frame["risk_used"].sum()) if "risk_used" in frame else 0,
        "risk_late": int((frame["risk_used"] & (frame["target_late"] == 1)).sum())
        if "risk_used" in frame else 0,
        "bucket_used": int(frame["bucket_used"].sum()) if "bucket_used" in frame else 0,
        "very_late_used": int(frame["very_late_used"].sum()) if "very_late_used" in frame
        else 0,
        "payment_used": int(frame["payment_used"].sum()) if "payment_used" in frame else 0,
    }


def split_rows(rows: pd.DataFrame, config: PaydelayConfig,
               cutoffs: Cutoffs | None = None) -> SplitResult:
    """Cut rows into train / calibration / test by snapshot time and re-label each at its end."""
    check_rows(rows)
    cut = cutoffs or resolve_cutoffs(rows, config)
    t = rows["snapshot_time"]
    windows = {
        "train": (t <= cut.train_end, cut.start, cut.train_end),
        "calibration": ((t > cut.train_end) & (t <= cut.calibration_end), cut.train_end,
                        cut.calibration_end),
        "test": ((t > cut.calibration_end) & (t <= cut.test_end), cut.calibration_end,
                 cut.test_end),
    }
    frames, counts = {}, []
    for name, (mask, lo, hi) in windows.items():
        frame = add_targets(censor_at(rows.loc[mask.to_numpy()], hi), hi, config)
        # joined, not inserted: a frame read column by column (training.rows) has a block per
        # column, and pandas warns on (and slows down) inserts into such frames
        frame = pd.concat([frame, pd.Series(name, index=frame.index, name="split")], axis=1)
        frames[name] = frame
        counts.append(_counts(name, frame, lo, hi))
    after = rows.loc[(t > cut.test_end).to_numpy()]
    counts.append(_counts("after_test_end", after, cut.test_end, t.max()))
    table = pd.DataFrame(counts).set_index("split")
    if int(table["rows"].sum()) != len(rows):  # a window bug would silently lose rows
        raise AssertionError(f"split rows {int(table['rows'].sum())} != input rows {len(rows)}")
    return SplitResult(frames["train"], frames["calibration"], frames["test"], cut, table, rows)
