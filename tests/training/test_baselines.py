"""Baselines: exact predictions on hand-built rows, point-in-time use of history only."""

import numpy as np
import pandas as pd
import pytest

from eval_rows import make_rows
from features.config import PaydelayConfig
from features.config.evaluation import EvaluationConfig
from features.config.features import FeatureConfig
from training.baselines import (
    BASELINE_NAMES,
    AverageDaysDelinquentBaseline,
    DueDateBaseline,
    HistoricalDelayBaseline,
    baseline_predictions,
)

D0 = pd.Timestamp("2024-01-01")


def day(n: float) -> pd.Timestamp:
    return D0 + pd.Timedelta(days=n)


def _open_rows() -> pd.DataFrame:
    """Three open items at t = day 50: due in 10 days, due today, 5 days overdue."""
    return pd.DataFrame({
        "invoice_id": ["X1", "X2", "X3"],
        "customer_id": ["C", "K", "C"],
        "snapshot_time": [day(50)] * 3,
        "net_due_date": [day(60), day(50), day(45)],
        "open_amount": [100.0, 200.0, 300.0],
        "hist_n_cleared": [4.0, 0.0, 4.0],
        "hist_n_cleared_late": [3.0, 0.0, 3.0],
        "hist_late_ratio": [0.75, np.nan, 0.75],
        "hist_avg_days_late": [12.0, np.nan, 12.0],
        "cold_start": [False, True, False],
    }, index=[21, 22, 23])


def _train_rows() -> pd.DataFrame:
    """Customer C's paid history (one row per invoice) plus another customer's invoices.

    I1 100 paid 10 days late on day 10; I2 300 paid 2 days early on day 20; I3 100 paid 30 days
    late on day 40; I4 50 of customer K written off (never counts as paid); I5 censored.
    """
    return pd.DataFrame({
        "invoice_id": ["I1", "I2", "I3", "I4", "I5"],
        "customer_id": ["C", "C", "C", "K", "K"],
        "snapshot_time": [day(-30), day(-20), day(-20), day(-10), day(0)],
        "net_due_date": [day(0), day(22), day(10), day(5), day(30)],
        "amount": [100.0, 300.0, 100.0, 50.0, 80.0],
        "open_amount": [100.0, 300.0, 100.0, 50.0, 80.0],
        "label_late": [1.0, 0.0, 1.0, 1.0, np.nan],
        "label_days_late": [10.0, -2.0, 30.0, 40.0, np.nan],
        "label_written_off": [False, False, False, True, False],
        "censored": [False, False, False, False, True],
        "outcome_time": [day(10), day(20), day(40), day(45), pd.NaT],
    })


def test_due_date_baseline():
    pred = DueDateBaseline(grace_days=0, p_late=0.02).predict(_open_rows())
    assert list(pred.index) == [21, 22, 23]
    assert list(pred["days_to_clear_p50"]) == [10.0, 0.0, 0.0]
    # the overdue item is already late (its label is determined): the baseline says so
    assert list(pred["p_late"]) == [0.02, 0.02, 0.999]
    assert pred.loc[21, "pay_date_p50"] == day(60)
    assert list(pred["expected_amount_at_risk"]) == pytest.approx([2.0, 4.0, 6.0])
    # with 7 grace days, 5 days overdue is not yet decided
    assert DueDateBaseline(grace_days=7).predict(_open_rows()).loc[23, "p_late"] == 0.02


def test_hist_avg_delay_uses_history_and_falls_back_on_training_mean():
    b = HistoricalDelayBaseline(grace_days=0, prior_strength=1.0).fit(_train_rows())
    # training: per invoice late rate over I1-I4 = 3/4; mean days late of PAID invoices = 38/3
    assert b.late_rate_ == pytest.approx(0.75)
    assert b.mean_days_late_ == pytest.approx((10 - 2 + 30) / 3)
    pred = b.predict(_open_rows())
    # X1: due in 10 days + 12 days late on average = 22 days; X2 (cold): 0 + 38/3
    assert pred.loc[21, "days_to_clear_p50"] == pytest.approx(22.0)
    assert pred.loc[22, "days_to_clear_p50"] == pytest.approx(38 / 3)
    assert pred.loc[23, "days_to_clear_p50"] == pytest.approx(7.0)
    # P(late): (3 + 1 * 0.75) / (4 + 1) ; cold start gets the training rate
    assert pred.loc[21, "p_late"] == pytest.approx(3.75 / 5)
    assert pred.loc[22, "p_late"] == pytest.approx(0.75)
    assert pred.loc[23, "p_late"] == 0.999
    # the worklist weight keeps the customer's propensity, not the determined 0.999
    assert pred.loc[23, "expected_amount_at_risk"] == pytest.approx(300 * 3.75 / 5)


def test_hist_baseline_is_point_in_time_it_reads_only_hist_features():
    rows = make_rows(n_invoices=200, seed=3)[0]
    b = HistoricalDelayBaseline().fit(rows)
    before = b.predict(rows)
    scrambled = rows.copy()
    rng = np.random.default_rng(0)
    for col in ("label_late", "label_days_late", "label_days_to_clear", "observed_days"):
        scrambled[col] = rng.permutation(scrambled[col].to_numpy())
    scrambled["outcome_time"] = scrambled["outcome_time"] + pd.Timedelta(days=5)
    pd.testing.assert_frame_equal(before, b.predict(scrambled))
    moved = rows.copy()
    moved["hist_avg_days_late"] = moved["hist_avg_days_late"] + 5
    assert not before["days_to_clear_p50"].equals(b.predict(moved)["days_to_clear_p50"])


def test_add_amount_weighted_point_in_time():
    b = AverageDaysDelinquentBaseline(grace_days=0, prior_strength=1.0).fit(_train_rows())
    # training ADD over paid invoices: (100*10 + 300*0 + 100*30) / 500 = 8; late share 200/500
    assert b.add_ == pytest.approx(8.0)
    assert b.late_share_ == pytest.approx(0.4)
    rows = pd.DataFrame({
        "invoice_id": ["Y1", "Y2", "Y3", "Y4"],
        "customer_id": ["C", "C", "C", "C"],
        "snapshot_time": [day(5), day(20), day(25), day(40)],
        "net_due_date": [day(30)] * 4,
        "open_amount": [10.0] * 4,
    })
    h = b.customer_add(rows)
    # day 5: nothing paid yet; day 20: I1 and I2 (paid exactly at t counts as known);
    # day 25: same; day 40: I1, I2, I3
    assert list(h["add_n_paid"]) == [0, 2, 2, 3]
    assert np.isnan(h.loc[0, "add_days"])
    assert h.loc[1, "add_days"] == pytest.approx(1000 / 400)
    assert h.loc[3, "add_days"] == pytest.approx(4000 / 500)
    assert h.loc[2, "add_late_share"] == pytest.approx(0.25)
    pred = b.predict(rows)
    assert pred.loc[0, "days_to_clear_p50"] == pytest.approx(25 + 8.0)  # fallback ADD
    assert pred.loc[2, "days_to_clear_p50"] == pytest.approx(5 + 2.5)
    assert pred.loc[2, "p_late"] == pytest.approx((0.25 * 2 + 0.4) / 3)
    assert pred.loc[0, "p_late"] == pytest.approx(0.4)


def test_add_ignores_outcomes_after_t():
    b = AverageDaysDelinquentBaseline().fit(_train_rows())
    rows = pd.DataFrame({"invoice_id": ["Y"], "customer_id": ["C"], "snapshot_time": [day(25)],
                         "net_due_date": [day(30)], "open_amount": [1.0]})
    before = b.customer_add(rows)
    later = _train_rows()
    later.loc[2, "label_days_late"] = 500.0  # I3, paid on day 40 > t
    after = AverageDaysDelinquentBaseline().fit(later).customer_add(rows)
    pd.testing.assert_frame_equal(before, after)
    earlier = _train_rows()
    earlier.loc[0, "label_days_late"] = 20.0  # I1, paid on day 10 <= t
    changed = AverageDaysDelinquentBaseline().fit(earlier).customer_add(rows)
    assert changed.loc[0, "add_days"] == pytest.approx(2000 / 400)


def test_add_uses_outcomes_of_predicted_rows_known_by_t():
    b = AverageDaysDelinquentBaseline().fit(_train_rows())
    rows = pd.DataFrame({
        "invoice_id": ["Z1", "Z2"], "customer_id": ["N", "N"],
        "snapshot_time": [day(0), day(50)], "net_due_date": [day(10), day(60)],
        "open_amount": [100.0, 100.0], "label_days_late": [20.0, np.nan],
        "label_written_off": [False, False], "censored": [False, True],
        "outcome_time": [day(30), pd.NaT],
    })
    h = b.customer_add(rows)
    # Z1 paid on day 30: unknown at its own snapshot (day 0), known to Z2's (day 50)
    assert list(h["add_n_paid"]) == [0, 1]
    assert h.loc[1, "add_days"] == 20.0


def test_baseline_predictions_share_the_model_columns():
    rows = make_rows(n_invoices=150, seed=5)[0]
    cfg = PaydelayConfig(features=FeatureConfig(grace_days=3),
                         evaluation=EvaluationConfig(due_date_p_late=0.05))
    preds = baseline_predictions(rows, rows, cfg)
    assert list(preds) == list(BASELINE_NAMES)
    for pred in preds.values():
        assert {"p_late", "days_to_clear_p50", "pay_date_p50",
                "expected_amount_at_risk"} <= set(pred.columns)
        assert pred.index.equals(rows.index)
        assert pred["p_late"].between(0, 1).all() and (pred["days_to_clear_p50"] >= 0).all()
    assert preds["due_date"]["p_late"].min() == 0.05


def test_fit_without_known_outcomes_is_refused():
    rows = _train_rows()
    rows["censored"] = True
    with pytest.raises(ValueError, match="hist_avg_delay"):
        HistoricalDelayBaseline().fit(rows)
    with pytest.raises(KeyError, match="hist_avg_days_late"):
        HistoricalDelayBaseline().fit(_train_rows()).predict(
            _open_rows().drop(columns=["hist_avg_days_late"]))
