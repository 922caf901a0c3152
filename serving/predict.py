"""Serving's feature path and scoring: open-item states in, model outputs out. Pure Python.

`ServingModel` holds what a scoring process needs, loaded once: the registered bundle
(risk, bucket and payment-date boosters, calibrator, categories, and the model contract:
features, the feature config the rows must be built with, delay buckets, payment anchor, rule
strategy; training.core.contract), the customer history store materialised with it, and the
tabulated TreeSHAP explainer of the ranking booster (the very-late model whose probability
times the open amount orders the worklist; serving.explain).

Features are computed with the batch pipeline's own functions: `invoice_features(state, t)`,
`history_features(aggregates, state, t)` and `master_features(attributes, open amount)` over the
customer's row of the store (serving.store), assembled in catalogue order as
`features.pit.build.step_features` does. The parity test (tests/serving/test_parity.py) replays events
to t and checks every feature against `features.pit.build` at the same t. Scoring composes
training's own functions on a matrix built once per request (`score_matrix`); a test checks it
equals `training.core.scoring.score`, the function training evaluated.

The feature functions take and return Columns (features.pit.columns: one array per column), and
so does `feature_columns`, which the service's handlers call on the columns a request is parsed
into: on a few hundred rows pandas' per-column costs (tens of microseconds per column and
operation, ~150 feature columns) were most of a request. `feature_rows` is its adapter for
callers holding an item-state frame (notebooks, tests). Scoring likewise has `score_rows` on
DataFrames and `score_and_explain_columns` on column arrays, which composes with the array form
of the output definitions (`training.core.scoring.compose_columns`) and builds no frame at all
(tests/serving/test_request_path.py checks the two agree value for value). The boosters'
predictions and the explainer are independent; `run_beside` runs them on this thread and one
helper thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from features import schema
from features.pit.columns import Column, Columns, TimeLike, columns_of, frame_of, instants
from features.pit.feature_spec import feature_specs
from features.pit.history import aggregate_columns, history_features
from features.pit.invoice_features import invoice_features
from features.pit.master_asof import MASTER_ATTRIBUTES, master_features
from serving.explain import contributions
from serving.model import ServingModel
from serving.process import run_beside
from training.core.payment import payment_offset, sorted_quantiles
from training.core.scoring import check_rows, compose, compose_columns

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- features ----
def _strings(values: Column) -> np.ndarray:
    """A string column as an object array of str (None for missing)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    return pd.Series(values).astype("str").to_numpy(dtype=object, na_value=None)


def feature_columns(model: ServingModel, state: Columns, as_of: TimeLike) -> dict[str, Column]:
    """Key columns + features of item states at as_of, in the order of the batch rows.

    state: the item-state Columns (features.pit.columns), as serving.validation.items_columns
    parses a request. as_of: one time for every item, or one per item (several requests
    scored together). Features come from the batch pipeline's own functions (invoice_features,
    history_features, master_features) over the store's aggregates; no frame is built, so a
    request of a few hundred rows never pays pandas' per-column costs."""
    fcfg = model.feature_config
    ids = _strings(state["invoice_id"])
    n = len(ids)
    t = instants(as_of, n)
    customers = _strings(state["customer_id"])
    item = invoice_features(state, t)
    windows = tuple(int(w) for w in fcfg.history_windows_days)
    aggs, attrs = model.store.lookup_arrays(customers, aggregate_columns(windows),
                                            tuple(MASTER_ATTRIBUTES))
    hist = history_features(aggs, state, t, fcfg)
    master = master_features(attrs, aggs["cust_open_cents"] / 100.0)
    feats = {**item, **master, **hist}
    # row keys first (company_code and open_amount are keys and features: one column each, as
    # in batch), then the features in catalogue order, as features.pit.build.step_features
    cols: dict[str, Column] = {
        "invoice_id": ids, "customer_id": customers,
        "snapshot_time": t, "snapshot_kind": np.full(n, "now", dtype=object),
        "posting_time": np.asarray(state["posting_time"], dtype="datetime64[us]"),
        "net_due_date": np.asarray(state["net_due_date"], dtype="datetime64[us]"),
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
        names = tuple(spec.name for spec in feature_specs(model.feature_config))
        model._catalogue_names = names
    return names


def feature_rows(model: ServingModel, state: pd.DataFrame, as_of: TimeLike) -> pd.DataFrame:
    """feature_columns for an item-state frame, as a frame (string keys as pandas' str dtype):
    the adapter for notebooks, tests and batch callers that hold frames."""
    return frame_of(feature_columns(model, columns_of(state), as_of))


# ------------------------------------------------------------------------------ scoring ----
def model_matrix(model: ServingModel, rows) -> np.ndarray:
    """The float matrix every booster of the bundle reads, built once per request by the
    bundle's own builder (training.core.matrix: the matrix training fitted on).

    rows: feature rows as a frame or a mapping of column arrays. Unseen categories become
    missing here; serving.validation has already flagged (or refused) them per item.
    """
    return model.bundle.matrix.build(rows)[0]


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
    check_rows(model.contract, rows)
    raw, bucket, relative, _, very_late = _predictions(model, X, explain=False)
    return compose(model.bundle, rows, raw, bucket, relative, very_late)


def _predictions(model: ServingModel, X: np.ndarray, explain: bool) -> tuple:
    """The boosters' raw predictions on the matrix (risk, buckets or None, sorted relative
    payment-date quantiles), with explain the rows' SHAP values of the ranking model for
    reasons (serving.explain.contributions(exact=False)), and the very-late booster's (or None);
    all run by run_beside."""
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
    if b.very_late is not None:
        tasks["very_late"] = partial(_OneThread(b.very_late).predict, X)
    done = run_beside(tasks)
    relative = sorted_quantiles({k: done[f"quantile_{k}"] for k in b.quantiles})
    return (done["risk"], done.get("bucket"), relative, done.get("explain"),
            done.get("very_late"))


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
    missing = [c for c in _COMPOSE_INPUTS if c not in cols]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}, needed for payment dates / amount "
                         "at risk")
    X = model_matrix(model, cols) if X is None else X
    raw, bucket, relative, phi, very_late = _predictions(model, X, explain)
    b = model.bundle
    # compose's own definitions on the arrays: no frame is built on the request path
    out = dict(cols)
    out.update(compose_columns(b, cols["snapshot_time"],
                               payment_offset(cols, b.contract.payment_anchor),
                               np.asarray(cols["open_amount"], dtype="float64"), raw, bucket,
                               relative, very_late))
    return out, X, phi


def predict(model: ServingModel, state: pd.DataFrame, as_of
            ) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and model outputs of item states at as_of (request order), and the matrix."""
    return score_rows(model, feature_rows(model, state, as_of))


def predict_columns(model: ServingModel, state, as_of) -> tuple[dict[str, object], np.ndarray]:
    """predict as column arrays (serving's request path): features, outputs, and the matrix."""
    return score_columns(model, feature_columns(model, state, as_of))
