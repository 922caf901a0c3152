"""Late-payment risk: the feature matrix, the LightGBM P(late) model, its calibrator, delay buckets.

- `FeatureSet` says which columns the models read, which are categorical / boolean and which
  monotone constraint each carries (from features.pit.feature_spec.FEATURES; never on a categorical,
  which aborts LightGBM 4.7).
- `feature_matrix` builds the LightGBM input the same way for training and scoring: categoricals
  are cast to the categories seen in training (an unseen value becomes NaN on purpose, and is
  counted), booleans to 0/1 floats, everything else to float64.
- `fit_risk` trains a binary LightGBM booster on the train slice; `fit_calibrator` maps its raw
  probability to a calibrated one on the later calibration slice. Isotonic calibration is stored
  as knots (JSON, no pickle) and made strictly increasing between its first and last knot by
  putting each isotonic plateau's knot at the plateau's mean score ("centred isotonic
  regression"): the probabilities stay calibrated, ranking ties are not created, and a monotone
  booster stays monotone after calibration.
- `fit_buckets` is a multiclass booster over the late buckets 1..4 trained on late rows only;
  `bucket_probabilities` combines p_bucket_0 = 1 - p_late and p_bucket_k = p_late * q_k.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.config.training import LgbParams

log = logging.getLogger(__name__)
RISK_CLASSES: tuple[str, ...] = ("low", "medium", "high", "very_high")
_EPS = 1e-6


@dataclass(frozen=True)
class FeatureSet:
    names: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    boolean: tuple[str, ...] = ()
    monotone: dict[str, int] = field(default_factory=dict)
    version: str = "unversioned"

    def __post_init__(self) -> None:
        unknown = set(self.categorical) - set(self.names)
        if unknown:
            raise ValueError(f"categorical features {sorted(unknown)} are not in the feature list")

    def monotone_vector(self) -> list[int]:
        # Categorical features never carry a constraint (LightGBM 4.7 aborts the process).
        return [0 if n in self.categorical else int(self.monotone.get(n, 0)) for n in self.names]

    def as_dict(self) -> dict:
        return {"names": list(self.names), "categorical": list(self.categorical),
                "boolean": list(self.boolean), "monotone": dict(self.monotone),
                "version": self.version}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSet:
        return cls(tuple(d["names"]), tuple(d["categorical"]), tuple(d["boolean"]),
                   {k: int(v) for k, v in d["monotone"].items()}, d["version"])


def feature_set_from_spec() -> FeatureSet:
    """The project's feature set, read from features.pit.feature_spec (imported lazily)."""
    from features.pit import feature_spec

    specs = feature_spec.FEATURES
    return FeatureSet(
        names=tuple(s.name for s in specs),
        categorical=tuple(s.name for s in specs if s.kind == "categorical"),
        boolean=tuple(s.name for s in specs if s.kind == "bool"),
        monotone={s.name: int(getattr(s, "monotone", 0) or 0) for s in specs},
        version=str(feature_spec.FEATURE_SET_VERSION),
    )


def learn_categories(rows: pd.DataFrame, fs: FeatureSet) -> dict[str, list[str]]:
    """Sorted category values per categorical feature, as seen in the training rows."""
    cats = {}
    for name in fs.categorical:
        values = rows[name].dropna().astype(str)
        cats[name] = sorted(values.unique().tolist())
    return cats


def feature_matrix(rows: pd.DataFrame, fs: FeatureSet,
                   categories: dict[str, list[str]]) -> tuple[pd.DataFrame, dict[str, int]]:
    """LightGBM input in feature order, plus the number of unseen category values per feature."""
    missing = [n for n in fs.names if n not in rows.columns]
    if missing:
        raise ValueError(f"rows lack feature column(s) {missing} (feature set {fs.version})")
    cols, unseen = {}, {}
    for name in fs.names:
        col = rows[name]
        if name in fs.categorical:
            as_str = col.astype("string")  # category / str / object all compare as strings
            seen = as_str.isin(categories[name]).to_numpy(dtype=bool)
            n_unseen = int((as_str.notna().to_numpy() & ~seen).sum())
            cat = pd.Categorical(as_str.where(seen).to_numpy(dtype=object, na_value=None),
                                 categories=categories[name])
            if n_unseen:
                unseen[name] = n_unseen
            cols[name] = cat
        elif name in fs.boolean:
            cols[name] = col.astype("boolean").astype("Float64").to_numpy(dtype="float64",
                                                                          na_value=np.nan)
        else:
            cols[name] = pd.to_numeric(col, errors="raise").astype("Float64") \
                .to_numpy(dtype="float64", na_value=np.nan)
    if unseen:
        log.warning("unseen category values mapped to missing: %s", unseen)
    return pd.DataFrame(cols, index=rows.index), unseen


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


def dataset(X: pd.DataFrame, y, fs: FeatureSet, reference: lgb.Dataset | None = None
            ) -> lgb.Dataset:
    """LightGBM dataset with the feature set's categoricals declared explicitly."""
    return lgb.Dataset(X, label=np.asarray(y, dtype="float64"), reference=reference,
                       categorical_feature=list(fs.categorical) or "auto", free_raw_data=False)


def fit_risk(X: pd.DataFrame, y, fs: FeatureSet, params: LgbParams, seed: int,
             num_threads: int, callbacks=None, valid: tuple | None = None) -> lgb.Booster:
    """Binary LightGBM booster for P(late) with the feature set's monotone constraints."""
    y = np.asarray(y, dtype="float64")
    if np.isnan(y).any():
        raise ValueError("risk targets contain NaN: pass only rows with a known late flag")
    p = lgb_params(params, "binary", seed, num_threads,
                   monotone_constraints=fs.monotone_vector(),
                   monotone_constraints_method="intermediate")
    train = dataset(X, y, fs)
    valid_sets = [dataset(valid[0], valid[1], fs, reference=train)] if valid else None
    return lgb.train(p, train, num_boost_round=params.n_estimators, valid_sets=valid_sets,
                     callbacks=callbacks)


# --- calibration ----------------------------------------------------------------------------------
def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str = "isotonic") -> dict:
    """JSON-able calibrator of raw probabilities fitted on the (later) calibration slice."""
    raw = np.asarray(raw, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if method == "none":
        return {"method": "identity", "n": int(len(y))}
    if len(raw) == 0 or y.min() == y.max():
        raise ValueError(f"calibration slice needs both late and on-time rows (got {len(y)} rows, "
                         f"{int(np.nansum(y))} late)")
    if method == "platt":
        z = _logit(raw).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, solver="lbfgs").fit(z, y)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0]),
                "n": int(len(y))}
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    order = np.argsort(raw, kind="stable")
    xs, fitted = raw[order], iso.predict(raw[order])
    # One knot per plateau at its mean score: strictly increasing between the first and last knot.
    blocks = np.r_[0, np.flatnonzero(np.diff(fitted) != 0) + 1]
    sizes = np.diff(np.r_[blocks, len(xs)])
    knot_x = np.add.reduceat(xs, blocks) / sizes
    knot_y = fitted[blocks]
    return {"method": "isotonic", "x": knot_x.tolist(), "y": knot_y.tolist(), "n": int(len(y))}


def apply_calibrator(cal: dict, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype="float64")
    if cal["method"] == "platt":
        return 1.0 / (1.0 + np.exp(-(cal["a"] * _logit(raw) + cal["b"])))
    if cal["method"] == "isotonic":
        return np.interp(raw, np.asarray(cal["x"]), np.asarray(cal["y"]))
    if cal["method"] == "identity":
        return raw
    raise ValueError(f"unknown calibrator method {cal['method']!r}")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


# --- delay buckets --------------------------------------------------------------------------------
def fit_buckets(X: pd.DataFrame, bucket: np.ndarray, fs: FeatureSet, params: LgbParams,
                seed: int, num_threads: int, n_late_buckets: int) -> tuple[lgb.Booster | None,
                                                                           list[float]]:
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
    booster = lgb.train(p, dataset(X, k - 1, fs), num_boost_round=params.n_estimators)
    return booster, prior


def bucket_probabilities(p_late: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Columns p_bucket_0..n: 1 - p_late, then p_late split by the late-bucket shares q (rows)."""
    q = np.asarray(q, dtype="float64")
    q = q / q.sum(axis=1, keepdims=True)
    return np.column_stack([1.0 - p_late, p_late[:, None] * q])


def risk_class(p_late: np.ndarray, cutoffs: tuple[float, ...]) -> np.ndarray:
    """low | medium | high | very_high by the configured p_late cut-offs (a cut-off is inclusive
    of the higher class)."""
    if list(cutoffs) != sorted(cutoffs) or len(cutoffs) != len(RISK_CLASSES) - 1:
        raise ValueError(f"risk_class_cutoffs must be {len(RISK_CLASSES) - 1} increasing values, "
                         f"got {cutoffs}")
    idx = np.searchsorted(np.asarray(cutoffs, dtype="float64"), p_late, side="right")
    return np.asarray(RISK_CLASSES, dtype=object)[idx]
