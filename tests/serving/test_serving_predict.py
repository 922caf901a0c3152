"""Serving's feature path and scorer agree with the batch pipeline and training's score()."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.pit.history import join_history
from serving.explain import contribution_frame
from serving.predict import feature_rows, model_matrix, score_matrix
from training.core.scoring import output_columns, score
from training.risk import dataset, lgb_params


@pytest.fixture(scope="module")
def rows(world, open_state):
    return feature_rows(world.model, open_state, world.last_refresh)


def test_model_matrix_is_what_lightgbm_reads_from_a_categorical_frame(world, rows):
    """Training and serving share one matrix builder (training.core.matrix): its values are what
    LightGBM makes of a frame with categorical columns, so boosters fitted on either agree."""
    contract, cats = world.bundle.contract, world.bundle.categories
    fs = contract.features
    frame = pd.DataFrame({
        name: (pd.Categorical(rows[name].astype("string").to_numpy(dtype=object,
                                                                   na_value=None),
                              categories=cats[name]) if name in fs.categorical
               else pd.to_numeric(rows[name]).astype("Float64").to_numpy(dtype=float,
                                                                          na_value=np.nan))
        for name in fs.names})
    X = model_matrix(world.model, rows)
    for j, name in enumerate(fs.names):  # categoricals as training category codes, NaN unseen
        col = frame[name]
        expected = (col.cat.codes.to_numpy().astype(float) if name in fs.categorical
                    else col.to_numpy(dtype=float))
        if name in fs.categorical:
            expected[expected < 0] = np.nan
        np.testing.assert_array_equal(X[:, j], expected, err_msg=name)
    # The same trees whether LightGBM reads the categorical frame or the matrix.
    y = (np.random.default_rng(3).random(len(rows)) < 0.4).astype(float)
    params = lgb_params(world.config.training.risk, "binary", 3, 1)
    on_frame = lgb.train(params, lgb.Dataset(frame, label=y, categorical_feature=list(
        fs.categorical), free_raw_data=False), num_boost_round=20)
    on_matrix = lgb.train(params, dataset(X, y, fs), num_boost_round=20)
    np.testing.assert_array_equal(on_frame.predict(frame), on_matrix.predict(X))


def test_score_matrix_equals_training_score_on_every_output(world, rows):
    expected = score(world.bundle, rows)
    got = score_matrix(world.model, rows, model_matrix(world.model, rows))
    columns = output_columns(world.bundle.contract)
    assert list(got.columns) == list(columns)
    for col in columns:
        if col == "risk_class" or col.startswith("pay_date"):
            assert (got[col] == expected[col]).all(), col
        else:
            np.testing.assert_allclose(got[col], expected[col], rtol=1e-12, err_msg=col)


def test_unseen_categories_are_scored_as_missing(world, rows):
    X = model_matrix(world.model, rows)
    changed = rows.copy()
    changed["company_code"] = pd.Categorical(["9999"] * len(rows))
    X2 = model_matrix(world.model, changed)
    j = list(world.bundle.contract.feature_names).index("company_code")
    assert np.isnan(X2[:, j]).all() and not np.isnan(X[:, j]).any()


def test_unknown_customers_are_cold_start_with_empty_history(world, open_state):
    state = open_state.head(5).copy()
    state["customer_id"] = "SENTINEL-7f3a"
    rows = feature_rows(world.model, state, world.last_refresh)
    assert rows["cold_start"].all()
    assert (rows["hist_n_cleared"] == 0).all() and rows["hist_late_ratio"].isna().all()
    assert rows["risk_category"].isna().all() and rows["credit_limit"].isna().all()
    X = model_matrix(world.model, rows)
    scored = score_matrix(world.model, rows, X)
    assert scored["p_late"].between(0, 1).all()


def test_store_lookup_equals_join_history(world, open_state):
    """The store's gathered arrays give the features join_history gives (known + unknown)."""
    state = open_state.head(40).copy()
    state.loc[state.index[::4], "customer_id"] = "NOT-IN-STORE"
    t = world.last_refresh
    ours = feature_rows(world.model, state, t)
    theirs = join_history(state.reset_index(drop=True), world.store.table, t,
                          world.model.feature_config)
    for col in theirs.columns:
        a, b = ours[col], theirs[col]
        if isinstance(b.dtype, pd.CategoricalDtype):
            assert a.astype("str").tolist() == b.astype("str").tolist(), col
        else:
            np.testing.assert_array_equal(a.to_numpy(dtype=float), b.to_numpy(dtype=float),
                                          err_msg=col)


def test_contributions_explain_the_raw_score(world, rows):
    contrib = contribution_frame(world.model, rows)
    # the ranking model's (the very-late booster: its output orders the worklist)
    booster = world.bundle.ranking_booster
    assert booster is world.bundle.very_late
    raw = booster.predict(model_matrix(world.model, rows), raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    ref = booster.predict(model_matrix(world.model, rows), pred_contrib=True)
    np.testing.assert_allclose(contrib.to_numpy(), ref, atol=1e-9)
