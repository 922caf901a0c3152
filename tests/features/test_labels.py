"""Labels on hand-built invoices: grace days, bucket edges, write-offs, censoring."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features import schema
from features.pit.build import build_training_set, summary
from features.config.features import FeatureConfig
from features.ingest.ibm import load_ibm_ar
from features.pit.labels import labels_at
from reference import event_frame, invoice_rows

A = schema.Activity
DUE = "2024-01-31"
END = "2024-12-31"


def _cleared(inv: str, when: str) -> list[dict]:
    return [{"event_time": when, "activity": A.INCOMING_PAYMENT_POSTED.value, "invoice_id": inv,
             "customer_id": "C1", "amount": 100.0},
            {"event_time": when, "activity": A.INVOICE_CLEARED.value, "invoice_id": inv,
             "customer_id": "C1", "amount": 0.0}]


def _one(outcome: list[dict] | None, config: FeatureConfig, t: str = "2024-01-01",
         end=None, last_refresh: str = END) -> dict:
    rows = [invoice_rows("I1", "C1", "2024-01-01", DUE, 100.0)] + (outcome or [])
    events = event_frame(rows, last_refresh)
    snaps = pd.DataFrame({"invoice_id": ["I1"], "snapshot_time": [pd.Timestamp(t)]})
    return labels_at(events, snaps, config, end_time=end).iloc[0].to_dict()


# (clearing time, days late, late with grace 0, bucket with grace 0)
CASES = [
    ("2024-01-25 10:00", -6, 0.0, 0),  # early
    ("2024-01-31 23:59", 0, 0.0, 0),  # on the due date, late in the evening: on time
    ("2024-02-01 00:00", 1, 1.0, 1),  # the first instant of the day after: 1 day late
    ("2024-03-01 12:00", 30, 1.0, 1),  # last day of the 1-30 bucket
    ("2024-03-02 08:00", 31, 1.0, 2),
    ("2024-03-31 08:00", 60, 1.0, 2),
    ("2024-04-01 08:00", 61, 1.0, 3),
    ("2024-04-30 08:00", 90, 1.0, 3),
    ("2024-05-01 08:00", 91, 1.0, 4),
    ("2024-09-01 08:00", 214, 1.0, 4),
]


@pytest.mark.parametrize("when,days_late,late,bucket", CASES)
def test_days_late_and_bucket_edges(when, days_late, late, bucket):
    got = _one(_cleared("I1", when), FeatureConfig())
    assert got["label_days_late"] == days_late
    assert got["label_late"] == late
    assert got["label_delay_bucket"] == bucket
    assert not got["censored"]
    assert not got["label_written_off"]
    assert got["outcome_time"] == pd.Timestamp(when)
    expected_days = (pd.Timestamp(when) - pd.Timestamp("2024-01-01")) / pd.Timedelta(days=1)
    assert got["label_days_to_clear"] == pytest.approx(expected_days, abs=1e-12)
    assert got["observed_days"] == got["label_days_to_clear"]


@pytest.mark.parametrize("when,grace,late,bucket", [
    ("2024-02-01 09:00", 1, 0.0, 0),  # 1 day late, inside 1 grace day: on time, bucket 0 too
    ("2024-02-02 09:00", 1, 1.0, 1),  # 2 days late: late
    ("2024-02-05 09:00", 5, 0.0, 0),
    ("2024-02-06 09:00", 5, 1.0, 1),
    ("2024-03-05 09:00", 5, 1.0, 2),  # 34 days late
])
def test_grace_days(when, grace, late, bucket):
    got = _one(_cleared("I1", when), FeatureConfig(grace_days=grace))
    assert got["label_late"] == late
    assert got["label_delay_bucket"] == bucket


def test_custom_bucket_edges():
    cfg = FeatureConfig(bucket_edges=(0, 10, 20))
    assert _one(_cleared("I1", "2024-02-10"), cfg)["label_delay_bucket"] == 1  # 10 days
    assert _one(_cleared("I1", "2024-02-11"), cfg)["label_delay_bucket"] == 2  # 11 days
    assert _one(_cleared("I1", "2024-03-20"), cfg)["label_delay_bucket"] == 3  # 49 days


@pytest.mark.parametrize("when,days_late", [("2024-03-10", 39), ("2024-01-15", -16)])
def test_written_off_is_late_and_worst_bucket(when, days_late):
    wo = [{"event_time": when, "activity": A.INVOICE_WRITTEN_OFF.value, "invoice_id": "I1",
           "customer_id": "C1", "amount": 100.0, "is_written_off": True}]
    got = _one(wo, FeatureConfig(grace_days=3))
    assert got["label_written_off"]
    assert got["label_late"] == 1.0
    assert got["label_delay_bucket"] == len(FeatureConfig().bucket_edges)  # > 90 days bucket
    assert got["label_days_late"] == days_late
    assert not got["censored"]


def _assert_censored(got: dict, observed: float) -> None:
    assert got["censored"]
    assert math.isnan(got["label_late"])  # never "on time"
    assert pd.isna(got["label_delay_bucket"])
    assert math.isnan(got["label_days_late"]) and math.isnan(got["label_days_to_clear"])
    assert not got["label_written_off"]
    assert got["outcome_time"] is pd.NaT
    assert got["observed_days"] == pytest.approx(observed, abs=1e-12)


def test_censored_without_outcome():
    got = _one(None, FeatureConfig())
    _assert_censored(got, (pd.Timestamp(END) - pd.Timestamp("2024-01-01")).days)
    assert got["label_late_known"] == 1.0  # already far past due at the end: will be late


def test_censored_when_outcome_after_cutoff():
    """Paid on time in the log, but after the cutoff: censored, not on time."""
    got = _one(_cleared("I1", "2024-01-30"), FeatureConfig(), end="2024-01-20 12:00")
    _assert_censored(got, 19.5)
    assert math.isnan(got["label_late_known"])  # cutoff before the due date: nothing known


def test_censored_when_outcome_recorded_after_cutoff():
    """Business time before the cutoff, recorded after it: not known at the cutoff."""
    outcome = _cleared("I1", "2024-01-30")
    for row in outcome:
        row["recorded_time"] = "2024-02-03"
    got = _one(outcome, FeatureConfig(), end="2024-02-01")
    _assert_censored(got, 31.0)
    known = _one(outcome, FeatureConfig(), end="2024-02-03")
    assert known["label_late"] == 0.0 and known["label_days_late"] == -1


def test_censored_rows_are_counted_in_training_set_and_summary():
    rows = []
    for i, outcome_day in enumerate(["2024-01-20", "2024-02-20", None, None, "2025-03-01"]):
        inv = f"I{i}"
        rows.append(invoice_rows(inv, "C1", "2024-01-01", DUE, 100.0))
        if outcome_day:
            rows += [dict(r, invoice_id=inv) for r in _cleared(inv, outcome_day)]
    events = event_frame(rows, "2024-06-30")
    df = build_training_set(events, None, FeatureConfig(max_snapshots_per_invoice=3), seed=0)
    by_inv = df.groupby("invoice_id")["censored"].all()
    assert by_inv.to_dict() == {"I0": False, "I1": False, "I2": True, "I3": True, "I4": True}
    assert df.loc[df["censored"], "label_late"].isna().all()
    assert (df.loc[~df["censored"], "label_late"].notna()).all()
    s = summary(df)
    assert s["censored"] == int(df["censored"].sum()) == 9  # 3 open invoices x 3 snapshots
    assert s["rows"] == 3 + 3 + 9 and s["invoices"] == 5
    assert s["late_share_uncensored"] == pytest.approx(0.5)  # I0 on time, I1 late
    assert df["label_delay_bucket"].dtype == "Int8"
    assert list(df.columns[:8]) == list(schema.ROW_KEY_COLUMNS)
    assert set(schema.LABEL_COLUMNS) <= set(df.columns)


def test_labels_come_from_after_t():
    """A row's days to clear shrink as t moves; the outcome is the same."""
    events = event_frame([invoice_rows("I1", "C1", "2024-01-01", DUE, 100.0)]
                         + _cleared("I1", "2024-03-01"), END)
    snaps = pd.DataFrame({"invoice_id": ["I1", "I1"],
                          "snapshot_time": pd.to_datetime(["2024-01-01", "2024-02-15"])})
    got = labels_at(events, snaps, FeatureConfig())
    assert got["label_days_to_clear"].tolist() == [60.0, 15.0]
    assert got["label_days_late"].tolist() == [30.0, 30.0]
    # An invoice already cleared at t has no row: asking for one is an error.
    late = pd.DataFrame({"invoice_id": ["I1"], "snapshot_time": [pd.Timestamp("2024-03-02")]})
    with pytest.raises(ValueError, match="not open"):
        labels_at(events, late, FeatureConfig())


def test_ibm_sample_builds_and_reports_censoring():
    """The IBM AR sample (every invoice settled) builds; a mid-file cutoff censors the rest."""
    ledger = load_ibm_ar()
    full = build_training_set(ledger.events, ledger.master, FeatureConfig(), seed=0)
    s = summary(full)
    assert s["censored"] == 0 and s["invoices"] > 2400 and s["features"] > 60
    assert 0.3 < s["late_share_uncensored"] < 0.7
    cut = pd.Timestamp("2013-06-30")
    part = build_training_set(ledger.events, ledger.master, FeatureConfig(), seed=0, end_time=cut)
    s_cut = summary(part)
    settled = ledger.events[ledger.events["activity"] == A.INVOICE_CLEARED.value]
    open_at_cut = set(part["invoice_id"]) - set(settled.loc[settled["event_time"] <= cut,
                                                            "invoice_id"])
    assert s_cut["censored"] == int(part["invoice_id"].isin(open_at_cut).sum()) > 0
    assert part.loc[part["censored"], "label_late"].isna().all()
