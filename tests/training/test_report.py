"""The evaluation report, slices, model card and plots on a small seeded holdout."""

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from eval_rows import make_rows, model_like
from features.config import PaydelayConfig
from features.config.evaluation import EvaluationConfig
from training.baselines import BASELINE_NAMES
from training.metrics import evaluate_predictions
from training.plots import (
    feature_importance_plot,
    reliability_diagram,
    shap_beeswarm,
    shap_values,
)
from training.report import evaluate, model_card
from training.slices import amount_band, amount_band_labels, slice_metrics

IBM_CAVEAT = "IBM data: disputes are a yes/no flag, no dispute events."


@pytest.fixture(scope="module")
def data():
    rows, truth = make_rows(n_invoices=500, seed=11)
    cut = pd.Timestamp("2024-03-15")
    train = rows[rows["snapshot_time"] < cut]
    hold = rows[rows["snapshot_time"] >= cut]
    return train, hold, truth


@pytest.fixture(scope="module")
def report(data):
    train, hold, truth = data
    cfg = PaydelayConfig(evaluation=EvaluationConfig(backtest_capacities=(2, 5)))
    return evaluate(hold, {"model": model_like(hold, truth)}, cfg, truth=truth,
                    train_rows=train, caveats=[IBM_CAVEAT])


def test_report_has_every_baseline_the_rule_and_the_oracle(report, data):
    _, hold, truth = data
    table = report.headline_table()
    assert list(table["scorer"]) == ["model", *BASELINE_NAMES, "rule_strategy", "oracle"]
    assert list(table["kind"]) == ["model"] + ["baseline"] * 3 + ["rule", "oracle"]
    # the same holdout for everyone: the numbers equal a direct computation on it
    direct = evaluate_predictions(hold, model_like(hold, truth))
    model = table.set_index("scorer").loc["model"]
    assert model["roc_auc"] == pytest.approx(direct["roc_auc"])
    assert model["brier"] == pytest.approx(direct["brier"])
    assert (report.scorers["n_censored_excluded"] == hold["censored"].sum()).all()
    assert report.headline["n_censored_excluded"] == int(hold["censored"].sum()) > 0
    # the rule is a ranking: AUCs, no calibration metrics
    rule = table.set_index("scorer").loc["rule_strategy"]
    assert 0.5 < rule["roc_auc"] <= 1 and np.isnan(rule["brier"])


def test_oracle_line(report, data):
    _, hold, truth = data
    p = hold["invoice_id"].map(truth.set_index("invoice_id")["oracle_p_late"])
    known = hold["label_late"].notna()
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(hold.loc[known, "label_late"], p[known])
    assert report.headline["oracle_roc_auc"] == pytest.approx(expected)
    assert report.headline["ratio_model_oracle_roc_auc"] == pytest.approx(
        report.headline["roc_auc"] / expected)
    assert list(report.oracle["scope"]) == ["all rows", "posting rows"]
    posting = report.oracle.set_index("scope").loc["posting rows"]
    assert posting["n"] == int((known & (hold["snapshot_kind"] == "posting")).sum())


def test_backtest_and_headline_agree(report):
    bt = report.backtest.set_index(["capacity", "order"])
    assert report.headline["backtest_capacity"] == 2
    assert report.headline["model_capture_share"] == bt.loc[(2, "model"), "share_captured"]
    assert report.headline["ratio_model_rule"] == pytest.approx(
        bt.loc[(2, "model"), "captured_amount"] / bt.loc[(2, "rule_strategy"), "captured_amount"])
    orders = set(report.backtest["order"])
    assert {"model", "rule_strategy", "oldest_first", "largest_first", "oracle",
            "hindsight"} <= orders
    # nothing beats hindsight
    hind = report.backtest[report.backtest["order"] == "hindsight"].set_index("capacity")
    for _, r in report.backtest.iterrows():
        assert r["captured_amount"] <= hind.loc[r["capacity"], "captured_amount"] + 1e-6


def test_writers(report):
    md = report.to_markdown()
    for name in ["model", *BASELINE_NAMES, "rule_strategy", "oracle", IBM_CAVEAT,
                 "## Worklist backtest", "## Slices", "posting rows"]:
        assert name in md
    payload = json.loads(report.to_json())
    assert [r["scorer"] for r in payload["scorers"]][-1] == "oracle"
    assert payload["headline"]["oracle_roc_auc"] == pytest.approx(report.headline["oracle_roc_auc"])
    assert IBM_CAVEAT in payload["caveats"]
    card = model_card(report, version="3", training_window=("2024-01-01", "2024-03-14"))
    for section in ("## Intended use", "## Data", "## Performance", "## Worklist backtest",
                    "## Limits", "2024-03-14", IBM_CAVEAT):
        assert section in card


def test_slices_cover_every_category(report, data):
    _, hold, _ = data
    sl = report.slices
    for col in ("customer_segment", "company_code", "risk_category"):
        got = set(sl.loc[sl["slice"] == col, "value"])
        assert got == {str(v) for v in hold[col].dropna().unique()}
    assert set(sl.loc[sl["slice"] == "amount_band", "value"]) == set(
        amount_band_labels((1_000.0, 10_000.0, 100_000.0)))
    assert set(sl.loc[sl["slice"] == "customer_history", "value"]) == {"new", "known"}
    # each slice value is scored for each scorer, and its rows add up to the holdout
    assert set(sl["scorer"]) == set(report.scorers["scorer"])
    model = sl[sl["scorer"] == "model"]
    for col, part in model.groupby("slice"):
        assert part["n_rows"].sum() == len(hold), col


def test_slice_metrics_values_and_small_samples():
    rows, truth = make_rows(n_invoices=120, seed=2)
    pred = model_like(rows, truth)
    sl = slice_metrics(rows, {"m": pred}, EvaluationConfig(min_slice_rows=40),
                       slice_columns=("company_code",))
    for _, r in sl.iterrows():
        sub = rows["company_code"] == r["value"]
        direct = evaluate_predictions(rows[sub], pred[sub])
        assert r["brier"] == pytest.approx(direct["brier"])
        assert r["small_sample"] == (direct["n"] < 40)


def test_amount_bands():
    bands = amount_band(pd.Series([5.0, 1_000.0, 9_999.0, 10_000.0, np.nan]), (1_000, 10_000))
    assert list(bands.iloc[:4]) == ["<1k", "1k-10k", "1k-10k", ">=10k"]
    assert pd.isna(bands.iloc[4])


def test_misaligned_predictions_are_refused(data):
    _, hold, truth = data
    bad = model_like(hold, truth).reset_index(drop=True)
    with pytest.raises(ValueError, match="'model'.*not aligned"):
        evaluate(hold, {"model": bad}, PaydelayConfig())


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"days_overdue": rng.integers(0, 90, 400).astype(float),
                      "amount": rng.lognormal(8, 1, 400),
                      "risk_category": pd.Categorical(rng.choice(["A01", "C03", "E05"], 400))})
    y = (X["days_overdue"] / 90 + (X["risk_category"] == "E05") * 0.5
         + rng.normal(0, 0.3, 400) > 0.7).astype(int)
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, random_state=0,
                               n_jobs=1)
    return model.fit(X, y), X


def test_shap_values_are_exact_treeshap(booster):
    model, X = booster
    contrib, sample = shap_values(model, X, max_rows=100, seed=1)
    assert contrib.shape == (100, 3)
    raw = model.booster_.predict(sample, raw_score=True)
    base = model.booster_.predict(sample, pred_contrib=True)[:, -1]
    np.testing.assert_allclose(contrib.sum(axis=1) + base, raw, rtol=1e-6, atol=1e-6)


def test_plots_write_pngs(booster, tmp_path):
    model, X = booster
    rng = np.random.default_rng(1)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(float)
    paths = [
        reliability_diagram(y, {"model": p, "baseline": np.full(300, 0.5)},
                            tmp_path / "rel.png"),
        feature_importance_plot(model, tmp_path / "imp.png"),
        shap_beeswarm(model, X, tmp_path / "sub" / "shap.png", max_rows=200),
    ]
    for path in paths:
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000


def test_a_source_without_segments_loses_that_slice_not_the_report(data):
    train, hold, truth = data
    hold = hold.drop(columns=["customer_segment"])
    rep = evaluate(hold, {"model": model_like(hold, truth)}, PaydelayConfig(), train_rows=train)
    assert "customer_segment" not in set(rep.slices["slice"])
    assert "company_code" in set(rep.slices["slice"])
    assert any("customer_segment" in c for c in rep.caveats)
    assert "oracle" not in set(rep.scorers["scorer"]) and rep.oracle is None
