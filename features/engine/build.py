"""The point-in-time build on Dask: each partition of customers built by the in-process builder,
written as partitioned Parquet.

1. Partitions (features.engine.partitions): a partitioned ledger folder is used as it is; a
   single-file one is first cut by customer into `<out>/ledger_parts`.
2. One end of observation for every partition: the whole ledger's (the latest last_refresh,
   else the latest known event time - the replayed log's rule, features.pit.item_state), from
   each part's time columns. A partition's own last event would end its observation, and
   censor its outcomes, earlier than the whole ledger's.
3. Each partition on a worker: `features.pit.build.build_feature_sets` (the in-process builder,
   unchanged) and `features.pit.history.history_table` (the customer store's rows), written as
   part k of `training.parquet/`, `scoring.parquet/` and `customer_history.parquet/`; the
   worker returns only its reconciliation, its counts and its ledger facts.
4. The client adds those up: one reconciliation, one training summary, one ledger record.

Nothing spans customers in features.pit (checked: the history tables are keyed by customer, the
"same segment" tables by (customer, segment), cold start reads the customer's own count, the
grid-snapshot sample is a per-invoice hash), so no table has to be computed on the whole ledger
first and broadcast. The one thing a partition cannot know is the categorical dtype: the
in-process builder's categories are the values seen in all rows, a part's those seen in its
rows. `read_rows_dir` reads the parts as one frame and puts the categories back in the builder's
order (the builder's own `step_categories`: the union, schema order first), so the rows are the
in-process rows, values and dtypes, in the order of a stable sort by (snapshot_time,
invoice_id) (tests/features/test_dask_engine.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from distributed import Client

from features.config.features import FeatureConfig
from features.engine.cluster import gathered
from features.engine.partitions import (clear_tables, n_partitions_for, part_path,
                                        read_part, read_partitioning, split_ledger, write_part)
from features.ingest.ledger_files import EVENTS, MASTER
from features.pit.build import (VERSION_KEY, build_feature_sets, step_categories, summary,
                                write_rows)
from features.pit.columns import Instant, to_us
from features.pit.feature_spec import CATEGORICAL_FEATURES
from features.pit.history import history_table
from features.reconcile import IN, OUT, Line, Reconciliation

TRAINING, SCORING, HISTORY = "training.parquet", "scoring.parquet", "customer_history.parquet"
LEDGER_PARTS = "ledger_parts"


# --- end of observation -------------------------------------------------------------------------
def part_end(ledger: str, k: int) -> tuple[int | None, int | None]:
    """(latest last_refresh, latest known event time) of part k, int64 us (None: none)."""
    path = part_path(ledger, EVENTS, k)
    if not path.is_file():
        return None, None
    names = set(pq.read_schema(path).names)
    cols = [c for c in ("event_time", "recorded_time", "last_refresh") if c in names]
    ev = pd.read_parquet(path, columns=cols)
    known = ev["event_time"]
    if "recorded_time" in ev:
        known = known.where(ev["recorded_time"].isna() | (ev["recorded_time"] <= known),
                            ev["recorded_time"])
    refresh = ev["last_refresh"].max() if "last_refresh" in ev else pd.NaT

    def us(value) -> int | None:
        return None if pd.isna(value) else to_us(value)

    return us(refresh), us(known.max())


def ledger_end(ends: list[tuple[int | None, int | None]]) -> int:
    """The whole ledger's end of observation from its parts' `part_end`."""
    refresh = [r for r, _ in ends if r is not None]
    known = [k for _, k in ends if k is not None]
    if not refresh and not known:
        raise ValueError("event log is empty")
    return max(refresh) if refresh else max(known)


# --- one partition ------------------------------------------------------------------------------
@dataclass
class PartResult:
    """What a worker returns for its partition: no rows, only what the client adds up."""

    k: int
    reconciliation: Reconciliation
    counts: dict  # additive pieces of features.pit.build.summary (see `training_summary`)
    facts: dict  # first / last event time and invoices of the partition's event log
    scoring_rows: int = 0
    customers: int = 0


def _counts(training: pd.DataFrame) -> dict:
    cens = training["censored"].to_numpy(dtype=bool)
    s = summary(training)
    return {
        "rows": len(training), "invoices": s["invoices"], "customers": s["customers"],
        "features": s["features"], "snapshot_kinds": s["snapshot_kinds"],
        "first_snapshot": training["snapshot_time"].min() if len(training) else pd.NaT,
        "last_snapshot": training["snapshot_time"].max() if len(training) else pd.NaT,
        "censored": int(cens.sum()), "uncensored": int((~cens).sum()),
        "late_uncensored": int(training.loc[~cens, "label_late"].sum()),
        "written_off": int(training["label_written_off"].sum()),
        "feature_set_version": s["feature_set_version"],
    }


def build_partition(ledger: str, k: int, out: str, config: FeatureConfig, seed: int,
                    end_us: int) -> PartResult | None:
    """Partition k's training, scoring and customer-history parts (module docstring, step 3);
    None for a partition without events."""
    events = read_part(ledger, EVENTS, k)
    if events is None or events.empty:
        return None
    master = read_part(ledger, MASTER, k)
    end = pd.Timestamp(np.datetime64(end_us, "us"))
    sets = build_feature_sets(events, master, config, seed=seed, end_time=end)
    result = PartResult(k, sets.reconciliation, _counts(sets.training),
                        {"first_event": events["event_time"].min(),
                         "last_event": events["event_time"].max(),
                         "n_invoices": int(events["invoice_id"].nunique())},
                        scoring_rows=len(sets.scoring))
    # A part with no rows is not written: an empty frame's dtypes would not be the builder's.
    if len(sets.training):
        write_rows(sets.training, part_path(out, TRAINING, k))
    if len(sets.scoring):
        write_rows(sets.scoring, part_path(out, SCORING, k))
    del sets  # the rows are on disk: free them before the customer-history replay
    history = history_table(events, master, end, config)
    write_part(out, HISTORY, k, history)
    result.customers = len(history)
    return result


# --- adding the partitions up -------------------------------------------------------------------
def add_reconciliations(parts: list[Reconciliation]) -> Reconciliation:
    """One reconciliation of disjoint partitions: the counts of each (stage, what, reason)
    added, each (stage, what) as in, its differences, out (in order of first appearance)."""
    totals: dict[tuple[str, str, str], int] = {}
    for part in parts:
        for line in part.lines:
            key = (line.stage, line.what, line.reason)
            totals[key] = totals.get(key, 0) + line.count
    groups = list(dict.fromkeys((s, w) for s, w, _ in totals))
    rank = {IN: 0, OUT: 2}
    keys = sorted(totals, key=lambda key: (groups.index(key[:2]), rank.get(key[2], 1)))
    return Reconciliation(tuple(Line(s, w, totals[(s, w, r)], r) for s, w, r in keys))


def training_summary(parts: list[dict]) -> dict:
    """features.pit.build.summary of the whole training set from the partitions' counts
    (invoices and customers are disjoint between partitions, so they add up)."""
    rows = sum(p["rows"] for p in parts)
    uncensored = sum(p["uncensored"] for p in parts)
    kinds: dict[str, int] = {}
    for p in parts:
        for kind, n in p["snapshot_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + n
    firsts = [p["first_snapshot"] for p in parts if p["rows"]]
    lasts = [p["last_snapshot"] for p in parts if p["rows"]]
    censored = sum(p["censored"] for p in parts)
    return {
        "rows": rows, "invoices": sum(p["invoices"] for p in parts),
        "customers": sum(p["customers"] for p in parts),
        "features": max((p["features"] for p in parts), default=0),
        "snapshot_kinds": dict(sorted(kinds.items())),
        "first_snapshot": str(min(firsts)) if firsts else None,
        "last_snapshot": str(max(lasts)) if lasts else None,
        "feature_set_version": next((p["feature_set_version"] for p in parts
                                     if p["feature_set_version"]), None),
        "censored": censored, "censored_share": censored / rows if rows else float("nan"),
        "late_share_uncensored": (sum(p["late_uncensored"] for p in parts) / uncensored
                                  if uncensored else float("nan")),
        "written_off": sum(p["written_off"] for p in parts),
    }


def ledger_facts(parts: list[dict]) -> dict:
    """First and last event and invoices of the whole event log (training.core.ledger's
    ledger_record without the name), from the partitions' facts."""
    return {"first_event": pd.Timestamp(min(p["first_event"] for p in parts)).isoformat(),
            "last_event": pd.Timestamp(max(p["last_event"] for p in parts)).isoformat(),
            "n_invoices": sum(p["n_invoices"] for p in parts)}


# --- the stage ----------------------------------------------------------------------------------
@dataclass
class DaskFeatureSets:
    """The features stage's output on Dask: where the parts are, and what was added up."""

    out: Path
    ledger: Path  # the partitioned ledger the parts were built from
    n_partitions: int
    end_time: pd.Timestamp
    reconciliation: Reconciliation
    summary: dict  # features.pit.build.summary of the training rows
    scoring_rows: int
    facts: dict  # ledger_facts
    parts: list[int] = field(default_factory=list)  # partitions with events

    @property
    def training(self) -> Path:
        return self.out / TRAINING

    @property
    def scoring(self) -> Path:
        return self.out / SCORING

    @property
    def history(self) -> Path:
        return self.out / HISTORY


def partitioned_ledger(client: Client, ledger: str | Path, out: str | Path,
                       customers_per_partition: int) -> tuple[Path, int]:
    """The ledger as a partitioned folder: itself when it is one, else its cut into
    `<out>/ledger_parts` (step 1); with its number of partitions."""
    ledger = Path(ledger).resolve()
    n = read_partitioning(ledger)
    if n is not None:
        return ledger, n
    # the master's customers (a few rows each), not the events' (tens of millions of ids)
    source = ledger / MASTER if (ledger / MASTER).exists() else ledger / EVENTS
    customers = pd.read_parquet(source, columns=["customer_id"])["customer_id"].nunique()
    n = n_partitions_for(customers, customers_per_partition)
    return split_ledger(client, ledger, Path(out).resolve() / LEDGER_PARTS, n), n


def build_features(client: Client, ledger: str | Path, out: str | Path, config: FeatureConfig,
                   seed: int, customers_per_partition: int, end_time: Instant | None = None,
                   say: Callable[[str], None] | None = None) -> DaskFeatureSets:
    """Training rows, scoring rows and customer-history rows of a ledger folder, built partition
    by partition on the client's workers into `out` (module docstring); `say` hears a line as
    each partition is built."""
    out = Path(out).resolve()
    parts_ledger, n = partitioned_ledger(client, ledger, out, customers_per_partition)
    clear_tables(out, (TRAINING, SCORING, HISTORY))
    if end_time is None:
        ends = client.gather([client.submit(part_end, str(parts_ledger), k, pure=False)
                              for k in range(n)])
        end_us = ledger_end(ends)
    else:
        end_us = to_us(end_time)
    results = [r for r in gathered([
        client.submit(build_partition, str(parts_ledger), k, str(out), config, seed, end_us,
                      pure=False) for k in range(n)], "features", say) if r is not None]
    if not results:
        raise ValueError("event log is empty")
    return DaskFeatureSets(
        out=out, ledger=parts_ledger, n_partitions=n,
        end_time=pd.Timestamp(np.datetime64(end_us, "us")),
        reconciliation=add_reconciliations([r.reconciliation for r in results]),
        summary=training_summary([r.counts for r in results]),
        scoring_rows=sum(r.scoring_rows for r in results),
        facts=ledger_facts([r.facts for r in results]), parts=[r.k for r in results])


# --- reading the parts back ---------------------------------------------------------------------
def read_rows_dir(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows written in parts (training.parquet/, scoring.parquet/) as one frame, with the
    in-process builder's categories (module docstring); df.attrs["feature_set_version"] as
    features.pit.build.read_rows gives it. The row order is the parts' order: sort by
    (snapshot_time, invoice_id) for the in-process order."""
    path = Path(path)
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    if not parts:
        raise FileNotFoundError(f"{path} holds no part files")
    frame = pq.read_table(path, columns=columns).to_pandas()
    for name in CATEGORICAL_FEATURES:
        if name in frame.columns and isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = step_categories(frame[name].array, name)
    meta = pq.read_schema(parts[0]).metadata or {}
    frame.attrs["feature_set_version"] = meta.get(VERSION_KEY, b"").decode() or None
    return frame


def read_history_dir(path: str | Path) -> pd.DataFrame:
    """The customer-history parts (customer_history.parquet/) as the one table
    features.pit.history.history_table gives for the whole ledger: a row per customer in id
    order, the master attributes' categories sorted (each part holds the values of its own
    customers' master)."""
    table = pd.read_parquet(path).sort_values("customer_id", kind="stable")
    for name in table.columns:
        if isinstance(table[name].dtype, pd.CategoricalDtype):
            table[name] = table[name].cat.reorder_categories(
                sorted(table[name].cat.categories))
    return table.reset_index(drop=True)


__all__ = ["build_features", "read_history_dir", "build_partition", "partitioned_ledger", "read_rows_dir",
           "add_reconciliations", "training_summary", "ledger_facts", "part_end", "ledger_end",
           "DaskFeatureSets", "PartResult", "TRAINING", "SCORING", "HISTORY", "LEDGER_PARTS"]
