"""Serving's feature path and scoring: open-item states in, model outputs out. Pure Python.

`ServingModel` holds what a scoring process needs, loaded once: the registered bundle
(risk, bucket and payment-date boosters, calibrator, categories, feature set), the customer
history store materialised with it, the feature config the model was trained with (read back
from the bundle, so windows and grace days always match the model), the rule strategy, and the
tabulated TreeSHAP explainer of the risk booster.

Features are computed with the batch pipeline's own functions: `invoice_features(state, t)`,
`history_features(aggregates, state, t)` and `master_features(attributes, open amount)` over the
customer's row of the store (serving.store), assembled in catalogue order as
`features.build.step_features` does. The parity test (tests/serving/test_parity.py) replays events
to t and checks every feature against `features.build` at the same t. Scoring composes
training's own functions on a matrix built once per request (`score_matrix`); a test checks it
equals `training.scoring.score`, the function training evaluated.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import schema
from features.config import FeatureConfig, PaydelayConfig, RuleStrategyConfig, ServingConfig
from serving.store import CustomerStore, empty_store

log = logging.getLogger(__name__)

MODEL_ENV = "PAYDELAY_MODEL"  # alias or version to serve (overrides ServingConfig.model_ref)
TRACKING_ENV = "PAYDELAY_TRACKING_URI"  # MLflow store (default: the project's models/mlflow.db)
CONFIG_ENV = "PAYDELAY_CONFIG"  # TOML config file


@dataclass
class ServingModel:
    bundle: object  # training.bundle.ModelBundle
    store: CustomerStore
    config: PaydelayConfig
    feature_config: FeatureConfig
    info: dict = field(default_factory=dict)
    explainer: object | None = None  # serving.treeshap.FastTreeShap (None: use pred_contrib)

    @property
    def serving(self) -> ServingConfig:
        return self.config.serving

    @property
    def rules(self) -> RuleStrategyConfig:
        return self.config.rule_strategy

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.bundle.feature_set.names)

    def specs(self) -> dict:
        """FeatureSpec per feature of the model's feature config (sentences for reasons)."""
        from features.feature_spec import feature_specs

        return {s.name: s for s in feature_specs(self.feature_config)}


def model_feature_config(bundle, fallback: FeatureConfig) -> FeatureConfig:
    """The feature config the bundle was trained with (falls back to the serving config's)."""
    stored = (getattr(bundle, "config", None) or {}).get("features")
    return FeatureConfig.model_validate(stored) if stored else fallback


def from_bundle(bundle, store: CustomerStore | None, config: PaydelayConfig,
                info: dict | None = None, explainer: bool = True) -> ServingModel:
    """A ServingModel over an in-memory bundle (tests, notebooks, the registry loader)."""
    from serving.treeshap import FastTreeShap

    fcfg = model_feature_config(bundle, config.features)
    shap = None
    if explainer:
        shap = FastTreeShap(bundle.risk)
        if not shap.supported:
            log.warning("risk model too deep for tabulated TreeSHAP: reasons use pred_contrib")
            shap = None
    source = dict(getattr(bundle, "source", {}) or {})
    store = store or empty_store(bundle.feature_set_version)
    base = {
        "registered_model": source.get("registered_model"), "version": source.get("version"),
        "aliases": list(source.get("aliases", [])), "run_id": source.get("run_id"),
        "feature_set_version": bundle.feature_set_version,
        "store_as_of": None if store.as_of is None else store.as_of.to_pydatetime(),
    }
    return ServingModel(bundle=bundle, store=store, config=config, feature_config=fcfg,
                        info={**base, **(info or {})}, explainer=shap)


def load_config_from_env() -> PaydelayConfig:
    from features.config import load_config

    return load_config(os.environ.get(CONFIG_ENV) or None)


def load_serving_model(config: PaydelayConfig | None = None, model_ref: str | None = None,
                       tracking_uri: str | None = None) -> ServingModel:
    """The registered bundle (alias / version from the argument, $PAYDELAY_MODEL or config) and
    the customer store logged with its training run ($PAYDELAY_STORE_PATH overrides)."""
    from serving.store import load_store_for_run, store_override_path
    from training.registry import load_bundle

    config = config or load_config_from_env()
    ref = model_ref or os.environ.get(MODEL_ENV) or config.serving.model_ref
    uri = tracking_uri or os.environ.get(TRACKING_ENV) or None
    bundle = load_bundle(ref, name=config.training.registered_model_name, tracking_uri=uri)
    override = store_override_path()
    if override is not None:
        store = CustomerStore.load(override)
    else:
        run_id = (getattr(bundle, "source", {}) or {}).get("run_id")
        store = load_store_for_run(run_id, uri) if run_id else None
        if store is None:
            log.warning("model version has no customer store: every customer is cold-start")
    return from_bundle(bundle, store, config, info={"model_ref": str(ref)})


def settle_heap() -> None:
    """Collect, then freeze every object alive now (modules, model, store) out of the garbage
    collector's sight. A request allocates thousands of small dicts and lists, which triggers
    full collections; without this each one walks the whole loaded heap (tens of ms)."""
    import gc

    gc.collect()
    gc.freeze()


# ----------------------------------------------------------------------------- features ----
def feature_rows(model: ServingModel, state: pd.DataFrame, as_of) -> pd.DataFrame:
    """Key columns + features of item states at as_of, by the batch pipeline's functions:
    invoice_features, history_features and master_features over the store's aggregates.

    as_of: one time for every item, or one per item (several requests scored together)."""
    from features.feature_spec import feature_specs
    from features.history import aggregate_columns, history_features
    from features.invoice_features import invoice_features
    from features.master_asof import MASTER_ATTRIBUTES, master_features

    fcfg = model.feature_config
    state = state.reset_index(drop=True)
    n = len(state)
    if np.ndim(as_of) == 0:
        t = np.full(n, pd.Timestamp(as_of).as_unit("us").to_datetime64(), dtype="datetime64[us]")
    else:
        t = np.asarray(as_of, dtype="datetime64[us]")
        if len(t) != n:
            raise ValueError(f"{len(t)} times for {n} item states")
    item = invoice_features(state, t)
    windows = tuple(int(w) for w in fcfg.history_windows_days)
    aggs, attrs = model.store.lookup(state["customer_id"], aggregate_columns(windows),
                                     tuple(MASTER_ATTRIBUTES))
    hist = history_features(aggs, state, t, fcfg)
    master = master_features(attrs, aggs["cust_open_cents"].to_numpy() / 100.0)
    names = [spec.name for spec in feature_specs(fcfg)]
    feats = pd.concat([item, master, hist], axis=1)[names]  # catalogue order, as step_features
    keys = pd.DataFrame({
        "invoice_id": state["invoice_id"].astype("str"),
        "customer_id": state["customer_id"].astype("str"),
        "snapshot_time": t,
        "snapshot_kind": pd.Series(["now"] * n, dtype="str"),
        "posting_time": state["posting_time"],
        "net_due_date": state["net_due_date"],
    })
    rows = pd.concat([keys, feats], axis=1)
    # company_code and open_amount are row keys and features: one column each, as in batch
    front = list(schema.ROW_KEY_COLUMNS)
    return rows[front + [c for c in rows.columns if c not in front]]


# ------------------------------------------------------------------------------ scoring ----
def model_matrix(model: ServingModel, rows: pd.DataFrame) -> np.ndarray:
    """The float matrix every booster of the bundle reads, built once per request.

    Same values as training.risk.feature_matrix (categoricals as codes of the training
    categories, unseen or missing -> NaN; booleans 0/1; numbers float64), which LightGBM turns a
    DataFrame into; without the per-column pandas conversions. A test checks the two agree.
    """
    fs = model.bundle.feature_set
    indexes = getattr(model, "_category_index", None)
    if indexes is None:
        indexes = {n: pd.Index(model.bundle.categories[n], dtype=object) for n in fs.categorical}
        model._category_index = indexes
    missing = [n for n in fs.names if n not in rows.columns]
    if missing:
        raise ValueError(f"rows lack feature column(s) {missing} (feature set {fs.version})")
    out = np.empty((len(rows), len(fs.names)), dtype=np.float64)
    plain = [j for j, n in enumerate(fs.names) if n not in indexes]
    # numbers and booleans in one conversion (bool -> 0/1, NaN kept)
    out[:, plain] = rows[[fs.names[j] for j in plain]].to_numpy(dtype=np.float64,
                                                                na_value=np.nan)
    for j, name in enumerate(fs.names):  # the few categorical columns
        if name not in indexes:
            continue
        col = rows[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            # map the column's (few) categories, then its codes: no per-row string work
            lookup = indexes[name].get_indexer(col.cat.categories.astype("str").to_numpy(
                dtype=object))
            codes = np.append(lookup, -1)[col.cat.codes.to_numpy()]  # code -1 (missing) -> -1
        else:
            values = col.astype("str").to_numpy(dtype=object, na_value=None)
            codes = indexes[name].get_indexer(values)
        codes = codes.astype(np.float64)
        codes[codes < 0] = np.nan
        out[:, j] = codes
    return out


class _OneThread:
    """A booster whose predict runs on one thread: a request is small, and OpenMP start-up and
    spinning across several workers cost more than they save."""

    def __init__(self, booster):
        self.booster = booster

    def predict(self, X, **kwargs):
        return self.booster.predict(X, num_threads=1, **kwargs)


def score_matrix(model: ServingModel, rows: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
    """training.scoring.score's outputs from the prepared matrix.

    The boosters predict on the matrix, one thread each; `training.scoring.compose` turns their
    raw predictions into the output columns, so every definition (calibration, buckets, payment
    dates, amount at risk) is training's own. A test checks the result equals score() exactly.
    """
    from training.payment_date import predict_relative
    from training.scoring import check_rows, compose

    b = model.bundle
    check_rows(b, rows)
    bucket_q = _OneThread(b.bucket).predict(X) if b.bucket is not None else None
    quantiles = {k: _OneThread(v) for k, v in b.quantiles.items()}
    return compose(b, rows, _OneThread(b.risk).predict(X), bucket_q,
                   predict_relative(quantiles, X))


def score_rows(model: ServingModel, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """rows + model outputs (same index), and the model matrix (reused for contributions)."""
    X = model_matrix(model, rows)
    return pd.concat([rows, score_matrix(model, rows, X)], axis=1), X


def predict(model: ServingModel, state: pd.DataFrame, as_of
            ) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and model outputs of item states at as_of (request order), and the matrix."""
    return score_rows(model, feature_rows(model, state, as_of))


__all__ = ["ServingModel", "from_bundle", "load_serving_model", "feature_rows", "score_rows",
           "predict", "model_matrix", "score_matrix", "settle_heap", "model_feature_config",
           "MODEL_ENV", "TRACKING_ENV", "CONFIG_ENV"]
