"""Worklist backtest: how much at-risk money each ordering puts in a collector's top K.

At each test period (snapshot times grouped by day or by week, `EvaluationConfig.backtest_period`)
the worklist is every item overdue at t (days_overdue > 0, open_amount > 0); an invoice seen
several times in a period keeps its latest snapshot. An item is **at risk** when it went on to be
paid more than `backtest_late_days` days after its due date or was written off (from the labels).
A censored item whose lateness at the end of observation already exceeds that threshold is at
risk for sure; other censored items have an unknown outcome and are left out of the worklist
(counted in `n_unknown_excluded`), so every ordering is judged on the same items.

A collector works the top K items (several capacities K). For each ordering we report the
at-risk open amount captured in the top K, its share of the period's total at-risk amount, and
the ratio to the rule strategy. Orderings (higher first):
- every prediction frame: `expected_amount_at_risk` (else open_amount * p_late); and, for a
  frame with delay-bucket probabilities, `<name>_p_very_late`: open_amount * P(bucket whose lower
  edge >= backtest_late_days), i.e. P(more than 30 days late) with the default edges. For an
  overdue item P(late) is ~1 by definition, so open_amount * p_late orders overdue items much as
  largest-first does; the bucket order shows what the delay model adds;
- `rule_strategy`: SAP-style priority, then points (training.core.rules; customer-level fields
  aggregated over the period's worklist);
- `oldest_first` (days_overdue) and `largest_first` (open_amount);
- `oracle`: open_amount * oracle_p_late of the simulator (latent truth at posting) when given;
- `hindsight`: the realised at-risk amount, the best any ordering could capture with K items.
Ties are broken by one seeded random key shared by all orderings, so no ordering inherits an
accidental advantage from the input order.

Built from training rows, a period's worklist holds the overdue items that have a snapshot in
that period (the feature builder's grid, capped per invoice): a sample of the real open-item
list, so K is small and the figures compare orderings rather than forecast a collector's day.
For a full open-item list per period, pass rows built at common snapshot times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from features.config.evaluation import EvaluationConfig
from features.config.features import FeatureConfig
from features.config.rules import RuleStrategyConfig
from training.core.contract import very_late_buckets
from training.core.rules import days_overdue, rule_order_key, rule_points

_DAY = np.timedelta64(1, "D")


@dataclass
class BacktestResult:
    per_period: pd.DataFrame  # period, capacity, order, n_items, captured_amount, total_at_risk
    summary: pd.DataFrame  # capacity, order, captured_amount, share, ratio_to_rule, ...
    n_unknown_excluded: int = 0
    orders: list[str] = field(default_factory=list)


def period_start(snapshot_time: pd.Series, period: str) -> pd.Series:
    """Day, or Monday of the week, of each snapshot time."""
    day = snapshot_time.dt.normalize()
    if period == "day":
        return day
    if period == "week":
        return day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    raise ValueError(f"backtest_period must be 'day' or 'week', got {period!r}")


def at_risk(rows: pd.DataFrame, late_days: int) -> np.ndarray:
    """1.0 paid > late_days late or written off, 0.0 not, NaN unknown (censored, not yet late)."""
    missing = [c for c in ("label_days_late", "label_written_off") if c not in rows]
    if missing:
        raise KeyError(f"backtest needs label column(s) {missing}")
    written_off = rows["label_written_off"].fillna(False).astype(bool).to_numpy()
    days_late = rows["label_days_late"].astype("float64").to_numpy()
    censored = (rows["censored"].fillna(True).astype(bool).to_numpy() if "censored" in rows
                else np.isnan(days_late) & ~written_off)
    out = np.where(written_off | (days_late > late_days), 1.0, 0.0)
    out = np.where(censored & ~written_off, np.nan, out)
    if "observed_days" in rows:
        # Lateness already reached by the end of observation decides a censored item.
        seen_late = ((rows["snapshot_time"] - rows["net_due_date"]) / _DAY).to_numpy(
            dtype="float64") + rows["observed_days"].astype("float64").to_numpy()
        out = np.where(censored & ~written_off & (seen_late > late_days), 1.0, out)
    return out


def worklist(rows: pd.DataFrame, cfg: EvaluationConfig) -> tuple[pd.DataFrame, int]:
    """The overdue items per period (latest snapshot per invoice) with a known at-risk flag."""
    need = ["invoice_id", "customer_id", "snapshot_time", "net_due_date", "open_amount"]
    missing = [c for c in need if c not in rows]
    if missing:
        raise KeyError(f"backtest needs column(s) {missing}")
    od = days_overdue(rows)
    frame = rows.assign(_period=period_start(rows["snapshot_time"], cfg.backtest_period),
                        _days_overdue=od.to_numpy(),
                        _at_risk=at_risk(rows, cfg.backtest_late_days))
    frame = frame[(frame["_days_overdue"] > 0) & (frame["open_amount"] > 0)]
    frame = frame.sort_values("snapshot_time", kind="stable")
    frame = frame[~frame.duplicated(["_period", "invoice_id"], keep="last")]
    unknown = frame["_at_risk"].isna()
    return frame.loc[~unknown], int(unknown.sum())


def order_scores(items: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                 rule_cfg: RuleStrategyConfig, truth: pd.DataFrame | None = None,
                 very_late: list[int] | None = None) -> pd.DataFrame:
    """One column per ordering (higher = worked first), aligned with the worklist items."""
    scores: dict[str, np.ndarray] = {}
    amount = items["open_amount"].to_numpy(dtype="float64")
    bucket_cols = [f"p_bucket_{k}" for k in (very_late or [])]
    for name, pred in predictions.items():
        pred = pred.reindex(items.index)
        if "expected_amount_at_risk" in pred:
            scores[name] = pred["expected_amount_at_risk"].to_numpy(dtype="float64")
        elif "p_late" in pred:
            scores[name] = amount * pred["p_late"].to_numpy(dtype="float64")
        if bucket_cols and set(bucket_cols) <= set(pred.columns):
            scores[f"{name}_p_very_late"] = amount * pred[bucket_cols].to_numpy(
                dtype="float64").sum(axis=1)
    rules = rule_points(items, rule_cfg, group_keys=("customer_id", "_period"))
    scores["rule_strategy"] = rule_order_key(rules).to_numpy()
    scores["oldest_first"] = items["_days_overdue"].to_numpy(dtype="float64")
    scores["largest_first"] = amount
    if truth is not None:
        p = _oracle_p(items, truth)
        scores["oracle"] = amount * p
    scores["hindsight"] = amount * items["_at_risk"].to_numpy(dtype="float64")
    out = pd.DataFrame(scores, index=items.index)
    bad = [c for c in out if out[c].isna().any()]
    if bad:
        raise ValueError(f"backtest orderings {bad} have missing scores on worklist items")
    return out


def _oracle_p(rows: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    if "oracle_p_late" in rows:
        return rows["oracle_p_late"].to_numpy(dtype="float64")
    lookup = truth.drop_duplicates("invoice_id").set_index("invoice_id")["oracle_p_late"]
    p = rows["invoice_id"].map(lookup).astype("float64").to_numpy()
    if np.isnan(p).any():
        raise ValueError(f"truth lacks oracle_p_late for {int(np.isnan(p).sum())} invoice(s)")
    return p


def worklist_backtest(rows: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                      cfg: PaydelayConfig | EvaluationConfig | None = None,
                      rule_cfg: RuleStrategyConfig | None = None,
                      truth: pd.DataFrame | None = None, seed: int | None = None,
                      bucket_edges: tuple[int, ...] | None = None) -> BacktestResult:
    """Captured at-risk amount in the top K per period for every ordering (see module doc).

    A PaydelayConfig supplies the evaluation section, rule strategy, seed and bucket edges;
    explicit arguments win. Predictions are index-aligned with `rows`.
    """
    if isinstance(cfg, PaydelayConfig):
        ev, rule_cfg = cfg.evaluation, rule_cfg or cfg.rule_strategy
        seed = cfg.seed if seed is None else seed
        bucket_edges = bucket_edges or cfg.features.bucket_edges
    else:
        ev = cfg or EvaluationConfig()
    rule_cfg = rule_cfg or RuleStrategyConfig()
    seed = 0 if seed is None else seed
    edges = tuple(bucket_edges or FeatureConfig().bucket_edges)
    items, n_unknown = worklist(rows, ev)
    scores = order_scores(items, predictions, rule_cfg, truth,
                          very_late_buckets(edges, ev.backtest_late_days))
    rng = np.random.default_rng(seed)
    tie = rng.random(len(items))
    period, period_starts = pd.factorize(items["_period"], sort=True)
    value = items["open_amount"].to_numpy(dtype="float64") * items["_at_risk"].to_numpy()
    totals = pd.Series(value).groupby(period).agg(["sum", "size"])
    records = []
    for order in scores.columns:  # a handful of orderings
        idx = np.lexsort((tie, -scores[order].to_numpy(), period))
        sorted_period = period[idx]
        rank = pd.Series(sorted_period).groupby(sorted_period).cumcount().to_numpy()
        for k in ev.backtest_capacities:
            top = rank < k
            captured = pd.Series(value[idx][top]).groupby(sorted_period[top]).sum()
            records.append(pd.DataFrame({
                "period": period_starts[totals.index.to_numpy()], "capacity": k, "order": order,
                "n_items": totals["size"].to_numpy(),
                "captured_amount": captured.reindex(totals.index, fill_value=0.0).to_numpy(),
                "total_at_risk_amount": totals["sum"].to_numpy(),
            }))
    per_period = (pd.concat(records, ignore_index=True) if records else pd.DataFrame(
        columns=["period", "capacity", "order", "n_items", "captured_amount",
                 "total_at_risk_amount"]))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_period["share_captured"] = (per_period["captured_amount"]
                                        / per_period["total_at_risk_amount"])
    summary = _summarise(per_period)
    return BacktestResult(per_period, summary, n_unknown, list(scores.columns))


def _summarise(per_period: pd.DataFrame) -> pd.DataFrame:
    g = per_period.groupby(["capacity", "order"], sort=False)
    s = g.agg(n_periods=("period", "nunique"), n_items=("n_items", "sum"),
              captured_amount=("captured_amount", "sum"),
              total_at_risk_amount=("total_at_risk_amount", "sum")).reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        s["share_captured"] = s["captured_amount"] / s["total_at_risk_amount"]
        for ref, col in (("rule_strategy", "ratio_to_rule"), ("hindsight", "share_of_hindsight")):
            base = s.loc[s["order"] == ref].set_index("capacity")["captured_amount"]
            s[col] = s["captured_amount"] / s["capacity"].map(base).astype("float64")
    return s


def model_vs_rule(summary: pd.DataFrame, model_name: str = "model") -> pd.DataFrame:
    """Per capacity: model and rule captured amounts and their ratio (the headline of the test)."""
    piv = summary.pivot(index="capacity", columns="order", values="captured_amount")
    if model_name not in piv or "rule_strategy" not in piv:
        raise KeyError(f"backtest summary lacks {model_name!r} or 'rule_strategy'")
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "model_captured": piv[model_name], "rule_captured": piv["rule_strategy"],
            "ratio_model_rule": piv[model_name] / piv["rule_strategy"],
        }).reset_index()


REALISED_ORDERS: tuple[tuple[str, str], ...] = (
    ("model", "model (expected amount at risk)"), ("rule_strategy", "rule strategy"),
    ("oldest_first", "oldest first"), ("largest_first", "largest first"))


def realised_capture(summary: pd.DataFrame, model_name: str = "model") -> pd.DataFrame:
    """Per capacity K: the at-risk amount each ordering captured in its first K items (the
    realised outcome on the holdout: paid more than backtest_late_days late or written off), for
    the model, the rule strategy, oldest-first and largest-first, and each one's ratio to the
    rule strategy. What the demo prints; not the model's own expectation, which its own order
    maximises by construction."""
    piv = summary.pivot(index="capacity", columns="order", values="captured_amount")
    names = {"model": model_name}
    out = {"capacity": piv.index.to_numpy()}
    for key, _ in REALISED_ORDERS:
        col = names.get(key, key)
        if col not in piv:
            raise KeyError(f"backtest summary lacks the {col!r} ordering")
        out[key] = piv[col].to_numpy()
    frame = pd.DataFrame(out)
    with np.errstate(invalid="ignore", divide="ignore"):
        for key, _ in REALISED_ORDERS:
            if key != "rule_strategy":
                frame[f"{key}_vs_rule"] = frame[key] / frame["rule_strategy"]
    if "total_at_risk_amount" in summary:
        tot = summary.drop_duplicates("capacity").set_index("capacity")["total_at_risk_amount"]
        frame["total_at_risk"] = frame["capacity"].map(tot).to_numpy()
    return frame
