"""Serving's feature path and scoring: open-item states in, model outputs out. Pure Python.

`ServingModel` holds what a scoring process needs, loaded once: the registered bundle
(risk, bucket and payment-date boosters, calibrator, categories, feature set), the customer
history store materialised with it, the feature config the model was trained with (read back
from the bundle, so windows and grace days always match the model), the rule strategy, and the
tabulated TreeSHAP explainer of the risk booster.

Features are computed with the batch pipeline's own functions: `invoice_features(state, t)`,
`history_features(aggregates, state, t)` and `master_features(attributes, open amount)` over the
customer's row of the store (serving.store), assembled in catalogue order as
`features.pit.build.step_features` does. The parity test (tests/serving/test_parity.py) replays events
to t and checks every feature against `features.pit.build` at the same t. Scoring composes
training's own functions on a matrix built once per request (`score_matrix`); a test checks it
equals `training.core.scoring.score`, the function training evaluated.

Two forms of the same path: `feature_rows` / `score_rows` on DataFrames (notebooks, tests), and
`feature_columns` / `score_and_explain_columns` on a mapping of column arrays, which the
service's handlers use: on a few hundred rows pandas' per-column costs (tens of microseconds per
column and operation, ~150 feature columns) were most of a request, so the request path calls
the array cores of the same feature functions (`invoice_feature_arrays`,
`history_feature_arrays`, `master_feature_arrays`) and of the output definitions
(`training.core.scoring.compose_columns`), and builds no frame at all
(tests/serving/test_request_path.py checks the two forms agree value for value). The boosters'
predictions and the explainer are independent; `run_beside` runs them on this thread and one
helper thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from features import schema
from features.config import PaydelayConfig
from features.config.features import FeatureConfig
from features.config.rules import RuleStrategyConfig
from features.config.serving import ServingConfig
from features.pit.item_state import n_rows
from serving.store import CustomerStore, empty_store

log = logging.getLogger(__name__)

MODEL_ENV = "PAYDELAY_MODEL"  # alias or version to serve (overrides ServingConfig.model_ref)
TRACKING_ENV = "PAYDELAY_TRACKING_URI"  # MLflow store (default: the project's models/mlflow.db)
CONFIG_ENV = "PAYDELAY_CONFIG"  # TOML config file


@dataclass
class ServingModel:
    bundle: object  # training.core.bundle.ModelBundle
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
        from features.pit.feature_spec import feature_specs

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
    full collections; without this each one walks the whole loaded heap (tens of ms).

    Also keep the request's large temporary arrays in the heap (keep_freed_memory)."""
    import gc

    gc.collect()
    gc.freeze()
    keep_freed_memory()


# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Ask glibc to serve blocks up to `mmap_threshold` bytes from the heap and to keep up to
    `trim_threshold` freed bytes instead of giving them back to the kernel.

    A request's arrays of a few MB (the explainer's 1.5 million table look-ups for 500 rows,
    the model matrix) are otherwise mapped fresh and unmapped on every request, and touching
    fresh pages costs a page fault per 4 kB: measured here, the tabulated TreeSHAP of a
    500-item worklist took 12 ms instead of 6. The process keeps at most its peak request's
    memory. Returns False (and changes nothing) where the C library is not glibc."""
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
                    and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------- features ----
def _times(as_of, n: int) -> np.ndarray:
    if np.ndim(as_of) == 0:
        return np.full(n, pd.Timestamp(as_of).as_unit("us").to_datetime64(),
                       dtype="datetime64[us]")
    t = np.asarray(as_of, dtype="datetime64[us]")
    if len(t) != n:
        raise ValueError(f"{len(t)} times for {n} item states")
    return t


def _strings(values) -> np.ndarray:
    """A string column as an object array of str (None for missing)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    return pd.Series(values).astype("str").to_numpy(dtype=object, na_value=None)


def feature_columns(model: ServingModel, state, as_of) -> dict[str, object]:
    """feature_rows as a mapping of column arrays (same names, order and values), from an
    item-state frame or its columns as serving.validation.items_columns gives them: the
    request path, which never pays pandas' per-column costs on a few hundred rows.

    Features come from the batch pipeline's own functions (invoice_feature_arrays,
    history_feature_arrays, master_feature_arrays, the cores of invoice_features,
    history_features and master_features) over the store's aggregates."""
    from features.pit.history import aggregate_columns, history_feature_arrays
    from features.pit.invoice_features import invoice_feature_arrays
    from features.pit.item_state import column_array
    from features.pit.master_asof import MASTER_ATTRIBUTES, master_feature_arrays

    fcfg = model.feature_config
    ids = _strings(state["invoice_id"])
    n = len(ids)
    t = _times(as_of, n)
    customers = _strings(state["customer_id"])
    item = invoice_feature_arrays(state, t)
    windows = tuple(int(w) for w in fcfg.history_windows_days)
    aggs, attrs = model.store.lookup_arrays(customers, aggregate_columns(windows),
                                            tuple(MASTER_ATTRIBUTES))
    hist = history_feature_arrays(aggs, state, t, fcfg)
    master = master_feature_arrays(attrs, aggs["cust_open_cents"] / 100.0)
    feats = {**item, **master, **hist}
    # row keys first (company_code and open_amount are keys and features: one column each, as
    # in batch), then the features in catalogue order, as features.pit.build.step_features
    cols: dict[str, object] = {
        "invoice_id": ids, "customer_id": customers,
        "snapshot_time": t, "snapshot_kind": np.full(n, "now", dtype=object),
        "posting_time": column_array(state, "posting_time", "datetime64[us]"),
        "net_due_date": column_array(state, "net_due_date", "datetime64[us]"),
    }
    keys = list(cols)
    front = list(schema.ROW_KEY_COLUMNS)
    everything = {**cols, **{name: feats[name] for name in _catalogue(model)}}
    order = front + [c for c in keys + list(_catalogue(model)) if c not in front]
    return {c: everything[c] for c in dict.fromkeys(order)}


def _catalogue(model: ServingModel) -> tuple[str, ...]:
    """Feature names of the model's feature config, in catalogue order (cached per model)."""
    names = getattr(model, "_catalogue_names", None)
    if names is None:
        from features.pit.feature_spec import feature_specs

        names = tuple(spec.name for spec in feature_specs(model.feature_config))
        model._catalogue_names = names
    return names


_STRING_KEYS = ("invoice_id", "customer_id", "snapshot_kind")


def rows_frame(cols: dict[str, object]) -> pd.DataFrame:
    """The DataFrame of feature columns (string keys as pandas' str dtype), one construction."""
    return pd.DataFrame({c: (pd.Series(v, dtype="str") if c in _STRING_KEYS else v)
                         for c, v in cols.items()})


def feature_rows(model: ServingModel, state: pd.DataFrame, as_of) -> pd.DataFrame:
    """Key columns + features of item states at as_of, by the batch pipeline's functions:
    invoice_features, history_features and master_features over the store's aggregates.

    as_of: one time for every item, or one per item (several requests scored together)."""
    return rows_frame(feature_columns(model, state, as_of))


# ------------------------------------------------------------------------------ scoring ----
def model_matrix(model: ServingModel, rows) -> np.ndarray:
    """The float matrix every booster of the bundle reads, built once per request.

    rows: feature rows as a frame or a mapping of column arrays. Same values as
    training.risk.feature_matrix (categoricals as codes of the training categories, unseen or
    missing -> NaN; booleans 0/1; numbers float64), which LightGBM turns a DataFrame into;
    without the per-column pandas conversions. A test checks the two agree.
    """
    fs = model.bundle.feature_set
    indexes = getattr(model, "_category_index", None)
    if indexes is None:
        indexes = {n: pd.Index(model.bundle.categories[n], dtype=object) for n in fs.categorical}
        model._category_index = indexes
    names = list(fs.names)
    columns = rows.columns if isinstance(rows, pd.DataFrame) else rows
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(f"rows lack feature column(s) {missing} (feature set {fs.version})")
    out = np.empty((len(names), n_rows(rows)), dtype=np.float64)  # transposed: rows are columns
    if isinstance(rows, pd.DataFrame):
        plain = [j for j, n in enumerate(names) if n not in indexes]
        # numbers and booleans in one conversion (bool -> 0/1, NaN kept)
        out[plain] = rows[[names[j] for j in plain]].to_numpy(dtype=np.float64,
                                                              na_value=np.nan).T
    for j, name in enumerate(names):
        col = rows[name]
        if name not in indexes:
            if not isinstance(rows, pd.DataFrame):
                out[j] = col
            continue
        if isinstance(col, (pd.Categorical, pd.Series)) and isinstance(col.dtype,
                                                                      pd.CategoricalDtype):
            cat = col.array if isinstance(col, pd.Series) else col
            # map the column's (few) categories, then its codes: no per-row string work
            codes = _category_lookup(model, name, indexes[name], cat.categories)[cat.codes]
        else:
            values = pd.Series(col).astype("str").to_numpy(dtype=object, na_value=None)
            codes = indexes[name].get_indexer(values)
        codes = codes.astype(np.float64)
        codes[codes < 0] = np.nan
        out[j] = codes
    return out.T.copy()


_LOOKUP_CACHE_SIZE = 512


def _category_lookup(model: ServingModel, name: str, training: pd.Index,
                     categories: pd.Index) -> np.ndarray:
    """Training category code of each of a column's categories, then -1 (for code -1:
    missing). Requests repeat the same few category sets (the store's, a worklist's company
    codes), so the mapping is cached per model; a pandas index look-up costs more than the
    rest of the column's conversion."""
    cache = model.__dict__.setdefault("_category_lookups", {})
    key = (name, tuple(categories))
    lookup = cache.get(key)
    if lookup is None:
        if len(cache) >= _LOOKUP_CACHE_SIZE:
            cache.clear()
        lookup = np.append(training.get_indexer(categories.astype("str").to_numpy(dtype=object)),
                           -1)
        cache[key] = lookup
    return lookup


_HELPER: ThreadPoolExecutor | None = None
_HELPER_LOCK = threading.Lock()


def helper() -> ThreadPoolExecutor:
    """The process's one helper thread (see run_beside)."""
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None:
            _HELPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paydelay-helper")
    return _HELPER


def _forget_helper() -> None:
    # a forked child (a server worker) has no copy of the parent's thread: it starts its own
    global _HELPER, _HELPER_LOCK
    _HELPER, _HELPER_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper)


def run_beside(tasks: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Results of independent tasks, run by this thread and the helper thread together, each
    taking the next task as soon as it is free (tasks in the order given; put long ones first).

    A request is scored on one thread (the service's batch thread), which leaves the second core
    of this 2-core machine idle; the boosters' predictions and the explainer are independent
    and release the GIL (LightGBM's C calls, numpy's large array operations), so they overlap.
    Measured on an idle machine: a 500-item re-rank 36 ms instead of 41 with the compact models;
    when the other core is busy it costs under a millisecond. Which thread runs a task changes
    nothing in its result. The helper is shared: when it is busy with another batch, this
    thread simply runs every task itself.
    """
    queue = deque(tasks.items())
    results: dict[str, object] = {}

    def drain() -> None:
        while True:
            try:
                name, task = queue.popleft()
            except IndexError:
                return
            results[name] = task()

    future = helper().submit(drain)
    try:
        drain()
    finally:
        if not future.cancel():  # started: wait for the task it took (and its error)
            future.result()
    return results


class _OneThread:
    """A booster whose predict runs on one thread: a request is small, and OpenMP start-up and
    spinning across several workers cost more than they save."""

    def __init__(self, booster):
        self.booster = booster

    def predict(self, X, **kwargs):
        return self.booster.predict(X, num_threads=1, **kwargs)


def _tree_cost(booster) -> int:
    """Trees x leaves: what one row's prediction visits, roughly (to order the tasks)."""
    return booster.num_trees() * int(booster.params.get("num_leaves", 31))


def score_matrix(model: ServingModel, rows: pd.DataFrame, X: np.ndarray) -> pd.DataFrame:
    """training.core.scoring.score's outputs from the prepared matrix.

    The boosters predict on the matrix, one thread each; `training.core.scoring.compose` turns their
    raw predictions into the output columns, so every definition (calibration, buckets, payment
    dates, amount at risk) is training's own. A test checks the result equals score() exactly.
    The request path composes on column arrays instead (score_and_explain_columns).
    """
    from training.core.scoring import check_rows, compose

    check_rows(model.bundle, rows)
    raw, bucket, relative, _ = _predictions(model, X, explain=False)
    return compose(model.bundle, rows, raw, bucket, relative)


def _predictions(model: ServingModel, X: np.ndarray, explain: bool) -> tuple:
    """The boosters' raw predictions on the matrix (risk, buckets or None, sorted relative
    payment-date quantiles) and, with explain, the rows' SHAP values for reasons
    (serving.explain.contributions(exact=False)); all run by run_beside."""
    from serving.explain import contributions
    from training.payment_date import sorted_quantiles

    b = model.bundle
    # Longest first (run_beside): the booster with the most tree visits, then the explainer.
    boosters = sorted(b.quantiles.items(), key=lambda kv: -_tree_cost(kv[1]))
    tasks: dict[str, Callable[[], object]] = {
        f"quantile_{boosters[0][0]}": partial(_OneThread(boosters[0][1]).predict, X)}
    if explain:
        tasks["explain"] = partial(contributions, model, X, False)
    for key, booster in boosters[1:]:
        tasks[f"quantile_{key}"] = partial(_OneThread(booster).predict, X)
    if b.bucket is not None:
        tasks["bucket"] = partial(_OneThread(b.bucket).predict, X)
    tasks["risk"] = partial(_OneThread(b.risk).predict, X)
    done = run_beside(tasks)
    relative = sorted_quantiles({k: done[f"quantile_{k}"] for k in b.quantiles})
    return done["risk"], done.get("bucket"), relative, done.get("explain")


_COMPOSE_INPUTS = ("snapshot_time", "net_due_date", "open_amount")


def score_rows(model: ServingModel, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """rows + model outputs (same index), and the model matrix (reused for contributions)."""
    X = model_matrix(model, rows)
    return pd.concat([rows, score_matrix(model, rows, X)], axis=1), X


def score_columns(model: ServingModel, cols: dict, X: np.ndarray | None = None
                  ) -> tuple[dict[str, object], np.ndarray]:
    """score_rows over a mapping of column arrays: the feature columns plus every output of
    score_matrix as an array (risk_class as an object array of str), and the model matrix
    (built here unless given)."""
    out, X, _ = score_and_explain_columns(model, cols, X, explain=False)
    return out, X


def score_and_explain_columns(model: ServingModel, cols: dict, X: np.ndarray | None = None,
                              explain: bool = True
                              ) -> tuple[dict[str, object], np.ndarray, np.ndarray | None]:
    """score_columns, and (explain) the SHAP values of every row for the reasons, computed
    beside the boosters (run_beside): (n, n_features + 1), last column the base value."""
    from training.payment_date import payment_offset
    from training.core.scoring import compose_columns

    missing = [c for c in _COMPOSE_INPUTS if c not in cols]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}, needed for payment dates / amount "
                         "at risk")
    X = model_matrix(model, cols) if X is None else X
    raw, bucket, relative, phi = _predictions(model, X, explain)
    b = model.bundle
    # compose's own definitions on the arrays: no frame is built on the request path
    out = dict(cols)
    out.update(compose_columns(b, cols["snapshot_time"], payment_offset(cols, b.quantile_shift),
                               np.asarray(cols["open_amount"], dtype="float64"), raw, bucket,
                               relative))
    return out, X, phi


def predict(model: ServingModel, state: pd.DataFrame, as_of
            ) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and model outputs of item states at as_of (request order), and the matrix."""
    return score_rows(model, feature_rows(model, state, as_of))


def predict_columns(model: ServingModel, state, as_of) -> tuple[dict[str, object], np.ndarray]:
    """predict as column arrays (serving's request path): features, outputs, and the matrix."""
    return score_columns(model, feature_columns(model, state, as_of))


__all__ = ["ServingModel", "from_bundle", "load_serving_model", "feature_rows", "score_rows",
           "predict", "model_matrix", "score_matrix", "settle_heap", "model_feature_config",
           "feature_columns", "rows_frame", "score_columns", "predict_columns",
           "keep_freed_memory", "helper", "run_beside", "score_and_explain_columns",
           "MODEL_ENV", "TRACKING_ENV", "CONFIG_ENV"]
