"""The training stage's row budget: which snapshot rows the models learn from when there are
too many, and the weight each kept row carries (the policy is `training.sampling`).

A ledger of a million invoices gives about 4.7M snapshot rows; fitted in full, the out-of-time
folds, the refit and their matrices need more than a workstation holds. Most of those rows are
the later (grid) snapshots of the same invoices, which are strongly alike; the posting rows
answer the question a collector asks first and are what the headline figures lead with. So:

- rows after the calibration end (the test window, and anything later) are never sampled: every
  headline figure is measured on every row;
- rows of `keep_kinds` (posting) are always kept, weight 1;
- the other rows of the fit windows are sampled **by invoice**: one seeded uniform number per
  invoice (a hash of its id, so the choice does not depend on row order or on which file part a
  row came from) decides whether all of its later snapshots are kept, with one probability p
  chosen so the kept rows meet the budget; each kept one carries weight 1/p (Horvitz-Thompson),
  so weighted sums over the kept rows estimate the sums over all rows, and the fits, the
  calibrator, the choice of boosting rounds and the conformal shift stay unbiased.

The payment-date quantile boosters have a budget of their own (`payment_max_rows`, their rows
cost about ten times a binary booster's): `payment_subsample` keeps every row of a seeded share
q <= p of the invoices - the same draw, so those invoices kept all their later snapshots and the
subsample is a plain random sample of invoices, fitted unweighted.

`plan(keys, calibration_end, config, seed)` decides p from the key columns alone (invoice id,
snapshot kind, snapshot time), so the CLI can read the rows file part by part and keep only the
sample (training.rows); `apply` adds the `sample_weight` column to a frame; `reconciliation`
counts what was left out. Below the budget nothing is sampled and no weight column is added, so
the models are exactly those of the full table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from features.reconcile import Reconciliation, reconcile_counts

WEIGHT = "sample_weight"
_U64 = float(2**64)


@dataclass(frozen=True)
class SamplePlan:
    """What the budget decided: the probability of keeping an invoice's later snapshots (1.0:
    nothing sampled), the counts behind it, and the seed of the invoice draw."""

    p: float
    calibration_end: str
    max_rows: int | None
    keep_kinds: tuple[str, ...]
    seed: int
    fit_rows: int = 0  # rows of the training kinds up to the calibration end
    kept_kind_rows: int = 0  # of which posting (always kept)
    sampled_rows: int = 0  # later snapshots eligible for sampling
    kept_sampled_rows: int = 0  # ... of which kept
    rows_in: int = 0  # every row of the table

    @property
    def active(self) -> bool:
        return self.p < 1.0

    @property
    def rows_out(self) -> int:
        return self.rows_in - (self.sampled_rows - self.kept_sampled_rows)

    def as_dict(self) -> dict:
        return {**asdict(self), "keep_kinds": list(self.keep_kinds), "active": self.active,
                "rows_out": self.rows_out}


def invoice_uniform(invoice_id, seed: int) -> np.ndarray:
    """One number in [0, 1) per row, the same for every row of an invoice and for a seed."""
    ids = pd.Series(invoice_id).astype("str").to_numpy(dtype=object)
    h = pd.util.hash_array(ids, hash_key=f"paydelay{seed:08d}"[:16])
    return h.astype(np.float64) / _U64


def _eligible(keys: pd.DataFrame, calibration_end: pd.Timestamp,
              config: PaydelayConfig) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the training kinds in the fit windows, of which later snapshots to sample)."""
    tc = config.training
    kind = keys["snapshot_kind"].astype("str").to_numpy()
    fit = ((keys["snapshot_time"] <= calibration_end).to_numpy(dtype=bool)
           & np.isin(kind, list(tc.snapshot_kinds)))
    return fit, fit & ~np.isin(kind, list(tc.sampling.keep_kinds))


def plan(keys: pd.DataFrame, calibration_end: pd.Timestamp, config: PaydelayConfig,
         seed: int) -> SamplePlan:
    """The sample for these rows (only invoice_id, snapshot_kind and snapshot_time are read):
    p = (budget - kept rows) / later snapshots, at most 1. A budget smaller than the posting
    rows alone keeps the posting rows and no later snapshot (p = 0 is refused: p is at least
    one invoice's worth)."""
    sc = config.training.sampling
    fit, sampled = _eligible(keys, calibration_end, config)
    n_fit, n_sampled = int(fit.sum()), int(sampled.sum())
    p = budget_p(n_fit, n_fit - n_sampled, n_sampled, sc.max_rows)
    kept = n_sampled if p >= 1.0 else int(
        (invoice_uniform(keys["invoice_id"].to_numpy()[sampled], seed) < p).sum())
    return SamplePlan(p, str(calibration_end), sc.max_rows, tuple(sc.keep_kinds), seed, n_fit,
                      n_fit - n_sampled, n_sampled, kept, len(keys))


def budget_p(n_fit: int, n_kept_kinds: int, n_sampled: int, max_rows: int | None) -> float:
    """The budget rule on counts (the Dask trainer sums them over partitions): 1 under the
    budget, else (budget - kept rows) / later snapshots, at least one invoice's worth."""
    if max_rows is None or n_fit <= max_rows or n_sampled == 0:
        return 1.0
    return min(max((max_rows - n_kept_kinds) / n_sampled, 1.0 / n_sampled), 1.0)


def keep_mask(keys: pd.DataFrame, sample: SamplePlan, config: PaydelayConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, their weights) of any part of the table under the plan: the same answer for
    a row whichever part it is read with."""
    n = len(keys)
    if not sample.active:
        return np.ones(n, dtype=bool), np.ones(n, dtype=np.float64)
    _, sampled = _eligible(keys, pd.Timestamp(sample.calibration_end), config)
    drawn = invoice_uniform(keys["invoice_id"].to_numpy(), sample.seed) < sample.p
    keep = ~sampled | drawn
    weight = np.where(sampled, 1.0 / sample.p, 1.0)
    return keep, weight[keep]


def apply(rows: pd.DataFrame, sample: SamplePlan, config: PaydelayConfig) -> pd.DataFrame:
    """The kept rows with their `sample_weight` (rows unchanged when nothing is sampled)."""
    if not sample.active:
        return rows
    keep, weight = keep_mask(rows, sample, config)
    out = rows.loc[keep]
    out[WEIGHT] = weight
    out.attrs = {**rows.attrs, "training_sample": sample.as_dict()}
    return out


def weights(frame: pd.DataFrame) -> np.ndarray | None:
    """The rows' weights for a fit, or None when nothing was sampled (an unweighted fit, the
    same model as before the budget existed)."""
    return frame[WEIGHT].to_numpy(dtype=np.float64) if WEIGHT in frame.columns else None


def payment_subsample(frame: pd.DataFrame, sample: dict | None, config: PaydelayConfig,
                      seed: int) -> tuple[pd.DataFrame, float]:
    """The payment-date boosters' rows under `training.sampling.payment_max_rows`: every row of
    the invoices whose seeded uniform number (the budget's own draw, with the plan's seed) is
    below q, and q. q is the budget over the rows the frame stands for (its weights summed),
    at most the plan's p: those invoices kept all of their later snapshots, so the subsample
    is a plain random sample of invoices, fitted unweighted. (frame, 1.0) when under the
    budget."""
    limit = config.training.sampling.payment_max_rows
    w = weights(frame)
    represented = float(len(frame) if w is None else w.sum())
    if limit is None or represented <= limit or len(frame) == 0:
        return frame, 1.0
    s = dict(sample or {})
    q = min(float(s.get("p", 1.0)), limit / represented)
    drawn = invoice_uniform(frame["invoice_id"].to_numpy(), int(s.get("seed", seed))) < q
    return frame.loc[drawn].drop(columns=[WEIGHT], errors="ignore"), q


def payment_reconciliation(training_window: dict, config: PaydelayConfig,
                           stage: str = "train") -> Reconciliation:
    """The final payment-date boosters' rows: the train + calibration payment rows in, those
    outside the payment budget's invoice share left out with the reason (nothing when under
    the budget)."""
    fits = training_window.get("payment_rows") or []
    if not fits:
        return Reconciliation(())
    last = fits[-1]
    reason = (f"payment row of an invoice outside the payment-date boosters' seeded "
              f"{last['q']:.4f} share (training.sampling.payment_max_rows = "
              f"{config.training.sampling.payment_max_rows})")
    return reconcile_counts(stage, "train+calibration payment rows -> final payment-date models",
                            last["rows_in"], last["rows_out"],
                            {reason: last["rows_out"] - last["rows_in"]})


def reconciliation(sample: dict | SamplePlan | None, stage: str = "train") -> Reconciliation:
    """Rows in, later snapshots left out by the budget (with the reason), rows out."""
    s = sample.as_dict() if isinstance(sample, SamplePlan) else dict(sample or {})
    rows_in = int(s.get("rows_in", 0))
    left = int(s.get("sampled_rows", 0)) - int(s.get("kept_sampled_rows", 0))
    reason = (f"later snapshot of an invoice outside the training sample (row budget "
              f"training.sampling.max_rows = {s.get('max_rows')}: posting rows kept, later "
              f"snapshots kept for a seeded {float(s.get('p', 1.0)):.4f} of invoices, "
              f"weighted {1 / float(s.get('p', 1.0)):.3f})")
    return reconcile_counts(stage, "rows -> training sample", rows_in, rows_in - left,
                            {reason: -left})


__all__ = ["SamplePlan", "WEIGHT", "apply", "budget_p", "invoice_uniform", "keep_mask",
           "payment_reconciliation", "payment_subsample", "plan", "reconciliation", "weights"]
