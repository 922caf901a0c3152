"""Payment date: P10 / P50 / P90 of the days from snapshot t to clearing, censoring-aware.

Why this design. Invoices still open at a cut-off are exactly the slow ones, so a model fitted on
"the rows whose clearing we have seen" learns that customers pay early. Three steps avoid it:

1. Training rows are chosen by date, not by outcome: only rows with t + H <= cut-off (H =
   `training.payment_horizon_days`) are used, and their target is min(days to clear, H), which is
   known for all of them (cleared within H, or still open at t + H; a write-off counts as never
   cleared). The q-quantile of the clipped target equals the true q-quantile wherever that is
   below H, so the clip costs nothing except in the far tail (an estimate of H reads "H days or
   later").
2. The boosters learn the clearing date relative to the due date plus an anchor, r = days to
   clear - days from t to the due date - the anchor feature (`training.payment_anchor`, by
   default the customer's recent exponentially weighted days late; 0 when unknown), and the
   offset is added back at scoring (training.core.payment.payment_offset with the anchor the
   model contract names, resolved against its features). The anchor lets a
   customer who pays later than anything in the training rows (a drifting payer) be followed
   instead of capped at the largest leaf value. The offset is a known function of
   the row, so the quantiles of r + offset are the quantiles of r shifted by it - but trees no
   longer have to approximate "days to due + customer habit" with steps, which is what made a
   model on days-to-clear itself barely beat the customer-average baseline. Three LightGBM
   quantile boosters (alpha 0.1 / 0.5 / 0.9) are fitted; their predictions are sorted per row
   ("rearrangement"), which can only move each estimate towards the truth and guarantees
   P10 <= P50 <= P90; days are floored at 0 (monotone, so the order survives).
3. A one-sided conformal shift (in days) of P10 and P90 is fitted on later slices (the
   out-of-time folds of training.pipeline.fit_bundle: each predicted by quantile boosters fitted
   on the rows before it) so each side misses about 10 % (target coverage 80 %). It stays
   censoring-aware: whether y > P90 is observable at cut-off c for every row with t + P90 <= c
   (either it cleared before P90 or it was still open, a miss) - a selection on the prediction,
   never on the outcome; the same holds for P10. The result is re-checked for crossing.

`censored_coverage` evaluates intervals the same way on the test slice. What scoring applies
(offsets, sorting, the shift, days) is in training.core.payment; this module fits.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from features.config.training import LgbParams
from training.core.contract import FeatureSet
from training.core.payment import QUANTILE_KEYS, QUANTILES, ConformalShift
from training.risk import dataset, lgb_params

_SHIFT_GRID = np.round(np.arange(-40.0, 40.001, 0.25), 4)  # days
_MIN_CONFORMAL_ROWS = 50
_BLOCK_CELLS = 8_000_000  # (shift x row) cells per block of the conformal search


def fit_quantiles(X: np.ndarray, days: np.ndarray, offset: np.ndarray, fs: FeatureSet,
                  params: LgbParams, seed: int, num_threads: int,
                  tail_params: LgbParams | None = None,
                  weight: np.ndarray | None = None) -> dict[str, lgb.Booster]:
    """One quantile booster per P10/P50/P90 on (days to clear, horizon-clipped) - offset.

    `tail_params` (default: `params`) fit the P10 and P90 boosters. They can be smaller than the
    P50's: the conformal shift re-sets the interval's coverage on later slices anyway, and the
    point estimate (MAE, the payment date a collector sees) is the P50's alone, while every tree
    costs the same at scoring. `weight`: the training sample's weights (None: unweighted)."""
    y = np.asarray(days, dtype="float64")
    if np.isnan(y).any() or (y < 0).any():
        raise ValueError("payment-date targets must be known and >= 0 (use payment_used rows)")
    # One dataset for the 3 fits; LightGBM keeps the raw matrix so it can re-bin for the tail
    # boosters when their leaf sizes differ from the P50's.
    train_set = dataset(X, y - np.asarray(offset, dtype="float64"), fs, weight=weight)
    per_key = {"p10": tail_params or params, "p50": params, "p90": tail_params or params}
    return {key: lgb.train(lgb_params(per_key[key], "quantile", seed, num_threads, alpha=q),
                           train_set, num_boost_round=per_key[key].n_estimators)
            for q, key in zip(QUANTILES, QUANTILE_KEYS, strict=True)}


def _outcome_or_inf(days_known: np.ndarray) -> np.ndarray:
    # Open at the cut-off: later than anything watched, so it counts as beyond every bound.
    d = np.asarray(days_known, dtype="float64")
    return np.where(np.isnan(d), np.inf, d)


def fit_conformal(days: np.ndarray, days_known: np.ndarray, window_days: np.ndarray,
                  miss_each_side: float = 0.1, weight: np.ndarray | None = None
                  ) -> ConformalShift:
    """Shifts (days) so P10 and P90 each miss `miss_each_side` of the observable rows.

    `days`: the unshifted (n, 3) predictions in days from t (`to_days` without a shift).
    `days_known`: days from t to clearing when known by the cut-off, else NaN (open, or
    written off: never cleared).
    `window_days`: days from t to the cut-off (how long each row was watched).
    The smallest shift whose observed miss rate is <= the target is chosen on each side; with
    fewer than 50 observable rows a side keeps shift 0. `weight`: the training sample's weights
    (the miss rates are then weighted; None: every row counts once).
    """
    y = _outcome_or_inf(days_known)
    window = np.asarray(window_days, dtype="float64")
    hi, n_hi = _side_shift(days[:, 2], +1.0, y, window, miss_each_side, weight)
    lo, n_lo = _side_shift(days[:, 0], -1.0, y, window, miss_each_side, weight)
    return ConformalShift(lo=lo, hi=hi, n_lo=n_lo, n_hi=n_hi, target_miss=miss_each_side)


def _side_shift(bound0: np.ndarray, sign: float, y: np.ndarray, window: np.ndarray,
                target: float, weight: np.ndarray | None = None) -> tuple[float, int]:
    """Smallest grid shift moving the bound outwards (sign +1: P90 up, -1: P10 down) whose miss
    rate on the rows where the shifted bound is observable is <= target. The grid is worked in
    blocks of shifts so a million pooled predictions never make a (grid x rows) float matrix
    (2.6 GB at 1M rows)."""
    n = len(bound0)
    step = max(1, _BLOCK_CELLS // max(n, 1))
    n_el, missed, w_el = [], [], []
    w = None if weight is None else np.asarray(weight, dtype="float64")
    for j in range(0, len(_SHIFT_GRID), step):
        grid = _SHIFT_GRID[j:j + step]
        bound = np.maximum(bound0[None, :] + sign * grid[:, None], 0.0)
        eligible = bound <= window[None, :]
        miss = eligible & (y[None, :] > bound if sign > 0 else y[None, :] < bound)
        n_el.append(eligible.sum(axis=1))
        if w is None:
            missed.append(miss.sum(axis=1))
        else:
            missed.append(miss @ w)
            w_el.append(eligible @ w)
    n_el = np.concatenate(n_el)
    if w is None:
        miss_rate = np.concatenate(missed) / np.maximum(n_el, 1)
    else:
        miss_rate = np.concatenate(missed) / np.maximum(np.concatenate(w_el), 1e-12)
    ok = (miss_rate <= target) & (n_el >= _MIN_CONFORMAL_ROWS)
    if not ok.any():
        return 0.0, 0
    i = int(np.argmax(ok))
    return float(_SHIFT_GRID[i]), int(n_el[i])


def censored_coverage(lo: np.ndarray, hi: np.ndarray, days_known: np.ndarray,
                      window_days: np.ndarray) -> dict[str, float]:
    """P10-P90 coverage on the rows where it is decidable at the cut-off (t + P90 <= cut-off),
    and the miss rate of each side on its own observable rows."""
    lo, hi = np.asarray(lo, dtype="float64"), np.asarray(hi, dtype="float64")
    y = _outcome_or_inf(days_known)
    window = np.asarray(window_days, dtype="float64")
    both, low_obs = hi <= window, lo <= window
    nan = float("nan")
    return {
        "coverage_p10_p90": float(((y >= lo) & (y <= hi))[both].mean()) if both.any() else nan,
        "n_coverage": int(both.sum()),
        "miss_above_p90": float((y > hi)[both].mean()) if both.any() else nan,
        "miss_below_p10": float((y < lo)[low_obs].mean()) if low_obs.any() else nan,
    }
