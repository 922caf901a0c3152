"""Recency, season, dispute, segment and drift history features on a hand-written ledger, checked
against numbers worked out by hand (the reference comparison checks them on random ledgers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import event_frame, invoice_rows

from features import schema
from features.pit.build import features_at
from features.config.features import FeatureConfig

A = schema.Activity

# One customer, six paid invoices and an open one (X). Days late / days from posting to payment:
#   P1 due 2023-12-01 paid 2023-12-21: +20 / 50, disputed   P4 due 2024-03-31 paid 03-31:  0 / 30
#   P2 due 2024-02-01 paid 2024-01-30:  -2 / 28             P5 due 2024-05-31 paid 06-10: +10 / 40
#   P3 due 2024-03-02 paid 2024-03-07:  +5 / 35             P6 due 2024-07-03 paid 07-13: +10 / 40
# The customer went paperless on 2024-03-15: P5 and P6 are its only paperless invoices.
PAID = [("P1", "2023-11-01", "2023-12-01", "2023-12-21"),
        ("P2", "2024-01-02", "2024-02-01", "2024-01-30"),
        ("P3", "2024-02-01", "2024-03-02", "2024-03-07"),
        ("P4", "2024-03-01", "2024-03-31", "2024-03-31"),
        ("P5", "2024-05-01", "2024-05-31", "2024-06-10"),
        ("P6", "2024-06-03", "2024-07-03", "2024-07-13")]
T = pd.Timestamp("2024-08-01 10:00")


@pytest.fixture(scope="module")
def row() -> pd.Series:
    rows = []
    for inv, posted, due, paid in PAID:
        rows.append(invoice_rows(inv, "C1", f"{posted} 09:00", due, 1000.0))
        rows.append({"event_time": f"{paid} 11:00", "activity": A.INCOMING_PAYMENT_POSTED.value,
                     "invoice_id": inv, "customer_id": "C1", "amount": 1000.0,
                     "net_due_date": due, "document_type": "DZ"})
        rows.append({"event_time": f"{paid} 12:00", "activity": A.INVOICE_CLEARED.value,
                     "invoice_id": inv, "customer_id": "C1", "amount": 0.0,
                     "net_due_date": due, "clearing_document": f"CL{inv}"})
    rows.append({"event_time": "2023-11-10 09:00", "activity": A.DISPUTE_CASE_CREATED.value,
                 "invoice_id": "P1", "customer_id": "C1", "amount": 1000.0,
                 "net_due_date": "2023-12-01", "dispute_case_id": "D1"})
    rows.append(invoice_rows("X", "C1", "2024-07-01 09:00", "2024-07-31", 2000.0))
    events = event_frame(rows, "2024-08-02")
    master = pd.DataFrame({
        "customer_id": ["C1", "C1"],
        "valid_from": pd.to_datetime(["2023-01-01", "2024-03-15"]).astype("datetime64[us]"),
        "risk_category": ["B02", "B02"], "credit_limit": [50_000.0, 50_000.0],
        "customer_segment": ["paper", "paperless"], "collector": ["ANNA", "ANNA"]})
    snap = pd.DataFrame({"invoice_id": ["X"], "snapshot_time": [T]})
    snap["snapshot_time"] = snap["snapshot_time"].astype("datetime64[us]")
    return features_at(events, master, FeatureConfig(), snap).iloc[0]


def test_recent_habit(row):
    latest_first = np.array([10, 10, 0, 5, -2, 20], dtype=float)  # P6 ... P1
    w = 0.5 ** (np.arange(6) / 3.0)
    assert row["hist_last_days_late"] == 10 and row["hist_last_days_to_settle"] == 40
    assert row["hist_ewm_days_late"] == pytest.approx((w * latest_first).sum() / w.sum())
    assert row["hist_ewm_late_ratio"] == pytest.approx((w * (latest_first > 0)).sum() / w.sum())
    assert row["hist_recent_median_days_late"] == 5  # of 10, 10, 0, 5, -2
    assert row["hist_avg_days_to_settle"] == pytest.approx((50 + 28 + 35 + 30 + 40 + 40) / 6)


def test_disputed_invoices_leave_the_undisputed_habit(row):
    assert row["hist_undisputed_late_ratio"] == pytest.approx(3 / 5)  # P3, P5, P6 of P2..P6
    assert row["hist_undisputed_avg_days_late"] == pytest.approx((-2 + 5 + 0 + 10 + 10) / 5)
    assert row["hist_late_ratio"] == pytest.approx(4 / 6)


def test_season_of_the_due_date(row):
    assert row["due_month"] == 7 and row["due_weekday"] == 2  # 2024-07-31 was a Wednesday
    assert row["hist_month_n_cleared"] == 1 and row["hist_month_avg_days_late"] == 10  # P6
    assert row["hist_season_n_cleared"] == 1  # June to August: P6 only
    # Invoices due in May (P5) count for a June invoice's season, not for this July one.
    assert row["hist_season_late_ratio"] == 1.0
    assert row["hist_season_excess_days_late"] == pytest.approx(10 - 43 / 6)


def test_history_in_the_current_segment(row):
    assert row["customer_segment"] == "paperless"
    assert row["hist_same_segment_n_cleared"] == 2  # P5, P6 were posted after the switch
    assert row["hist_same_segment_share"] == pytest.approx(2 / 6)
    assert row["hist_same_segment_late_ratio"] == 1.0
    assert row["hist_same_segment_avg_days_late"] == 10


def test_drift_line_and_relative_amount(row):
    due = pd.to_datetime([p[2] for p in PAID]).to_numpy(dtype="datetime64[D]").astype(float)
    late = np.array([20, -2, 5, 0, 10, 10], dtype=float)
    slope, intercept = np.polyfit(due, late, 1)
    x_due = float(np.datetime64("2024-07-31", "D").astype(int))
    assert row["hist_days_late_slope"] == pytest.approx(30 * slope)
    assert row["hist_days_late_trend_at_due"] == pytest.approx(intercept + slope * x_due)
    assert row["hist_avg_invoice_amount"] == 1000.0 and row["amount_vs_customer_avg"] == 2.0
