"""End to end over HTTP: a real BentoML server, a real registered model, every endpoint."""

from __future__ import annotations

import copy
import json
import time

import pytest

from serving import api_models as am

pytestmark = pytest.mark.slow
SENTINEL = "SENTINEL-7f3a"
SENTINEL_AMOUNT = 987654.3219


def test_health_metrics_openapi_and_metadata(server):
    with server.client(token=False) as c:
        assert c.get("/livez").status_code == 200
        assert c.get("/readyz").status_code == 200
        metrics = c.get("/metrics")
        assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
        spec = c.get("/docs.json").json()
        assert {"/score", "/rerank", "/explain", "/metadata"} <= set(spec["paths"])
        schemas = spec["components"]["schemas"]
        assert any("OpenItem" in name for name in schemas)
        meta = c.get("/metadata")
        assert meta.status_code == 200
        meta = meta.json()
    reg = server.registered
    assert meta["ready"] is True
    assert meta["model"]["version"] == reg.version and "champion" in meta["model"]["aliases"]
    assert meta["model"]["run_id"] == reg.run_id
    assert meta["feature_set_version"] and meta["training_window"]["train_end"]
    assert meta["metrics"]["risk"]["roc_auc"] > 0.5
    assert meta["store"]["n_customers"] > 0


def test_score_needs_the_token_and_scores_every_item(server, worklist):
    body = {"as_of": worklist["as_of"], "items": worklist["items"][:40]}
    with server.client(token=False) as c:
        assert c.post("/score", json=body).status_code == 401
        bad = c.post("/score", json=body, headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
    with server.client() as c:
        r = c.post("/score", json=body)
    assert r.status_code == 200, r.text
    resp = am.ScoreResponse.model_validate(r.json())
    assert [i.invoice_id for i in resp.items] == [i["invoice_id"] for i in body["items"]]
    assert resp.model.version == server.registered.version
    assert all(0 <= i.p_late <= 1 and i.days_to_clear_p10 <= i.days_to_clear_p90
               for i in resp.items)


def test_rerank_orders_the_worklist_with_rules_and_reasons(server, worklist):
    body = {**worklist, "capacity": 15}
    with server.client() as c:
        r = c.post("/rerank", json=body)
    assert r.status_code == 200, r.text
    resp = am.RerankResponse.model_validate(r.json())
    risk = [i.expected_amount_at_risk for i in resp.items]
    assert risk == sorted(risk, reverse=True) and len(resp.items) == len(worklist["items"])
    assert [i.rank for i in resp.items][:3] == [1, 2, 3]
    assert resp.summary.capacity == 15 and sum(i.in_capacity for i in resp.items) == 15
    assert all(i.rule_priority in {"very_high", "high", "medium", "low"} for i in resp.items)
    assert all(len(i.reasons) == 3 for i in resp.items)
    assert all(r.sentence.endswith("the risk)") for i in resp.items for r in i.reasons)


def test_explain_one_item(server, worklist):
    with server.client() as c:
        r = c.post("/explain", json={"as_of": worklist["as_of"], "item": worklist["items"][0]})
    assert r.status_code == 200, r.text
    resp = am.ExplainResponse.model_validate(r.json())
    total = resp.base_value + sum(x.contribution for x in resp.contributions)
    assert total == pytest.approx(resp.raw_log_odds, abs=1e-9)
    assert len(resp.sentences) == 3


def test_unknown_customer_and_company_are_scored_and_flagged(server, worklist):
    items = copy.deepcopy(worklist["items"][:2])
    items[0]["customer_id"] = "BRAND-NEW-0001"
    items[1]["company_code"] = "7777"
    with server.client() as c:
        r = c.post("/score", json={"as_of": worklist["as_of"], "items": items})
    assert r.status_code == 200, r.text
    out = r.json()["items"]
    assert out[0]["cold_start"] is True
    assert out[1]["warnings"] == ["company code not seen in training: scored as missing"]


@pytest.mark.parametrize("change, status, loc", [
    ({"amount": -10.0}, 400, ["items", 0, "amount"]),
    ({"posting_time": "1980-01-01T00:00:00"}, 400, ["items", 0, "posting_time"]),
    ({"unexpected": 1}, 400, ["items", 0, "unexpected"]),
    ({"net_due_date": "2001-01-01T00:00:00"}, 422, ["items", 0, "net_due_date"]),
    ({"open_amount": 1e11}, 422, ["items", 0, "open_amount"]),
])
def test_invalid_items_get_4xx_naming_the_field(server, worklist, change, status, loc):
    item = {**worklist["items"][0], **change}
    with server.client() as c:
        r = c.post("/score", json={"as_of": worklist["as_of"], "items": [item]})
    assert r.status_code == status, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]]


def test_non_finite_numbers_and_bad_json_are_400(server, worklist):
    text = json.dumps({"as_of": worklist["as_of"], "items": [worklist["items"][0]]})
    amount = json.dumps(worklist["items"][0]["amount"])
    with server.client() as c:
        r = c.post("/score", content=text.replace(f'"amount": {amount}', '"amount": NaN', 1),
                   headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["items", 0, "amount"]
        r = c.post("/score", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400


def test_size_limits_give_413(server, worklist):
    items = [{**worklist["items"][0], "invoice_id": f"X{i}"} for i in range(1001)]
    with server.client() as c:
        r = c.post("/rerank", json={"as_of": worklist["as_of"], "items": items})
        assert r.status_code == 413 and "limit of 1000" in r.json()["error"]
        huge = b'{"items": [' + b" " * 4_100_000 + b"]}"
        r = c.post("/score", content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "bytes" in r.json()["error"]


def test_no_client_data_reaches_the_server_log(server, worklist):
    good = {**worklist["items"][0], "customer_id": SENTINEL, "amount": SENTINEL_AMOUNT,
            "open_amount": 12.5}
    calls = [
        ("/score", {"as_of": worklist["as_of"], "items": [good]}),  # valid: 200
        ("/rerank", {"as_of": worklist["as_of"], "items": [good]}),  # valid: 200
        ("/explain", {"as_of": worklist["as_of"], "item": good}),  # valid: 200
        ("/score", {"as_of": worklist["as_of"],
                    "items": [{**good, "dunning_level": SENTINEL}]}),  # 400 (pydantic)
        ("/score", {"as_of": worklist["as_of"],
                    "items": [{**good, "customer_id": SENTINEL * 10}]}),  # 400: too long
        ("/score", {"as_of": worklist["as_of"],
                    "items": [{**good, "net_due_date": "1999-01-01T00:00:00"}]}),  # 422
        ("/score", {"items": [{**good, "extra_field": SENTINEL}]}),  # 400: unknown field
    ]
    with server.client() as c:
        statuses = [c.post(path, json=body).status_code for path, body in calls]
    assert statuses == [200, 200, 200, 400, 400, 422, 400]
    time.sleep(1.0)  # let the access log flush
    log = server.log_text()
    assert "Exception on /score" in log  # the 400s were logged...
    assert SENTINEL not in log  # ...without what the client sent
    assert str(SENTINEL_AMOUNT) not in log and "987654" not in log
