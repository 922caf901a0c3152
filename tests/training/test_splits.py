"""Time splits: no row and no label crosses a cut-off; censoring never biases the targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_rows import make_rows

from features.config import PaydelayConfig
from training.splits import Cutoffs, censor_at, resolve_cutoffs, split_rows

T = pd.Timestamp
CUT = Cutoffs(T("2024-01-01"), T("2024-03-01"), T("2024-04-01"), T("2024-05-01"))


def _cfg(**training) -> PaydelayConfig:
    return PaydelayConfig.model_validate({"training": {"payment_horizon_days": 30, **training}})


def _row(inv, t, due, outcome, kind="posting", days_late=None, bucket=None, written_off=False,
         end=T("2024-06-01")):
    t, due = T(t), T(due)
    out = T(outcome) if outcome else None
    known = out is not None and out <= end
    late = None if not known else float(out.normalize() > due)
    dl = None if not known else float((out.normalize() - due).days)
    return {
        "invoice_id": inv, "customer_id": "C1", "company_code": "1000", "snapshot_time": t,
        "snapshot_kind": kind, "posting_time": t, "net_due_date": due, "open_amount": 100.0,
        "label_late": late, "label_delay_bucket": bucket if known else None,
        "label_days_late": dl, "label_days_to_clear": (out - t) / pd.Timedelta(days=1)
        if known else None, "label_written_off": written_off and known, "censored": not known,
        "observed_days": ((out if known else end) - t) / pd.Timedelta(days=1),
        "outcome_time": out if known else pd.NaT,
    }


def _tiny() -> pd.DataFrame:
    rows = [
        # A: train row, paid before the train end -> label kept (on time).
        _row("A", "2024-01-05", "2024-02-04", "2024-02-01 10:00", bucket=0),
        # B: train row, paid after the train end (late) -> censored in train, label NaN, and the
        #    late flag is still decided (open past due at the cut-off) -> target_late 1.
        _row("B", "2024-01-10", "2024-02-09", "2024-03-20 10:00", bucket=2),
        # C: train row, due after the train end, paid early before it -> its label is known but
        #    only early payers of that cohort are known: excluded from the risk targets.
        _row("C", "2024-02-20", "2024-03-21", "2024-02-25 10:00", bucket=0),
        # D: train row, due after the train end and still open at it -> censored, no target.
        _row("D", "2024-02-25", "2024-03-26", "2024-04-20 10:00", bucket=1),
        # E: calibration row paid within the calibration window.
        _row("E", "2024-03-05", "2024-03-10", "2024-03-15 10:00", bucket=1),
        # F: test row open at the end of the log (censored everywhere); a "now" row of it too.
        _row("F", "2024-04-10", "2024-04-20", None),
        _row("F", "2024-05-01", "2024-04-20", None, kind="now"),
        # G: after the test end -> counted, not in any split.
        _row("G", "2024-05-10", "2024-06-09", None),
    ]
    frame = pd.DataFrame(rows)
    for c in ("snapshot_time", "posting_time", "net_due_date", "outcome_time"):
        frame[c] = pd.to_datetime(frame[c]).astype("datetime64[us]")
    frame["label_delay_bucket"] = frame["label_delay_bucket"].astype("Int8")
    for c in ("label_late", "label_days_late", "label_days_to_clear"):
        frame[c] = frame[c].astype("float64")
    return frame


def test_tiny_frame_labels_as_known_at_each_cutoff():
    s = split_rows(_tiny(), _cfg(), cutoffs=CUT)
    tr = s.train.set_index("invoice_id")
    assert list(tr.index) == ["A", "B", "C", "D"]
    assert tr.loc["A", "label_late"] == 0 and not tr.loc["A", "censored"]
    # B: the late payment (2024-03-20) is after the train end: label hidden, flag decided.
    assert tr.loc["B", "censored"] and np.isnan(tr.loc["B", "label_late"])
    assert pd.isna(tr.loc["B", "outcome_time"]) and np.isnan(tr.loc["B", "label_days_to_clear"])
    assert tr.loc["B", "observed_days"] == pytest.approx((CUT.train_end - T("2024-01-10")).days)
    assert tr.loc["B", "target_late"] == 1 and tr.loc["B", "risk_used"]
    # C: known early payer of an immature cohort: never used as a risk target.
    assert tr.loc["C", "label_late"] == 0 and not tr.loc["C", "risk_used"]
    assert np.isnan(tr.loc["C", "target_late"])
    assert not tr.loc["D", "risk_used"] and tr.loc["D", "censored"]
    # Payment horizon 30 days: A (t + 30 <= cut-off) has a target, clipped at 30 days.
    assert tr.loc["A", "payment_used"] and tr.loc["A", "target_days_to_clear"] == pytest.approx(
        (T("2024-02-01 10:00") - T("2024-01-05")) / pd.Timedelta(days=1))
    assert tr.loc["B", "payment_used"] and tr.loc["B", "target_days_to_clear"] == 30.0
    assert not tr.loc["C", "payment_used"]  # t + 30 days is after the train end

    cal = s.calibration.set_index("invoice_id")
    assert list(cal.index) == ["E"] and cal.loc["E", "label_late"] == 1
    te = s.test
    assert list(te["invoice_id"]) == ["F", "F"] and te["censored"].all()
    assert not te["risk_used"].any() or te.loc[te["snapshot_kind"] == "now", "risk_used"].eq(
        False).all()
    counts = s.counts
    assert counts.loc["after_test_end", "rows"] == 1
    assert counts["rows"].sum() == 8
    assert counts.loc["train", "censored"] == 2 and counts.loc["train", "risk_used"] == 2


def test_no_row_or_label_crosses_a_cutoff_on_generated_rows():
    rows, _ = make_rows(1500, seed=3)
    cfg = _cfg(payment_horizon_days=60)
    s = split_rows(rows, cfg)
    c = s.cutoffs
    bounds = {"train": (c.start, c.train_end), "calibration": (c.train_end, c.calibration_end),
              "test": (c.calibration_end, c.test_end)}
    assert s.counts["rows"].sum() == len(rows)
    for name, (lo, hi) in bounds.items():
        f = s.frame(name)
        assert len(f) > 100
        assert (f["snapshot_time"] <= hi).all() and (f["snapshot_time"] >= lo).all()
        known = ~f["censored"]
        assert (f.loc[known, "outcome_time"] <= hi).all()
        assert f.loc[~known, ["label_late", "label_days_to_clear", "label_days_late"]] \
            .isna().all().all()
        assert f.loc[~known, "label_delay_bucket"].isna().all()
        assert f.loc[~known, "outcome_time"].isna().all()
        horizon = (hi - f["snapshot_time"]) / pd.Timedelta(days=1)
        assert (f["observed_days"] <= horizon + 1e-9).all()
        # every target is decided by events up to the cut-off
        used = f[f["payment_used"]]
        assert ((used["snapshot_time"] + pd.Timedelta(days=60)) <= hi).all()
        assert (used["target_days_to_clear"] <= 60).all()
        assert f.loc[f["risk_used"], "target_late"].notna().all()
    # The train slice hides outcomes that the full log knows: re-censoring really happened.
    assert s.train["censored"].sum() > rows.loc[rows["snapshot_time"] <= c.train_end,
                                                 "censored"].sum()


def test_censor_at_is_idempotent_and_monotone():
    rows, _ = make_rows(400, seed=5)
    cut = rows["snapshot_time"].quantile(0.5)
    once = censor_at(rows, cut)
    pd.testing.assert_frame_equal(once, censor_at(once, cut))
    assert once["censored"].sum() >= rows["censored"].sum()


def test_cutoffs_from_dates_and_fractions():
    rows, _ = make_rows(300, seed=1, start="2023-01-01", days=300)
    by_date = resolve_cutoffs(rows, _cfg(train_end="2023-06-01", calibration_end="2023-08-01",
                                         test_end="2023-10-01"))
    assert (by_date.train_end, by_date.calibration_end, by_date.test_end) == (
        T("2023-06-01"), T("2023-08-01"), T("2023-10-01"))
    frac = resolve_cutoffs(rows, _cfg(train_fraction=0.5, calibration_fraction=0.25))
    span = frac.test_end - frac.start
    assert abs((frac.train_end - frac.start) / span - 0.5) < 0.01
    assert frac.train_end < frac.calibration_end < frac.test_end
    with pytest.raises(ValueError, match="train_end .* < calibration_end"):
        resolve_cutoffs(rows, _cfg(train_end="2023-08-01", calibration_end="2023-06-01"))


def test_missing_columns_are_named():
    rows, _ = make_rows(100, seed=1)
    with pytest.raises(ValueError, match=r"\['outcome_time'\]"):
        split_rows(rows.drop(columns="outcome_time"), _cfg())


def test_a_closed_frame_uses_every_row_with_its_real_label():
    """A settled-invoices extract (nothing open at the test end): every test row is used, also
    those whose due date or payment horizon lies beyond the cut-off; one open row switches the
    date rules back on for the whole frame."""
    end = T("2024-05-01")
    rows = [
        _row("A", "2024-01-05", "2024-02-04", "2024-02-01 10:00", bucket=0),
        _row("B", "2024-01-10", "2024-02-09", "2024-03-20 10:00", bucket=2),
        # Test rows, all paid by the test end; H's due date is after it (paid early).
        _row("G", "2024-04-05", "2024-04-10", "2024-04-25 10:00", bucket=1),
        _row("H", "2024-04-20", "2024-05-20", "2024-04-28 10:00", bucket=0),
    ]
    frame = _tiny().iloc[:0]
    frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).astype(frame.dtypes)
    te = split_rows(frame, _cfg(), cutoffs=CUT).test.set_index("invoice_id")
    assert te["risk_used"].all() and te["payment_used"].all()
    assert te.loc["G", "target_late"] == 1 and te.loc["H", "target_late"] == 0
    assert te.loc["H", "target_days_to_clear"] == pytest.approx(8 + 10 / 24)
    # The same frame with one invoice still open at the end: H is an early payer of an immature
    # cohort again, and payment targets need t + horizon <= the end.
    still_open = pd.concat([frame, pd.DataFrame([_row("I", "2024-04-22", "2024-05-22", None)])],
                           ignore_index=True).astype(frame.dtypes)
    te = split_rows(still_open, _cfg(), cutoffs=CUT).test.set_index("invoice_id")
    assert not te.loc["H", "risk_used"] and np.isnan(te.loc["H", "target_late"])
    assert not te["payment_used"].any() and te.loc["G", "risk_used"]
    assert end == CUT.test_end
