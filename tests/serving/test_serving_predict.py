"""Serving's feature path and scorer agree with the batch pipeline and training's score()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.predict import feature_rows, model_matrix, score_matrix


@pytest.fixture(scope="module")
def rows(world, open_state):
    return feature_rows(world.model, open_state, world.last_refresh)


def test_model_matrix_is_what_lightgbm_reads_from_the_training_frame(world, rows):
    from training.risk import feature_matrix

    frame, _ = feature_matrix(rows, world.bundle.feature_set, world.bundle.categories)
    X = model_matrix(world.model, rows)
    booster = world.bundle.risk
    np.testing.assert_array_equal(booster.predict(X), booster.predict(frame))
    # and element by element: categoricals as training category codes, NaN when unseen
    for j, name in enumerate(world.bundle.feature_set.names):
        col = frame[name]
        expected = (col.cat.codes.to_numpy().astype(float) if hasattr(col, "cat")
                    else col.to_numpy(dtype=float))
        if hasattr(col, "cat"):
            expected[expected < 0] = np.nan
        np.testing.assert_array_equal(X[:, j], expected, err_msg=name)


def test_score_matrix_equals_training_score_on_every_output(world, rows):
    from training.core.scoring import OUTPUT_COLUMNS, score

    expected = score(world.bundle, rows)
    got = score_matrix(world.model, rows, model_matrix(world.model, rows))
    assert list(got.columns) == list(OUTPUT_COLUMNS)
    for col in OUTPUT_COLUMNS:
        if col == "risk_class" or col.startswith("pay_date"):
            assert (got[col] == expected[col]).all(), col
        else:
            np.testing.assert_allclose(got[col], expected[col], rtol=1e-12, err_msg=col)


def test_unseen_categories_are_scored_as_missing(world, rows):
    X = model_matrix(world.model, rows)
    changed = rows.copy()
    changed["company_code"] = pd.Categorical(["9999"] * len(rows))
    X2 = model_matrix(world.model, changed)
    j = list(world.bundle.feature_set.names).index("company_code")
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
    from features.pit.history import join_history

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
    from serving.explain import contribution_frame

    contrib = contribution_frame(world.model, rows)
    raw = world.bundle.risk.predict(model_matrix(world.model, rows), raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    ref = world.bundle.risk.predict(model_matrix(world.model, rows), pred_contrib=True)
    np.testing.assert_allclose(contrib.to_numpy(), ref, atol=1e-9)
