"""MLflow registry on a real SQLite store in tmp_path: logging, champion gate, rollback, native
loading, nested tuning runs, one registered model per ledger and the fast listing. The tests
share one store and run in file order (a lifecycle)."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import pandas as pd
import pytest
from model_rows import contract, make_rows, small_config

from features.config.training import PromotionConfig
from training import registry
from training.pipeline import LedgerMismatchError, evaluate, train
from training.core.scoring import score

WEAK = {"n_estimators": 1, "num_leaves": 2, "learning_rate": 0.01}
ALPHA = "paydelay-alpha"  # the registered model of ledger "alpha"


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
               run_name="v1", ledger="Alpha")
    v2 = train(rows, strong, 3, truth, store, contract=contract(strong), run_name="v2",
               ledger="alpha")
    v3 = train(rows, weak, 4, truth, store, contract=contract(weak), with_report=False,
               run_name="v3", ledger="alpha")
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
    assert v2.registered_model == ALPHA and v1.ledger["name"] == "alpha"
    assert "both scored on this run's test window" in v2.decision.reason
    assert registry.champion_version(ALPHA, store) == 2
    table = registry.versions(ALPHA, store)
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
    assert run.data.tags["ledger"] == "alpha" and run.data.tags["ledger.hash"] == v2.ledger["hash"]
    assert client.get_experiment(run.info.experiment_id).name == ALPHA
    logged = {a.path for a in client.list_artifacts(v2.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/reliability.png",
            "evaluation/split_counts.csv"} <= logged
    mv = client.get_model_version(ALPHA, "2")
    assert mv.tags["ledger"] == "alpha" and mv.tags["ledger.n_invoices"] == str(
        v2.ledger["n_invoices"])
    assert float(mv.tags["headline.roc_auc_posting"]) == pytest.approx(
        v2.metrics["risk_posting"]["roc_auc"], rel=1e-5)
    model = mlflow.models.get_model_info(mv.source)
    assert model.signature is not None and "lightgbm" in model.flavors
    assert model.saved_input_example_info is not None


def test_load_bundle_natively_returns_identical_predictions(lifecycle, store):
    _, v2, v3 = lifecycle
    champ = registry.load_bundle("champion", tracking_uri=store)  # the store's only ledger
    assert champ.source["version"] == 2 and champ.source["registered_model"] == ALPHA
    assert champ.ledger == v2.ledger  # the fingerprint travels in bundle.json
    pd.testing.assert_frame_equal(score(champ, v2.test_rows), v2.predictions)
    pd.testing.assert_frame_equal(score(registry.load_bundle(3, tracking_uri=store),
                                        v3.test_rows), v3.predictions)
    # MLflow's own LightGBM flavour gives the same booster (native, not pyfunc).
    booster = mlflow.lightgbm.load_model(f"models:/{ALPHA}@champion")
    X = v2.test_rows[list(champ.contract.feature_names)].head(50)
    Xm, _ = champ.matrix.build(X)
    np.testing.assert_array_equal(booster.predict(Xm), champ.risk.predict(Xm))


def test_evaluate_rescores_a_registered_version(lifecycle, store, data):
    rows, truth = data
    _, v2, _ = lifecycle
    m = evaluate(rows, small_config(), "2", store, truth, rows_ledger="alpha")
    assert m["risk"] == v2.metrics["risk"] and m["interval"] == v2.metrics["interval"]
    assert m["risk_posting"] == v2.metrics["risk_posting"]
    assert m["model"]["version"] == 2 and m["warnings"] == []


def test_rollback_returns_champion_to_the_previous_one(lifecycle, store):
    v1, _, _ = lifecycle
    assert registry.rollback("paydelay", store, ledger="alpha") == 1
    champ = registry.load_bundle("champion", tracking_uri=store)
    pd.testing.assert_frame_equal(score(champ, v1.test_rows), v1.predictions)
    client = registry.configure(store)
    assert client.get_model_version(ALPHA, "2").tags["rolled_back"] == "true"
    with pytest.raises(RuntimeError, match="no previous champion"):
        registry.rollback(ALPHA, store)


def test_tuning_trials_are_nested_runs(store, data):
    rows, truth = data
    cfg = small_config(tuning={"enabled": True, "n_trials": 3, "validation_fraction": 0.3},
                       registered_model_name="tuned")
    lines: list[str] = []
    res = train(rows, cfg, 9, truth, store, contract=contract(cfg), with_report=False,
                ledger="t", progress=lines.append)
    client = registry.configure(store)
    exp = client.get_experiment_by_name("tuned-t")
    # progress: the splits, each trial with the best so far, each fit with its elapsed time
    assert any(line.startswith("splits: train ") and "test window" in line for line in lines)
    assert any(line.startswith("risk tuning: trial 3/3 ") and "best so far" in line
               for line in lines)
    assert any(line.startswith("final risk model") and " s (elapsed" in line for line in lines)
    children = client.search_runs([exp.experiment_id],
                                  f"tags.mlflow.parentRunId = '{res.run_id}'")
    kinds = sorted(r.info.run_name.split("-")[0] for r in children)
    assert kinds == ["payment"] * 3 + ["risk"] * 3
    assert res.metrics["tuning"]["risk_trials"] == 3
    assert res.alias == "champion"


@pytest.fixture(scope="module")
def beta(store, lifecycle):
    """A second ledger trained after alpha's lifecycle, in the same store."""
    rows, truth = make_rows(1200, seed=57, start="2023-04-01")
    cfg = small_config()
    return rows, train(rows, cfg, 3, truth, store, contract=contract(cfg), with_report=False,
                       run_name="beta", ledger="beta")


def test_two_ledgers_keep_two_champions_and_the_listing_shows_both(store, lifecycle, beta):
    _, b = beta
    # beta never met alpha's champion: its own first model, alpha's champion untouched
    assert (b.registered_model, b.model_version, b.alias) == ("paydelay-beta", 1, "champion")
    assert b.decision.reason == "no champion yet"
    assert registry.champion_version(ALPHA, store) == 1  # after the rollback above
    records = registry.list_models(store)
    rows = [r.row() for r in records]
    assert [(r["ledger"], r["version"], r["aliases"]) for r in rows] == [
        ("alpha", "1", "champion"), ("alpha", "2", "rolled back"), ("alpha", "3", "challenger"),
        ("beta", "1", "champion")]
    beta_row = rows[-1]
    assert beta_row["model"] == "paydelay-beta"
    assert beta_row["data window"] == (f"{b.ledger['first_event'][:10]} .. "
                                       f"{b.ledger['last_event'][:10]}")
    assert beta_row["invoices"] == str(b.ledger["n_invoices"])
    assert beta_row["AUC at posting"] == f"{b.metrics['risk_posting']['roc_auc']:.3f}"
    assert beta_row["test window"].endswith(f"{b.split.cutoffs.test_end:%Y-%m-%d}")
    assert [r.ledger for r in registry.list_models(store, ledger="beta")] == ["beta"]
    # the MLflow client agrees with the direct SQLite read
    assert ([(r.registered_model, r.version, r.aliases) for r in records]
            == [(r.registered_model, r.version, r.aliases)
                for r in sorted(registry._list_client(store, "paydelay"),
                                key=lambda r: (r.ledger, r.version))])
    # two ledgers: a bare name no longer picks one silently
    with pytest.raises(LookupError, match="several ledgers"):
        registry.load_bundle("champion", tracking_uri=store)


def test_evaluate_refuses_rows_of_another_ledger(store, beta):
    rows, _ = beta
    with pytest.raises(LedgerMismatchError, match="ledger 'beta', the model learned ledger "
                                                  "'alpha'"):
        evaluate(rows, small_config(), "champion", store, ledger="alpha", rows_ledger="beta")
    forced = evaluate(rows, small_config(), "champion", store, ledger="alpha",
                      rows_ledger="beta", force=True)
    assert "ledger 'beta'" in forced["warnings"][0]
    # the rows' own ledger picks the rows' own model
    assert evaluate(rows, small_config(), "champion", store,
                    rows_ledger="beta")["model"]["registered_model"] == "paydelay-beta"


def test_a_champion_of_another_feature_set_is_never_compared(store, beta):
    rows, _ = beta
    cfg = small_config()
    other = rows.assign(feature_set_version="test-2")
    res = train(other, cfg, 3, None, store, contract=contract(cfg, version="test-2"),
                with_report=False, ledger="beta")
    assert res.alias == "champion" and res.decision.champion is None
    assert res.decision.reason.startswith("champion v1 not compared: the rows have feature set "
                                          "test-2, the model test-1")


# --- which store: the option, else the environment, else the embedded SQLite default ----------
STORE_VARIABLES = (registry.TRACKING_ENV, registry.MLFLOW_TRACKING_ENV,
                   registry.MLFLOW_REGISTRY_ENV)


def test_the_store_is_the_option_else_the_environment_else_the_sqlite_default(monkeypatch):
    for key in STORE_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    default = f"sqlite:///{(registry.MODELS / 'mlflow.db').resolve()}"
    assert registry.resolve_tracking_uri() == registry.resolve_registry_uri() == default
    # MLflow's own variables, as MLflow reads them: the registry defaults to the tracking store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team-mlflow:5000")
    assert registry.resolve_tracking_uri() == "http://team-mlflow:5000"
    assert registry.resolve_registry_uri() == "http://team-mlflow:5000"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://team-registry:5001")
    assert registry.resolve_tracking_uri() == "http://team-mlflow:5000"
    assert registry.resolve_registry_uri() == "http://team-registry:5001"
    # a store named for paydelay (its variable, then the option) is tracking and registry both
    monkeypatch.setenv("PAYDELAY_TRACKING_URI", "sqlite:////srv/paydelay/mlflow.db")
    assert registry.resolve_tracking_uri() == "sqlite:////srv/paydelay/mlflow.db"
    assert registry.resolve_registry_uri() == "sqlite:////srv/paydelay/mlflow.db"
    option = "http://127.0.0.1:5999"
    assert registry.resolve_tracking_uri(option) == registry.resolve_registry_uri(option) == option


def test_configure_points_mlflow_at_both_stores_and_leaves_the_environment_alone(monkeypatch):
    """MLflow writes the URIs it is given into the environment; configure puts back what the
    user had, so the next resolve (or a service started from here) sees the user's choice."""
    for key in STORE_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://team-registry:5001")
    registry.configure("http://127.0.0.1:5998")  # no request is made yet
    assert mlflow.get_tracking_uri() == mlflow.get_registry_uri() == "http://127.0.0.1:5998"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert os.environ["MLFLOW_REGISTRY_URI"] == "http://team-registry:5001"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team-mlflow:5000")
    registry.configure()
    assert mlflow.get_tracking_uri() == "http://team-mlflow:5000"
    assert mlflow.get_registry_uri() == "http://team-registry:5001"
