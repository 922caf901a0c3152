"""Small seeded training rows with the row contract's columns, for the model / registry tests.

Invoices of customers with a latent riskiness z: P(late) = sigmoid(-0.6 + 1.4 z + ...) is known
exactly (returned as `truth.oracle_p_late`), outcomes are drawn from it, the log ends at `end`
(later outcomes are censored), and each invoice gets a posting row, weekly grid rows while open
and a "now" row if open at the end. Features are noisy views of z (risk category, history) plus
the snapshot's own state, so a model can approach but not reach the oracle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from training.core.contract import FeatureSet, ModelContract

DAY = pd.Timedelta(days=1)
CATEGORICAL = ("risk_category", "customer_segment", "company_code")
BOOLEAN = ("promise_open", "dispute_open", "payment_block_active", "cold_start")
NUMERIC = ("amount", "open_amount", "days_overdue", "days_since_posting", "days_to_due",
           "terms_net_days", "dunning_level", "max_dunning_level", "n_contacts",
           "n_promises_broken", "dispute_days_open", "disputed_amount", "credit_limit",
           "credit_used_ratio", "hist_n_cleared", "hist_n_cleared_late", "hist_late_ratio",
           "hist_avg_days_late")
MONOTONE = {"days_overdue": 1, "n_promises_broken": 1, "dunning_level": 1, "hist_late_ratio": 1}


def feature_set(version: str = "test-1") -> FeatureSet:
    return FeatureSet(names=NUMERIC + CATEGORICAL + BOOLEAN, categorical=CATEGORICAL,
                      boolean=BOOLEAN, monotone=dict(MONOTONE), version=version)


def contract(config, version: str = "test-1") -> ModelContract:
    """The contract of a model trained with `config` on these rows (their hand-made features)."""
    return ModelContract.from_config(config, features=feature_set(version))


def make_rows(n_invoices: int = 3000, seed: int = 0, start: str = "2023-01-01",
              days: int = 720, grace_days: int = 0, max_grid: int = 6,
              signal: float = 1.4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, truth) for `n_invoices` invoices posted over `days` days; the log ends then."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    end = t0 + days * DAY
    n_cust = max(20, n_invoices // 25)
    z_c = rng.normal(size=n_cust)
    seg_c = rng.choice(["key_account", "mid_market", "sme"], n_cust)
    cat_c = np.asarray(["A01", "B02", "C03", "D04", "E05"])[
        np.clip(((z_c + rng.normal(0, 0.6, n_cust)) * 1.2 + 2.5).astype(int), 0, 4)]
    limit_c = np.round(np.exp(rng.normal(11, 0.7, n_cust)), -2)

    cust = rng.integers(0, n_cust, n_invoices)
    z = z_c[cust]
    posting = np.sort(t0 + pd.to_timedelta(rng.uniform(0, days, n_invoices), unit="D")
                      .floor("h"))
    posting = pd.DatetimeIndex(posting).as_unit("us")
    terms = rng.choice([15, 30, 45, 60], n_invoices)
    due = posting.normalize() + pd.to_timedelta(terms, unit="D")
    amount = np.round(np.exp(rng.normal(8, 1, n_invoices)), 2)
    disputed = rng.random(n_invoices) < 0.1
    dispute_time = posting + pd.to_timedelta(rng.uniform(1, 20, n_invoices), unit="D")

    logit = (-0.6 + signal * z + 0.25 * np.log(amount / 3000) + 0.9 * disputed
             + 0.3 * (terms == 60))
    p_late = 1 / (1 + np.exp(-logit))
    late = rng.random(n_invoices) < p_late
    days_late = np.where(
        late, grace_days + 1 + np.floor(rng.gamma(1.5, 12 * (1 + 0.6 * np.maximum(z, 0))
                                                  + 15 * disputed)),
        -np.floor(rng.uniform(0, np.minimum(terms, 20))))
    outcome = due + pd.to_timedelta(days_late, unit="D") + pd.to_timedelta(
        rng.integers(9, 17, n_invoices), unit="h")
    outcome = pd.DatetimeIndex(np.maximum(outcome, posting + pd.Timedelta(hours=2)))
    written_off = (days_late > 120) & (rng.random(n_invoices) < 0.5)

    # Customer history at posting: a noisy, growing view of the customer's late rate.
    hist_n = rng.poisson(np.linspace(0, 20, n_invoices))
    hist_late = rng.binomial(hist_n, 1 / (1 + np.exp(-(-0.6 + signal * z))))
    inv = pd.DataFrame({
        "invoice_id": [f"9{i:07d}" for i in range(n_invoices)],
        "customer_id": [f"C{c:04d}" for c in cust],
        "company_code": rng.choice(["1000", "2000", "3000"], n_invoices),
        "posting_time": posting, "net_due_date": due, "amount": amount, "terms": terms,
        "outcome": outcome, "days_late": days_late, "written_off": written_off,
        "disputed": disputed, "dispute_time": dispute_time,
        "risk_category": cat_c[cust], "customer_segment": seg_c[cust],
        "credit_limit": limit_c[cust], "hist_n": hist_n, "hist_late": hist_late,
        "z": z,
    })

    # Snapshots: posting, weekly grid while open (capped), "now" if open at the end.
    k = np.arange(max_grid + 1)
    snap = inv.loc[inv.index.repeat(len(k))].reset_index(drop=True)
    snap["k"] = np.tile(k, n_invoices)
    snap["snapshot_time"] = snap["posting_time"] + snap["k"] * 7 * DAY
    keep = (snap["k"] == 0) | ((snap["snapshot_time"] < snap["outcome"])
                               & (snap["snapshot_time"] <= end))
    snap = snap.loc[keep & (snap["snapshot_time"] <= end)]
    now = inv.loc[inv["outcome"] > end].assign(k=-1, snapshot_time=end)
    snap = pd.concat([snap, now], ignore_index=True)
    snap["snapshot_kind"] = np.select([snap["k"] == 0, snap["k"] > 0], ["posting", "grid"],
                                      "now")
    return _features_and_labels(snap, end, grace_days, rng), inv.assign(
        oracle_p_late=p_late, oracle_expected_delay_days=np.maximum(days_late, 0))[
        ["invoice_id", "oracle_p_late", "oracle_expected_delay_days"]]


def _features_and_labels(s: pd.DataFrame, end: pd.Timestamp, grace: int,
                         rng: np.random.Generator) -> pd.DataFrame:
    t = s["snapshot_time"]
    n = len(s)
    overdue = np.maximum(np.floor((t - s["net_due_date"]) / DAY), 0)
    contacts = rng.poisson(overdue / 20)
    dispute_open = s["disputed"] & (s["dispute_time"] <= t)
    rows = pd.DataFrame({
        "invoice_id": s["invoice_id"].astype("str"), "customer_id": s["customer_id"].astype("str"),
        "company_code": s["company_code"].astype("str"), "snapshot_time": t,
        "snapshot_kind": s["snapshot_kind"].astype("str"), "posting_time": s["posting_time"],
        "net_due_date": s["net_due_date"], "open_amount": s["amount"],
        "amount": s["amount"], "days_overdue": overdue,
        "days_since_posting": (t - s["posting_time"]) / DAY,
        "days_to_due": (s["net_due_date"] - t) / DAY, "terms_net_days": s["terms"].astype(float),
        "dunning_level": np.minimum(overdue // 15, 4), "max_dunning_level":
            np.minimum(overdue // 15, 4), "n_contacts": contacts.astype(float),
        "n_promises_broken": rng.binomial(contacts, 0.3).astype(float),
        "promise_open": rng.random(n) < 0.05 * (overdue > 0),
        "dispute_open": dispute_open,
        "dispute_days_open": np.where(dispute_open, (t - s["dispute_time"]) / DAY, 0.0),
        "disputed_amount": np.where(dispute_open, s["amount"] * 0.3, 0.0),
        "payment_block_active": dispute_open & (rng.random(n) < 0.5),
        "risk_category": pd.Categorical(s["risk_category"]),
        "credit_limit": s["credit_limit"], "credit_used_ratio": rng.uniform(0, 1.2, n),
        "customer_segment": pd.Categorical(s["customer_segment"]),
        "hist_n_cleared": s["hist_n"].astype(float),
        "hist_n_cleared_late": s["hist_late"].astype(float),
        "hist_late_ratio": np.where(s["hist_n"] > 0, s["hist_late"] / np.maximum(s["hist_n"], 1),
                                    np.nan),
        "hist_avg_days_late": np.where(s["hist_n"] > 0, 10 + 15 * s["z"], np.nan),
        "cold_start": s["hist_n"] == 0,
    })
    rows["company_code"] = pd.Categorical(rows["company_code"])
    known = (s["outcome"] <= end).to_numpy()
    days_late = np.floor((s["outcome"].dt.normalize() - s["net_due_date"]) / DAY).to_numpy()
    bucket = np.select([days_late <= grace, days_late <= 30, days_late <= 60, days_late <= 90],
                       [0, 1, 2, 3], 4)
    rows["label_late"] = np.where(known, (days_late > grace).astype(float), np.nan)
    rows["label_delay_bucket"] = pd.array(np.where(known, bucket, 0), dtype="Int8")
    rows.loc[~known, "label_delay_bucket"] = pd.NA
    rows["label_days_late"] = np.where(known, days_late, np.nan)
    rows["label_days_to_clear"] = np.where(known, (s["outcome"] - t) / DAY, np.nan)
    rows["label_written_off"] = known & s["written_off"].to_numpy()
    rows["censored"] = ~known
    rows["observed_days"] = np.where(known, (s["outcome"] - t) / DAY, (end - t) / DAY)
    rows["outcome_time"] = s["outcome"].where(known)
    rows["feature_set_version"] = "test-1"
    return rows.sort_values(["snapshot_time", "invoice_id"], kind="stable").reset_index(drop=True)


SMALL = {"n_estimators": 60, "num_leaves": 15, "min_child_samples": 20}


def small_config(**training):
    """Fast training settings for tests: few small trees, horizon fitting a two-year log."""
    base = {"payment_horizon_days": 90, "risk": SMALL, "payment": SMALL,
            "bucket": {"n_estimators": 30, "num_leaves": 7}, "min_cleared_invoices": 100,
            "min_late_invoices": 20}
    return PaydelayConfig.model_validate({"training": {**base, **training}})
