"""One evaluation report: model, every baseline, rule strategy and oracle on ONE holdout.

`evaluate(holdout_rows, predictions, cfg, truth=None, train_rows=None, caveats=...)` scores every
prediction frame on the same rows with the same code (training.metrics), adds
- the baselines (training.baselines) that `predictions` lacks, when `train_rows` is given;
- the SAP-style rule strategy (training.core.rules) as a ranking-only scorer (`risk_score` =
  percent / 100: ROC-AUC and PR-AUC, no calibration metrics);
- the oracle line on simulated data (`truth`: oracle_p_late per invoice, the latent probability
  at posting): scored on the same rows, and again on posting rows only, where it is the real
  truth and the fair yardstick;
and then the slices (training.slices) and the worklist backtest (training.backtest).

The result is an `EvaluationReport` of DataFrames plus a `headline` dict, written to Markdown
(`to_markdown`) or JSON (`to_json`); `headline_table()` is the side-by-side table to print.
`model_card(report, ...)` renders a model card in Markdown.

`headline_table(metrics, window, report)` is THE headline of a model (the one table `paydelay
train`, `paydelay evaluate` and the demo print): the figures at posting first (each invoice as
posted, before anything is known: the decision a collector faces), then over all snapshot rows
(later snapshots of open items, some already overdue, so their lateness is decided - easier, and
labelled so), with a caption giving the test window and why the evaluation report's holdout table
shows other figures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from features.config.evaluation import EvaluationConfig
from features.config.rules import RuleStrategyConfig
from training.backtest import worklist_backtest
from training.baselines import BASELINE_NAMES, fit_baselines
from training.core.rules import days_to_due, describe_strategy, rule_points
from training.metrics import evaluate_predictions, reliability_table, risk_mask
from training.slices import DERIVED_SLICES, slice_metrics

RULE_SCORER = "rule_strategy"
ORACLE_SCORER = "oracle"
HEADLINE_COLUMNS = ("scorer", "kind", "roc_auc", "pr_auc", "brier", "log_loss", "ece",
                    "ece_mass", "mae_days", "median_ae_days", "coverage_p10_p90",
                    "capture_share", "ratio_to_rule")


@dataclass
class EvaluationReport:
    """Every table of one evaluation; DataFrames so that callers log, print or plot them."""

    headline: dict
    scorers: pd.DataFrame  # one row per scorer: every metric (the side-by-side table)
    reliability: pd.DataFrame  # scorer, bin, lower, upper, n, mean_predicted, observed_rate
    slices: pd.DataFrame  # slice, value, scorer, metrics
    backtest: pd.DataFrame  # capacity, order, captured_amount, share_captured, ratio_to_rule
    backtest_per_period: pd.DataFrame
    oracle: pd.DataFrame | None  # scope, model vs oracle ROC-AUC / Brier, ratios
    strategy: pd.DataFrame  # the rule strategy used, as a table
    caveats: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def headline_table(self) -> pd.DataFrame:
        """Model vs baselines vs rule vs oracle: the columns worth printing (e.g. with rich)."""
        cols = [c for c in HEADLINE_COLUMNS if c in self.scorers]
        return self.scorers[cols].reset_index(drop=True)

    def to_dict(self) -> dict:
        def records(df: pd.DataFrame | None):
            if df is None:
                return None
            return json.loads(df.to_json(orient="records", date_format="iso"))

        return {
            "headline": _jsonable(self.headline),
            "meta": _jsonable(self.meta),
            "caveats": list(self.caveats),
            "scorers": records(self.scorers),
            "reliability": records(self.reliability),
            "slices": records(self.slices),
            "backtest": records(self.backtest),
            "backtest_per_period": records(self.backtest_per_period),
            "oracle": records(self.oracle),
            "strategy": records(self.strategy),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self) -> str:
        h = self.headline
        lines = [f"# Evaluation report: {h.get('model_name', 'model')}", ""]
        lines += [f"Holdout: {h['n_rows']} rows, {h['n_scored']} with a known outcome "
                  f"({h['n_censored_excluded']} censored rows excluded from the metrics)."]
        if self.meta.get("holdout_window"):
            lines += [f"Window: {self.meta['holdout_window'][0]} to "
                      f"{self.meta['holdout_window'][1]}."]
        lines += ["", "## Headline", ""]
        lines += [f"- **{k}**: {_fmt(v)}" for k, v in h.items()
                  if k not in ("model_name", "n_rows", "n_scored", "n_censored_excluded")]
        lines += ["", "## Model vs baselines (same holdout)", "",
                  _md_table(self.headline_table()), ""]
        lines += ["Rule strategy scores are a ranking (percentage of points), so only ROC-AUC "
                  "and PR-AUC apply. ECE uses equal-width bins; ece_mass equal-mass bins.", ""]
        if self.oracle is not None:
            lines += ["## Oracle (simulated data)", "", _md_table(self.oracle), ""]
        lines += [f"## Worklist backtest ({self.meta.get('backtest_period', '')} worklists)", "",
                  _md_table(self._backtest_view()), "",
                  "share_top_K: share of the overdue amount later paid > "
                  f"{self.meta.get('backtest_late_days', 30)} days late or written off that "
                  "falls in the top K items; vs_rule_top_K: captured amount / the rule "
                  "strategy's; hindsight is the best any order could do.", ""]
        lines += ["## Slices", "", _md_table(self._slice_view()), ""]
        lines += ["## Reliability (equal-width bins)", "",
                  _md_table(self.reliability[self.reliability["n"] > 0]), ""]
        lines += [f"## Rule strategy {self.meta.get('rule_strategy', '')}", "",
                  _md_table(self.strategy), ""]
        if self.caveats:
            lines += ["## Caveats", ""] + [f"- {c}" for c in self.caveats] + [""]
        return "\n".join(lines)

    def _slice_view(self) -> pd.DataFrame:
        """One row per slice value: ROC-AUC of every scorer, then the model's other metrics."""
        sl = self.slices
        if sl.empty or "roc_auc" not in sl:
            return sl
        model = self.headline.get("model_name", "model")
        auc = sl.pivot_table(index=["slice", "value"], columns="scorer", values="roc_auc",
                             sort=False, dropna=False)
        auc = auc[[c for c in self.scorers["scorer"] if c in auc]].add_prefix("auc_")
        mine = sl[sl["scorer"] == model].set_index(["slice", "value"])
        keep = [c for c in ("n", "late_rate", "brier", "ece", "mae_days", "coverage_p10_p90",
                            "small_sample") if c in mine]
        return mine[keep].join(auc).reset_index()

    def _backtest_view(self) -> pd.DataFrame:
        """Share of the at-risk amount captured: one row per ordering, one column per K."""
        bt = self.backtest
        if bt.empty:
            return bt
        share = bt.pivot_table(index="order", columns="capacity", values="share_captured",
                               sort=False)
        share.columns = [f"share_top_{k}" for k in share.columns]
        ratio = bt.pivot_table(index="order", columns="capacity", values="ratio_to_rule",
                               sort=False)
        ratio.columns = [f"vs_rule_top_{k}" for k in ratio.columns]
        return share.join(ratio).reset_index()


@dataclass
class HeadlineTable:
    """The headline: a title, one row per scope (at posting first) and caption lines."""

    title: str
    frame: pd.DataFrame
    caption: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        return "\n".join([f"## {self.title}", "", _md_table(self.frame), "",
                          *[f"- {c}" for c in self.caption], ""])

    def to_text(self) -> str:
        """Plain text (logs, tests): the title, the table and the caption."""
        return "\n".join([self.title, self.frame.to_string(index=False), *self.caption])


HEADLINE_SCOPES = {
    "at posting": ("risk_posting", "payment_posting"),
    "all snapshot rows": ("risk", "payment"),
}


def _day(value) -> str:
    return f"{pd.Timestamp(value):%Y-%m-%d}" if value not in (None, "", "None") else "?"


def holdout_note(report: EvaluationReport) -> str:
    """Why the evaluation report's holdout table (model against every baseline) shows other
    figures than the headline's all-snapshot line: it scores other rows."""
    h = report.headline
    return (f"The holdout report scores the {h['n_scored']} test rows whose outcome is known by "
            f"the test end (cleared or written off; items still open then are left out), so its "
            f"ROC-AUC {h['roc_auc']:.3f} and ECE {h['ece']:.4f} differ from the headline's "
            "'all snapshot rows' line, which counts a still-open overdue item as late.")


def headline_table(metrics: dict, window: dict | None = None,
                   report: EvaluationReport | None = None, *,
                   ledger: dict | None = None) -> HeadlineTable:
    """The headline table of maturity-aware metrics (training.pipeline.headline_metrics).

    window: the split cut-offs (start, train_end, calibration_end, test_end, fit_end); report:
    the evaluation report of the same test slice, whose holdout table the caption reconciles."""
    def val(scope: str, key: str):
        v = (metrics.get(scope) or {}).get(key)
        return float(v) if isinstance(v, (int, float, np.number)) and v is not None else np.nan

    recs = []
    for label, (risk, pay) in HEADLINE_SCOPES.items():
        recs.append({
            "scope": label, "rows": int(val(risk, "n")) if np.isfinite(val(risk, "n")) else 0,
            "late share": val(risk, "late_rate"), "ROC-AUC": val(risk, "roc_auc"),
            "PR-AUC": val(risk, "pr_auc"), "Brier": val(risk, "brier"), "ECE": val(risk, "ece"),
            "AUC / oracle": val(risk, "auc_ratio_to_oracle"),
            "P50 MAE days": val(pay, "mae_days"),
            "baseline MAE days": val(pay, "baseline_mae_days"),
        })
    frame = pd.DataFrame.from_records(recs)
    frame = frame[[c for c in frame.columns
                   if c in ("scope", "rows") or frame[c].notna().any()]]
    cap = []
    w = window or {}
    if w.get("test_end"):
        cap.append(f"Test window {_day(w.get('calibration_end'))} .. {_day(w.get('test_end'))} "
                   f"(snapshots after the calibration end). Trained on snapshots "
                   f"{_day(w.get('start'))} .. {_day(w.get('train_end'))}, calibrated on "
                   f".. {_day(w.get('calibration_end'))}"
                   + (f", final models fitted on data up to {_day(w['fit_end'])}"
                      if w.get("fit_end") else "") + ".")
    cap.append("At posting: one row per invoice as it is posted, before any payment, dunning "
               "or dispute - the decision a collector faces. All snapshot rows adds the later "
               "snapshots of open items, some already overdue (their lateness is decided), "
               "which flatters ROC-AUC.")
    cap.append("Rows: those whose late flag is decided by the test end (an item still open past "
               "its due date counts as late); P50 MAE on rows watched for the full horizon, "
               "baseline = the customer's historical average delay.")
    ece = metrics.get("risk") or {}
    if ece.get("ece_lo") is not None and ece.get("ece_hi") is not None:
        cap.append(f"ECE (all snapshot rows) could move within {ece['ece_lo']:.4f} .. "
                   f"{ece['ece_hi']:.4f} on another draw of as many invoices (invoice "
                   "bootstrap).")
    cov = metrics.get("interval") or {}
    if cov.get("coverage_p10_p90") is not None:
        cap.append(f"P10-P90 interval coverage {cov['coverage_p10_p90']:.3f} on "
                   f"{cov.get('n_coverage', '?')} rows where it is decidable.")
    if report is not None:
        cap.append(holdout_note(report))
    title = "Headline (test window)"
    if ledger and ledger.get("name"):
        title = f"Headline: ledger {ledger['name']} (test window)"
    return HeadlineTable(title, frame, cap)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) or math.isinf(obj) else float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(obj))
    return obj


def _fmt(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)):
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:.4g}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    return str(v)


def _md_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency)."""
    if df is None or df.empty:
        return "_(empty)_"
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):  # a rendering loop over a small summary table
        out.append("| " + " | ".join(_fmt(v).replace("|", "/") for v in row) + " |")
    return "\n".join(out)


def _configs(cfg) -> tuple[EvaluationConfig, RuleStrategyConfig, int, int]:
    if isinstance(cfg, PaydelayConfig):
        return cfg.evaluation, cfg.rule_strategy, cfg.features.grace_days, cfg.seed
    return (cfg or EvaluationConfig()), RuleStrategyConfig(), 0, 0


def oracle_predictions(rows: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The simulator's latent truth as a prediction frame: p_late and (if known) the P50 date.

    oracle_expected_delay_days is read as days after the net due date.
    """
    missing = [c for c in ("invoice_id", "oracle_p_late") if c not in truth]
    if missing:
        raise KeyError(f"truth lacks column(s) {missing}")
    t = truth.drop_duplicates("invoice_id").set_index("invoice_id")
    p = rows["invoice_id"].map(t["oracle_p_late"]).astype("float64")
    if p.isna().any():
        bad = rows.loc[p.isna(), "invoice_id"].iloc[0]
        raise ValueError(f"truth has no oracle_p_late for {int(p.isna().sum())} holdout row(s), "
                         f"e.g. invoice {bad}")
    out = pd.DataFrame({"p_late": p.to_numpy()}, index=rows.index)
    if "oracle_expected_delay_days" in t:
        delay = rows["invoice_id"].map(t["oracle_expected_delay_days"]).astype("float64")
        out["days_to_clear_p50"] = np.maximum(days_to_due(rows).to_numpy() + delay.to_numpy(), 0)
    out["expected_amount_at_risk"] = rows["open_amount"].to_numpy(dtype="float64") * out["p_late"]
    return out


def _oracle_table(rows, preds, model_name) -> pd.DataFrame:
    known = risk_mask(rows)
    scopes = {"all rows": np.ones(len(rows), dtype=bool)}
    if "snapshot_kind" in rows:
        scopes["posting rows"] = (rows["snapshot_kind"] == "posting").fillna(False).to_numpy(
            dtype=bool)
    recs = []
    for scope, sel in scopes.items():
        sub = rows.loc[sel]
        m = evaluate_predictions(sub, preds[model_name].loc[sel], name=model_name)
        o = evaluate_predictions(sub, preds[ORACLE_SCORER].loc[sel], name=ORACLE_SCORER)
        recs.append({
            "scope": scope, "n": int((known & sel).sum()),
            "model_roc_auc": m.get("roc_auc"), "oracle_roc_auc": o.get("roc_auc"),
            "ratio_model_oracle_roc_auc": _ratio(m.get("roc_auc"), o.get("roc_auc")),
            "model_brier": m.get("brier"), "oracle_brier": o.get("brier"),
        })
    return pd.DataFrame.from_records(recs)


def _ratio(a, b) -> float:
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return float("nan")
    return float(a / b)


def _check_predictions(rows: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> None:
    if not predictions:
        raise ValueError("evaluate needs at least one prediction frame")
    if not rows.index.is_unique:
        raise ValueError("holdout rows need a unique index (predictions are aligned on it)")
    for name, pred in predictions.items():
        if len(pred) != len(rows) or not pred.index.equals(rows.index):
            raise ValueError(f"predictions {name!r}: {len(pred)} rows not aligned with the "
                             f"{len(rows)} holdout rows (same index expected)")
        if "p_late" not in pred and "risk_score" not in pred and "days_to_clear_p50" not in pred:
            raise ValueError(f"predictions {name!r} hold none of p_late, risk_score, "
                             "days_to_clear_p50")


def evaluate(holdout_rows: pd.DataFrame, predictions: dict[str, pd.DataFrame],
             cfg: PaydelayConfig | EvaluationConfig | None = None,
             truth: pd.DataFrame | None = None, *, train_rows: pd.DataFrame | None = None,
             caveats: list[str] | tuple[str, ...] = (), model_name: str | None = None,
             rule_cfg: RuleStrategyConfig | None = None,
             seed: int | None = None) -> EvaluationReport:
    """Score the model, every baseline, the rule strategy and the oracle on the same holdout.

    predictions: name -> frame index-aligned with holdout_rows (model output columns). The model
    is `model_name` (default: the first key). Baselines missing from `predictions` are fitted on
    `train_rows` when given. `truth` (simulated data) adds the oracle scorer.
    """
    ev, default_rules, grace, cfg_seed = _configs(cfg)
    rule_cfg = rule_cfg or default_rules
    seed = cfg_seed if seed is None else seed
    rows = holdout_rows
    _check_predictions(rows, predictions)
    preds = dict(predictions)
    model_name = model_name or next(iter(preds))
    if model_name not in preds:
        raise KeyError(f"model {model_name!r} is not among the predictions {list(preds)}")

    if train_rows is not None:
        missing = [b for b in BASELINE_NAMES if b not in preds]
        if missing:
            fitted = fit_baselines(train_rows, cfg if cfg is not None else ev, grace)
            preds |= {b: fitted[b].predict(rows) for b in missing}
    scored_rules = rule_points(rows, rule_cfg)
    preds[RULE_SCORER] = pd.DataFrame({
        "risk_score": scored_rules["percent"] / 100.0,
        "priority": scored_rules["priority"], "points": scored_rules["points"],
    }, index=rows.index)
    if truth is not None:
        preds[ORACLE_SCORER] = oracle_predictions(rows, truth)

    bt_preds = {k: v for k, v in preds.items() if k not in (RULE_SCORER, ORACLE_SCORER)}
    bt = worklist_backtest(rows, bt_preds, ev, rule_cfg=rule_cfg, truth=truth, seed=seed,
                           bucket_edges=(cfg.features.bucket_edges
                                         if isinstance(cfg, PaydelayConfig) else None))
    k_head = (ev.headline_capacity if ev.headline_capacity in ev.backtest_capacities
              else ev.backtest_capacities[0])
    bt_head = bt.summary[bt.summary["capacity"] == k_head].set_index("order")

    known = risk_mask(rows)
    recs, rel = [], []
    for name, pred in preds.items():
        rec = {"scorer": name, "kind": _kind(name, model_name)}
        rec |= evaluate_predictions(rows, pred, n_bins=ev.ece_bins, quantiles=ev.quantiles,
                                    exclude_written_off=ev.date_metrics_exclude_written_off,
                                    name=name)
        bt_name = name if name in bt_head.index else None
        rec["capture_share"] = (float(bt_head.loc[bt_name, "share_captured"]) if bt_name
                                else float("nan"))
        rec["ratio_to_rule"] = (float(bt_head.loc[bt_name, "ratio_to_rule"]) if bt_name
                                else float("nan"))
        recs.append(rec)
        if "p_late" in pred and known.any():
            table = reliability_table(rows["label_late"].to_numpy(dtype="float64")[known],
                                      pred["p_late"].to_numpy(dtype="float64")[known],
                                      ev.ece_bins, "uniform")
            rel.append(table.assign(scorer=name))
    scorers = pd.DataFrame.from_records(recs)
    reliability = (pd.concat(rel, ignore_index=True)[["scorer"] + list(rel[0].columns[:-1])]
                   if rel else pd.DataFrame())
    # A source without e.g. customer segments (external data) loses that slice, not the report.
    present = tuple(c for c in ev.slice_columns if c in rows or c in DERIVED_SLICES)
    absent = [c for c in ev.slice_columns if c not in present]
    slices = slice_metrics(rows, preds, ev, slice_columns=present)
    oracle = _oracle_table(rows, preds, model_name) if truth is not None else None

    model_rec = scorers.set_index("scorer").loc[model_name]
    baseline_recs = scorers[scorers["kind"] == "baseline"]
    headline = {
        "model_name": model_name,
        "n_rows": int(len(rows)),
        "n_scored": int(known.sum()),
        "n_censored_excluded": int((~known).sum()),
        **{m: float(model_rec.get(m, float("nan"))) for m in
           ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "ece_mass", "mae_days",
            "median_ae_days", "coverage_p10_p90")},
        "best_baseline_roc_auc": (float(baseline_recs["roc_auc"].max())
                                  if "roc_auc" in baseline_recs and len(baseline_recs)
                                  else float("nan")),
        "rule_strategy_roc_auc": float(scorers.set_index("scorer").loc[RULE_SCORER, "roc_auc"]),
        "backtest_capacity": int(k_head),
        "model_capture_share": _lookup(bt_head, model_name, "share_captured"),
        "rule_capture_share": _lookup(bt_head, RULE_SCORER, "share_captured"),
        "ratio_model_rule": _lookup(bt_head, model_name, "ratio_to_rule"),
    }
    if oracle is not None:
        for _, r in oracle.iterrows():  # two scopes
            suffix = "" if r["scope"] == "all rows" else "_posting"
            headline[f"oracle_roc_auc{suffix}"] = float(r["oracle_roc_auc"])
            headline[f"ratio_model_oracle_roc_auc{suffix}"] = float(
                r["ratio_model_oracle_roc_auc"])

    all_caveats = list(caveats)
    if absent:
        all_caveats.append(f"Slices {absent} skipped: the holdout rows have no such column.")
    if headline["n_censored_excluded"]:
        all_caveats.append(
            f"{headline['n_censored_excluded']} holdout rows have no known outcome yet "
            "(censored) and are excluded from every metric; the backtest also left out "
            f"{bt.n_unknown_excluded} overdue items whose outcome is unknown.")
    if truth is not None:
        all_caveats.append(
            "The oracle's oracle_p_late is the latent probability at posting: on later snapshot "
            "rows it ignores what is known at t, so compare with the model on posting rows.")
    n_small = int(slices["small_sample"].sum()) if "small_sample" in slices else 0
    if n_small:
        all_caveats.append(f"{n_small} slice rows rest on fewer than {ev.min_slice_rows} "
                           "known outcomes (flagged small_sample).")

    meta = {
        "model_name": model_name, "seed": seed, "rule_strategy": rule_cfg.name,
        "backtest_period": ev.backtest_period, "backtest_late_days": ev.backtest_late_days,
        "backtest_capacities": list(ev.backtest_capacities),
        "holdout_window": ([str(rows["snapshot_time"].min()), str(rows["snapshot_time"].max())]
                           if "snapshot_time" in rows and len(rows) else None),
        "feature_set_version": (str(rows["feature_set_version"].iloc[0])
                                if "feature_set_version" in rows and len(rows) else None),
        "scorers": list(preds),
    }
    return EvaluationReport(headline, scorers, reliability, slices, bt.summary, bt.per_period,
                            oracle, describe_strategy(rule_cfg), all_caveats, meta)


def _kind(name: str, model_name: str) -> str:
    if name == model_name:
        return "model"
    if name in BASELINE_NAMES:
        return "baseline"
    if name == RULE_SCORER:
        return "rule"
    if name == ORACLE_SCORER:
        return "oracle"
    return "other"


def _lookup(table: pd.DataFrame, order: str, col: str) -> float:
    return float(table.loc[order, col]) if order in table.index else float("nan")


def model_card(report: EvaluationReport, *, model_name: str | None = None,
               version: str | None = None, data: str | None = None,
               training_window: tuple[str, str] | None = None,
               intended_use: str | None = None, limits: list[str] | None = None) -> str:
    """A Markdown model card: details, intended use, data, metrics vs baselines, slices, limits."""
    h = report.headline
    name = model_name or h.get("model_name", "model")
    lines = [f"# Model card: {name}" + (f" (version {version})" if version else ""), ""]
    lines += ["## Model details", "",
              "- Task: probability that an open receivable is paid late (after its net due date "
              "plus grace days), delay buckets, and the days until it is cleared (P10/P50/P90).",
              "- Family: gradient-boosted trees (LightGBM), calibrated on a later time slice.",
              f"- Feature set version: {report.meta.get('feature_set_version') or '-'}",
              f"- Seed: {report.meta.get('seed')}", ""]
    lines += ["## Intended use", "",
              intended_use or (
                  "Order a collector's worklist of open receivables by expected amount at risk, "
                  "and show why an invoice ranks high. Decision support for collections teams; "
                  "a person decides whom to call. Not for credit decisions about individuals, "
                  "pricing, or any automated action against a customer."), ""]
    lines += ["## Data", ""]
    if data:
        lines += [data]
    if training_window:
        lines += [f"- Training window: {training_window[0]} to {training_window[1]}"]
    if report.meta.get("holdout_window"):
        w = report.meta["holdout_window"]
        lines += [f"- Holdout window: {w[0]} to {w[1]} ({h['n_rows']} rows, "
                  f"{h['n_censored_excluded']} censored rows excluded)"]
    lines += ["", "## Performance on the holdout (model vs baselines)", "",
              _md_table(report.headline_table()), ""]
    if report.oracle is not None:
        lines += ["Oracle (simulated data):", "", _md_table(report.oracle), ""]
    k = h.get("backtest_capacity")
    lines += ["## Worklist backtest", "",
              f"With {k} items per {report.meta.get('backtest_period')} worklist, the model "
              f"captures {_fmt(h.get('model_capture_share'))} of the at-risk overdue amount "
              f"against {_fmt(h.get('rule_capture_share'))} for the rule strategy "
              f"(ratio {_fmt(h.get('ratio_model_rule'))}).", ""]
    sl = report.slices
    if not sl.empty:
        mine = sl[(sl["scorer"] == name) & ~sl["small_sample"]]
        if "roc_auc" in mine and mine["roc_auc"].notna().any():
            worst = mine.nsmallest(5, "roc_auc")[["slice", "value", "n", "roc_auc", "brier",
                                                  "ece"]]
            lines += ["## Weakest slices (ROC-AUC)", "", _md_table(worst), ""]
    lines += ["## Limits", ""]
    default_limits = [
        "Trained on past receivables: a change of terms, collectors or economy shifts the "
        "payment behaviour; watch calibration and retrain.",
        "Customers without history (cold start) get population-level predictions.",
        "Rows whose outcome is not yet known are excluded from the metrics (censoring).",
        "The ranking reflects past collection effort: contacting a customer changes its "
        "payment, so the model scores priority, not the effect of a call.",
    ]
    lines += [f"- {x}" for x in (limits or []) + default_limits + list(report.caveats)]
    return "\n".join(lines) + "\n"
