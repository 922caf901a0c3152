"""Late-payment risk: fitting the LightGBM P(late) model, its calibrator and the delay buckets.

What scoring applies lives in training.core (the model matrix, the calibrator, bucket
probabilities, risk classes); this module fits them:
- `fit_risk` trains a binary LightGBM booster on the model matrix (training.core.matrix) with
  the contract's monotone constraints (never on a categorical, which aborts LightGBM 4.7).
- `fit_calibrator` maps its raw probability to a calibrated one on the later calibration slice.
  Isotonic calibration is stored as knots (JSON, no pickle) and made strictly increasing between
  its first and last knot by putting each isotonic plateau's knot at the plateau's mean score
  ("centred isotonic regression"): the probabilities stay calibrated, ranking ties are not
  created, and a monotone booster stays monotone after calibration.
- `fit_buckets` is a multiclass booster over the late buckets 1..n (n = len(bucket_edges))
  trained on late rows only; training.core.scoring.bucket_probabilities combines
  p_bucket_0 = 1 - p_late and p_bucket_k = p_late * q_k.
"""

from __future__ import annotations

import os

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.config.training import LgbParams
from training.core.calibration import Calibrator, logit
from training.core.contract import FeatureSet

def lgb_params(p: LgbParams, objective: str, seed: int, num_threads: int, **extra) -> dict:
    """Booster parameters with every source of randomness and thread non-determinism pinned."""
    params = {
        "objective": objective, "learning_rate": p.learning_rate, "num_leaves": p.num_leaves,
        "max_depth": p.max_depth, "min_child_samples": p.min_child_samples,
        "feature_fraction": p.feature_fraction, "bagging_fraction": p.bagging_fraction,
        "bagging_freq": p.bagging_freq, "lambda_l2": p.lambda_l2,
        "min_split_gain": p.min_split_gain, "cat_smooth": p.cat_smooth,
        "seed": seed, "bagging_seed": seed, "feature_fraction_seed": seed,
        "data_random_seed": seed, "deterministic": True, "force_row_wise": True,
        "num_threads": num_threads, "verbosity": -1,
    }
    params.update(extra)
    return params


def fit_threads(n_rows: int, num_threads: int | None, threads_from_rows: int) -> int:
    """LightGBM threads for a fit of n_rows: `training.num_threads` when set, else every core
    this process may use once the fit is large enough to pay for them (features.config.training:
    threads_from_rows), else 1. The same rows and config give the same count on one machine, so
    the model is reproducible to the last digit there."""
    if num_threads is not None:
        return int(num_threads)
    if n_rows < threads_from_rows:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def dataset(X: np.ndarray, y, features: FeatureSet, reference: lgb.Dataset | None = None,
            weight: np.ndarray | None = None, free_raw_data: bool = False) -> lgb.Dataset:
    """LightGBM dataset over the model matrix, features named and categoricals declared (the
    same trees as a pandas frame with categorical columns: training.core.matrix). `weight`: the
    training sample's weights (training.sampling), None when nothing was sampled.
    free_raw_data=True lets LightGBM drop its reference to X once binned (fits that never
    predict on their own training matrix)."""
    return lgb.Dataset(X, label=np.asarray(y, dtype="float64"), reference=reference,
                       weight=weight, feature_name=list(features.names),
                       categorical_feature=list(features.categorical) or "auto",
                       free_raw_data=free_raw_data)


def fit_risk(X: np.ndarray, y, features: FeatureSet, params: LgbParams, seed: int,
             num_threads: int, callbacks=None, valid: tuple | None = None,
             weight: np.ndarray | None = None) -> lgb.Booster:
    """Binary LightGBM booster for P(late) with the feature set's monotone constraints.
    `valid`: (X, y) or (X, y, weight) of an out-of-time slice to record the curve on."""
    y = np.asarray(y, dtype="float64")
    if np.isnan(y).any():
        raise ValueError("risk targets contain NaN: pass only rows with a known late flag")
    p = lgb_params(params, "binary", seed, num_threads,
                   monotone_constraints=features.monotone_vector(),
                   monotone_constraints_method="intermediate")
    train = dataset(X, y, features, weight=weight, free_raw_data=True)
    valid_sets = ([dataset(valid[0], valid[1], features, reference=train,
                           weight=valid[2] if len(valid) > 2 else None, free_raw_data=True)]
                  if valid else None)
    return lgb.train(p, train, num_boost_round=params.n_estimators, valid_sets=valid_sets,
                     callbacks=callbacks)


# --- calibration ----------------------------------------------------------------------------------
def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str = "isotonic",
                   weight: np.ndarray | None = None) -> Calibrator:
    """Calibrator of raw probabilities fitted on the (later) calibration slice; `weight`: the
    training sample's weights (None: every row counts once)."""
    raw = np.asarray(raw, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if method == "none":
        return Calibrator("identity", n=int(len(y)))
    if len(raw) == 0 or y.min() == y.max():
        raise ValueError(f"calibration slice needs both late and on-time rows (got {len(y)} rows, "
                         f"{int(np.nansum(y))} late)")
    if method == "platt":
        z = logit(raw).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, solver="lbfgs").fit(z, y, sample_weight=weight)
        return Calibrator("platt", n=int(len(y)), a=float(lr.coef_[0, 0]),
                          b=float(lr.intercept_[0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
        raw, y, sample_weight=weight)
    order = np.argsort(raw, kind="stable")
    xs, fitted = raw[order], iso.predict(raw[order])
    # One knot per plateau at its (weighted) mean score: strictly increasing between the first
    # and last knot.
    blocks = np.r_[0, np.flatnonzero(np.diff(fitted) != 0) + 1]
    if weight is None:
        knot_x = np.add.reduceat(xs, blocks) / np.diff(np.r_[blocks, len(xs)])
    else:
        w = np.asarray(weight, dtype="float64")[order]
        knot_x = np.add.reduceat(xs * w, blocks) / np.add.reduceat(w, blocks)
    knot_y = fitted[blocks]
    return Calibrator("isotonic", n=int(len(y)), x=tuple(knot_x.tolist()),
                      y=tuple(knot_y.tolist()))


# --- delay buckets --------------------------------------------------------------------------------
def fit_buckets(X: np.ndarray, bucket: np.ndarray, features: FeatureSet, params: LgbParams,
                seed: int, num_threads: int, n_late_buckets: int,
                weight: np.ndarray | None = None) -> tuple[lgb.Booster | None, list[float]]:
    """Multiclass booster over late buckets 1..n on late rows, and the empirical prior.

    With too few late rows for a model (fewer than 20 per bucket on average) the booster is None
    and scoring uses the prior (the late rows' bucket shares) for every row.
    """
    k = np.asarray(bucket, dtype="float64")
    if np.isnan(k).any() or (k < 1).any() or (k > n_late_buckets).any():
        raise ValueError(f"late-bucket targets must lie in 1..{n_late_buckets}")
    counts = np.bincount(k.astype(int) - 1, weights=weight,
                         minlength=n_late_buckets).astype("float64")
    prior = ((counts + 1) / (counts.sum() + n_late_buckets)).tolist()  # Laplace: no zero bucket
    if len(k) < 20 * n_late_buckets:
        return None, prior
    p = lgb_params(params, "multiclass", seed, num_threads, num_class=n_late_buckets)
    booster = lgb.train(p, dataset(X, k - 1, features, weight=weight, free_raw_data=True),
                        num_boost_round=params.n_estimators)
    return booster, prior
