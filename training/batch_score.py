"""Batch scoring by date: every open item of a ledger as of a date, scored by a registered model.

`score_ledger(events, master, bundle, as_of, out_dir)` builds the scoring rows at `as_of` with
the feature pipeline (features.pit.build.build_scoring_set: only events known at `as_of`, so the
customer histories are the ones of that day, whatever the ledger holds since), scores them with
the inference core (training.core.scoring.score, the code the service runs) and writes:

- `predictions_<YYYY-MM-DD>.parquet`: one row per open item - keys, features, every model output,
  and the provenance columns `model_name`, `model_version`, `ledger_hash`, `as_of` (the feature
  set version is a column already); the same facts are in the file's Parquet metadata
  (`paydelay.scoring`, JSON) so `training.monitor` can read the history without MLflow.
- `worklists_<YYYY-MM-DD>/<collector>.csv`: one worklist per collector, ordered by expected
  amount at risk (then P(late)), the columns a collector reads, the ranking probability
  p_very_late (the contract's very_late_label in collector language) among them.
- `items_<YYYY-MM-DD>.parquet`: the same open items as the /rerank request carries them (the
  item state at `as_of`, features.pit.item_state.ITEM_STATE_COLUMNS) with the `collector` whose
  worklist holds each, in the worklists' order, and the provenance in its Parquet metadata: what
  the service's "latest batch-scored worklist" (serving.handlers.latest_worklist) loads and
  re-ranks, so a collector's page starts from the batch without a worklist engine.
- `reconciliation_<YYYY-MM-DD>.csv`: the ledger's invoices against the items scored, and the
  items scored against the rows of the worklists and of the item-state file.

and, unless `log=False`, records the run in the MLflow experiment `paydelay-scoring` (params:
as-of, model, ledger fingerprint, feature set; metrics: items, mean P(late), amount at risk, risk
class shares; artifacts: the prediction table, the item states and the worklists).

`score_range` re-scores a range of past dates (backfills), one table per date; each date sees
only the events known then, so a backfill writes what a weekly job would have written (the
model, of course, is today's unless the caller passes the one served then).

The default output folder is `data/processed/<ledger>/scores/` (`scores_dir`).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import paths
from features.config.monitoring import MonitoringConfig
from features.pit.build import build_scoring_set, scoring_reconciliation
from features.pit.item_state import ITEM_STATE_COLUMNS, ReplayLog, item_state_at, prepare_log
from features.pit.snapshots import scoring_snapshots
from features.reconcile import Reconciliation, combine, reconcile_counts, write_reconciliation
from training.core.bundle import ModelBundle, json_safe
from training.core.ledger import slugify
from training.core.scoring import score

SCORING_META_KEY = b"paydelay.scoring"
PREDICTIONS_GLOB = "predictions_*.parquet"
_DATE_RE = re.compile(r"predictions_(\d{4}-\d{2}-\d{2})\.parquet$")
WORKLIST_COLUMNS = ("rank", "invoice_id", "customer_id", "company_code", "customer_segment",
                    "open_amount", "net_due_date", "days_overdue", "dunning_level", "p_late",
                    "p_very_late", "risk_class", "pay_date_p50", "expected_amount_at_risk")
UNASSIGNED = "unassigned"  # the worklist of items whose customer has no collector
# The item-state file's columns: a /rerank item, and the worklist it belongs to.
ITEM_COLUMNS = (*ITEM_STATE_COLUMNS, "collector")


def scores_dir(ledger: str) -> Path:
    """data/processed/<ledger slug>/scores: where `paydelay score` writes by default."""
    return paths.PROCESSED / slugify(ledger) / "scores"


def predictions_path(out_dir: str | Path, as_of: pd.Timestamp) -> Path:
    return Path(out_dir) / f"predictions_{pd.Timestamp(as_of):%Y-%m-%d}.parquet"


def items_path(out_dir: str | Path, as_of: pd.Timestamp) -> Path:
    """Where the open items' states of a date go (the service finds the newest by this name)."""
    return Path(out_dir) / f"items_{pd.Timestamp(as_of):%Y-%m-%d}.parquet"


def ledger_fingerprint(events: pd.DataFrame, as_of: pd.Timestamp, name: str) -> dict:
    """What the scoring saw of the ledger: events known at `as_of`, their invoices, the newest
    event and a hash of (invoice, activity, event time) - two runs on the same extract agree."""
    known = events["event_time"] <= as_of
    if "recorded_time" in events:
        known &= events["recorded_time"].fillna(events["event_time"]) <= as_of
    seen = events.loc[known, ["invoice_id", "activity", "event_time"]]
    digest = hashlib.sha256(pd.util.hash_pandas_object(
        seen.astype({"invoice_id": "str", "activity": "str"}), index=False).to_numpy().tobytes())
    return {"name": slugify(name), "n_events": int(len(seen)),
            "n_invoices": int(seen["invoice_id"].nunique()),
            "last_event": None if seen.empty else pd.Timestamp(seen["event_time"].max()).isoformat(),
            "hash": digest.hexdigest()[:16]}


@dataclass
class ScoringResult:
    as_of: pd.Timestamp
    predictions: pd.DataFrame  # rows + outputs + provenance columns
    path: Path
    worklists: dict[str, Path] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    items_path: Path | None = None  # the open items' states (/rerank items) per collector
    run_id: str | None = None
    reconciliation: Reconciliation | None = None  # ledger invoices -> items scored

    def summary(self) -> dict:
        p = self.predictions
        out = {"as_of": f"{self.as_of:%Y-%m-%d}", "items": int(len(p)),
               "model": f"{self.meta.get('model_name')} v{self.meta.get('model_version')}",
               "mean_p_late": float(p["p_late"].mean()) if len(p) else float("nan"),
               "amount_at_risk": float(p["expected_amount_at_risk"].sum()) if len(p) else 0.0,
               "collectors": len(self.worklists)}
        return out


def _model_meta(bundle: ModelBundle) -> dict:
    src = bundle.source or {}
    return {"model_name": src.get("registered_model") or "unregistered",
            "model_version": None if src.get("version") is None else int(src["version"]),
            "model_run_id": src.get("run_id"),
            "feature_set_version": bundle.feature_set_version,
            "model_ledger": (bundle.ledger or {}).get("name"),
            "training_window": bundle.training_window}


def score_frame(events: pd.DataFrame, master: pd.DataFrame | None, bundle: ModelBundle,
                as_of: pd.Timestamp) -> pd.DataFrame:
    """Scoring rows at `as_of` joined with the model's outputs (no I/O)."""
    rows = build_scoring_set(events, master, bundle.contract.feature_config, as_of)
    pred = score(bundle, rows)
    return rows.join(pred).copy()  # one block per dtype: the join of a column-per-block frame


def collector_of(pred: pd.DataFrame) -> pd.Series:
    """The worklist each scored item goes on: its customer's collector, else UNASSIGNED."""
    return pred["collector"].astype("str").fillna(UNASSIGNED)


def worklist_order(pred: pd.DataFrame) -> np.ndarray:
    """Positions of the rows in worklist order: by collector, then the riskiest money first
    (expected amount at risk, then P(late)); ties keep the scoring order."""
    collector = pd.factorize(collector_of(pred), sort=True)[0]
    return np.lexsort((-pred["p_late"].to_numpy(np.float64),
                       -pred["expected_amount_at_risk"].to_numpy(np.float64), collector))


def worklists(pred: pd.DataFrame, top: int | None = None) -> dict[str, pd.DataFrame]:
    """One worklist per collector, in worklist order (worklist_order), the first `top` each."""
    if pred.empty:
        return {}
    ordered = pred.iloc[worklist_order(pred)]
    out = {}
    for collector, items in ordered.groupby(collector_of(ordered), sort=True, observed=True):
        items = items.head(top) if top else items
        items = items.assign(rank=np.arange(1, len(items) + 1))
        out[str(collector)] = items[[c for c in WORKLIST_COLUMNS if c in items.columns]]
    return out


def open_items(events: pd.DataFrame | ReplayLog, pred: pd.DataFrame, as_of: pd.Timestamp
               ) -> pd.DataFrame:
    """The scored items as a /rerank request carries them: each item's state at `as_of`
    replayed from its known events (features.pit.item_state, the code the service's own
    callers use), with the collector whose worklist holds it, in worklist order."""
    log = prepare_log(events)
    state = item_state_at(log, scoring_snapshots(log, as_of))
    position = pd.Index(state["invoice_id"]).get_indexer(pred["invoice_id"].astype("str"))
    if (position < 0).any():
        raise AssertionError("scored items and open item states disagree at "
                             f"{as_of:%Y-%m-%d}: {int((position < 0).sum())} item(s) unmatched")
    order = worklist_order(pred)
    items = state.iloc[position[order]].reset_index(drop=True)
    return items.assign(collector=collector_of(pred).iloc[order].to_numpy())


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "unassigned"


def write_scored(frame: pd.DataFrame, path: Path, meta: dict) -> Path:
    """A batch output as Parquet with the run's provenance in its metadata (module doc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[SCORING_META_KEY] = json.dumps(json_safe(meta)).encode()
    # Written aside, then renamed: a running service (or monitor) reading the newest file never
    # meets half of one.
    partial = path.with_name(f".{path.name}.partial")
    pq.write_table(table.replace_schema_metadata(md), partial)
    partial.replace(path)
    return path


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A prediction table (or the item-state file: any output of write_scored);
    df.attrs["scoring"] holds its provenance (module doc)."""
    table = pq.read_table(path)
    df = table.to_pandas()
    raw = (table.schema.metadata or {}).get(SCORING_META_KEY)
    df.attrs["scoring"] = json.loads(raw) if raw else {}
    return df


def scoring_dates(out_dir: str | Path) -> list[pd.Timestamp]:
    """The dates of the prediction tables in `out_dir`, oldest first."""
    found = []
    for p in Path(out_dir).glob(PREDICTIONS_GLOB):
        m = _DATE_RE.search(p.name)
        if m:
            found.append(pd.Timestamp(m.group(1)))
    return sorted(found)


def outputs_reconciliation(scored: Reconciliation, pred: pd.DataFrame, states: pd.DataFrame,
                           lists: dict[str, Path], top: int | None, as_of: pd.Timestamp
                           ) -> Reconciliation:
    """The invoices -> items scored table, then the items scored against what each output
    holds: the worklists' rows (less what falls beyond worklist_top) and the item states."""
    date = f"{as_of:%Y-%m-%d}"
    n = len(pred)
    per_collector = collector_of(pred).value_counts().to_numpy()
    kept = int(np.minimum(per_collector, top).sum()) if top else n
    rows = sum(len(pd.read_csv(p, usecols=["invoice_id"])) for p in lists.values())
    return combine(
        scored,
        reconcile_counts("score", f"items scored -> worklist rows as of {date}", n, rows,
                         {"beyond monitoring.worklist_top": kept - n}),
        reconcile_counts("score", f"items scored -> item states as of {date}", n,
                         len(states), {}))


def score_ledger(events: pd.DataFrame, master: pd.DataFrame | None, bundle: ModelBundle,
                 as_of, out_dir: str | Path, *, ledger: str = "default",
                 config: MonitoringConfig | None = None, tracking_uri: str | None = None,
                 log: bool = True) -> ScoringResult:
    """Score every item open at `as_of` and write the dated table, the worklists, the item
    states and the reconciliation (module doc)."""
    cfg = config or MonitoringConfig()
    as_of = pd.Timestamp(as_of)
    out_dir = Path(out_dir)
    pred = score_frame(events, master, bundle, as_of)
    fp = ledger_fingerprint(events, as_of, ledger)
    model = _model_meta(bundle)
    meta = {"as_of": as_of.isoformat(), "scored_at": pd.Timestamp.now("UTC").isoformat(),
            "ledger": fp, **model, "n_items": int(len(pred)),
            "unseen_categories": pred.attrs.get("unseen_categories", {})}
    pred = pred.assign(model_name=model["model_name"],
                       model_version=-1 if model["model_version"] is None
                       else model["model_version"],
                       ledger_hash=fp["hash"], as_of=as_of)
    path = write_scored(pred, predictions_path(out_dir, as_of), meta)
    lists = {}
    folder = out_dir / f"worklists_{as_of:%Y-%m-%d}"
    for collector, items in worklists(pred, cfg.worklist_top).items():
        folder.mkdir(parents=True, exist_ok=True)
        lists[collector] = folder / f"{_safe_name(collector)}.csv"
        items.to_csv(lists[collector], index=False)
    replayed = prepare_log(events)  # once, for the item states and the reconciliation
    states = open_items(replayed, pred, as_of)
    items_file = write_scored(states, items_path(out_dir, as_of), meta)
    recon = outputs_reconciliation(
        scoring_reconciliation(replayed, bundle.contract.feature_config, pred, as_of),
        pred, states, lists, cfg.worklist_top, as_of)
    write_reconciliation(recon, out_dir / f"reconciliation_{as_of:%Y-%m-%d}.csv")
    result = ScoringResult(as_of, pred, path, lists, meta, items_file, reconciliation=recon)
    if log:
        result.run_id = _log_scoring(result, cfg, tracking_uri)
    return result


def score_range(events: pd.DataFrame, master: pd.DataFrame | None, bundle: ModelBundle,
                start, end, out_dir: str | Path, every_days: int = 7, **options
                ) -> list[ScoringResult]:
    """Re-score every `every_days` from `start` to `end` (inclusive): a backfill."""
    dates = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=f"{every_days}D")
    return [score_ledger(events, master, bundle, d, out_dir, **options) for d in dates]


def _log_scoring(result: ScoringResult, cfg: MonitoringConfig,
                 tracking_uri: str | None) -> str:
    import mlflow  # noqa: PLC0415 - heavy, only when logging

    from training import registry  # noqa: PLC0415

    p, m = result.predictions, result.meta
    with registry.run(cfg.scoring_experiment, f"score-{result.as_of:%Y-%m-%d}",
                      tracking_uri) as active:
        registry.log_params({"as_of": m["as_of"], "model_name": m["model_name"],
                             "model_version": m["model_version"],
                             "feature_set_version": m["feature_set_version"],
                             "ledger": m["ledger"]})
        mlflow.set_tags({"ledger": m["ledger"]["name"], "ledger_hash": m["ledger"]["hash"],
                         "model_version": str(m["model_version"]), "as_of": m["as_of"][:10]})
        shares = (p["risk_class"].value_counts(normalize=True).to_dict() if len(p) else {})
        registry.log_metrics({"items": len(p),
                              "mean_p_late": float(p["p_late"].mean()) if len(p) else np.nan,
                              "amount_at_risk": float(p["expected_amount_at_risk"].sum()),
                              "open_amount": float(p["open_amount"].sum()),
                              **{f"share_{k}": v for k, v in shares.items()}})
        mlflow.log_artifact(str(result.path), artifact_path="scores")
        if result.items_path is not None:
            mlflow.log_artifact(str(result.items_path), artifact_path="scores")
        if result.worklists:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / result.path.stem.replace("predictions", "worklists")
                folder.mkdir()
                for f in result.worklists.values():
                    (folder / f.name).write_bytes(f.read_bytes())
                mlflow.log_artifacts(str(folder), artifact_path=f"scores/{folder.name}")
        return active.info.run_id


__all__ = ["ScoringResult", "score_ledger", "score_range", "score_frame", "worklists",
           "open_items", "worklist_order", "collector_of", "outputs_reconciliation",
           "read_predictions", "scoring_dates", "scores_dir", "ledger_fingerprint",
           "predictions_path", "items_path", "ITEM_COLUMNS", "UNASSIGNED"]


def score_ledger_dir(ledger_dir: str | Path, *, as_of=None, start=None, end=None,
                     every_days: int | None = None, out_dir: str | Path | None = None,
                     ledger: str | None = None, model_ref: str | int | None = None,
                     config=None, tracking_uri: str | None = None,
                     log: bool = True) -> list[ScoringResult]:
    """What `paydelay score` does: read the ledger folder, load the served model of its ledger
    (config.serving.model_ref unless `model_ref`), score one date or a range (backfill)."""
    from features.config import PaydelayConfig  # noqa: PLC0415
    from features.ingest.ledger_files import read_ledger_dir  # noqa: PLC0415
    from training import registry  # noqa: PLC0415

    cfg = config or PaydelayConfig()
    mon = getattr(cfg, "monitoring", None) or MonitoringConfig()
    files = read_ledger_dir(ledger_dir)
    name = ledger or Path(ledger_dir).resolve().name
    ref = model_ref if model_ref is not None else cfg.serving.model_ref
    bundle = registry.load_bundle(ref, cfg.training.registered_model_name, tracking_uri,
                                  ledger=name)
    out = Path(out_dir) if out_dir else scores_dir(name)
    options = {"ledger": name, "config": mon, "tracking_uri": tracking_uri, "log": log}
    if start is not None or end is not None:
        if start is None or end is None:
            raise ValueError("a backfill needs both --from and --to")
        return score_range(files.events, files.master, bundle, start, end, out,
                           every_days or mon.cadence_days, **options)
    if as_of is None:  # the ledger's own "now": its last refresh, else its newest event
        ev = files.events
        as_of = (ev["last_refresh"].max() if "last_refresh" in ev and ev["last_refresh"].notna()
                 .any() else ev["event_time"].max())
    return [score_ledger(files.events, files.master, bundle, as_of, out, **options)]
