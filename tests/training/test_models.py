"""Risk, calibration, delay buckets, payment-date quantiles, scoring and the bundle, on small
seeded data with real LightGBM."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from model_rows import contract, make_rows, small_config

from features.config.training import LgbParams
from training.core.bundle import ModelBundle
from training.core.calibration import Calibrator, apply_calibrator
from training.core.contract import FeatureSet, ModelContract
from training.core.matrix import feature_matrix
from training.core.payment import ConformalShift, predict_relative, to_days
from training.core.scoring import output_columns, risk_class, score
from training.metrics import expected_calibration_error
from training.payment_date import censored_coverage, fit_conformal, fit_quantiles
from training.pipeline import fit_bundle
from training.risk import fit_calibrator, fit_risk
from training.splits import split_rows

SMALL = LgbParams(n_estimators=80, num_leaves=15, min_child_samples=30)


@pytest.fixture(scope="module")
def fitted():
    rows, _ = make_rows(2500, seed=11)
    cfg = small_config()
    split = split_rows(rows, cfg)
    bundle = fit_bundle(split, contract(cfg), cfg, seed=7)
    test = split.test[split.test["snapshot_kind"] != "now"]
    return split, cfg, bundle, test


# --- calibration ----------------------------------------------------------------------------------
def _known_p(n: int, shift: float, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    x = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                      "c": pd.Categorical(rng.choice(["a", "b", "c"], n))})
    logit = 1.2 * x["x1"] + 0.6 * x["x2"] ** 2 - 0.8 + 0.7 * (x["c"] == "b") + shift
    return x, 1 / (1 + np.exp(-logit.to_numpy()))


def test_calibration_on_a_later_slice_recovers_known_probabilities():
    rng = np.random.default_rng(0)
    fs = FeatureSet(("x1", "x2", "c"), categorical=("c",))
    cats = {"c": ["a", "b", "c"]}
    # The world drifted: the later slices are 0.8 logits riskier than the training slice.
    Xtr, ptr = _known_p(12_000, 0.0, rng)
    Xcal, pcal = _known_p(12_000, 0.8, rng)
    Xte, pte = _known_p(12_000, 0.8, rng)
    ytr, ycal, yte = (rng.random(len(p)) < p for p in (ptr, pcal, pte))
    Xtr, Xcal, Xte = (feature_matrix(X, fs, cats)[0] for X in (Xtr, Xcal, Xte))
    booster = fit_risk(Xtr, ytr, fs, SMALL, seed=1, num_threads=1)
    raw_te = booster.predict(Xte)
    for method in ("isotonic", "platt"):
        cal = fit_calibrator(booster.predict(Xcal), ycal, method)
        # stored as plain JSON, no pickle
        assert Calibrator.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
        p = apply_calibrator(cal, raw_te)
        assert expected_calibration_error(yte, raw_te) > 0.08  # drift miscalibrates the raw model
        assert expected_calibration_error(yte, p) < 0.02
        assert np.mean(np.abs(p - pte)) < 0.05  # close to the known probabilities
    iso = fit_calibrator(booster.predict(Xcal), ycal, "isotonic")
    assert np.all(np.diff(iso.x) > 0) and np.all(np.diff(iso.y) >= 0)
    # Strictly increasing between knots: calibration creates no new ranking ties.
    inner = np.linspace(iso.x[0], iso.x[-1], 500)
    assert np.all(np.diff(apply_calibrator(iso, inner)) > 0)


def test_calibrator_refuses_a_one_class_slice():
    with pytest.raises(ValueError, match="both late and on-time"):
        fit_calibrator(np.array([0.2, 0.4]), np.array([1.0, 1.0]))


# --- outputs --------------------------------------------------------------------------------------
def test_score_outputs_follow_the_contract(fitted):
    _, cfg, bundle, test = fitted
    out = score(bundle, test)
    assert list(out.columns) == list(output_columns(bundle.contract))
    assert out.index.equals(test.index)
    buckets = out[[f"p_bucket_{k}" for k in range(5)]].to_numpy()
    np.testing.assert_allclose(buckets.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(out["p_bucket_0"].to_numpy(), 1 - out["p_late"].to_numpy())
    assert (buckets >= 0).all() and out["p_late"].between(0, 1).all()
    lo, mid, hi = cfg.training.risk_class_cutoffs
    expected = np.select([out["p_late"] < lo, out["p_late"] < mid, out["p_late"] < hi],
                         ["low", "medium", "high"], "very_high")
    assert (out["risk_class"].to_numpy() == expected).all()
    assert set(out["risk_class"]) == {"low", "medium", "high", "very_high"}
    very_late = out[["p_bucket_2", "p_bucket_3", "p_bucket_4"]].sum(axis=1).to_numpy()
    np.testing.assert_allclose(out["expected_amount_at_risk"],
                               test["open_amount"].to_numpy() * very_late)
    assert (out["expected_amount_at_risk"] <= test["open_amount"] * out["p_late"] + 1e-9).all()
    # Pay dates are the calendar day of t + days.
    day = (test["snapshot_time"] + pd.to_timedelta(out["days_to_clear_p50"], unit="D"))
    assert (out["pay_date_p50"] == day.dt.normalize()).all()


def test_risk_class_cutoffs():
    p = np.array([0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 1.0])
    assert list(risk_class(p, (0.2, 0.5, 0.8))) == ["low", "low", "medium", "high", "high",
                                                     "very_high", "very_high"]
    with pytest.raises(ValueError, match="increasing"):
        risk_class(p, (0.5, 0.2, 0.8))


def test_quantiles_never_cross(fitted):
    _, _, bundle, test = fitted
    out = score(bundle, test)
    d = out[["days_to_clear_p10", "days_to_clear_p50", "days_to_clear_p90"]].to_numpy()
    assert (d[:, 0] <= d[:, 1]).all() and (d[:, 1] <= d[:, 2]).all() and (d >= 0).all()
    assert (out["pay_date_p10"] <= out["pay_date_p90"]).all()
    # Adversarial raw predictions and shifts: sorted, shifted, floored - still ordered.
    rng = np.random.default_rng(1)
    r = rng.normal(0, 30, size=(1000, 3))  # deliberately crossing
    for shift in (ConformalShift(lo=-50.0, hi=-50.0), ConformalShift(lo=20.0, hi=5.0), None):
        days = to_days(np.sort(r, axis=1), rng.uniform(-20, 60, 1000), shift)
        assert (np.diff(days, axis=1) >= 0).all() and (days >= 0).all()


# --- censoring-aware payment date -----------------------------------------------------------------
def _payment_world(n: int, rng: np.random.Generator, t_max: float):
    x = rng.integers(0, 2, n).astype(float)
    median = np.where(x == 1, 60.0, 20.0)
    days = median * np.exp(rng.normal(0, 0.5, n))  # log-normal: true quantiles known
    t = rng.uniform(0, t_max, n)
    return pd.DataFrame({"x": x}), days, t, median


def test_payment_date_is_censoring_aware_where_the_naive_fit_is_biased_early():
    rng = np.random.default_rng(3)
    fs = FeatureSet(("x",))
    X, days, t, median = _payment_world(10_000, rng, t_max=150.0)
    cut, horizon = 150.0, 130.0
    zero = np.zeros(len(X))
    # Naive: every row whose clearing was seen by the cut-off, with its real delay.
    seen = t + days <= cut
    naive = fit_quantiles(X[seen], days[seen], zero[seen], fs, SMALL, 1, 1)
    # Censoring-aware: rows watched for the full horizon, delay clipped at it.
    mature = t + horizon <= cut
    aware = fit_quantiles(X[mature], np.minimum(days, horizon)[mature], zero[mature], fs,
                          SMALL, 1, 1)
    grid = pd.DataFrame({"x": [0.0, 1.0]})
    truth = np.array([20.0, 60.0])
    p50_naive = predict_relative(naive, grid)[:, 1]
    p50_aware = predict_relative(aware, grid)[:, 1]
    assert p50_naive[1] < 0.85 * truth[1]  # the slow payers look fast
    np.testing.assert_allclose(p50_aware, truth, rtol=0.1)

    # Conformal on a censored later slice: too-narrow raw quantiles are widened to ~80 %.
    Xc, days_c, t_c, med_c = _payment_world(6000, rng, t_max=120.0)
    window = 120.0 - t_c
    known = np.where(t_c + days_c <= 120.0, days_c, np.nan)
    narrow = np.column_stack([med_c * np.exp(-0.4 * 0.5), med_c, med_c * np.exp(0.4 * 0.5)])
    shift = fit_conformal(narrow, known, window)
    Xf, days_f, _, med_f = _payment_world(20000, rng, t_max=1.0)  # fresh, fully observed
    fresh = to_days(np.column_stack([med_f * np.exp(-0.2), med_f, med_f * np.exp(0.2)]),
                    np.zeros(len(Xf)), shift)
    coverage = np.mean((days_f >= fresh[:, 0]) & (days_f <= fresh[:, 2]))
    assert 0.75 <= coverage <= 0.85
    # Dropping the open rows instead under-covers the slow side.
    naive_shift = fit_conformal(narrow[~np.isnan(known)], known[~np.isnan(known)],
                                np.full(int((~np.isnan(known)).sum()), np.inf))
    hi_naive = to_days(np.column_stack([med_f * np.exp(-0.2), med_f, med_f * np.exp(0.2)]),
                       np.zeros(len(Xf)), naive_shift)[:, 2]
    assert np.mean(days_f > hi_naive) > np.mean(days_f > fresh[:, 2]) + 0.03
    cov = censored_coverage(fresh[:, 0], fresh[:, 2], days_f, np.full(len(days_f), np.inf))
    assert cov["coverage_p10_p90"] == pytest.approx(coverage)


def test_tail_boosters_take_their_own_parameters_and_the_p50_is_unchanged():
    rng = np.random.default_rng(5)
    fs = FeatureSet(("x",))
    X, days, _, median = _payment_world(4000, rng, t_max=1.0)
    zero = np.zeros(len(X))
    tail = LgbParams(n_estimators=20, learning_rate=0.2, num_leaves=4, max_depth=2)
    same = fit_quantiles(X, days, zero, fs, SMALL, 1, 1)
    small = fit_quantiles(X, days, zero, fs, SMALL, 1, 1, tail_params=tail)
    assert [small[k].num_trees() for k in ("p10", "p50", "p90")] == [20, 80, 20]
    assert small["p10"].dump_model()["tree_info"][0]["num_leaves"] <= 4
    grid = pd.DataFrame({"x": [0.0, 1.0]})
    np.testing.assert_array_equal(small["p50"].predict(grid), same["p50"].predict(grid))
    q = predict_relative(small, X)
    # Still the right quantiles of the log-normal delays, in order, from 20 shallow trees.
    assert np.all(np.diff(q, axis=1) >= 0)
    assert 0.05 < np.mean(days < q[:, 0]) < 0.15 and 0.05 < np.mean(days > q[:, 2]) < 0.15


# --- behaviour ------------------------------------------------------------------------------------
def test_spec_declares_the_constraints_the_behaviour_relies_on():
    spec = ModelContract.from_config(small_config()).features
    assert spec.monotone["days_overdue"] == 1 and spec.monotone["n_promises_broken"] == 1
    # A season's late share is a measure of lateness like the others (catalogue rule): +1 keeps
    # the trees from reading noise in a few invoices a year as "late at this time = less risk".
    assert spec.monotone["hist_season_effect"] == 1 and spec.monotone["hist_season_amplitude"] == 0
    vector = dict(zip(spec.names, spec.monotone_vector(), strict=True))
    assert all(vector[c] == 0 for c in spec.categorical)


@pytest.mark.parametrize("feature,steps", [("days_overdue", (0, 3, 10, 30, 60, 120)),
                                           ("n_promises_broken", (0, 1, 2, 4))])
def test_more_overdue_or_broken_promises_never_lowers_p_late(fitted, feature, steps):
    _, _, bundle, test = fitted
    base = test.sample(400, random_state=0)
    p = np.column_stack([score(bundle, base.assign(**{feature: base[feature] + s}))["p_late"]
                         for s in steps])
    assert (np.diff(p, axis=1) >= -1e-12).all()
    if feature == "days_overdue":
        assert (p[:, -1] > p[:, 0] + 0.05).mean() > 0.2  # the direction is really learned


# --- bundle / categories / determinism ------------------------------------------------------------
def test_bundle_roundtrip_gives_identical_predictions(fitted, tmp_path):
    _, _, bundle, test = fitted
    files = bundle.save(tmp_path / "bundle")
    assert {f.suffix for f in files} == {".txt", ".json"}  # LightGBM model text + JSON only
    json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    loaded = ModelBundle.load(tmp_path / "bundle")
    pd.testing.assert_frame_equal(score(loaded, test), score(bundle, test))
    assert loaded.contract == bundle.contract and loaded.categories == bundle.categories
    assert loaded.calibrator == bundle.calibrator and loaded.conformal == bundle.conformal


def test_unseen_categories_become_missing_and_are_counted(fitted):
    _, _, bundle, test = fitted
    rows = test.head(50).copy()
    rows["risk_category"] = rows["risk_category"].astype(str)
    rows.iloc[:10, rows.columns.get_loc("risk_category")] = "Z99"
    out = score(bundle, rows)
    assert out.attrs["unseen_categories"] == {"risk_category": 10}
    as_missing = rows.copy()
    as_missing.iloc[:10, rows.columns.get_loc("risk_category")] = None
    missing_out = score(bundle, as_missing)
    assert missing_out.attrs["unseen_categories"] == {}
    pd.testing.assert_frame_equal(out, missing_out, check_like=True)
    assert "Z99" not in bundle.categories["risk_category"]


def test_same_seed_same_models(fitted):
    split, cfg, bundle, test = fitted
    again = fit_bundle(split, contract(cfg), cfg, seed=7)
    pd.testing.assert_frame_equal(score(again, test), score(bundle, test))
    other = fit_bundle(split, contract(cfg), cfg, seed=8)
    assert not np.array_equal(score(other, test)["p_late"], score(bundle, test)["p_late"])


def test_missing_feature_or_other_feature_set_is_refused(fitted):
    _, _, bundle, test = fitted
    with pytest.raises(ValueError, match=r"\['hist_late_ratio'\]"):
        score(bundle, test.drop(columns="hist_late_ratio"))
    with pytest.raises(ValueError, match="feature set .*'test-2'.* expects 'test-1'"):
        score(bundle, test.assign(feature_set_version="test-2"))
