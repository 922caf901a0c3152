"""Customer master data is read as of each row's t, never as of today."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features import schema
from features.pit.build import build_training_set, features_at
from features.config.features import FeatureConfig
from features.pit.master_asof import master_asof
from reference import event_frame, invoice_rows

A = schema.Activity
RAISED = pd.Timestamp("2024-03-15")


def _master() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["C1", "C1", "C2"],
        "valid_from": pd.to_datetime(["2023-01-01", RAISED, "2024-04-01"]),
        "valid_to": pd.to_datetime([RAISED, None, None]),
        "risk_category": ["B02", "D04", "A01"],
        "credit_limit": [10_000.0, 2_000.0, 50_000.0],
        "customer_segment": ["sme", "sme", "key_account"],
        "collector": ["ANNA", "BOB", "ANNA"],
        "payment_terms": ["NT30", "NT30", "NT30"],
    }).astype({"valid_from": "datetime64[us]", "valid_to": "datetime64[us]"})


def _events() -> pd.DataFrame:
    rows = []
    for i, day in enumerate(pd.date_range("2024-01-05", "2024-05-20", freq="9D")):
        due = (day + pd.Timedelta(days=30)).strftime("%Y-%m-%d")
        rows.append(invoice_rows(f"A{i}", "C1", str(day + pd.Timedelta(hours=10)), due, 1000.0,
                                 risk_category="B02" if day < RAISED else "D04"))
        rows.append(invoice_rows(f"B{i}", "C2", str(day + pd.Timedelta(hours=11)), due, 500.0))
    return event_frame(rows, "2024-06-30")


def test_raised_risk_category_shows_only_from_its_instant():
    df = build_training_set(_events(), _master(), FeatureConfig(grid_days=3), seed=1)
    c1 = df[df["customer_id"] == "C1"]
    before, after = c1[c1["snapshot_time"] < RAISED], c1[c1["snapshot_time"] >= RAISED]
    assert len(before) > 10 and len(after) > 10
    assert (before["risk_category"] == "B02").all()
    assert (after["risk_category"] == "D04").all()
    assert (before["credit_limit"] == 10_000.0).all() and (after["credit_limit"] == 2_000.0).all()
    assert (before["collector"] == "ANNA").all() and (after["collector"] == "BOB").all()
    assert df["risk_category"].dtype == "category"
    # Open amount of all C1 invoices at t (this one included) over the limit in force at t.
    row = after.iloc[0]
    open_c1 = 1000.0 * (row["hist_n_open_other"] + 1)
    assert row["credit_used_ratio"] == pytest.approx(open_c1 / 2_000.0)


def test_the_exact_instant_and_one_microsecond_before():
    snaps = pd.DataFrame({"invoice_id": ["A3", "A3"],
                          "snapshot_time": [RAISED - pd.Timedelta(microseconds=1), RAISED]})
    rows = features_at(_events(), _master(), FeatureConfig(), snaps)
    assert rows["risk_category"].astype(str).tolist() == ["B02", "D04"]


def test_before_the_first_version_is_unknown_not_borrowed_from_later():
    df = build_training_set(_events(), _master(), FeatureConfig(), seed=1)
    c2 = df[df["customer_id"] == "C2"]
    early = c2[c2["snapshot_time"] < pd.Timestamp("2024-04-01")]
    late = c2[c2["snapshot_time"] >= pd.Timestamp("2024-04-01")]
    assert len(early) and len(late)
    assert early["risk_category"].isna().all() and early["credit_limit"].isna().all()
    assert early["credit_used_ratio"].isna().all()
    assert (late["risk_category"] == "A01").all()


def test_without_master_versions_come_from_events_when_known():
    """No master table: the risk category each posting carries, from the instant it is known."""
    events = _events()
    df = build_training_set(events, None, FeatureConfig(grid_days=3), seed=1)
    c1 = df[df["customer_id"] == "C1"]
    first_d04 = events.loc[events["risk_category"] == "D04", "event_time"].min()
    assert (c1.loc[c1["snapshot_time"] < first_d04, "risk_category"] == "B02").all()
    assert (c1.loc[c1["snapshot_time"] >= first_d04, "risk_category"] == "D04").all()


def test_master_asof_ties_and_unknown_customers():
    master = pd.concat([_master(), _master().iloc[[1]].assign(risk_category="E05")])
    got = master_asof(master, ["C1", "C1", "ZZ"],
                      pd.to_datetime(["2024-03-14 23:59", "2024-03-15 00:00", "2024-05-01 00:00"]))
    assert got["risk_category"].tolist()[:2] == ["B02", "E05"]  # same valid_from: last row wins
    assert pd.isna(got["risk_category"].iloc[2]) and math.isnan(got["credit_limit"].iloc[2])
    with pytest.raises(ValueError, match="valid_from"):
        master_asof(master.drop(columns="valid_from"), ["C1"], pd.Timestamp("2024-01-01"))
