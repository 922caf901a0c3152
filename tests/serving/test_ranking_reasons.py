"""Reasons explain the rank: exact TreeSHAP of the very-late model, whose calibrated probability
times the open amount orders the worklist, with weights in probability points.

- additivity: base value + contributions = the very-late booster's raw log-odds, and the weights
  add up to p_very_late - base_probability;
- order: for every pair of items, the weights' sums order them as p_very_late does, and items
  with the same open amount are ranked as their weights say;
- the served explanation equals shap.TreeExplainer of the same booster on the same row.
"""

from __future__ import annotations

import json
from itertools import combinations

import numpy as np
import pytest

from serving.handlers import handle_explain, handle_rerank, handle_score
from serving.predict import feature_rows, model_matrix


@pytest.fixture(scope="module")
def request_(api, open_state, world, make_payload):
    body = make_payload(open_state.head(80), world.last_refresh, capacity=10)
    return api.RerankRequest.model_validate_json(json.dumps(body))


@pytest.fixture(scope="module")
def reranked(world, request_):
    return handle_rerank(world.model, request_.as_of, request_.items, request_.capacity)


def test_the_bundle_has_a_calibrated_very_late_model_that_orders_the_worklist(world, reranked):
    b = world.bundle
    assert b.very_late is not None and b.ranking_booster is b.very_late
    assert b.very_late_calibrator is not None
    assert world.model.explainer is not None  # tabulated: shallow like the risk model
    for it in reranked["items"]:
        assert 0.0 <= it["p_very_late"] <= it["p_late"] + 1e-12
        assert it["expected_amount_at_risk"] == pytest.approx(it["open_amount"]
                                                              * it["p_very_late"])
    keys = [it["expected_amount_at_risk"] for it in reranked["items"]]
    assert keys == sorted(keys, reverse=True)


def test_very_late_buckets_agree_with_the_very_late_model(world, request_):
    data = handle_score(world.model, request_.as_of, request_.items)
    very_late = list(world.bundle.contract.very_late)
    for it in data["items"]:
        probs = np.array([b["probability"] for b in it["delay_buckets"]])
        assert probs.sum() == pytest.approx(1.0)
        assert probs[very_late].sum() == pytest.approx(it["p_very_late"])
        assert 1 - probs[0] == pytest.approx(it["p_late"])


def test_contributions_add_up_to_the_ranking_models_output(world, request_):
    for item in request_.items[:6]:
        exp = handle_explain(world.model, request_.as_of, item)
        phi = np.array([c["contribution"] for c in exp["contributions"]])
        rows = feature_rows(world.model, _state([item]), request_.as_of)
        raw = world.bundle.very_late.predict(model_matrix(world.model, rows), raw_score=True)
        assert exp["base_value"] + phi.sum() == pytest.approx(raw[0], abs=1e-9)
        weights = np.array([c["weight"] for c in exp["contributions"]])
        assert weights.sum() == pytest.approx(exp["item"]["p_very_late"]
                                              - exp["base_probability"], abs=1e-9)
        assert np.all(np.sign(weights[phi != 0]) == np.sign(phi[phi != 0]))


def test_for_every_pair_the_weights_order_the_items_as_the_ranking_probability(world, request_):
    items = []
    for item in request_.items[:25]:
        exp = handle_explain(world.model, request_.as_of, item)
        items.append((exp["item"]["p_very_late"],
                      sum(c["weight"] for c in exp["contributions"])))
    for (pa, wa), (pb, wb) in combinations(items, 2):
        if abs(pa - pb) > 1e-9:
            assert (wa > wb) == (pa > pb)


def test_items_of_equal_amount_are_ranked_as_their_reasons_say(world, reranked):
    # the ranking key is amount x p_very_late: at equal amounts, the order is p_very_late's,
    # and p_very_late is the base rate plus the weights of every contribution
    by_amount: dict[float, list] = {}
    for it in reranked["items"]:
        by_amount.setdefault(round(it["open_amount"], 2), []).append(it)
    p = [it["p_very_late"] for it in reranked["items"]]
    ranks = [it["rank"] for it in reranked["items"]]
    assert ranks == sorted(ranks)
    for group in by_amount.values():
        ps = [it["p_very_late"] for it in group]
        assert ps == sorted(ps, reverse=True)
    assert len(p) == len(reranked["items"])


def test_reasons_carry_weights_that_are_their_explain_weights(world, request_, reranked):
    ids = [it.invoice_id for it in request_.items]
    for it in reranked["items"][:5]:
        exp = handle_explain(world.model, request_.as_of, request_.items[ids.index(
            it["invoice_id"])])
        weights = {c["feature"]: c["weight"] for c in exp["contributions"]}
        for r in it["reasons"]:
            assert r["feature"] not in ("days_overdue", "days_to_due")  # shown as a column
            assert r["weight"] == pytest.approx(weights[r["feature"]], rel=1e-4, abs=1e-7)
            assert r["sentence"].endswith(f"{r['weight'] * 100:+.1f} points)")


def test_served_explanation_equals_shap_tree_explainer_of_the_same_model(world, request_):
    import shap  # noqa: PLC0415 - heavy, only for this comparison
    explainer = shap.TreeExplainer(world.bundle.very_late)
    names = list(world.bundle.contract.feature_names)
    for item in request_.items[:4]:
        exp = handle_explain(world.model, request_.as_of, item)
        rows = feature_rows(world.model, _state([item]), request_.as_of)
        X = model_matrix(world.model, rows)
        ref = np.asarray(explainer.shap_values(X)).reshape(1, -1)
        served = {c["feature"]: c["contribution"] for c in exp["contributions"]}
        np.testing.assert_allclose([served[n] for n in names], ref[0], atol=1e-6)
        base = np.asarray(explainer.expected_value).reshape(-1)[-1]
        assert exp["base_value"] == pytest.approx(float(base), abs=1e-6)


def _state(items):
    from features.pit.item_state import ITEM_STATE_COLUMNS
    from serving.validation import items_frame

    return items_frame(items, ITEM_STATE_COLUMNS)
