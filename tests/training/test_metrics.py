"""Metrics on constructed inputs whose values are known by hand."""

import numpy as np
import pandas as pd
import pytest

from training.metrics import (
    brier_score,
    ece_interval,
    evaluate_predictions,
    expected_calibration_error,
    interval_coverage,
    log_loss,
    payment_date_metrics,
    pinball_loss,
    reliability_table,
    risk_metrics,
)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_ece_of_calibrated_probabilities_is_near_zero_and_shifted_is_not(strategy):
    rng = np.random.default_rng(7)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(float)
    assert expected_calibration_error(y, p, 10, strategy) < 0.01
    shifted = np.clip(p + 0.2, 0, 1)  # over-confident in lateness by 20 points
    assert expected_calibration_error(y, shifted, 10, strategy) > 0.15


def test_ece_hand_computed():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.2, 0.2, 0.8, 0.8])
    # bin [0, .5): mean .2, observed .5, gap .3 ; bin [.5, 1]: mean .8, observed 1, gap .2
    assert expected_calibration_error(y, p, 2, "uniform") == pytest.approx(0.25)
    assert expected_calibration_error(y, p, 2, "quantile") == pytest.approx(0.25)


def test_ece_interval_resamples_invoices_not_their_snapshots():
    rng = np.random.default_rng(3)
    p = rng.random(2000)
    y = (rng.random(p.size) < p).astype(float)
    lo, hi = ece_interval(y, p, np.arange(p.size), seed=1)
    assert lo < expected_calibration_error(y, p) < hi
    # Five snapshots per invoice sharing its outcome: resampling invoices gives exactly the
    # interval of one row per invoice; resampling the rows pretends to 5x the data.
    inv = np.repeat(np.arange(p.size), 5)
    assert ece_interval(y[inv], p[inv], inv, seed=1) == pytest.approx((lo, hi))
    row_lo, row_hi = ece_interval(y[inv], p[inv], np.arange(inv.size), seed=1)
    assert row_hi - row_lo < 0.7 * (hi - lo)
    with pytest.raises(ValueError, match="groups has 3 entries for 2000 rows"):
        ece_interval(y, p, [1, 2, 3])


def test_reliability_table_bins_and_gaps():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.85, 0.95, 1.0])  # 1.0 falls in the last bin, not an 11th
    table = reliability_table(y, p, 10, "uniform")
    assert list(table["n"]) == [1, 1, 0, 0, 0, 0, 0, 0, 1, 2]
    last = table.iloc[9]
    assert last["mean_predicted"] == pytest.approx(0.975)
    assert last["observed_rate"] == 1.0
    assert last["gap"] == pytest.approx(0.025)
    assert table.iloc[0]["lower"] == 0.0 and table.iloc[9]["upper"] == 1.0


def test_equal_mass_bins_hold_equal_counts():
    p = np.linspace(0.01, 0.99, 100)
    table = reliability_table(np.zeros(100), p, 4, "quantile")
    assert list(table["n"]) == [25, 25, 25, 25]
    assert table.iloc[0]["upper"] < table.iloc[1]["lower"]


def test_brier_and_log_loss_known_values():
    y = np.array([1.0, 0.0])
    p = np.array([0.8, 0.4])
    assert brier_score(y, p) == pytest.approx((0.04 + 0.16) / 2)
    assert log_loss(y, p) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_risk_metrics_perfect_ranking_and_single_class():
    m = risk_metrics([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9])
    assert m["roc_auc"] == 1.0 and m["pr_auc"] == 1.0 and m["n_late"] == 2
    one = risk_metrics([1, 1], [0.3, 0.9])
    assert np.isnan(one["roc_auc"]) and one["brier"] == pytest.approx((0.49 + 0.01) / 2)
    with pytest.raises(ValueError, match="p_late must lie"):
        risk_metrics([0, 1], [0.2, 1.3])


def test_interval_coverage_of_known_intervals():
    y = [1, 5, 10, 20]
    lo = [0, 6, 9, 0]
    hi = [2, 8, 10, 19]  # in, below, on the upper bound (in), above
    assert interval_coverage(y, lo, hi) == 0.5
    with pytest.raises(ValueError, match="lower > upper"):
        interval_coverage([1], [3], [2])


def test_pinball_loss_known_values():
    assert pinball_loss([10, 10], [8, 12], 0.9) == pytest.approx((0.9 * 2 + 0.1 * 2) / 2)
    assert pinball_loss([10, 10], [8, 12], 0.1) == pytest.approx((0.1 * 2 + 0.9 * 2) / 2)
    y = np.array([3.0, 7.0, 1.0])
    pred = np.array([5.0, 5.0, 5.0])
    assert pinball_loss(y, pred, 0.5) == pytest.approx(np.mean(np.abs(y - pred)) / 2)


def test_payment_date_metrics_without_interval():
    pred = pd.DataFrame({"days_to_clear_p50": [10.0, 20.0, 30.0]})
    m = payment_date_metrics([12.0, 20.0, 40.0], pred)
    assert m["mae_days"] == pytest.approx(4.0)
    assert m["median_ae_days"] == 2.0
    assert np.isnan(m["coverage_p10_p90"]) and np.isnan(m["pinball_p90"])
    assert m["pinball_p50"] == pytest.approx(2.0)


def _rows():
    return pd.DataFrame({
        "label_late": [1.0, 0.0, np.nan, 1.0, 0.0],
        "censored": [False, False, True, False, False],
        "label_days_to_clear": [30.0, 5.0, np.nan, 60.0, 10.0],
        "label_written_off": [False, False, False, True, False],
    }, index=[10, 11, 12, 13, 14])


def test_evaluate_predictions_excludes_and_counts_censored_rows():
    rows = _rows()
    pred = pd.DataFrame({
        "p_late": [0.9, 0.2, 0.5, 0.6, 0.1],
        "days_to_clear_p10": [20.0, 0.0, 0.0, 0.0, 0.0],
        "days_to_clear_p50": [25.0, 5.0, 99.0, 0.0, 12.0],
        "days_to_clear_p90": [40.0, 9.0, 99.0, 0.0, 20.0],
    }, index=rows.index)
    m = evaluate_predictions(rows, pred)
    assert m["n_censored_excluded"] == 1 and m["n"] == 4 and m["n_rows"] == 5
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.01) / 4)
    # date metrics: censored row 12 and written-off row 13 left out -> rows 10, 11, 14
    assert m["n_date_excluded"] == 2
    assert m["mae_days"] == pytest.approx((5 + 0 + 2) / 3)
    assert m["coverage_p10_p90"] == 1.0


def test_rank_only_scorer_gets_auc_but_no_calibration():
    rows = _rows()
    pred = pd.DataFrame({"risk_score": [0.9, 0.1, 0.5, 0.8, 0.2]}, index=rows.index)
    m = evaluate_predictions(rows, pred)
    assert m["roc_auc"] == 1.0 and np.isnan(m["brier"]) and np.isnan(m["ece"])


def test_misaligned_predictions_are_refused():
    rows = _rows()
    pred = pd.DataFrame({"p_late": [0.1] * 5})  # default index 0..4, rows use 10..14
    with pytest.raises(ValueError, match="not aligned"):
        evaluate_predictions(rows, pred, name="m")
