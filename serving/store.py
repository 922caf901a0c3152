"""The online customer-history store: one row per customer, materialised with the model.

A scoring request carries only the open item's own state; everything about the customer (payment
history, open and overdue exposure, master data) comes from `features.pit.history.history_table`,
computed by the feature pipeline as of the extract's time and stored as a Parquet file in the
training run's artifacts (`customer_store/`), beside the registered model version. Loading the
model version therefore loads the history it was built with: they are versioned together.

`CustomerStore.lookup_arrays(customer_ids)` returns, per requested item, the customer's
aggregates and master attributes as Columns (features.pit.columns), with the values
`features.pit.history.join_history` reads from the table (counts as int64 with 0, times with NaT,
max days late and credit limit with NaN, strings missing for a customer the store does not know:
cold start, not an error), but by gathering from column arrays prepared once at load time instead
of a merge and a per-column fill on every request. The batch pipeline's own `history_features`
and `master_features` then turn them into features; a test checks the look-up against
join_history, known and unknown customers mixed. `lookup` gives the same values as frames.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.config.features import FeatureConfig
from features.pit.columns import Column, Instant, as_categorical
from features.pit.history import history_table

STORE_DIR = "customer_store"
TABLE_FILE = "customer_history.parquet"
META_FILE = "store.json"
STORE_FORMAT = 1


@dataclass
class CustomerStore:
    table: pd.DataFrame  # features.pit.history.history_table output
    as_of: pd.Timestamp
    meta: dict

    def __post_init__(self) -> None:
        if "customer_id" not in self.table.columns:
            raise ValueError("customer store table has no customer_id column")
        ids = self.table["customer_id"].astype("str")
        if ids.duplicated().any():
            raise ValueError("customer store has several rows for one customer_id")
        self._index = pd.Index(ids.to_numpy(dtype=object))
        # arrays per column, and per string attribute its codes ("#codes") and dtype ("#dtype")
        self._columns: dict[str, np.ndarray | pd.CategoricalDtype] | None = None

    def _prepare(self, aggregate_cols: tuple[str, ...], master_cols: tuple[str, ...]) -> None:
        """Column arrays with one extra last row: the value a customer the store lacks gets
        (also used for every row of a column the table lacks, e.g. an empty store)."""
        cols: dict[str, np.ndarray | pd.CategoricalDtype] = {}
        table = self.table
        n = len(table)

        def column(col: str, dtype, fill, convert) -> np.ndarray:
            vals = convert(table[col]) if col in table.columns else np.full(n, fill, dtype=dtype)
            return np.append(vals, np.array([fill], dtype=dtype)).astype(dtype)

        nat = np.datetime64("NaT", "us")
        for col in aggregate_cols:
            if col.endswith("_time"):
                cols[col] = column(col, "datetime64[us]", nat,
                                   lambda c: c.to_numpy(dtype="datetime64[us]"))
            elif col.startswith("cust_max_days_late"):
                cols[col] = column(col, np.float64, np.nan,
                                   lambda c: c.to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                cols[col] = column(col, np.int64, 0, lambda c: c.fillna(0).to_numpy(np.int64))
        for col in master_cols:
            if col == "credit_limit":
                cols[col] = column(col, np.float64, np.nan,
                                   lambda c: c.to_numpy(dtype=np.float64, na_value=np.nan))
            else:
                cols[col] = column(col, object, None, lambda c: c.astype("str").to_numpy(
                    dtype=object, na_value=None))
                # and as codes into the column's sorted values (-1: missing or unknown
                # customer), so a look-up gathers a Categorical instead of hashing strings
                cat = as_categorical(cols[col])
                cols[col + "#codes"] = np.asarray(cat.codes, dtype=np.int64)
                cols[col + "#dtype"] = cat.dtype
        self._columns = cols
        self._prepared_for = (aggregate_cols, master_cols)

    def _positions(self, customer_ids: np.ndarray | pd.Series | list[str],
                   aggregate_cols: tuple[str, ...],
                   master_cols: tuple[str, ...]) -> np.ndarray:
        if self._columns is None or self._prepared_for != (aggregate_cols, master_cols):
            self._prepare(aggregate_cols, master_cols)
        if isinstance(customer_ids, np.ndarray) and customer_ids.dtype == object:
            ids = customer_ids  # already strings with None for missing (serving's arrays)
        else:
            ids = pd.Series(customer_ids, dtype="str").to_numpy(dtype=object, na_value=None)
        pos = self._index.get_indexer(ids)
        return np.where(pos >= 0, pos, len(self.table))

    def lookup_arrays(self, customer_ids: np.ndarray | pd.Series | list[str],
                      aggregate_cols: tuple[str, ...], master_cols: tuple[str, ...]
                      ) -> tuple[dict[str, np.ndarray], dict[str, Column]]:
        """lookup's values as column arrays, string attributes as Categoricals (values equal to
        lookup's strings): what the request path feeds the feature functions."""
        pos = self._positions(customer_ids, aggregate_cols, master_cols)
        cols = self._columns
        aggs = {c: cols[c][pos] for c in aggregate_cols}
        attrs: dict[str, Column] = {}
        for c in master_cols:
            if c == "credit_limit":
                attrs[c] = cols[c][pos]
            else:
                attrs[c] = pd.Categorical.from_codes(cols[c + "#codes"][pos],
                                                     dtype=cols[c + "#dtype"], validate=False)
        return aggs, attrs

    def lookup(self, customer_ids: np.ndarray | pd.Series | list[str],
               aggregate_cols: tuple[str, ...],
               master_cols: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(aggregates, master attributes) per item, as join_history builds them (RangeIndex)."""
        pos = self._positions(customer_ids, aggregate_cols, master_cols)
        cols = self._columns
        aggs = pd.DataFrame({c: cols[c][pos] for c in aggregate_cols})
        attrs = pd.DataFrame({c: (cols[c][pos] if c == "credit_limit"
                                  else pd.Series(cols[c][pos], dtype="str"))
                              for c in master_cols})
        return aggs, attrs

    @property
    def n_customers(self) -> int:
        return len(self.table)

    def rows_for(self, customer_ids: np.ndarray | pd.Series | list[str]) -> pd.DataFrame:
        """Store rows of the (distinct) known customers among `customer_ids`."""
        wanted = pd.unique(pd.Series(customer_ids, dtype="str").dropna())
        pos = self._index.get_indexer(wanted)
        return self.table.iloc[pos[pos >= 0]]

    def knows(self, customer_ids: np.ndarray | pd.Series | list[str]) -> pd.Series:
        ids = pd.Series(customer_ids, dtype="str")
        return pd.Series(self._index.get_indexer(ids.to_numpy(dtype=object, na_value=None)) >= 0,
                         index=ids.index)

    def save(self, directory: str | Path) -> list[Path]:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.table.to_parquet(d / TABLE_FILE, index=False)
        (d / META_FILE).write_text(json.dumps(self.meta, indent=1, sort_keys=True))
        return [d / TABLE_FILE, d / META_FILE]

    @classmethod
    def load(cls, directory: str | Path) -> CustomerStore:
        d = Path(directory)
        if not d.is_dir():
            raise FileNotFoundError(f"customer store {d} does not exist (nothing was created "
                                    "there)")
        if not (d / TABLE_FILE).is_file():
            raise FileNotFoundError(f"customer store {d} has no {TABLE_FILE}: not a customer "
                                    "store folder")
        meta = json.loads((d / META_FILE).read_text()) if (d / META_FILE).is_file() else {}
        if meta.get("format", STORE_FORMAT) != STORE_FORMAT:
            raise ValueError(f"customer store format {meta.get('format')} is not {STORE_FORMAT}")
        table = pd.read_parquet(d / TABLE_FILE)
        return cls(table=table, as_of=pd.Timestamp(meta.get("as_of") or _table_as_of(table)),
                   meta=meta)


def _table_as_of(table: pd.DataFrame) -> pd.Timestamp | None:
    if "as_of" in table.columns and len(table):
        return pd.Timestamp(table["as_of"].max())
    return None


def build_store(events: pd.DataFrame, master: pd.DataFrame | None,
                as_of: Instant | None = None, feature_config: FeatureConfig | None = None,
                feature_set_version: str | None = None) -> CustomerStore:
    """Materialise the store from an event log (history as of `as_of`, default last refresh)."""
    fcfg = feature_config or FeatureConfig()
    table = history_table(events, master, as_of, fcfg)
    when = _table_as_of(table)
    meta = {"format": STORE_FORMAT, "as_of": None if when is None else when.isoformat(),
            "n_customers": int(len(table)), "feature_set_version": feature_set_version,
            "history_windows_days": list(fcfg.history_windows_days)}
    return CustomerStore(table=table.reset_index(drop=True), as_of=when, meta=meta)


def empty_store(feature_set_version: str | None = None) -> CustomerStore:
    """A store that knows nobody: every customer is scored cold-start."""
    table = pd.DataFrame({"customer_id": pd.Series([], dtype="str")})
    return CustomerStore(table=table, as_of=None,
                         meta={"format": STORE_FORMAT, "as_of": None, "n_customers": 0,
                               "feature_set_version": feature_set_version, "empty": True})


def log_store(store: CustomerStore, run_id: str, tracking_uri: str | None = None) -> str:
    """Attach the store to a (finished) training run as artifacts under `customer_store/`."""
    # Here, not at the top: the registry brings MLflow, which the scoring path never needs.
    from training import registry

    client = registry.configure(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        store.save(tmp)
        client.log_artifacts(run_id, tmp, artifact_path=STORE_DIR)
    return f"runs:/{run_id}/{STORE_DIR}"


def load_store_for_run(run_id: str, tracking_uri: str | None = None) -> CustomerStore | None:
    """The store logged with a training run, or None when the run has none. The run is read
    from the tracking store training.registry resolves (the argument, else the environment)."""
    # Here, not at the top: MLflow (and the registry over it) is heavy, and only loading a
    # model from the tracking server needs it, never the scoring path.
    from training import registry

    client = registry.configure(tracking_uri)
    names = {a.path for a in client.list_artifacts(run_id)}
    if STORE_DIR not in names:
        return None
    # through the client: the store it was resolved to, never whatever MLflow's globals hold
    return CustomerStore.load(client.download_artifacts(run_id, STORE_DIR))


def store_override_path() -> Path | None:
    """PAYDELAY_STORE_PATH: serve a fresher store folder than the one logged with the model."""
    value = os.environ.get("PAYDELAY_STORE_PATH")
    return Path(value) if value else None


__all__ = ["CustomerStore", "build_store", "empty_store", "log_store", "load_store_for_run",
           "store_override_path", "STORE_DIR"]
