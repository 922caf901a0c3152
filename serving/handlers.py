"""Request -> response for each endpoint, without HTTP: what the BentoML service wraps.

Each handler takes a loaded ServingModel and the validated request fields (serving.api_models),
runs the semantic checks (serving.validation), the feature path and scoring (serving.predict),
the rule strategy and the re-ranking (training.core.rules, serving.rerank), the contributions and
reasons (serving.explain, serving.reasons), and returns the response as plain JSON-ready data
shaped exactly like the response models in serving.api_models (tests validate them against the
models). Plain data, built column by column, because constructing 500 pydantic objects with their
reasons would cost more than scoring them; `to_json` serialises it (NaN -> null).

A request that must be refused raises `Refused(status, error, detail)`; the service turns it
into a JSON response with that status, in the one error shape of the API
(serving.api_models.ErrorResponse: {"error": str, "detail": [{"loc", "msg", "type"}]}).

A request may name its `ledger`: when the served model records the ledger it was trained on
(bundle.ledger, {"name", ...}) and the names differ, the request is refused with 409.

`latest_worklist` reads no request items: it answers a collector's open items from the newest
batch scoring (training.batch_score writes `items_<YYYY-MM-DD>.parquet`, the item states with
the collector of each, beside its predictions), in the /rerank request's shape, so the worklist
page re-ranks the batch exactly as it re-ranks an upload. It reads the files itself (serving
does not import batch scoring); tests/serving/test_latest_worklist.py checks that both sides
agree on the names and the folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydantic_core

from features import paths
from features.pit.columns import column_array
from features.pit.item_state import ITEM_STATE_COLUMNS
from serving.api_models import items_payload
from serving.explain import base_probability, contributions, probability_weights
from serving.model import ServingModel
from serving.predict import feature_columns, predict_columns, score_and_explain_columns
from serving.reasons import COLUMN_FEATURES, all_contributions, compile_templates, top_reasons
from serving.rerank import rerank_groups
from serving.validation import check_items, items_columns
from serving.staleness_metrics import update as staleness_update
from training.core.contract import ModelContract
from training.core.ledger import DEFAULT_LEDGER, slugify
from training.core.rules import rule_points, strategy_columns

# How batch scoring names its outputs (training.batch_score.items_path, its metadata key).
ITEMS_FILE = re.compile(r"^items_(\d{4}-\d{2}-\d{2})\.parquet$")
SCORING_META_KEY = b"paydelay.scoring"


class Refused(Exception):
    """A request the service refuses: HTTP status, a message, and per-field problems."""

    def __init__(self, status: int, error: str, detail: list[dict] | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail or []

    def body(self) -> dict:
        return error_body(self.error, self.detail)


def error_body(error: str, detail: list[dict] | None = None) -> dict:
    """The one error shape of the API."""
    return {"error": error, "detail": list(detail or [])}


def served_ledger(model: ServingModel | None) -> dict | None:
    """The ledger the served model was trained on (bundle.ledger: name, fingerprint, data
    window), or None when its bundle does not record one."""
    ledger = getattr(getattr(model, "bundle", None), "ledger", None)
    if isinstance(ledger, dict):
        return ledger or None
    name = getattr(ledger, "name", None)  # a dataclass-like ledger
    if name is not None:
        to_dict = getattr(ledger, "to_dict", None)
        return to_dict() if callable(to_dict) else {"name": name}
    return None


def ledger_refusal(model: ServingModel, ledger: str | None, container: str = "ledger"
                   ) -> Refused | None:
    """409 when the request names a ledger that is not the served model's (no refusal when the
    request names none, or the model records none)."""
    if ledger is None:
        return None
    served = served_ledger(model)
    name = None if served is None else served.get("name")
    if name is None or str(name) == ledger:
        return None
    return Refused(409, "the request's ledger is not the ledger the served model was trained "
                        "on (GET /metadata shows it)",
                   [{"loc": [container], "msg": "ledger differs from the served model's",
                     "type": "ledger_mismatch"}])


def to_json(data) -> bytes:
    """Strict JSON bytes of handler output (NaN and infinities become null)."""
    return pydantic_core.to_json(data, inf_nan_mode="null")


def resolve_as_of(as_of: datetime | None) -> datetime:
    """The request's time, or now (server local time, to the second) when it sent none."""
    return as_of if as_of is not None else datetime.now().replace(microsecond=0)


def _state(model: ServingModel, items: list, as_of: datetime, container: str = "items",
           indexed: bool = True):
    cfg = model.serving
    if len(items) > cfg.max_items:
        raise Refused(413, f"{len(items)} items exceed the limit of {cfg.max_items} per request "
                           "(ServingConfig.max_items); split the worklist")
    state = items_columns(items, ITEM_STATE_COLUMNS)
    checked = check_items(state, as_of, model.bundle.categories,
                          cfg.refuse_unknown_categories, container, indexed,
                          history_as_of=model.store.as_of)
    if checked.problems:
        raise Refused(422, f"{len(checked.problems)} invalid item field(s)",
                      [p.as_dict() for p in checked.problems])
    return checked


_DAYS = ("days_to_clear_p10", "days_to_clear_p50", "days_to_clear_p90")
_DATES = ("pay_date_p10", "pay_date_p50", "pay_date_p90")


def delay_buckets(contract: ModelContract, scored: dict, pos: np.ndarray) -> list[list[dict]]:
    """Per row, the model's delay buckets (label, from_days, to_days from the contract's bucket
    edges and grace days) with their probabilities: ScoredItem.delay_buckets."""
    heads = [(b.label, b.from_days, b.to_days) for b in contract.buckets]
    probs = np.column_stack([column_array(scored, b.column, np.float64)[pos]
                             for b in contract.buckets]).tolist()
    return [[{"label": label, "from_days": lo, "to_days": hi, "probability": p}
             for (label, lo, hi), p in zip(heads, row, strict=True)] for row in probs]


def _columns(contract: ModelContract, scored: dict, pos: np.ndarray) -> dict[str, list]:
    """ScoredItem fields (but warnings) as lists, rows taken at positions `pos` of the scored
    columns (serving.predict.score_columns)."""
    cols: dict[str, list] = {
        "invoice_id": scored["invoice_id"][pos].tolist(),
        "customer_id": scored["customer_id"][pos].tolist(),
        "p_late": column_array(scored, "p_late", np.float64)[pos].tolist(),
        "p_very_late": column_array(scored, "p_very_late", np.float64)[pos].tolist(),
        "delay_buckets": delay_buckets(contract, scored, pos),
    }
    cols["risk_class"] = scored["risk_class"][pos].tolist()
    for name in _DAYS:
        cols[name] = column_array(scored, name, np.float64)[pos].tolist()
    for name in _DATES:
        days = column_array(scored, name, "datetime64[D]")[pos]
        cols[name] = np.where(np.isnat(days), None, days.astype(str)).tolist()
    cols["expected_amount_at_risk"] = column_array(
        scored, "expected_amount_at_risk", np.float64)[pos].tolist()
    cols["cold_start"] = column_array(scored, "cold_start", bool)[pos].tolist()
    return cols


def _records(cols: dict[str, list], n: int) -> list[dict]:
    names = list(cols)
    return [dict(zip(names, values)) for values in zip(*(cols[k] for k in names))] if n else []


def model_info(model: ServingModel) -> dict:
    info = model.info
    store_as_of = info.get("store_as_of")
    return {"registered_model": info.get("registered_model"), "version": info.get("version"),
            "aliases": list(info.get("aliases") or []), "run_id": info.get("run_id"),
            "feature_set_version": info.get("feature_set_version"),
            "store_as_of": None if store_as_of is None else pd.Timestamp(store_as_of).isoformat(),
            "ledger": (served_ledger(model) or {}).get("name")}


@dataclass
class Job:
    """One request's fields: several jobs can be scored in one pass (serving.batching)."""

    as_of: datetime | None
    items: list
    capacity: int | None = None
    ledger: str | None = None


@dataclass
class _Batch:
    """The valid jobs of a batch scored together: their rows, one after the other."""

    jobs: list  # (job index, as_of) of the valid jobs
    scored: dict  # column arrays (serving.predict.score_columns)
    X: np.ndarray
    bounds: np.ndarray  # row range of valid job k: bounds[k]:bounds[k + 1]
    warnings: list  # per row
    phi: np.ndarray | None = None  # the rows' SHAP values (when asked to explain)


def _score_batch(model: ServingModel, jobs: list[Job], explain: bool = False
                 ) -> tuple[list, _Batch | None]:
    """Validate each job (a refusal stays with its job), then score all valid items at once:
    features at each item's own as_of, one model matrix, one pass of every booster. The items of
    all jobs are converted and checked together too: per-request costs are what batching saves.
    explain: also the contributions of every row (reasons), computed beside the boosters.
    """
    cfg = model.serving
    results: list = [None] * len(jobs)
    times = [resolve_as_of(job.as_of) for job in jobs]
    ok = []
    for j, job in enumerate(jobs):
        refusal = ledger_refusal(model, job.ledger)
        if refusal is not None:
            results[j] = refusal
        elif len(job.items) > cfg.max_items:
            results[j] = Refused(413, f"{len(job.items)} items exceed the limit of "
                                      f"{cfg.max_items} per request (ServingConfig.max_items); "
                                      "split the worklist")
        else:
            ok.append(j)
    if not ok:
        return results, None
    sizes = np.array([len(jobs[j].items) for j in ok])
    group = np.repeat(np.arange(len(ok)), sizes)
    state = items_columns([it for j in ok for it in jobs[j].items], ITEM_STATE_COLUMNS)
    row_t = np.repeat(np.array([np.datetime64(pd.Timestamp(times[j]).as_unit("us"))
                                for j in ok], dtype="datetime64[us]"), sizes)
    checked = check_items(state, row_t, model.bundle.categories, cfg.refuse_unknown_categories,
                          groups=group, history_as_of=model.store.as_of)
    bad = sorted({p.group for p in checked.problems})
    for g in bad:
        problems = [p.as_dict() for p in checked.problems if p.group == g]
        results[ok[g]] = Refused(422, f"{len(problems)} invalid item field(s)", problems)
    keep = ~np.isin(group, bad)
    if not keep.any():
        return results, None
    if not keep.all():
        state = {name: values[keep] for name, values in state.items()}
        row_t, group = row_t[keep], group[keep]
    warnings = [w for w, k in zip(checked.warnings, keep) if k]
    valid = [(ok[g], times[ok[g]]) for g in range(len(ok)) if g not in bad]
    sizes = np.array([int(s) for g, s in enumerate(sizes) if g not in bad])
    cols = feature_columns(model, state, row_t)
    scored, X, phi = score_and_explain_columns(model, cols, explain=explain)
    scored["request"] = np.repeat(np.arange(len(valid)), sizes)  # rule groups stay per request
    return results, _Batch(valid, scored, X, np.concatenate([[0], np.cumsum(sizes)]),
                           warnings, phi)


def score_many(model: ServingModel, jobs: list[Job]) -> list:
    """ScoreResponse data (or a Refused) per job, items in request order."""
    results, batch = _score_batch(model, jobs)
    if batch is None:
        return results
    n = len(batch.X)
    cols = _columns(model.contract, batch.scored, np.arange(n))
    info = model_info(model)
    cols["warnings"] = batch.warnings
    for k, (j, t) in enumerate(batch.jobs):
        lo, hi = batch.bounds[k], batch.bounds[k + 1]
        part = {name: values[lo:hi] for name, values in cols.items()}
        results[j] = {"as_of": t.isoformat(), "model": info, "items": _records(part, hi - lo)}
    return results


def rule_frame(scored: dict, strategy, group_keys: tuple[str, ...]) -> pd.DataFrame:
    """The scored columns a rule strategy reads (training.core.rules.strategy_columns), as the
    frame rule_points takes: it valuates them exactly as the whole rows, without building a
    frame of every feature."""
    needed = strategy_columns(strategy, group_keys)
    return pd.DataFrame({c: (pd.Series(scored[c], dtype=object)  # ids: no str conversion
                             if scored[c].dtype == object else scored[c])
                         for c in needed if c in scored}, copy=False)


def rerank_many(model: ServingModel, jobs: list[Job]) -> list:
    """RerankResponse data (or a Refused) per job: items from rank 1 down, the rule strategy's
    priority and rank beside each, top reasons each. The rule strategy is the served model's
    (its contract), the one it was trained and judged against."""
    results, batch = _score_batch(model, jobs, explain=True)
    if batch is None:
        return results
    scored = batch.scored
    keys = ("customer_id", "request")
    rules = rule_points(rule_frame(scored, model.rules, keys), model.rules, group_keys=keys)
    capacities = [jobs[j].capacity for j, _ in batch.jobs]
    order, summaries = rerank_groups(scored, rules, scored["request"], capacities)
    pos = order["position"].to_numpy()
    phi = batch.phi[pos]
    cols = _columns(model.contract, scored, pos)
    cols["warnings"] = [batch.warnings[i] for i in pos]
    cols["rank"] = order["rank"].tolist()
    cols["in_capacity"] = order["in_capacity"].tolist()
    cols["open_amount"] = column_array(scored, "open_amount", np.float64)[pos].tolist()
    cols["days_overdue"] = column_array(scored, "days_overdue", np.float64)[pos].tolist()
    cols["rule_priority"] = order["rule_priority"].tolist()
    cols["rule_points"] = order["rule_points"].tolist()
    cols["rule_rank"] = order["rule_rank"].tolist()
    cols["rules_hit"] = order["rules_hit"].tolist()
    # reasons explain the ranking probability; days overdue is a column, not a reason
    cols["reasons"] = top_reasons(phi[:, :-1], scored, list(model.feature_names),
                                  templates(model), model.serving.n_reasons, positions=pos,
                                  weights=probability_weights(model, phi, ranking_p(model,
                                                                                    scored)[pos]),
                                  leave_out=COLUMN_FEATURES)
    info = model_info(model)
    for k, (j, t) in enumerate(batch.jobs):
        lo, hi = batch.bounds[k], batch.bounds[k + 1]
        part = {name: values[lo:hi] for name, values in cols.items()}
        results[j] = {"as_of": t.isoformat(), "model": info, "summary": summaries[k],
                      "items": _records(part, hi - lo)}
    return results


def _one(result):
    if isinstance(result, Refused):
        raise result
    return result


def handle_score(model: ServingModel, as_of: datetime | None, items: list,
                 ledger: str | None = None) -> dict:
    """ScoreResponse data: each item scored, in request order."""
    return _one(score_many(model, [Job(as_of, items, ledger=ledger)])[0])


def handle_rerank(model: ServingModel, as_of: datetime | None, items: list,
                  capacity: int | None = None, ledger: str | None = None) -> dict:
    """RerankResponse data: items from rank 1 down, rule order beside, top reasons each."""
    return _one(rerank_many(model, [Job(as_of, items, capacity, ledger)])[0])


def ranking_p(model: ServingModel, scored: dict) -> np.ndarray:
    """The probability the explained model gives and the order reads: p_very_late (P(late)
    for a bundle without a very-late model, whose explainer is the risk model's)."""
    name = "p_very_late" if model.bundle.very_late is not None else "p_late"
    return column_array(scored, name, np.float64)


def templates(model: ServingModel):
    """The model's sentence templates, compiled once per loaded model."""
    cached = getattr(model, "_templates", None)
    if cached is None:
        cached = compile_templates(model.specs())
        model._templates = cached
    return cached


def handle_explain(model: ServingModel, as_of: datetime | None, item,
                   ledger: str | None = None) -> dict:
    """ExplainResponse data: the item scored, every contribution, base value, sentences."""
    refusal = ledger_refusal(model, ledger)
    if refusal is not None:
        raise refusal
    t = resolve_as_of(as_of)
    checked = _state(model, [item], t, container="item", indexed=False)
    scored, X = predict_columns(model, checked.state, t)
    phi = contributions(model, X)
    weights = probability_weights(model, phi, ranking_p(model, scored))
    contribs = all_contributions(phi[0, :-1], scored, list(model.feature_names),
                                 templates(model), weights[0])
    record = _records(_columns(model.contract, scored, np.arange(1)), 1)[0]
    record["warnings"] = checked.warnings[0]
    base = float(phi[0, -1])
    return {"as_of": t.isoformat(), "model": model_info(model), "item": record,
            "base_value": base, "raw_log_odds": base + float(phi[0, :-1].sum()),
            "base_probability": base_probability(model, base),
            "contributions": contribs,
            # the same reasons /rerank gives (linked features merged, see serving.reasons)
            "sentences": [r["sentence"] for r in top_reasons(
                phi[:, :-1], scored, list(model.feature_names), templates(model),
                k=model.serving.n_reasons, weights=weights, leave_out=COLUMN_FEATURES)[0]]}


def scores_folder(model: ServingModel, configured: str | Path | None) -> Path:
    """Where batch scoring writes: the configured folder (ServingConfig.scores_dir or
    $PAYDELAY_SCORES_DIR), else its default for the served model's ledger,
    data/processed/<ledger>/scores (training.batch_score.scores_dir)."""
    if configured:
        return Path(configured)
    name = (served_ledger(model) or {}).get("name") or DEFAULT_LEDGER
    return paths.PROCESSED / slugify(str(name)) / "scores"


def latest_items_file(folder: Path) -> Path | None:
    """The newest batch's item states in `folder` (by the date in the name), or None."""
    dated = sorted((found[1], path) for path in folder.glob("items_*.parquet")
                   if (found := ITEMS_FILE.match(path.name)))
    return dated[-1][1] if dated else None


def _batch_facts(path: Path) -> tuple[str, str | None]:
    """(as_of, ledger name) of a batch file, from its provenance (the name's date without it)."""
    raw = (pq.read_schema(path).metadata or {}).get(SCORING_META_KEY)
    meta = json.loads(raw) if raw else {}
    as_of = meta.get("as_of") or ITEMS_FILE.match(path.name)[1]
    return pd.Timestamp(as_of).isoformat(), (meta.get("ledger") or {}).get("name")


def latest_worklist(model: ServingModel, collector: str | None,
                    folder: str | Path | None = None) -> dict:
    """LatestWorklistResponse data: the newest batch's as_of, ledger and collectors and, when a
    collector is named, that collector's open items in the batch's order (the first max_items):
    what /rerank takes. A collector the batch does not list has nothing open in it: an empty
    worklist (the collectors beside it show a misspelt name). 404 when the folder holds no
    batch."""
    where = scores_folder(model, folder)
    path = latest_items_file(where)
    if path is None:
        raise Refused(404, "no batch-scored worklist yet: batch scoring (paydelay score) writes "
                           "one to the service's scores folder (ServingConfig.scores_dir or "
                           "$PAYDELAY_SCORES_DIR); upload the worklist file meanwhile")
    as_of, ledger = _batch_facts(path)
    collectors = pq.read_table(path, columns=["collector"]).column("collector")
    names = sorted(str(c) for c in collectors.unique().to_pylist() if c is not None)
    answer = {"as_of": as_of, "ledger": ledger, "collectors": names, "collector": collector,
              "n_items": 0, "items": []}
    if collector is None or collector not in names:
        return answer
    rows = pq.read_table(path, columns=list(ITEM_STATE_COLUMNS),
                         filters=[("collector", "==", collector)]).to_pandas()
    return {**answer, "n_items": len(rows),
            "items": items_payload(rows.head(model.serving.max_items))}


def metadata(model: ServingModel | None, loading_error: str | None = None,
             loading: dict | None = None) -> dict:
    """What is served: versions, training window, headline metrics, feature set, limits, the
    ledger. Not ready: `error` is a category the service chose (loading_error), never an
    exception's text (/metadata is open), and `loading` the retry state."""
    if model is None:
        return {"ready": False, "error": loading_error, **({"loading": loading} if loading
                                                           else {})}
    b = model.bundle
    contract = model.contract
    cfg = model.serving
    return {
        "ready": True,
        "model": model_info(model),
        "ledger": served_ledger(model),
        "model_ref": model.info.get("model_ref"),
        "feature_set_version": b.feature_set_version,
        "features": list(contract.feature_names),
        "training_window": b.training_window,
        "metrics": b.metrics,
        "risk_class_cutoffs": list(contract.risk_class_cutoffs),
        "grace_days": contract.grace_days,
        "bucket_edges": list(contract.bucket_edges),
        "delay_buckets": [bucket.to_dict() for bucket in contract.buckets],
        "very_late_buckets": list(contract.very_late),
        "very_late_days": contract.very_late_days,
        "p_very_late_label": contract.very_late_label,
        "ranking_model": "very_late" if b.very_late is not None else "risk",
        "payment_anchor": contract.payment_anchor,
        "store": {"as_of": None if model.store.as_of is None else model.store.as_of.isoformat(),
                  "n_customers": model.store.n_customers},
        "staleness": staleness_update(model),  # serving.staleness_metrics (gauges too)
        "explainer": "tabulated TreeSHAP" if model.explainer is not None else "pred_contrib",
        "rule_strategy": model.rules.name,
        "limits": {"max_items": cfg.max_items, "max_body_bytes": cfg.max_body_bytes,
                   "n_reasons": cfg.n_reasons,
                   "refuse_unknown_categories": cfg.refuse_unknown_categories},
    }


__all__ = ["Refused", "Job", "error_body", "served_ledger", "ledger_refusal", "score_many",
           "rerank_many", "handle_score", "handle_rerank", "handle_explain", "metadata",
           "resolve_as_of", "to_json", "model_info", "templates", "rule_frame", "delay_buckets",
           "latest_worklist", "latest_items_file", "scores_folder", "ITEMS_FILE"]
