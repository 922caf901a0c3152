"""Small seeded training-row frames in the row/label contract, for the evaluation tests.

Until features.pit.build exists, the evaluation tests build their own rows here: a posting row per
invoice and, for invoices still open 10 days after the due date, a grid row then. Customers have
a latent lateness propensity that drives both the labels and the (noisy) hist_* features, and the
`truth` frame carries oracle_p_late as the simulator would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
SEGMENTS = ("key_account", "mid_market", "sme")
RISKS = ("A01", "B02", "C03", "D04", "E05")


def make_rows(n_invoices: int = 600, n_customers: int = 40, seed: int = 0,
              start: str = "2024-01-01", end_days: float = 170.0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, truth). Outcomes after start + end_days are censored."""
    rng = np.random.default_rng(seed)
    cust = np.array([f"C{i:03d}" for i in range(n_customers)])
    propensity = rng.beta(2, 3, n_customers)
    risk = np.array(RISKS)[np.minimum((propensity * 5).astype(int), 4)]
    segment = rng.choice(SEGMENTS, n_customers)
    n_hist = rng.poisson(4, n_customers) * (rng.random(n_customers) > 0.2)

    c = rng.integers(0, n_customers, n_invoices)
    posting = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 120, n_invoices), unit="D")
    terms = rng.choice([15, 30, 45], n_invoices)
    due = posting + pd.to_timedelta(terms, unit="D")
    p_true = np.clip(0.05 + 0.85 * propensity[c], 0, 1)
    late = rng.random(n_invoices) < p_true
    days_late = np.where(late, np.ceil(rng.gamma(2.0, 15.0 * (0.5 + propensity[c]))),
                         -rng.integers(0, 10, n_invoices)).astype("float64")
    written_off = late & (rng.random(n_invoices) < 0.05)
    outcome = due + pd.to_timedelta(days_late, unit="D")
    amount = np.round(np.exp(rng.normal(8.5, 1.2, n_invoices)), 2)
    inv = pd.DataFrame({
        "invoice_id": [f"9{i:07d}" for i in range(n_invoices)],
        "customer_id": cust[c], "company_code": rng.choice(["1000", "2000"], n_invoices),
        "posting_time": posting.astype("datetime64[us]"), "net_due_date": due.astype(
            "datetime64[us]"),
        "amount": amount, "terms_net_days": terms.astype("float64"),
        "_outcome": outcome.astype("datetime64[us]"), "_days_late": days_late,
        "_written_off": written_off, "_c": c,
    })
    post = inv.assign(snapshot_time=inv["posting_time"], snapshot_kind="posting")
    grid_t = inv["net_due_date"] + 10 * DAY
    grid = inv[inv["_outcome"] > grid_t].assign(snapshot_time=grid_t, snapshot_kind="grid")
    rows = pd.concat([post, grid], ignore_index=True)
    rows = rows.sort_values(["snapshot_time", "invoice_id"], kind="stable").reset_index(drop=True)
    n = len(rows)
    is_grid = (rows["snapshot_kind"] == "grid").to_numpy()
    ci = rows["_c"].to_numpy()

    end = pd.Timestamp(start) + pd.Timedelta(days=end_days)
    censored = (rows["_outcome"] > end).to_numpy()
    t = rows["snapshot_time"]
    rows["open_amount"] = np.where(is_grid, rows["amount"] * 0.9, rows["amount"])
    rows["days_to_due"] = ((rows["net_due_date"] - t) / DAY).to_numpy()
    rows["days_overdue"] = np.maximum(-rows["days_to_due"].to_numpy(), 0.0)
    rows["days_since_posting"] = ((t - rows["posting_time"]) / DAY).to_numpy()
    rows["dunning_level"] = pd.array(np.where(is_grid, rng.integers(1, 4, n), 0),
                                     dtype="Int8")
    rows["n_promises_broken"] = np.where(is_grid, rng.poisson(0.4, n), 0).astype("float64")
    rows["dispute_open"] = is_grid & (rng.random(n) < 0.1)
    rows["risk_category"] = pd.Categorical(risk[ci], categories=list(RISKS))
    rows["customer_segment"] = pd.Categorical(segment[ci], categories=list(SEGMENTS))
    hist_n = n_hist[ci].astype("float64")
    ratio = np.clip(propensity[ci] + rng.normal(0, 0.1, n), 0, 1)
    rows["hist_n_cleared"] = hist_n
    rows["hist_n_cleared_late"] = np.round(ratio * hist_n)
    rows["hist_late_ratio"] = np.where(hist_n > 0, rows["hist_n_cleared_late"] / np.maximum(
        hist_n, 1), np.nan)
    rows["hist_avg_days_late"] = np.where(hist_n > 0, 30 * propensity[ci] - 3
                                          + rng.normal(0, 3, n), np.nan)
    rows["cold_start"] = hist_n == 0
    rows["feature_set_version"] = "test"

    rows["label_late"] = np.where(censored, np.nan, (rows["_days_late"] > 0).astype("float64"))
    rows["label_days_late"] = np.where(censored, np.nan, rows["_days_late"])
    rows["label_days_to_clear"] = np.where(censored, np.nan,
                                           ((rows["_outcome"] - t) / DAY).to_numpy())
    rows["label_written_off"] = rows["_written_off"].to_numpy() & ~censored
    rows["censored"] = censored
    rows["observed_days"] = np.where(censored, ((end - t) / DAY).to_numpy(),
                                     rows["label_days_to_clear"])
    rows["outcome_time"] = rows["_outcome"].where(~censored)
    rows["label_delay_bucket"] = pd.array(
        np.where(censored, pd.NA, np.searchsorted([0, 30, 60, 90], rows["_days_late"],
                                                  side="left")), dtype="Int8")
    truth = pd.DataFrame({"invoice_id": inv["invoice_id"], "oracle_p_late": p_true,
                          "oracle_expected_delay_days": 30 * propensity[c] - 3})
    return rows.drop(columns=["_outcome", "_days_late", "_written_off", "_c"]), truth


def model_like(rows: pd.DataFrame, truth: pd.DataFrame, noise: float = 0.1,
               seed: int = 1) -> pd.DataFrame:
    """A plausible model output: noisy truth, certain for items already overdue."""
    rng = np.random.default_rng(seed)
    p = rows["invoice_id"].map(truth.set_index("invoice_id")["oracle_p_late"]).to_numpy()
    p = np.clip(p + rng.normal(0, noise, len(rows)), 0.01, 0.99)
    p = np.where(rows["days_overdue"].to_numpy() > 0, 0.995, p)
    p50 = np.maximum(rows["days_to_due"].to_numpy() + 10 * p, 0)
    return pd.DataFrame({
        "p_late": p,
        "days_to_clear_p10": np.maximum(p50 - 10, 0), "days_to_clear_p50": p50,
        "days_to_clear_p90": p50 + 25,
        "expected_amount_at_risk": rows["open_amount"].to_numpy() * p,
    }, index=rows.index)
