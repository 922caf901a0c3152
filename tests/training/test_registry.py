"""MLflow registry on a real SQLite store in tmp_path: logging, champion gate, rollback, native
loading, nested tuning runs. The tests share one store and run in file order (a lifecycle)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from model_rows import contract, make_rows, small_config

from features.config.training import PromotionConfig
from training import registry
from training.pipeline import evaluate, train
from training.core.scoring import score

WEAK = {"n_estimators": 1, "num_leaves": 2, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def data():
    return make_rows(1500, seed=41)


@pytest.fixture(scope="module")
def lifecycle(store, data):
    """v1 weak (first: champion), v2 strong (better: champion), v3 weak (worse: challenger)."""
    rows, truth = data
    weak, strong = small_config(risk=WEAK), small_config()
    v1 = train(rows, weak, 3, truth, store, contract=contract(weak), with_report=False,
               run_name="v1")
    v2 = train(rows, strong, 3, truth, store, contract=contract(strong), run_name="v2")
    v3 = train(rows, weak, 4, truth, store, contract=contract(weak), with_report=False,
               run_name="v3")
    return v1, v2, v3


def test_promotion_rule():
    cfg = PromotionConfig(max_auc_drop=0.002, min_brier_gain=0.0)
    champ = {"roc_auc": 0.80, "brier": 0.20}
    assert registry.promotion_decision({"roc_auc": 0.799, "brier": 0.19}, champ, cfg).promote
    assert not registry.promotion_decision({"roc_auc": 0.797, "brier": 0.19}, champ, cfg).promote
    assert not registry.promotion_decision(champ, champ, cfg).promote  # must beat, not tie
    assert registry.promotion_decision(champ, None, cfg).promote


def test_champion_gate(lifecycle, store):
    v1, v2, v3 = lifecycle
    assert (v1.model_version, v2.model_version, v3.model_version) == (1, 2, 3)
    assert (v1.alias, v2.alias, v3.alias) == ("champion", "champion", "challenger")
    assert v1.decision.reason == "no champion yet"
    # v2 was compared with v1 re-scored on v2's holdout, v3 with v2 on v3's holdout.
    assert v2.decision.champion["roc_auc"] == pytest.approx(v1.metrics["risk"]["roc_auc"])
    assert v3.decision.champion["roc_auc"] == pytest.approx(v2.metrics["risk"]["roc_auc"])
    assert v3.metrics["risk"]["roc_auc"] < v2.metrics["risk"]["roc_auc"] - 0.002
    assert "worse" in v3.decision.reason
    assert registry.champion_version("paydelay", store) == 2
    table = registry.versions("paydelay", store)
    assert table.set_index("version").loc[3, "aliases"] == "challenger"


def test_run_logs_params_metrics_report_and_model(lifecycle, store):
    _, v2, _ = lifecycle
    client = registry.configure(store)
    run = client.get_run(v2.run_id)
    assert run.data.params["seed"] == "3"
    assert run.data.params["feature_set_version"] == "test-1"
    assert run.data.params["window.train_end"] == str(v2.split.cutoffs.train_end)
    assert run.data.params["config.features.grace_days"] == "0"
    assert run.data.metrics["risk.roc_auc"] == pytest.approx(v2.metrics["risk"]["roc_auc"])
    assert run.data.tags["alias"] == "champion"
    logged = {a.path for a in client.list_artifacts(v2.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/reliability.png",
            "evaluation/split_counts.csv"} <= logged
    mv = client.get_model_version("paydelay", "2")
    model = mlflow.models.get_model_info(mv.source)
    assert model.signature is not None and "lightgbm" in model.flavors
    assert model.saved_input_example_info is not None


def test_load_bundle_natively_returns_identical_predictions(lifecycle, store):
    _, v2, v3 = lifecycle
    champ = registry.load_bundle("champion", tracking_uri=store)
    assert champ.source["version"] == 2
    pd.testing.assert_frame_equal(score(champ, v2.test_rows), v2.predictions)
    pd.testing.assert_frame_equal(score(registry.load_bundle(3, tracking_uri=store),
                                        v3.test_rows), v3.predictions)
    # MLflow's own LightGBM flavour gives the same booster (native, not pyfunc).
    booster = mlflow.lightgbm.load_model("models:/paydelay@champion")
    X = v2.test_rows[list(champ.contract.feature_names)].head(50)
    Xm, _ = champ.matrix.build(X)
    np.testing.assert_array_equal(booster.predict(Xm), champ.risk.predict(Xm))


def test_evaluate_rescores_a_registered_version(lifecycle, store, data):
    rows, truth = data
    _, v2, _ = lifecycle
    m = evaluate(rows, small_config(), "2", store, truth)
    assert m["risk"] == v2.metrics["risk"] and m["interval"] == v2.metrics["interval"]
    assert m["model"]["version"] == 2


def test_rollback_returns_champion_to_the_previous_one(lifecycle, store):
    v1, _, _ = lifecycle
    assert registry.rollback("paydelay", store) == 1
    champ = registry.load_bundle("champion", tracking_uri=store)
    pd.testing.assert_frame_equal(score(champ, v1.test_rows), v1.predictions)
    client = registry.configure(store)
    assert client.get_model_version("paydelay", "2").tags["rolled_back"] == "true"
    with pytest.raises(RuntimeError, match="no previous champion"):
        registry.rollback("paydelay", store)


def test_tuning_trials_are_nested_runs(store, data):
    rows, truth = data
    cfg = small_config(tuning={"enabled": True, "n_trials": 3, "validation_fraction": 0.3},
                       experiment_name="tuning-test", registered_model_name="paydelay-tuned")
    res = train(rows, cfg, 9, truth, store, contract=contract(cfg), with_report=False)
    client = registry.configure(store)
    exp = client.get_experiment_by_name("tuning-test")
    children = client.search_runs([exp.experiment_id],
                                  f"tags.mlflow.parentRunId = '{res.run_id}'")
    kinds = sorted(r.info.run_name.split("-")[0] for r in children)
    assert kinds == ["payment"] * 3 + ["risk"] * 3
    assert res.metrics["tuning"]["risk_trials"] == 3
    assert res.alias == "champion"
