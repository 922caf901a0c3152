"""The training stage's row budget: which snapshot rows the models learn from when there are
too many, and the weight each kept row carries (the policy is `training.sampling`).

A ledger of a million invoices gives about 4.7M snapshot rows; fitted in full, the out-of-time
folds, the refit and their matrices need more than a workstation holds. Most of those rows are
the later (grid) snapshots of the same invoices, which are strongly alike; the posting rows
answer the question a collector asks first and are what the headline figures lead with. So:

- rows after the calibration end (the test window, and anything later) are never sampled: every
  headline figure is measured on every row;
- rows of `keep_kinds` (posting) are kept, weight 1;
- the other rows of the fit windows are sampled **by invoice**: one seeded uniform number u per
  invoice (a hash of its id, so the choice does not depend on row order or on which file part a
  row came from) decides whether all of its later snapshots are kept (u < p), with one
  probability p chosen so the kept rows meet the budget; each kept one carries weight 1/p
  (Horvitz-Thompson), so weighted sums over the kept rows estimate the sums over all rows, and
  the fits, the calibrator, the choice of boosting rounds and the conformal shift stay unbiased;
- a ledger so large that its posting rows alone would take more than `max_kept_share` of the
  budget (about 1.2M invoices in the fit windows with the defaults) has its invoices sampled
  too: posting rows are kept for u < r (weight 1/r), r chosen so they take that share, and the
  later snapshots for u < p <= r, so every kept invoice keeps its posting row, and the weights
  stay those of the draw (without this, p would fall to one invoice's worth and that invoice
  would weigh millions).

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

from dataclasses import asdict, dataclass, replace

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

    p: float  # an invoice's later snapshots are kept when its uniform number is below p
    calibration_end: str
    max_rows: int | None
    keep_kinds: tuple[str, ...]
    seed: int
    fit_rows: int = 0  # rows of the training kinds up to the calibration end
    kept_kind_rows: int = 0  # of which posting (always kept)
    sampled_rows: int = 0  # later snapshots eligible for sampling
    kept_sampled_rows: int = 0  # ... of which kept
    rows_in: int = 0  # every row of the table
    r: float = 1.0  # an invoice's posting row is kept when its uniform number is below r
    drawn_kind_rows: int | None = None  # posting rows kept (all of them when r = 1)

    @property
    def active(self) -> bool:
        return self.p < 1.0 or self.r < 1.0

    @property
    def left_out(self) -> tuple[int, int]:
        """(posting rows, later snapshots) left out of the sample."""
        drawn = self.kept_kind_rows if self.drawn_kind_rows is None else self.drawn_kind_rows
        return self.kept_kind_rows - drawn, self.sampled_rows - self.kept_sampled_rows

    @property
    def rows_out(self) -> int:
        return self.rows_in - sum(self.left_out)

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
    fit, sampled = _eligible(keys, calibration_end, config)
    n_fit, n_sampled = int(fit.sum()), int(sampled.sum())
    base = plan_from_counts(n_fit, n_fit - n_sampled, n_sampled, len(keys), calibration_end,
                            config, seed)
    if not base.active:
        return base
    u = invoice_uniform(keys["invoice_id"].to_numpy()[fit], seed)
    later = sampled[fit]
    return replace(base, kept_sampled_rows=int((u[later] < base.p).sum()),
                   drawn_kind_rows=int((u[~later] < base.r).sum()))


def plan_from_counts(n_fit: int, n_kept_kinds: int, n_sampled: int, rows_in: int,
                     calibration_end, config: PaydelayConfig, seed: int) -> SamplePlan:
    """The budget rule on counts (the Dask trainer sums them over partitions), before the draw:
    under the budget nothing is sampled; else the posting rows take at most `max_kept_share`
    of it (r, below 1 only for a ledger whose posting rows alone would take more) and the later
    snapshots the rest (p <= r). Kept counts are those of the whole table until drawn."""
    sc = config.training.sampling
    keep = (1.0, 1.0)
    if sc.max_rows is not None and n_fit > sc.max_rows:
        r = min(1.0, sc.max_kept_share * sc.max_rows / n_kept_kinds) if n_kept_kinds else 1.0
        p = (min(r, (sc.max_rows - r * n_kept_kinds) / n_sampled) if n_sampled else r)
        keep = (p, r)
    return SamplePlan(keep[0], str(calibration_end), sc.max_rows, tuple(sc.keep_kinds), seed,
                      n_fit, n_kept_kinds, n_sampled, n_sampled, rows_in, keep[1], None)


def keep_mask(keys: pd.DataFrame, sample: SamplePlan, config: PaydelayConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, their weights) of any part of the table under the plan: the same answer for
    a row whichever part it is read with."""
    n = len(keys)
    if not sample.active:
        return np.ones(n, dtype=bool), np.ones(n, dtype=np.float64)
    fit, sampled = _eligible(keys, pd.Timestamp(sample.calibration_end), config)
    kept_kind = fit & ~sampled
    u = invoice_uniform(keys["invoice_id"].to_numpy(), sample.seed)
    keep = np.where(sampled, u < sample.p, np.where(kept_kind, u < sample.r, True))
    weight = np.where(sampled, 1.0 / sample.p, np.where(kept_kind, 1.0 / sample.r, 1.0))
    return keep, weight[keep]


def kept_counts(rows: pd.DataFrame, sample: SamplePlan, config: PaydelayConfig
                ) -> tuple[int, int]:
    """(posting rows, later snapshots) of the fit windows among sampled rows: what a
    partition of the Dask trainer reports, so the plan's counts are the drawn ones."""
    fit, sampled = _eligible(rows, pd.Timestamp(sample.calibration_end), config)
    return int((fit & ~sampled).sum()), int(sampled.sum())


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
    p, r = float(s.get("p", 1.0)), float(s.get("r", 1.0))
    later = int(s.get("sampled_rows", 0)) - int(s.get("kept_sampled_rows", 0))
    drawn = s.get("drawn_kind_rows")
    posting = 0 if drawn is None else int(s.get("kept_kind_rows", 0)) - int(drawn)
    budget = f"row budget training.sampling.max_rows = {s.get('max_rows')}"
    return reconcile_counts(stage, "rows -> training sample", rows_in, rows_in - later - posting, {
        f"posting row of an invoice outside the training sample ({budget}: posting rows kept "
        f"for a seeded {r:.4f} of invoices, weighted {1 / r:.3f})": -posting,
        f"later snapshot of an invoice outside the training sample ({budget}: later snapshots "
        f"kept for a seeded {p:.4f} of invoices, weighted {1 / p:.3f})": -later})


__all__ = ["SamplePlan", "WEIGHT", "apply", "invoice_uniform", "kept_counts", "plan_from_counts", "keep_mask",
           "payment_reconciliation", "payment_subsample", "plan", "reconciliation", "weights"]
