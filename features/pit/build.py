"""Training and scoring sets: the point-in-time steps composed into rows.

    events ──prepare_log──> replayed log ──snapshots──> (invoice, t)
        ├─ item_state ──> invoice_features         (invoice, collection, dispute)
        ├─ customer aggregates ──> history_features (customer history, own invoice removed)
        ├─ master as of t ──> master_features       (risk, credit limit and its use, ...)
        └─ labels from the outcome after t          (training only)

Rows: schema.ROW_KEY_COLUMNS + feature columns (feature_spec order) + schema.LABEL_COLUMNS
(+ label_late_known) + feature_set_version, sorted by (snapshot_time, invoice_id).
Categorical features are pandas `category` dtype; the categories are the values seen (risk
categories and segments in schema order first).

`build_feature_sets` builds both from one replayed log and reconciles them against the ledger
(features.reconcile): every invoice of the ledger has a training row or a counted reason
(posted after the end of observation; cleared at or before it was recorded, see
features.pit.snapshots), every invoice open now a scoring row.

The steps pass Columns (features.pit.columns) from one to the next; the only frame is the one
`step_rows` assembles at the end, without copying the columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema
from features.reconcile import Reconciliation, combine, reconcile_counts, reconcile_ids
from features.config.features import FeatureConfig
from features.pit.columns import Column, Columns, Instant, as_categorical
from features.pit.feature_spec import feature_set_version, feature_specs
from features.pit.history import build_customer_tables, history_for_codes
from features.pit.invoice_features import invoice_features
from features.pit.item_state import (ITEM_STATE_COLUMNS, ReplayLog, ids_series, prepare_log,
                                     snapshot_codes, state_arrays)
from features.pit.labels import EXTRA_LABEL_COLUMNS, label_frame
from features.pit.master_asof import master_asof_codes, master_features, master_from_events
from features.pit.snapshots import (KINDS, scoring_codes, snapshot_accounting, to_us,
                                   training_codes)

VERSION_KEY = b"feature_set_version"
_KEY_ONLY = frozenset(schema.ROW_KEY_COLUMNS) - {"company_code", "open_amount"}
_CATEGORY_ORDER = {"risk_category": schema.RISK_CATEGORIES, "customer_segment": schema.SEGMENTS}


# ------------------------------------------------------------------------------ steps -------
# Columns are passed on, never copied, and the frame of them is built with copy=False and never
# consolidated: a million-invoice training set is gigabytes, and every concat/astype/copy of it
# would cost as much again.
def step_item_state(log: ReplayLog, inv: np.ndarray, t: np.ndarray) -> dict[str, Column]:
    """ITEM_STATE_COLUMNS of the rows (invoice code, t as int64 us); ids and posting attributes
    as Categoricals of the log's codes."""
    state = state_arrays(log, inv, t)
    return {name: state[name] for name in ITEM_STATE_COLUMNS}


def step_history(log: ReplayLog, config: FeatureConfig, inv: np.ndarray, t: np.ndarray,
                 state: Columns, master: pd.DataFrame | None = None
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """History features, and the customer's open amount at t (for credit use). The master (as
    step_master reads it) splits the history by customer segment."""
    tables = build_customer_tables(log, config, master)
    return history_for_codes(tables, log.inv_cust[inv], t, state, config)


def step_master(log: ReplayLog, events: pd.DataFrame, master: pd.DataFrame | None,
                inv: np.ndarray, t: np.ndarray, customer_open: np.ndarray) -> dict[str, Column]:
    if master is None:
        master = master_from_events(events)
    attrs = master_asof_codes(master, log.customer_ids, log.inv_cust[inv], t)
    return master_features(attrs, customer_open)


def step_categories(column: Column, name: str) -> pd.Categorical:
    """A categorical feature with str categories in a stable order (schema order first)."""
    column = as_categorical(column).remove_unused_categories()
    column = column.rename_categories([str(c) for c in column.categories])
    seen = sorted(column.categories)
    first = [c for c in _CATEGORY_ORDER.get(name, ()) if c in seen]
    return column.reorder_categories(first + [c for c in seen if c not in first])


def step_features(log: ReplayLog, events: pd.DataFrame, master: pd.DataFrame | None,
                  config: FeatureConfig, inv: np.ndarray, t: np.ndarray) -> dict[str, Column]:
    """Feature columns (feature_spec order, spec dtypes) of the rows (invoice code, t), plus
    the item-state columns the row keys need."""
    t_dt = t.view("datetime64[us]")
    state = step_item_state(log, inv, t)
    if master is None:
        master = master_from_events(events)
    # History before the invoice features: the customer tables (freed when step_history returns)
    # and the invoice features are then never in memory together - the peak of a large build.
    hist, customer_open = step_history(log, config, inv, t, state, master)
    item = invoice_features(state, t_dt)
    keys = {"_posting_time": state["posting_time"], "_net_due_date": state["net_due_date"]}
    del state  # the item-state columns no feature shares are not needed any more
    mast = step_master(log, events, master, inv, t, customer_open)
    found = {**item, **mast, **hist}
    specs = feature_specs(config)
    names = [s.name for s in specs]
    missing, extra = set(names) - set(found), set(found) - set(names)
    if missing or extra:
        raise AssertionError(f"features and catalogue disagree: missing {sorted(missing)}, "
                             f"not in catalogue {sorted(extra)}")
    cols: dict[str, Column] = dict(keys)
    for spec in specs:
        col = found[spec.name]
        if spec.kind == "categorical":
            col = step_categories(col, spec.name)
        elif spec.kind == "bool" and col.dtype != bool:
            col = col.astype(bool)
        elif spec.kind == "numeric" and col.dtype != np.float64:
            col = col.astype(np.float64)
        cols[spec.name] = col
    return cols


def step_rows(log: ReplayLog, inv: np.ndarray, t: np.ndarray, kind: np.ndarray,
              feats: Columns, labels: pd.DataFrame | None, version: str) -> pd.DataFrame:
    """The batch edge: keys, features, labels and version assembled into the training frame
    without copying the columns."""
    n = len(inv)
    cols: dict[str, Column | pd.Series] = {
        "invoice_id": ids_series(log.invoice_ids_pa, inv),
        "customer_id": ids_series(log.customer_ids_pa, log.inv_cust[inv]),
        "company_code": feats["company_code"],
        "snapshot_time": pd.Series(t.view("datetime64[us]")),
        "snapshot_kind": ids_series(pa.array(KINDS), kind),
        "posting_time": feats["_posting_time"],
        "net_due_date": feats["_net_due_date"],
        "open_amount": feats["open_amount"],
    }
    assert tuple(cols) == schema.ROW_KEY_COLUMNS
    for name, col in feats.items():
        if not name.startswith("_") and name not in cols:
            cols[name] = col
    if labels is not None:
        for name in labels.columns:
            cols[name] = labels[name].reset_index(drop=True)
    cols["feature_set_version"] = ids_series(pa.array([version]), np.zeros(n, np.int64))
    return pd.DataFrame(cols, copy=False)


def _kinds_of(snapshots: pd.DataFrame, n: int) -> np.ndarray:
    if "snapshot_kind" not in snapshots.columns:
        return np.full(n, KINDS.index("now"), dtype=np.int8)
    kind = pd.Categorical(snapshots["snapshot_kind"].astype("str"), categories=KINDS)
    if (kind.codes < 0).any():
        raise ValueError(f"snapshot_kind must be one of {KINDS}")
    return np.asarray(kind.codes, dtype=np.int8)


# ------------------------------------------------------------------------ public API --------
STAGE = "features"
NEVER_OPEN = ("cleared at or before it was recorded: never open at a known instant (no row; "
              "counted on time in its customer's history)")
AFTER_END = "posted after the end of observation"
AFTER_NOW = "posted after now"
CLOSED_BY_NOW = "cleared or written off by now (not an open item)"
GRID_OVER_CAP = "grid snapshots over max_snapshots_per_invoice (a seeded sample is kept)"


@dataclass(frozen=True)
class FeatureSets:
    """The features stage's output: training rows, scoring rows and their reconciliation."""

    training: pd.DataFrame
    scoring: pd.DataFrame
    reconciliation: Reconciliation


def features_reconciliation(log: ReplayLog, config: FeatureConfig, training: pd.DataFrame,
                            scoring: pd.DataFrame, end: int, now: int) -> Reconciliation:
    """Ledger invoices against the invoices of the training and scoring rows, and the training
    rows against the eligible snapshots, each difference with its reason."""
    acc = snapshot_accounting(log, config, end, now)
    ids = log.invoice_ids
    to_training = reconcile_ids(STAGE, "invoices -> training rows", ids,
                                training["invoice_id"].unique(),
                                {AFTER_END: ids[acc["after_end"]],
                                 NEVER_OPEN: ids[acc["never_open"]]})
    to_scoring = reconcile_ids(STAGE, "invoices -> scoring rows (open now)", ids,
                               scoring["invoice_id"].unique(),
                               {AFTER_NOW: ids[acc["after_now"]],
                                CLOSED_BY_NOW: ids[acc["closed_by_now"]]})
    rows = reconcile_counts(STAGE, "training rows", acc["posting_rows"] + acc["grid_points"],
                            len(training), {GRID_OVER_CAP: -acc["grid_over_cap"]})
    return combine(to_training, to_scoring, rows)


def scoring_reconciliation(events: pd.DataFrame | ReplayLog, config: FeatureConfig,
                           scoring: pd.DataFrame, as_of: Instant, stage: str = "score"
                           ) -> Reconciliation:
    """The ledger's invoices against the items scored as of `as_of` (batch scoring), each
    difference with its reason: posted after as_of, or cleared / written off by then."""
    log = prepare_log(events)
    now = to_us(as_of)
    acc = snapshot_accounting(log, config, now, now)
    ids = log.invoice_ids
    return reconcile_ids(stage, f"invoices -> items scored as of {pd.Timestamp(as_of):%Y-%m-%d}",
                         ids, scoring["invoice_id"].unique(),
                         {AFTER_NOW: ids[acc["after_now"]],
                          CLOSED_BY_NOW: ids[acc["closed_by_now"]]})


def build_feature_sets(events: pd.DataFrame, master: pd.DataFrame | None, config: FeatureConfig,
                       seed: int, end_time: Instant | None = None) -> FeatureSets:
    """Training rows up to end_time, scoring rows at end_time (both default: last_refresh) and
    the reconciliation of both against the ledger, from one replayed log."""
    log = prepare_log(events)
    end = log.end_time if end_time is None else to_us(end_time)
    # With the master in hand the steps read only the replayed log: replay the events once.
    master = master_from_events(events) if master is None else master
    training = build_training_set(log, master, config, seed, end_time)
    scoring = build_scoring_set(log, master, config, end_time)
    return FeatureSets(training, scoring,
                       features_reconciliation(log, config, training, scoring, end, end))


def build_training_set(events: pd.DataFrame | ReplayLog, master: pd.DataFrame | None,
                       config: FeatureConfig, seed: int, end_time: Instant | None = None
                       ) -> pd.DataFrame:
    """Training rows (posting + grid snapshots up to end_time) with features and labels.

    end_time (default: last_refresh, else the last event) ends both the snapshots and the
    observation of outcomes: an outcome known after it is censored. events may be a replayed
    log when the master is given.
    """
    log = prepare_log(events)
    end = log.end_time if end_time is None else to_us(end_time)
    inv, t, kind = training_codes(log, config, seed, end)
    feats = step_features(log, events, master, config, inv, t)
    labels = label_frame(log, inv, t, config, end)
    return step_rows(log, inv, t, kind, feats, labels, feature_set_version(config))


def build_scoring_set(events: pd.DataFrame | ReplayLog, master: pd.DataFrame | None,
                      config: FeatureConfig, now: Instant | None = None) -> pd.DataFrame:
    """One row per invoice open at `now` (default last_refresh): keys + features."""
    log = prepare_log(events)
    inv, t, kind = scoring_codes(log, None if now is None else to_us(now))
    feats = step_features(log, events, master, config, inv, t)
    return step_rows(log, inv, t, kind, feats, None, feature_set_version(config))


def features_at(events: pd.DataFrame, master: pd.DataFrame | None, config: FeatureConfig,
                snapshots: pd.DataFrame) -> pd.DataFrame:
    """Keys + features of given (invoice_id, snapshot_time) rows, in their order.

    snapshot_kind is taken from the snapshots when they carry it, else "now". Every invoice must
    be open at its time. Used for replay/parity checks and ad-hoc as-of questions.
    """
    log = prepare_log(events)
    inv, t = snapshot_codes(log, snapshots)
    feats = step_features(log, events, master, config, inv, t)
    return step_rows(log, inv, t, _kinds_of(snapshots, len(inv)), feats, None,
                     feature_set_version(config))


def write_rows(df: pd.DataFrame, path: str | Path) -> Path:
    """Parquet file with the feature set version in its metadata (and as a column)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    version = (str(df["feature_set_version"].iloc[0]) if "feature_set_version" in df.columns
               and len(df) else feature_set_version())
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[VERSION_KEY] = version.encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def read_rows(path: str | Path) -> pd.DataFrame:
    """Rows written by write_rows; df.attrs["feature_set_version"] holds the file's version."""
    table = pq.read_table(path)
    df = table.to_pandas()
    meta = table.schema.metadata or {}
    df.attrs["feature_set_version"] = meta.get(VERSION_KEY, b"").decode() or None
    return df


def summary(df: pd.DataFrame) -> dict:
    """Headline counts of a training or scoring set."""
    out: dict = {
        "rows": int(len(df)),
        "invoices": int(df["invoice_id"].nunique()) if len(df) else 0,
        "customers": int(df["customer_id"].nunique()) if len(df) else 0,
        # company_code and open_amount are keys and features at once
        "features": len([c for c in df.columns if c not in _KEY_ONLY
                         and c not in schema.LABEL_COLUMNS and c not in EXTRA_LABEL_COLUMNS
                         and c != "feature_set_version"]),
        "snapshot_kinds": {str(k): int(v) for k, v in
                           df["snapshot_kind"].value_counts().sort_index().items()},
        "first_snapshot": str(df["snapshot_time"].min()) if len(df) else None,
        "last_snapshot": str(df["snapshot_time"].max()) if len(df) else None,
        "feature_set_version": (str(df["feature_set_version"].iloc[0])
                                if "feature_set_version" in df.columns and len(df) else None),
    }
    if "censored" in df.columns:
        cens = df["censored"].to_numpy(dtype=bool)
        late = df.loc[~cens, "label_late"]
        out.update({
            "censored": int(cens.sum()),
            "censored_share": float(cens.mean()) if len(df) else float("nan"),
            "late_share_uncensored": float(late.mean()) if len(late) else float("nan"),
            "written_off": int(df["label_written_off"].sum()),
        })
    return out


__all__ = ["build_training_set", "build_scoring_set", "build_feature_sets", "FeatureSets",
           "features_reconciliation", "features_at", "write_rows", "read_rows",
           "summary", "step_item_state", "step_history", "step_master", "step_features",
           "step_rows"]
