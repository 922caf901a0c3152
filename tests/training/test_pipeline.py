"""The training pipeline: min-data gate and determinism (no MLflow here; see test_registry)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_rows import contract, make_rows, small_config

from training.pipeline import InsufficientDataError, min_data_counts, train
from training.splits import split_rows


@pytest.fixture(scope="module")
def data():
    return make_rows(1500, seed=31)


def test_gate_refuses_with_the_counts_and_thresholds(data):
    rows, _ = data
    cfg = small_config(min_cleared_invoices=100_000, min_late_invoices=50_000)
    counts = min_data_counts(split_rows(rows, cfg))
    assert counts["cleared_invoices"] > 100 and counts["late_invoices"] > 50
    with pytest.raises(InsufficientDataError) as err:
        train(rows, cfg, seed=1, register=False, contract=contract(cfg))
    msg = str(err.value)
    assert f"{counts['cleared_invoices']} cleared invoices" in msg
    assert "minimum training.min_cleared_invoices = 100000" in msg
    assert f"{counts['late_invoices']} late invoices" in msg
    assert "minimum training.min_late_invoices = 50000" in msg


def test_gate_names_only_the_failing_count(data):
    rows, _ = data
    cfg = small_config(min_late_invoices=50_000)
    with pytest.raises(InsufficientDataError, match="late invoices") as err:
        train(rows, cfg, seed=1, register=False, contract=contract(cfg))
    assert "cleared invoices" not in str(err.value)


def test_tiny_ledger_is_refused_before_fitting():
    rows, _ = make_rows(60, seed=2)
    with pytest.raises(InsufficientDataError, match="not enough history"):
        train(rows, small_config(), seed=1, register=False, contract=contract(small_config()))


def test_same_seed_same_metrics_to_the_last_digit(data):
    rows, truth = data
    cfg = small_config()
    a = train(rows, cfg, seed=5, truth=truth, register=False, contract=contract(cfg))
    b = train(rows, cfg, seed=5, truth=truth, register=False, contract=contract(cfg))
    assert json.dumps(a.metrics, sort_keys=True) == json.dumps(b.metrics, sort_keys=True)
    assert a.report is not None and a.report.to_json() == b.report.to_json()
    np.testing.assert_array_equal(a.predictions.to_numpy(), b.predictions.to_numpy())
    # The headline figures exist and are sensible on this synthetic world.
    assert a.metrics["risk"]["roc_auc"] > 0.75
    assert 0.6 < a.metrics["interval"]["coverage_p10_p90"] < 0.95
    assert a.metrics["risk_posting"]["auc_ratio_to_oracle"] > 0.8
    c = train(rows, cfg, seed=6, truth=truth, register=False, contract=contract(cfg),
              with_report=False)
    assert c.metrics["risk"]["brier"] != a.metrics["risk"]["brier"]


def test_rows_of_another_feature_set_are_refused_before_fitting(data):
    rows, _ = data
    cfg = small_config()
    with pytest.raises(ValueError, match="feature set"):
        train(rows, cfg, seed=1, register=False, contract=contract(cfg, version="test-2"))


def test_the_default_contract_is_the_catalogue_for_the_config(data):
    # Hand-made rows lack the catalogue's features: train() without a contract derives it from
    # the config and refuses the rows by their feature-set version, naming both.
    rows, _ = data
    with pytest.raises(ValueError, match="pit-"):
        train(rows, small_config(), seed=1, register=False)
