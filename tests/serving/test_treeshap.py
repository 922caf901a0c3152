"""The tabulated TreeSHAP equals LightGBM's pred_contrib and shap.TreeExplainer exactly."""

from __future__ import annotations

import warnings

import lightgbm as lgb
import numpy as np
import pytest

from serving.treeshap import FastTreeShap


def _data(rng: np.random.Generator, n: int = 3000):
    X = rng.normal(size=(n, 6))
    X[rng.random(n) < 0.15, 0] = np.nan  # missing values take the default direction
    X[rng.random(n) < 0.3, 3] = 0.0  # zeros matter for zero_as_missing
    cat = rng.integers(0, 9, n).astype(float)
    cat[rng.random(n) < 0.05] = np.nan
    X = np.c_[X, cat]
    logit = X[:, 1] + np.nan_to_num(X[:, 0]) * X[:, 2] + (cat % 3 == 0) - 0.5 * (X[:, 3] == 0)
    y = (logit + rng.normal(size=n) > 0).astype(int)
    return X, y


def _train(X, y, rounds: int, **params) -> lgb.Booster:
    base = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1,
            "deterministic": True}
    return lgb.train(base | params, lgb.Dataset(X, y, categorical_feature=[6]), rounds)


def _scoring_rows(X: np.ndarray) -> np.ndarray:
    rows = X[:300].copy()
    rows[0, 6] = 40.0  # category code never seen in training
    rows[1, 6] = -1.0  # negative code: LightGBM sends it right
    rows[2, :] = np.nan  # everything missing
    return rows


@pytest.mark.parametrize("params, rounds", [
    ({"num_leaves": 15}, 60),
    ({"num_leaves": 31, "max_depth": 5}, 40),
    ({"num_leaves": 7, "zero_as_missing": True}, 30),
    ({"num_leaves": 24, "min_data_in_leaf": 5}, 25),  # deep leaf-wise paths, repeated features
    ({"num_leaves": 4, "use_missing": False}, 20),
])
def test_equals_pred_contrib(rng, params, rounds):
    X, y = _data(rng)
    booster = _train(X, y, rounds, **params)
    fast = FastTreeShap(booster)
    assert fast.supported
    rows = _scoring_rows(X)
    ref = booster.predict(rows, pred_contrib=True)
    got = fast.shap_values(rows)
    assert got.shape == ref.shape == (len(rows), X.shape[1] + 1)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    # local accuracy: contributions + base value = raw score
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(rows, raw_score=True), atol=1e-10)


def test_fast_tables_agree_to_float32_precision(rng):
    X, y = _data(rng)
    booster = _train(X, y, 60, num_leaves=15)
    fast = FastTreeShap(booster)
    rows = _scoring_rows(X)
    exact, quick = fast.shap_values(rows), fast.shap_values(rows, exact=False)
    np.testing.assert_allclose(quick, exact, rtol=1e-5, atol=1e-6)
    # the ranking of reasons is the same
    top_quick = np.argsort(-np.abs(quick[:, :-1]))[:, :3]
    top_exact = np.argsort(-np.abs(exact[:, :-1]))[:, :3]
    assert (top_quick == top_exact).mean() > 0.99


def test_rows_explained_in_blocks_equal_rows_explained_alone(rng):
    """Large matrices are explained block by block (cache-sized): a row's values never depend
    on the rows around it, to the bit, in both precisions."""
    X, y = _data(rng)
    booster = _train(X, y, 40, num_leaves=15)
    fast = FastTreeShap(booster)
    rows = X[:700]  # several blocks and a partial one
    for exact in (True, False):
        whole = fast.shap_values(rows, exact=exact)
        alone = np.vstack([fast.shap_values(rows[i:i + 1], exact=exact) for i in range(0, 700, 7)])
        np.testing.assert_array_equal(whole[::7], alone)
        np.testing.assert_array_equal(fast.shap_values(rows[::-1], exact=exact), whole[::-1])


def test_equals_shap_tree_explainer(rng):
    import shap  # noqa: PLC0415 - heavy, only for this comparison
    X, y = _data(rng)
    X = X[:, :6]  # shap's own LightGBM parser: numeric features only
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": 2,
                         "num_threads": 1},
                        lgb.Dataset(X, y), 40)
    rows = X[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shap's note on its LightGBM output shape
        ref = shap.TreeExplainer(booster).shap_values(rows)
    ref = ref[-1] if isinstance(ref, list) else ref
    fast = FastTreeShap(booster)
    got = fast.shap_values(rows)
    np.testing.assert_allclose(got[:, :-1], ref, atol=1e-8)
    expected = np.ravel(shap.TreeExplainer(booster).expected_value)[-1]
    assert got[0, -1] == pytest.approx(float(expected), abs=1e-8)


def test_too_large_tables_report_unsupported(rng):
    X, y = _data(rng)
    booster = _train(X, y, 10, num_leaves=31, min_data_in_leaf=2)
    fast = FastTreeShap(booster, max_table_entries=50)
    assert not fast.supported
    with pytest.raises(RuntimeError, match="pred_contrib"):
        fast.shap_values(X[:3])


def test_rejects_a_matrix_of_the_wrong_width(rng):
    X, y = _data(rng)
    fast = FastTreeShap(_train(X, y, 5, num_leaves=4))
    with pytest.raises(ValueError, match="7 feature columns"):
        fast.shap_values(X[:, :5])


def test_multiclass_models_are_refused(rng):
    X, y = _data(rng)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                         "num_threads": 1},
                        lgb.Dataset(X[:, :6], (y + (X[:, 1] > 1)).astype(int)), 3)
    with pytest.raises(ValueError, match="single-output"):
        FastTreeShap(booster)
