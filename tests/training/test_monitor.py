"""The monitor: PSI, the confidence-based estimate, thresholds that name their rule, staleness;
and on simulated worlds (slow): the estimate tracks the realised ROC-AUC, ten calm worlds raise
no alarm, injected drifts are flagged within a stated number of weeks, the report reaches MLflow.

Stated detection delays (weeks after the change, weekly scoring from the cut-off, ledgers of 120
customers): a terms change of one segment, by the ledger-mix check, within 4 weeks; a segment
paying 25 days later, by the per-slice calibration check once its labels mature, within 17 weeks
(its own customer histories absorb part of the change first: the model partly follows it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.config.monitoring import MonitoringConfig
from features.config.simulator import SimulatorConfig
from features.simulate.ledger import simulate_ledger
from features.simulate.shifts import Shift, simulate_shifted
from training.core.staleness import request_ahead_warning, staleness
from training.monitor import (Alarm, MonitorReport, check_thresholds, exempt, expected_auc,
                              expected_ece, psi)


# --------------------------------------------------------------------------- fast -----------
def test_psi_is_near_zero_on_the_same_population_and_large_on_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)
    assert psi(a, b) < 0.02
    assert psi(a, b + 1.0) > 0.5
    # missing values are a bin of their own: a feature that starts arriving empty drifts
    assert psi(a, np.where(rng.random(5000) < 0.3, np.nan, b)) > 0.25


def test_psi_of_categories_counts_a_new_category():
    ref = pd.Series(["NT30"] * 90 + ["NT45"] * 10)
    assert psi(ref, ref.copy(), categorical=True) == pytest.approx(0.0, abs=1e-9)
    assert psi(ref, pd.Series(["NT30"] * 60 + ["0001"] * 40), categorical=True) > 0.5


def test_expected_auc_is_the_mean_auc_of_labels_drawn_from_the_probabilities():
    rng = np.random.default_rng(1)
    p = rng.beta(1.2, 1.5, 800)
    draws = [roc_auc_score(rng.random(len(p)) < p, p) for _ in range(300)]
    assert expected_auc(p) == pytest.approx(np.mean(draws), abs=0.01)


def test_expected_ece_is_a_noise_floor_that_shrinks_with_rows():
    rng = np.random.default_rng(2)
    small, large = expected_ece(rng.random(200)), expected_ece(rng.random(20000))
    assert 0 < large < small < 0.1


def test_exempt_features_match_names_and_prefixes():
    cfg = MonitoringConfig()
    assert exempt("due_month", cfg.drift_exempt)
    assert exempt("hist_season_effect", cfg.drift_exempt)
    assert not exempt("hist_ewm_days_late", cfg.drift_exempt)


def _report(**pooled) -> MonitorReport:
    empty = pd.DataFrame()
    return MonitorReport(pd.Timestamp("2024-06-01"), {}, {"roc_auc": 0.9, "ece": 0.03,
                         "mae_days": 10.0}, empty, {"dates": "2024-04-01..2024-04-22", **pooled},
                         empty, pd.DataFrame(columns=["feature", "psi", "alarmed"]),
                         pd.DataFrame(columns=["output", "psi"]),
                         pd.DataFrame(columns=["column", "psi"]), {}, "ref", "cur")


def test_a_crossed_threshold_names_its_rule_figure_and_window():
    r = _report(n_decided=500, roc_auc=0.70, auc_hi=0.75, ece=0.25, ece_lo=0.22,
                late_rate=0.6, mean_p_late=0.4, calibration_gap=0.2)
    rules = {a.rule: a.line() for a in check_thresholds(r, MonitoringConfig())}
    assert set(rules) == {"realised_roc_auc", "realised_ece", "realised_calibration"}
    assert "0.700" in rules["realised_roc_auc"] and "2024-04-01..2024-04-22" in rules[
        "realised_roc_auc"]
    r.alarms = [Alarm(k, v) for k, v in rules.items()]
    assert r.exit_reason().startswith("ALARM realised_roc_auc") and "(+2 more)" in \
        r.exit_reason()


def test_a_noisy_small_window_is_not_an_alarm():
    # below the ROC-AUC limit, but the interval reaches above it: noise, not an alarm
    r = _report(n_decided=500, roc_auc=0.80, auc_hi=0.90, ece=0.05, ece_lo=0.03)
    assert check_thresholds(r, MonitoringConfig()) == []
    assert _report().exit_reason().startswith("ok")


def test_staleness_ages_and_the_far_future_request_warning():
    s = staleness({"fit_end": "2024-01-01", "test_end": "2024-03-01"}, "2024-03-01",
                  "2024-05-30", now="2024-06-01")
    assert s["model_age_days"] == pytest.approx(152.0)
    assert s["store_age_days"] == pytest.approx(92.0)
    assert s["newest_event_age_days"] == pytest.approx(2.0)
    assert request_ahead_warning("2024-03-10", "2024-03-01", 14) is None
    warning = request_ahead_warning("2024-06-01", "2024-03-01", 14)
    assert warning and "92 days after" in warning


def test_a_shift_changes_only_its_segment_after_its_start():
    cfg = SimulatorConfig(n_customers=40, n_invoices=600, months=6)
    calm = simulate_ledger(cfg, 3)
    pd.testing.assert_frame_equal(calm.events, simulate_shifted(cfg, 3, None).events)
    moved = simulate_shifted(cfg, 3, Shift("terms_change", "sme", "2023-04-01"))
    posted = moved.events[moved.events["activity"] == "invoice_posted"]
    hit = (posted["customer_segment"] == "sme") & (posted["event_time"] >= "2023-04-01")
    assert (posted.loc[hit, "payment_terms"] == "0001").all()
    before = calm.events[calm.events["activity"] == "invoice_posted"]
    assert posted.loc[~hit, "payment_terms"].tolist() == before.loc[~hit.to_numpy(),
                                                                    "payment_terms"].tolist()


# --------------------------------------------------------------------------- slow -----------
@pytest.mark.slow
def test_estimate_tracks_the_realised_roc_auc(loop_model):
    from tests.training.monitor_worlds import CUTOFF, weekly_history, world
    from training.monitor import run_monitor

    config, _, bundle = loop_model
    led = world(config, 7)  # the training world, continuing after its cut-off
    rep = run_monitor(weekly_history(bundle, led), led.events, led.master, bundle,
                      CUTOFF + pd.Timedelta(days=7 * 26))
    matured = rep.realised[rep.realised["decided_share"] >= 0.9]
    assert len(matured) >= 8
    diff = matured["est_roc_auc"] - matured["roc_auc"]
    assert abs(diff.mean()) < 0.03, matured[["as_of", "roc_auc", "est_roc_auc"]]
    assert diff.abs().max() < 0.06


CALM_SEEDS = range(101, 111)
CHECK_WEEKS = (4, 8, 13, 17)


@pytest.mark.slow
def test_ten_calm_worlds_raise_no_alarm(loop_model):
    from tests.training.monitor_worlds import weekly_alarms, world

    config, _, bundle = loop_model
    raised = {}
    for seed in CALM_SEEDS:
        alarms = weekly_alarms(bundle, world(config, seed), CHECK_WEEKS)
        raised |= {(seed, w): [a.line() for a in a_] for w, a_ in alarms.items() if a_}
    assert raised == {}


@pytest.mark.slow
@pytest.mark.parametrize("seed, shift, rule, within_weeks", [
    (203, Shift("terms_change", "mid_market", "2024-03-01"), "mix_drift", 4),
    (204, Shift("terms_change", "sme", "2024-03-01"), "mix_drift", 4),
    (201, Shift("segment_late", "sme", "2024-03-01", 25.0), "slice_calibration", 17),
])
def test_an_injected_drift_is_flagged_within_the_stated_weeks(loop_model, seed, shift, rule,
                                                               within_weeks):
    from tests.training.monitor_worlds import weekly_alarms, world

    config, _, bundle = loop_model
    alarms = weekly_alarms(bundle, world(config, seed, shift), CHECK_WEEKS)
    flagged = [w for w, a in sorted(alarms.items()) if any(x.rule == rule for x in a)]
    assert flagged and flagged[0] <= within_weeks, {w: [x.line() for x in a]
                                                    for w, a in alarms.items()}


@pytest.mark.slow
def test_the_report_is_written_and_logged_to_mlflow(loop_model, tmp_path):
    import mlflow

    from tests.training.monitor_worlds import CUTOFF, weekly_history, world
    from training.monitor import log_report, run_monitor

    config, _, bundle = loop_model
    led = world(config, 7)
    history = weekly_history(bundle, led, weeks=4)
    rep = run_monitor(history, led.events, led.master, bundle, CUTOFF + pd.Timedelta(days=60))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_report(rep, tmp_path / "monitor", uri)
    html = (tmp_path / "monitor" / "report.html").read_text()
    assert "data:image/png;base64" in html and "Feature drift" in html
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert "drift.psi_p_late" in run.data.metrics and "staleness.model_age_days" in \
        run.data.metrics
    assert run.data.tags["exit_reason"] == rep.exit_reason()
