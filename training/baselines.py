"""Honest baselines the models must beat, predicting in the models' own column names.

Each baseline follows scikit-learn's conventions (`__init__` stores, `fit` returns self, learned
attributes end in `_`) and `predict(rows)` returns a frame index-aligned with `rows` holding
`p_late`, `days_to_clear_p50`, `pay_date_p50` and `expected_amount_at_risk`, so metrics, slices
and the backtest treat them like the model. `expected_amount_at_risk` is open_amount times the
customer's late propensity (the P(late) below BEFORE the overdue override): for an overdue item
P(late) is ~1 by definition, and open_amount * P(late) would reduce the worklist order to
largest-first.

- `due_date` -- everyone pays on the due date: days_to_clear = max(0, days to due); P(late) is
  a small constant (`due_date_p_late`).
- `hist_avg_delay` -- the customer pays as late as it did on average: predicted clearing =
  due date + hist_avg_days_late (the point-in-time history feature at t); P(late) = the customer's
  late ratio, smoothed towards the training late rate with `prior_strength` pseudo-invoices
  ((n_late + k * rate) / (n + k), so a customer with no history gets the training rate). A
  customer without history (cold start) gets the training mean days late.
- `add` -- average days delinquent, computed here from outcomes, point-in-time: for a row
  (customer c, time t), over c's invoices PAID (cleared, not written off) at or before t,
  ADD = sum(amount_i * max(0, days_late_i)) / sum(amount_i), an amount-weighted mean where an
  on-time payment counts 0 days. This is the paid-invoice form of the textbook "DSO - best
  possible DSO". Predicted clearing = due date + ADD; P(late) = the amount-weighted share of
  c's paid amount that came in late, smoothed as above. Fewer than `min_invoices` paid invoices:
  the training values. Outcomes come from the training rows seen at `fit` and from the rows
  being predicted, but only those with outcome_time <= t are ever used.

Every baseline gives `determined_late_p` to an item already more than `grace_days` past its due
date at t: such an item is still open, so its label is already known to be "late", and a baseline
blind to that would flatter any model that reads days_overdue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import PaydelayConfig

from features.config.evaluation import EvaluationConfig
from training.core.rules import days_overdue, days_to_due

BASELINE_NAMES: tuple[str, ...] = ("due_date", "hist_avg_delay", "add")
_DAY = np.timedelta64(1, "D")


def _require(rows: pd.DataFrame, columns, who: str) -> None:
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise KeyError(f"baseline {who} needs column(s) {missing}, absent from the rows")


def _output(rows: pd.DataFrame, p_late: np.ndarray, days: np.ndarray,
            propensity: np.ndarray) -> pd.DataFrame:
    days = np.maximum(np.asarray(days, dtype="float64"), 0.0)
    p_late = np.asarray(p_late, dtype="float64")
    return pd.DataFrame({
        "p_late": p_late,
        "days_to_clear_p50": days,
        "pay_date_p50": rows["snapshot_time"] + pd.to_timedelta(days, unit="D"),
        "expected_amount_at_risk": rows["open_amount"].to_numpy(dtype="float64")
        * np.asarray(propensity, dtype="float64"),
    }, index=rows.index)


def _determined(rows: pd.DataFrame, p: np.ndarray, grace_days: int, p_det: float) -> np.ndarray:
    return np.where(days_overdue(rows).to_numpy() > grace_days, p_det, p)


def _paid_invoices(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per invoice paid (uncensored, not written off) in `rows`: labels are per invoice."""
    _require(rows, ("invoice_id", "customer_id", "label_days_late", "outcome_time"), "outcomes")
    known = rows["label_days_late"].notna() & rows["outcome_time"].notna()
    if "censored" in rows:
        known &= ~rows["censored"].fillna(True).astype(bool)
    if "label_written_off" in rows:
        known &= ~rows["label_written_off"].fillna(False).astype(bool)
    weight_col = "amount" if "amount" in rows else "open_amount"
    paid = rows.loc[known, ["invoice_id", "customer_id", "outcome_time", "label_days_late",
                            weight_col]]
    # The invoice amount is the largest open amount it ever had (its posting row's).
    return (paid.groupby("invoice_id", sort=False, observed=True)
            .agg(customer_id=("customer_id", "first"), outcome_time=("outcome_time", "first"),
                 days_late=("label_days_late", "first"), weight=(weight_col, "max"))
            .reset_index())


def _per_invoice_labels(rows: pd.DataFrame) -> pd.DataFrame:
    known = rows["label_late"].notna()
    if "censored" in rows:
        known &= ~rows["censored"].fillna(True).astype(bool)
    return rows.loc[known].drop_duplicates("invoice_id")


class DueDateBaseline:
    """Everyone pays on the due date."""

    name = "due_date"

    def __init__(self, grace_days: int = 0, p_late: float = 0.02,
                 determined_late_p: float = 0.999):
        self.grace_days = grace_days
        self.p_late = p_late
        self.determined_late_p = determined_late_p

    def fit(self, rows: pd.DataFrame | None = None) -> DueDateBaseline:
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        _require(rows, ("snapshot_time", "net_due_date", "open_amount"), self.name)
        prop = np.full(len(rows), self.p_late)
        p = _determined(rows, prop, self.grace_days, self.determined_late_p)
        return _output(rows, p, days_to_due(rows).to_numpy(), prop)


class HistoricalDelayBaseline:
    """The customer pays as late as its point-in-time average (hist_* features only)."""

    name = "hist_avg_delay"

    def __init__(self, grace_days: int = 0, prior_strength: float = 1.0,
                 determined_late_p: float = 0.999):
        self.grace_days = grace_days
        self.prior_strength = prior_strength
        self.determined_late_p = determined_late_p

    def fit(self, rows: pd.DataFrame) -> HistoricalDelayBaseline:
        _require(rows, ("invoice_id", "label_late", "label_days_late"), self.name)
        per_invoice = _per_invoice_labels(rows)
        paid = _paid_invoices(rows)
        if per_invoice.empty or paid.empty:
            raise ValueError(f"baseline {self.name}: no uncensored training rows to fit on")
        self.late_rate_ = float(per_invoice["label_late"].mean())
        self.mean_days_late_ = float(paid["days_late"].mean())
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        _require(rows, ("snapshot_time", "net_due_date", "open_amount", "hist_avg_days_late",
                        "hist_late_ratio"), self.name)
        avg = rows["hist_avg_days_late"].astype("float64").to_numpy()
        known = ~np.isnan(avg)
        if "cold_start" in rows:
            known = known & ~rows["cold_start"].fillna(True).astype(bool).to_numpy()
        days_late = np.where(known, avg, self.mean_days_late_)
        k = self.prior_strength
        if {"hist_n_cleared", "hist_n_cleared_late"} <= set(rows.columns):
            n = rows["hist_n_cleared"].astype("float64").fillna(0).to_numpy()
            n_late = rows["hist_n_cleared_late"].astype("float64").fillna(0).to_numpy()
            p = (n_late + k * self.late_rate_) / (n + k)
        else:
            ratio = rows["hist_late_ratio"].astype("float64").to_numpy()
            p = np.where(np.isnan(ratio) | ~known, self.late_rate_, ratio)
        return _output(rows, _determined(rows, p, self.grace_days, self.determined_late_p),
                       days_to_due(rows).to_numpy() + days_late, p)


class AverageDaysDelinquentBaseline:
    """Amount-weighted average days late of the customer's invoices paid by t (see module doc)."""

    name = "add"

    def __init__(self, grace_days: int = 0, min_invoices: int = 1, prior_strength: float = 1.0,
                 determined_late_p: float = 0.999):
        self.grace_days = grace_days
        self.min_invoices = min_invoices
        self.prior_strength = prior_strength
        self.determined_late_p = determined_late_p

    def fit(self, rows: pd.DataFrame) -> AverageDaysDelinquentBaseline:
        paid = _paid_invoices(rows)
        if paid.empty:
            raise ValueError(f"baseline {self.name}: no paid invoices in the training rows")
        w = paid["weight"].to_numpy(dtype="float64")
        late = paid["days_late"].to_numpy(dtype="float64")
        self.add_ = float(np.sum(w * np.maximum(late, 0)) / np.sum(w))
        self.late_share_ = float(np.sum(w * (late > self.grace_days)) / np.sum(w))
        self.outcomes_ = paid
        return self

    def customer_add(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Per row: paid invoices by t, ADD and late share (NaN without history), point-in-time."""
        _require(rows, ("customer_id", "snapshot_time"), self.name)
        if rows["snapshot_time"].isna().any():
            raise ValueError(f"baseline {self.name}: snapshot_time is missing on "
                             f"{int(rows['snapshot_time'].isna().sum())} row(s)")
        outcomes = self.outcomes_
        if {"label_days_late", "outcome_time", "invoice_id"} <= set(rows.columns):
            outcomes = pd.concat([outcomes, _paid_invoices(rows)], ignore_index=True)
            outcomes = outcomes.drop_duplicates("invoice_id")
        outcomes = outcomes.sort_values("outcome_time", kind="stable")
        w = outcomes["weight"].to_numpy(dtype="float64")
        late = outcomes["days_late"].to_numpy(dtype="float64")
        hist = pd.DataFrame({
            "customer_id": outcomes["customer_id"].astype("str").to_numpy(),
            "outcome_time": outcomes["outcome_time"].astype("datetime64[us]").to_numpy(),
            "w": w, "wl": w * np.maximum(late, 0), "wlate": w * (late > self.grace_days),
            "n": 1.0,
        })
        hist[["w", "wl", "wlate", "n"]] = hist.groupby("customer_id")[
            ["w", "wl", "wlate", "n"]].cumsum()
        left = pd.DataFrame({
            "customer_id": rows["customer_id"].astype("str").to_numpy(),
            "snapshot_time": rows["snapshot_time"].astype("datetime64[us]").to_numpy(),
            "_pos": np.arange(len(rows)),
        }).sort_values("snapshot_time", kind="stable")
        # The last paid invoice at or before t carries the customer's running sums up to t.
        merged = pd.merge_asof(left, hist, left_on="snapshot_time", right_on="outcome_time",
                               by="customer_id", direction="backward", allow_exact_matches=True)
        merged = merged.sort_values("_pos")
        n = merged["n"].fillna(0).to_numpy()
        enough = n >= self.min_invoices
        with np.errstate(invalid="ignore", divide="ignore"):
            add = np.where(enough, merged["wl"].to_numpy() / merged["w"].to_numpy(), np.nan)
            share = np.where(enough, merged["wlate"].to_numpy() / merged["w"].to_numpy(), np.nan)
        return pd.DataFrame({"add_n_paid": n, "add_days": add, "add_late_share": share},
                            index=rows.index)

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        _require(rows, ("snapshot_time", "net_due_date", "open_amount"), self.name)
        hist = self.customer_add(rows)
        n = hist["add_n_paid"].to_numpy()
        known = ~np.isnan(hist["add_days"].to_numpy())
        days_late = np.where(known, hist["add_days"].to_numpy(), self.add_)
        k = self.prior_strength
        share = np.where(known, hist["add_late_share"].to_numpy(), self.late_share_)
        n_eff = np.where(known, n, 0.0)
        p = (share * n_eff + k * self.late_share_) / (n_eff + k)
        return _output(rows, _determined(rows, p, self.grace_days, self.determined_late_p),
                       days_to_due(rows).to_numpy() + days_late, p)


def _eval_cfg(cfg: PaydelayConfig | EvaluationConfig | None) -> tuple[EvaluationConfig, int]:
    if isinstance(cfg, PaydelayConfig):
        return cfg.evaluation, cfg.features.grace_days
    return (cfg or EvaluationConfig()), 0


def fit_baselines(train_rows: pd.DataFrame, cfg: PaydelayConfig | EvaluationConfig | None = None,
                  grace_days: int | None = None) -> dict[str, object]:
    """Fit every baseline on the training rows; keys are BASELINE_NAMES."""
    ev, grace = _eval_cfg(cfg)
    grace = grace if grace_days is None else grace_days
    return {
        "due_date": DueDateBaseline(grace, ev.due_date_p_late, ev.determined_late_p).fit(),
        "hist_avg_delay": HistoricalDelayBaseline(
            grace, determined_late_p=ev.determined_late_p).fit(train_rows),
        "add": AverageDaysDelinquentBaseline(
            grace, ev.add_min_invoices, determined_late_p=ev.determined_late_p).fit(train_rows),
    }


def predict_baselines(baselines: dict[str, object], rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Predictions of every fitted baseline on `rows` (name -> frame aligned with rows)."""
    return {name: b.predict(rows) for name, b in baselines.items()}


def baseline_predictions(train_rows: pd.DataFrame, rows: pd.DataFrame,
                         cfg: PaydelayConfig | EvaluationConfig | None = None,
                         grace_days: int | None = None) -> dict[str, pd.DataFrame]:
    """Fit on the training rows, predict on `rows` (e.g. the holdout) in one call."""
    return predict_baselines(fit_baselines(train_rows, cfg, grace_days), rows)
