"""Labels of a row (invoice, t), from the invoice's outcome after t: schema.LABEL_COLUMNS.

The outcome is the invoice's first terminal event (invoice_cleared or invoice_written_off). It
counts only if known by the end of observation (end_time, default last_refresh); otherwise the
row is censored: label_late NaN, bucket NA, days NaN, written_off False, outcome_time NaT,
observed_days = days from t to end_time. A censored row is never "on time".

- label_days_late = outcome date - net due date (calendar days, negative when early);
- label_late = 1 when label_days_late > grace_days, else 0;
- label_delay_bucket = 0 when not late, else the band of days late between config.bucket_edges
  (defaults: 1-30 -> 1, 31-60 -> 2, 61-90 -> 3, > 90 -> 4), at least 1. Bucket 0 therefore means
  exactly label_late == 0, also when grace_days > 0;
- label_days_to_clear = observed_days = (outcome time - t) in fractional days (floored at 0: a
  clearing recorded after its business time may carry an earlier business time than t).

Written off (decision): the money never arrived, so a write-off is the worst outcome whatever its
date: label_late = 1, label_delay_bucket = the last bucket (> 90 days), label_written_off True;
label_days_late and label_days_to_clear are measured to the write-off date (payment-date models
should leave these rows out or treat them as never paid; label_written_off says which).

Extra column (not part of the contract): label_late_known = label_late, except that a censored
row whose end of observation is already more than grace_days past the due date is 1.0: it will be
late whatever happens. Use it to keep long-overdue open invoices in a late-risk training set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema
from features.config.features import FeatureConfig
from features.pit.columns import Instant
from features.pit.invoice_features import day_number
from features.pit.item_state import (ACT, DAY_US, NAT, ReplayLog, event_positions, prepare_log,
                                     snapshot_codes, to_us)

A = schema.Activity
EXTRA_LABEL_COLUMNS: tuple[str, ...] = ("label_late_known",)


def label_arrays(log: ReplayLog, inv: np.ndarray, t: np.ndarray, config: FeatureConfig,
                 end_time: int | None = None) -> dict[str, np.ndarray]:
    """Label columns for invoice codes `inv` at times `t` (int64 us)."""
    end = log.end_time if end_time is None else int(end_time)
    inv = np.asarray(inv, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    term = log.term_idx[inv]
    safe = np.maximum(term, 0)
    censored = (term < 0) | (log.known[safe] > end)
    done = ~censored
    outcome = np.where(done, log.etime[safe], NAT)
    wo = done & (log.act[safe] == ACT[A.INVOICE_WRITTEN_OFF])
    due_day = day_number(log.due[inv])
    dl = np.where(done, day_number(np.where(done, outcome, 0)) - due_day, 0)
    late = wo | (done & (dl > config.grace_days))
    label_late = np.where(done, late.astype(np.float64), np.nan)

    edges = np.asarray(config.bucket_edges, dtype=np.int64)
    band = np.maximum(np.searchsorted(edges, dl, side="left"), 1)
    bucket = np.where(wo, len(edges), np.where(late, band, 0))
    days_to = np.where(done, np.maximum(outcome - np.where(done, t, 0), 0) / DAY_US, np.nan)
    observed = np.where(done, days_to, (end - t) / DAY_US)
    past_grace = (day_number(np.full(len(inv), end)) - due_day) > config.grace_days
    known_late = np.where(done, label_late, np.where(past_grace, 1.0, np.nan))
    return {
        "label_late": label_late,
        "label_delay_bucket": pd.arrays.IntegerArray(bucket.astype(np.int8), mask=censored.copy()),
        "label_days_late": np.where(done, dl.astype(np.float64), np.nan),
        "label_days_to_clear": days_to,
        "label_written_off": wo,
        "censored": censored,
        "observed_days": observed,
        "outcome_time": outcome.view("datetime64[us]"),
        "label_late_known": known_late,
    }


def label_frame(log: ReplayLog, inv: np.ndarray, t: np.ndarray, config: FeatureConfig,
                end_time: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(label_arrays(log, inv, t, config, end_time), copy=False)
    return frame[list(schema.LABEL_COLUMNS) + list(EXTRA_LABEL_COLUMNS)]


def labels_at(events: pd.DataFrame | ReplayLog, snapshots: pd.DataFrame,
              config: FeatureConfig = FeatureConfig(),
              end_time: Instant | None = None) -> pd.DataFrame:
    """Labels of each (invoice_id, snapshot_time) row, observed up to end_time."""
    log = prepare_log(events)
    inv, t = snapshot_codes(log, snapshots)
    event_positions(log, inv, t)  # raises unless every invoice is open at its time
    end = None if end_time is None else to_us(end_time)
    return label_frame(log, inv, t, config, end)


__all__ = ["labels_at", "label_frame", "label_arrays", "EXTRA_LABEL_COLUMNS"]
