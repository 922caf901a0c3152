"""Endpoint logic without HTTP: response shapes, ordering, reasons, cold start, warnings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.pit.item_state import ITEM_STATE_COLUMNS
from serving import api_models as am
from serving.handlers import (Job, Refused, handle_explain, handle_rerank, handle_score,
                              metadata, rerank_many, score_many, to_json)
from serving.predict import feature_rows, model_matrix, score_matrix
from serving.reasons import COLUMN_FEATURES, merge_linked
from serving.validation import items_frame
from training.core.rules import rule_points


@pytest.fixture(scope="module")
def request_(api, open_state, world, make_payload):
    body = make_payload(open_state.head(60), world.last_refresh, capacity=10)
    return api.RerankRequest.model_validate_json(json.dumps(body))


def _roundtrip(model_cls, data: dict):
    """Through JSON and back into the declared response model: the shapes agree."""
    return model_cls.model_validate_json(to_json(data))


def test_score_returns_every_output_in_request_order(world, request_):
    data = handle_score(world.model, request_.as_of, request_.items)
    resp = _roundtrip(am.ScoreResponse, data)
    assert [it.invoice_id for it in resp.items] == [it.invoice_id for it in request_.items]
    contract = world.bundle.contract
    for it in resp.items:  # the buckets of the served model's contract, in order
        assert [(b.label, b.from_days, b.to_days) for b in it.delay_buckets] == [
            (b.label, b.from_days, b.to_days) for b in contract.buckets]
    p = np.array([[b.probability for b in it.delay_buckets] for it in resp.items])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    late = np.array([it.p_late for it in resp.items])
    np.testing.assert_allclose(p[:, 0], 1 - late, atol=1e-12)
    for it in resp.items:
        assert it.days_to_clear_p10 <= it.days_to_clear_p50 <= it.days_to_clear_p90
        assert it.pay_date_p10 <= it.pay_date_p50 <= it.pay_date_p90
    open_amount = {it.invoice_id: it.open_amount for it in request_.items}
    assert contract.very_late == (2, 3, 4)  # default edges: > 30 days late or lost
    for it, probs in zip(resp.items, p, strict=True):  # training.core.scoring's definition
        very_late = probs[list(contract.very_late)].sum()
        assert it.expected_amount_at_risk == pytest.approx(open_amount[it.invoice_id] * very_late)
    assert resp.model.feature_set_version == world.bundle.feature_set_version
    assert resp.as_of == request_.as_of


def test_rerank_orders_by_expected_amount_at_risk_with_rules_and_reasons(world, request_):
    data = handle_rerank(world.model, request_.as_of, request_.items, request_.capacity)
    resp = _roundtrip(am.RerankResponse, data)
    risk = [it.expected_amount_at_risk for it in resp.items]
    assert risk == sorted(risk, reverse=True)
    assert [it.rank for it in resp.items] == list(range(1, len(resp.items) + 1))
    assert sum(it.in_capacity for it in resp.items) == 10
    assert sorted(it.rule_rank for it in resp.items) == list(range(1, len(resp.items) + 1))
    assert resp.summary.amount_at_risk_in_capacity == pytest.approx(sum(risk[:10]))
    assert resp.summary.amount_at_risk_in_capacity >= resp.summary.rule_amount_at_risk_in_capacity
    # the rule columns are training.core.rules' own valuation of the same rows
    state = open_state_of(request_)
    rows = feature_rows(world.model, state, request_.as_of)
    rows = pd.concat([rows, score_matrix(world.model, rows, model_matrix(world.model, rows))],
                     axis=1)
    # the served model's own strategy (its contract), not the serving process's config
    rules = rule_points(rows, world.bundle.contract.rule_strategy).set_index(rows["invoice_id"])
    for it in resp.items:
        assert it.rule_priority == rules.loc[it.invoice_id, "priority"]
        assert it.rule_points == rules.loc[it.invoice_id, "points"]
    # three reasons each, largest |contribution| first, directions matching the signs
    for it in resp.items:
        assert 1 <= len(it.reasons) <= 3
        mags = [abs(r.contribution) for r in it.reasons]
        assert mags == sorted(mags, reverse=True)
        for r in it.reasons:
            assert r.direction == ("raises" if r.contribution > 0 else "lowers")
            assert r.sentence.endswith(f"({r.direction} the risk, {r.weight * 100:+.1f} points)")
            assert (r.weight > 0) == (r.contribution > 0)


def open_state_of(request_) -> pd.DataFrame:
    return items_frame(request_.items, ITEM_STATE_COLUMNS)


def test_reasons_are_the_top_contributions_of_explain(world, request_):
    data = handle_rerank(world.model, request_.as_of, request_.items[:5])
    for item in data["items"]:
        idx = [it.invoice_id for it in request_.items].index(item["invoice_id"])
        exp = handle_explain(world.model, request_.as_of, request_.items[idx])
        # /explain lists exact per-feature contributions; reasons merge the due-date pair
        names = [c["feature"] for c in exp["contributions"]]
        phi = np.array([[c["contribution"] for c in exp["contributions"]]])
        overdue = pd.DataFrame({"days_overdue": [next(c["value"] for c in exp["contributions"]
                                                      if c["feature"] == "days_overdue")]})
        merged = merge_linked(phi, overdue, names)[0]
        # days overdue is a worklist column, not a reason (serving.reasons.COLUMN_FEATURES)
        top = [names[j] for j in np.argsort(-np.abs(merged), kind="stable")
               if merged[j] != 0 and names[j] not in COLUMN_FEATURES]
        assert [r["feature"] for r in item["reasons"]] == top[:3]
        assert [r["sentence"] for r in item["reasons"]] == exp["sentences"]
        assert item["p_late"] == pytest.approx(exp["item"]["p_late"])


def test_explain_gives_every_feature_and_adds_up_to_the_raw_score(world, request_):
    data = handle_explain(world.model, request_.as_of, request_.items[3])
    resp = _roundtrip(am.ExplainResponse, data)
    assert {c.feature for c in resp.contributions} == set(world.bundle.contract.feature_names)
    total = resp.base_value + sum(c.contribution for c in resp.contributions)
    assert total == pytest.approx(resp.raw_log_odds, abs=1e-9)
    mags = [abs(c.contribution) for c in resp.contributions]
    assert mags == sorted(mags, reverse=True)
    assert len(resp.sentences) == 3 and all(s for s in resp.sentences)
    assert all("_" not in c.sentence.split("(")[0] or c.feature == "customer_segment"
               for c in resp.contributions[:10])


def test_unknown_customer_is_scored_cold_start_and_flags_are_kept(world, api, open_state,
                                                                 make_payload):
    body = make_payload(open_state.head(3), world.last_refresh)
    body["items"][0]["customer_id"] = "NEW-CUSTOMER-1"
    body["items"][1]["company_code"] = "9999"
    req = api.ScoreRequest.model_validate_json(json.dumps(body))
    data = handle_score(world.model, req.as_of, req.items)
    first, second = data["items"][0], data["items"][1]
    assert first["cold_start"] is True and 0 <= first["p_late"] <= 1
    assert second["warnings"] == ["company code not seen in training: scored as missing"]


def test_impossible_items_are_refused_with_422_naming_the_field(world, api, open_state,
                                                               make_payload):
    body = make_payload(open_state.head(2), world.last_refresh)
    body["items"][1]["net_due_date"] = "2001-01-01"
    req = api.ScoreRequest.model_validate_json(json.dumps(body))
    with pytest.raises(Refused) as err:
        handle_score(world.model, req.as_of, req.items)
    assert err.value.status == 422
    assert err.value.detail == [{"loc": ["items", 1, "net_due_date"],
                                 "msg": "net due date is before the posting date",
                                 "type": "date_order"}]


def test_metadata_describes_what_is_served(world):
    meta = metadata(world.model)
    assert meta["ready"] and meta["feature_set_version"] == world.bundle.feature_set_version
    assert meta["features"] == list(world.bundle.contract.feature_names)
    assert meta["training_window"] == world.bundle.training_window
    assert "risk" in meta["metrics"] and meta["explainer"] == "tabulated TreeSHAP"
    assert meta["delay_buckets"] == [b.to_dict() for b in world.bundle.contract.buckets]
    assert meta["rule_strategy"] == world.bundle.contract.rule_strategy.name
    assert json.loads(to_json(meta))["store"]["n_customers"] == world.store.n_customers
    assert metadata(None, "boom") == {"ready": False, "error": "boom"}


def test_a_batch_of_requests_answers_each_as_if_alone(world, api, open_state, make_payload):
    """Jobs scored together (serving.batching) get exactly their lone answers: own as_of, own
    rule groups (same customers in two worklists), own capacity; a refusal stays with its job."""
    later = world.last_refresh
    earlier = later - pd.Timedelta(days=3)
    a = api.RerankRequest.model_validate_json(json.dumps(
        make_payload(open_state.head(25), later, capacity=5)))
    b_state = open_state.iloc[10:40]  # overlaps a's customers and invoices
    b_state = b_state[b_state["posting_time"] <= earlier]
    b = api.RerankRequest.model_validate_json(json.dumps(make_payload(b_state, earlier)))
    bad = make_payload(open_state.head(2), later)
    bad["items"][0]["net_due_date"] = "2001-01-01"
    c = api.RerankRequest.model_validate_json(json.dumps(bad))
    jobs = [Job(a.as_of, a.items, a.capacity), Job(c.as_of, c.items), Job(b.as_of, b.items)]
    together = rerank_many(world.model, jobs)
    assert isinstance(together[1], Refused) and together[1].status == 422
    alone_a = handle_rerank(world.model, a.as_of, a.items, a.capacity)
    alone_b = handle_rerank(world.model, b.as_of, b.items)
    assert json.loads(to_json(together[0])) == json.loads(to_json(alone_a))
    assert json.loads(to_json(together[2])) == json.loads(to_json(alone_b))
    scores = score_many(world.model, jobs)
    assert scores[0] == handle_score(world.model, a.as_of, a.items)
    assert scores[2] == handle_score(world.model, b.as_of, b.items)


def test_a_request_for_another_ledger_is_refused_with_409(world, request_, monkeypatch):
    """A request naming a ledger that is not the served model's gets 409 in the one error
    shape; naming the model's ledger, or none, is scored; /metadata shows the ledger."""
    from serving.model import from_bundle

    monkeypatch.setattr(world.bundle, "ledger", {"name": "sap-emea", "hash": "abc"},
                        raising=False)
    model = from_bundle(world.bundle, world.store, world.config, explainer=False)
    assert metadata(model)["ledger"]["name"] == "sap-emea"
    items = request_.items[:3]
    results = score_many(model, [Job(request_.as_of, items, ledger="ibm-na"),
                                 Job(request_.as_of, items, ledger="sap-emea"),
                                 Job(request_.as_of, items)])
    refused = results[0]
    assert isinstance(refused, Refused) and refused.status == 409
    assert refused.body() == {"error": refused.error, "detail": [
        {"loc": ["ledger"], "msg": "ledger differs from the served model's",
         "type": "ledger_mismatch"}]}
    assert results[1]["items"] == results[2]["items"]
    with pytest.raises(Refused) as err:
        handle_explain(model, request_.as_of, items[0], ledger="ibm-na")
    assert err.value.status == 409
    assert isinstance(rerank_many(model, [Job(request_.as_of, items, ledger="x")])[0], Refused)


def test_a_model_without_a_recorded_ledger_accepts_any(world, request_, monkeypatch):
    from serving.model import from_bundle

    monkeypatch.setattr(world.bundle, "ledger", {}, raising=False)
    model = from_bundle(world.bundle, world.store, world.config, explainer=False)
    assert not isinstance(score_many(model, [Job(request_.as_of, request_.items[:2],
                                                 ledger="any")])[0], Refused)
    assert metadata(model)["ledger"] is None
