"""The request path on column arrays gives what the frame path gives, value for value.

The service parses items into numpy columns (serving.validation.items_columns) and runs the
shared feature functions, the scoring, the rule strategy and the explainer on those arrays
(serving.predict.feature_columns, score_and_explain_columns; serving.handlers.rule_frame). These
tests pin every step to its frame counterpart, which the parity test ties to the batch pipeline.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading

import numpy as np
import pandas as pd
import pytest

from features.config.rules import BasicRuleConfig, CollectionRuleConfig, RuleStrategyConfig
from features.pit.item_state import ITEM_STATE_COLUMNS
from serving.explain import contributions
from serving.handlers import rule_frame
from serving.predict import (feature_columns, feature_rows, model_matrix,
                             score_and_explain_columns, score_columns, score_matrix)
from serving.process import run_beside
from serving.validation import check_items, items_columns, items_frame
from training.core.rules import rule_points


@pytest.fixture(scope="module")
def request_(world, api, open_state, make_payload):
    """A worklist with the awkward cases: an unknown customer, unseen and missing payment terms,
    an unseen company code, a missing promise amount."""
    body = make_payload(open_state.head(80), world.last_refresh, capacity=7)
    body["items"][0]["customer_id"] = "NOT-IN-STORE"
    body["items"][1]["payment_terms"] = "ZZ99"  # cannot be parsed
    body["items"][2]["payment_terms"] = None
    body["items"][3]["company_code"] = "9999"  # never seen in training
    body["items"][4]["promise_amount"] = None
    return api.RerankRequest.model_validate_json(json.dumps(body))


@pytest.fixture(scope="module")
def both(world, request_):
    """(frame rows, column rows) of the request's items."""
    frame = feature_rows(world.model, items_frame(request_.items, ITEM_STATE_COLUMNS),
                         request_.as_of)
    cols = feature_columns(world.model, items_columns(request_.items, ITEM_STATE_COLUMNS),
                           request_.as_of)
    return frame, cols


def test_items_columns_hold_the_frame_values(request_):
    frame = items_frame(request_.items, ITEM_STATE_COLUMNS)
    cols = items_columns(request_.items, ITEM_STATE_COLUMNS)
    assert list(cols) == list(frame.columns) == list(ITEM_STATE_COLUMNS)
    for name, dtype in ITEM_STATE_COLUMNS.items():
        assert str(frame[name].dtype) == dtype, name
        if dtype == "str":
            assert cols[name].dtype == object
            assert frame[name].to_numpy(dtype=object, na_value=None).tolist() == \
                cols[name].tolist(), name
        else:
            np.testing.assert_array_equal(frame[name].to_numpy(), cols[name], err_msg=name)
    assert cols["payment_terms"][2] is None and frame["payment_terms"].isna().iloc[2]


def test_feature_columns_equal_feature_rows_everywhere(world, both):
    frame, cols = both
    assert list(cols) == list(frame.columns)
    for name in frame.columns:
        a, b = frame[name], cols[name]
        assert len(b) == len(a), name
        if isinstance(a.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(a.dtype):
            got = pd.Series(b).astype("str").to_numpy(dtype=object, na_value=None).tolist()
            assert got == a.astype("str").to_numpy(dtype=object, na_value=None).tolist(), name
        elif np.issubdtype(a.dtype, np.datetime64):
            np.testing.assert_array_equal(np.asarray(b, "datetime64[us]"),
                                          a.to_numpy("datetime64[us]"), err_msg=name)
        else:
            np.testing.assert_array_equal(np.asarray(b, dtype=float), a.to_numpy(dtype=float),
                                          err_msg=name)
    # the awkward rows really are awkward
    assert bool(cols["cold_start"][0]) and pd.isna(cols["risk_category"][0])
    assert not np.isnan(cols["terms_net_days"][1])  # falls back on due date - posting date
    assert cols["company_code"][3] == "9999"


def test_model_matrix_and_scores_agree(world, both):
    frame, cols = both
    X = model_matrix(world.model, frame)
    np.testing.assert_array_equal(model_matrix(world.model, cols), X)
    j = list(world.bundle.contract.feature_names).index("company_code")
    assert np.isnan(X[3, j]) and not np.isnan(X[5, j])  # unseen code scored as missing
    expected = score_matrix(world.model, frame, X)
    got, _ = score_columns(world.model, cols, X)
    for name in expected.columns:
        if name == "risk_class":
            assert got[name].tolist() == expected[name].astype("str").tolist()
        else:
            np.testing.assert_array_equal(np.asarray(got[name]), expected[name].to_numpy(),
                                          err_msg=name)


def test_contributions_beside_the_boosters_equal_the_explainer_alone(world, both):
    _, cols = both
    X = model_matrix(world.model, cols)
    _, _, phi = score_and_explain_columns(world.model, cols, X)
    np.testing.assert_array_equal(phi, contributions(world.model, X, exact=False))
    # reordered rows keep their values: the re-rank explains in request order, then reorders
    perm = np.random.default_rng(3).permutation(len(X))
    np.testing.assert_array_equal(contributions(world.model, X[perm], exact=False), phi[perm])


def test_rule_points_on_the_strategy_columns_equal_the_whole_rows(world, both):
    frame, cols = both
    scored, _ = score_columns(world.model, cols)
    scored["request"] = np.zeros(len(frame), dtype=np.int64)
    whole = frame.assign(request=0)
    keys = ("customer_id", "request")
    # the default strategy, and one reading the group-aggregated and derived fields
    custom = RuleStrategyConfig(
        basic_rules=(
            BasicRuleConfig(name="B1", field="customer_max_days_overdue", op=">", value=10),
            BasicRuleConfig(name="B2", field="customer_n_overdue_items", op=">=", value=2),
            BasicRuleConfig(name="B3", field="days_to_due", op="<", value=-5),
            BasicRuleConfig(name="B4", field="customer_segment", op="not_in",
                            value=("key_account",)),
            BasicRuleConfig(name="B5", field="customer_open_amount", op=">", value=1000.0),
        ),
        collection_rules=(
            CollectionRuleConfig(name="R1", basic_rules=("B1",), points=40),
            CollectionRuleConfig(name="R2", basic_rules=("B2", "B3"), points=30),
            CollectionRuleConfig(name="R3", basic_rules=("B4",), points=20, prerequisite="R1"),
            CollectionRuleConfig(name="R4", basic_rules=("B5",), points=10),
        ))
    for cfg in (world.config.rule_strategy, custom):
        narrow = rule_frame(scored, cfg, keys)
        assert len(narrow.columns) < 20
        got = rule_points(narrow, cfg, group_keys=keys)
        expected = rule_points(whole, cfg, group_keys=keys)
        pd.testing.assert_frame_equal(got, expected)
        assert got["points"].nunique() > 1, cfg.name


def test_rule_fast_paths_valuate_as_the_general_path(world, both):
    """Numeric and categorical columns are read with numpy; nullable and string columns take
    the general pandas path: both must valuate alike."""
    frame, _ = both
    cfg = world.config.rule_strategy
    general = frame.copy()
    for name in ("days_overdue", "dunning_level", "n_promises_broken", "hist_n_cleared",
                 "hist_late_ratio", "open_amount"):
        general[name] = general[name].astype("Float64")
    general["dispute_open"] = general["dispute_open"].astype("boolean")
    general["risk_category"] = general["risk_category"].astype("str")
    pd.testing.assert_frame_equal(rule_points(general, cfg), rule_points(frame, cfg))
    assert rule_points(frame, cfg)["rules_hit"].str.contains("R04").any()


def test_check_items_on_columns_finds_what_it_finds_on_the_frame(world, api, open_state,
                                                                  make_payload):
    body = make_payload(open_state.head(12), world.last_refresh)
    body["items"][5]["invoice_id"] = body["items"][2]["invoice_id"]  # duplicate
    body["items"][6]["company_code"] = "9999"
    body["items"][7]["payment_terms"] = "ZZ99"
    body["items"][8]["payment_terms"] = None
    body["items"][9]["net_due_date"] = "2001-01-01T00:00:00"  # before posting
    req = api.ScoreRequest.model_validate_json(json.dumps(body))
    frame = items_frame(req.items, ITEM_STATE_COLUMNS)
    cols = items_columns(req.items, ITEM_STATE_COLUMNS)
    for refuse in (False, True):
        a = check_items(frame, req.as_of, world.bundle.categories, refuse)
        b = check_items(cols, req.as_of, world.bundle.categories, refuse)
        assert a.problems == b.problems and a.warnings == b.warnings
        kinds = {p.type for p in b.problems}
        assert {"duplicate", "date_order"} <= kinds
        assert ("unknown" in kinds) is refuse
    assert [p.loc for p in b.problems if p.type == "duplicate"] == [("items", 5, "invoice_id")]
    assert any("payment terms unknown" in w for w in b.warnings[7])
    assert any("payment terms unknown" in w for w in b.warnings[8])
    assert not any("payment terms unknown" in w for w in b.warnings[0])


def test_run_beside_returns_every_result_and_passes_errors_on():
    tasks = {f"t{i}": (lambda i=i: i * i) for i in range(7)}
    assert run_beside(tasks) == {f"t{i}": i * i for i in range(7)}

    def boom():
        raise RuntimeError("booster failed")

    with pytest.raises(RuntimeError, match="booster failed"):
        run_beside({"a": lambda: 1, "b": boom, "c": lambda: 3})
    assert run_beside({"only": lambda: "x"}) == {"only": "x"}  # the helper is still usable


def _two_threads() -> dict:
    """Two tasks that can only finish together: each waits for the other at a barrier, so this
    returns only when run_beside really runs them on two threads."""
    barrier = threading.Barrier(2, timeout=10)

    def task(value):
        barrier.wait()
        return value

    return run_beside({"a": lambda: task(2), "b": lambda: task(3)})


def test_tasks_run_on_two_threads_also_in_a_forked_child():
    assert _two_threads() == {"a": 2, "b": 3}  # the parent's helper thread now exists
    with mp.get_context("fork").Pool(1) as pool:  # a server worker forked after loading
        assert pool.apply(_two_threads) == {"a": 2, "b": 3}
