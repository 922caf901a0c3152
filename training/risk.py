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


def dataset(X: np.ndarray, y, features: FeatureSet, reference: lgb.Dataset | None = None
            ) -> lgb.Dataset:
    """LightGBM dataset over the model matrix, features named and categoricals declared (the
    same trees as a pandas frame with categorical columns: training.core.matrix)."""
    return lgb.Dataset(X, label=np.asarray(y, dtype="float64"), reference=reference,
                       feature_name=list(features.names),
                       categorical_feature=list(features.categorical) or "auto",
                       free_raw_data=False)


def fit_risk(X: np.ndarray, y, features: FeatureSet, params: LgbParams, seed: int,
             num_threads: int, callbacks=None, valid: tuple | None = None) -> lgb.Booster:
    """Binary LightGBM booster for P(late) with the feature set's monotone constraints."""
    y = np.asarray(y, dtype="float64")
    if np.isnan(y).any():
        raise ValueError("risk targets contain NaN: pass only rows with a known late flag")
    p = lgb_params(params, "binary", seed, num_threads,
                   monotone_constraints=features.monotone_vector(),
                   monotone_constraints_method="intermediate")
    train = dataset(X, y, features)
    valid_sets = [dataset(valid[0], valid[1], features, reference=train)] if valid else None
    return lgb.train(p, train, num_boost_round=params.n_estimators, valid_sets=valid_sets,
                     callbacks=callbacks)


# --- calibration ----------------------------------------------------------------------------------
def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str = "isotonic") -> Calibrator:
    """Calibrator of raw probabilities fitted on the (later) calibration slice."""
    raw = np.asarray(raw, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if method == "none":
        return Calibrator("identity", n=int(len(y)))
    if len(raw) == 0 or y.min() == y.max():
        raise ValueError(f"calibration slice needs both late and on-time rows (got {len(y)} rows, "
                         f"{int(np.nansum(y))} late)")
    if method == "platt":
        z = logit(raw).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, solver="lbfgs").fit(z, y)
        return Calibrator("platt", n=int(len(y)), a=float(lr.coef_[0, 0]),
                          b=float(lr.intercept_[0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    order = np.argsort(raw, kind="stable")
    xs, fitted = raw[order], iso.predict(raw[order])
    # One knot per plateau at its mean score: strictly increasing between the first and last knot.
    blocks = np.r_[0, np.flatnonzero(np.diff(fitted) != 0) + 1]
    sizes = np.diff(np.r_[blocks, len(xs)])
    knot_x = np.add.reduceat(xs, blocks) / sizes
    knot_y = fitted[blocks]
    return Calibrator("isotonic", n=int(len(y)), x=tuple(knot_x.tolist()),
                      y=tuple(knot_y.tolist()))


# --- delay buckets --------------------------------------------------------------------------------
def fit_buckets(X: np.ndarray, bucket: np.ndarray, features: FeatureSet, params: LgbParams,
                seed: int, num_threads: int, n_late_buckets: int
                ) -> tuple[lgb.Booster | None, list[float]]:
    """Multiclass booster over late buckets 1..n on late rows, and the empirical prior.

    With too few late rows for a model (fewer than 20 per bucket on average) the booster is None
    and scoring uses the prior (the late rows' bucket shares) for every row.
    """
    k = np.asarray(bucket, dtype="float64")
    if np.isnan(k).any() or (k < 1).any() or (k > n_late_buckets).any():
        raise ValueError(f"late-bucket targets must lie in 1..{n_late_buckets}")
    counts = np.bincount(k.astype(int) - 1, minlength=n_late_buckets).astype("float64")
    prior = ((counts + 1) / (counts.sum() + n_late_buckets)).tolist()  # Laplace: no zero bucket
    if len(k) < 20 * n_late_buckets:
        return None, prior
    p = lgb_params(params, "multiclass", seed, num_threads, num_class=n_late_buckets)
    booster = lgb.train(p, dataset(X, k - 1, features), num_boost_round=params.n_estimators)
    return booster, prior
