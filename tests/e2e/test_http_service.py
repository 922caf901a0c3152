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
    assert all("the risk" in r.sentence for i in resp.items for r in i.reasons)


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
    ({"unexpected": 1}, 400, ["items", 0]),  # an unknown field's name is not echoed
    ({"amount": True}, 400, ["items", 0, "amount"]),  # strict: no coercion
    ({"amount": "3"}, 400, ["items", 0, "amount"]),
    ({"n_contacts": "3"}, 400, ["items", 0, "n_contacts"]),
    ({"promise_open": "yes"}, 400, ["items", 0, "promise_open"]),
    ({"posting_time": 1700000000}, 400, ["items", 0, "posting_time"]),  # epoch
    ({"paid_amount": 1e11}, 422, ["items", 0, "paid_amount"]),
    ({"disputed_amount": 1e11}, 422, ["items", 0, "disputed_amount"]),
    ({"credit_memo_amount": 1e11}, 422, ["items", 0, "credit_memo_amount"]),
    ({"net_due_date": "2001-01-01T00:00:00"}, 422, ["items", 0, "net_due_date"]),
    ({"open_amount": 1e11}, 422, ["items", 0, "open_amount"]),
])
def test_invalid_items_get_4xx_naming_the_field(server, worklist, change, status, loc):
    item = {**worklist["items"][0], **change}
    with server.client() as c:
        r = c.post("/score", json={"as_of": worklist["as_of"], "items": [item]})
    assert r.status_code == status, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]]
    assert set(r.json()) == {"error", "detail"}


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
        r2 = c.post("/score", content=huge, headers={"content-type": "application/json"})
        assert r2.status_code == 413 and "bytes" in r2.json()["error"]
    assert set(r.json()) == set(r2.json()) == {"error", "detail"}  # one shape


def test_dates_with_offsets_are_accepted_as_wall_clock_time(server, worklist):
    item = worklist["items"][0]
    as_of = worklist["as_of"][:19]
    body = {"as_of": as_of + "+02:00",
            "items": [{**item, "posting_time": item["posting_time"][:19] + "Z"}]}
    with server.client() as c:
        r = c.post("/score", json=body)
        plain = c.post("/score", json={"as_of": as_of, "items": [item]})
    assert r.status_code == 200, r.text
    assert r.json()["as_of"] == as_of and r.json()["items"] == plain.json()["items"]


@pytest.mark.parametrize("ctype", [
    "application/x-www-form-urlencoded",  # curl -d @worklist.json: was a 35 KB ERROR line
    "multipart/form-data",  # no boundary: was a 500
    "multipart/form-data; boundary=XyZ",  # a boundary and a JSON body: was a 500
    "text/plain",
])
def test_other_content_types_get_415_without_echo(server, worklist, ctype):
    body = json.dumps({"as_of": worklist["as_of"],
                       "items": [{**worklist["items"][0], "customer_id": SENTINEL}]})
    with server.client() as c:
        r = c.post("/score", content=body, headers={"content-type": ctype})
    assert r.status_code == 415, r.text
    assert SENTINEL not in r.text and set(r.json()) == {"error", "detail"}


def test_wrong_method_and_other_ledger(server, worklist):
    with server.client() as c:
        r = c.get("/score")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        ledger = c.get("/metadata").json()["ledger"]
        body = {"as_of": worklist["as_of"], "items": worklist["items"][:2]}
        assert ledger and ledger["name"]
        assert c.post("/score", json={**body, "ledger": ledger["name"]}).status_code == 200
        r = c.post("/score", json={**body, "ledger": "another-ledger"})
    assert r.status_code == 409 and r.json()["detail"][0]["loc"] == ["ledger"]


def test_a_stalled_upload_times_out(server):
    import socket
    from urllib.parse import urlparse

    url = urlparse(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + server.token.encode() +
                     b"\r\nContent-Length: 1000\r\n\r\n{\"items\": [")
        started = time.monotonic()
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert time.monotonic() - started < 20


def test_docs_pages_are_self_contained(server):
    with server.client(token=False) as c:
        for path in ("/docs", "/"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert "<script" not in r.text and "https://" not in r.text
            assert "http://" not in r.text and "/docs.json" in r.text
        assert c.get("/docs.json").json()["openapi"] == "3.1.0"


def test_metrics_do_not_grow_with_unknown_paths(server):
    with server.client(token=False) as c:
        c.get("/no-such-path")  # the one series unknown paths share
        before = len(c.get("/metrics").text)
        for i in range(50):
            assert c.get(f"/no-such-path-{i}-{SENTINEL}").status_code == 404
        after = c.get("/metrics").text
    assert SENTINEL not in after and "no-such-path" not in after
    assert len(after) < before + 500  # was 8.5 KB -> 196 KB for 50 random 404s


def test_responses_match_the_published_schema(server, worklist):
    """The 200s of every endpoint and each error validate against /docs.json (the fuzzer mostly
    meets 4xx: real worklists are what reach 200)."""
    import jsonschema

    with server.client() as c:
        doc = c.get("/docs.json").json()
        body = {"as_of": worklist["as_of"], "items": worklist["items"]}
        calls = [("/score", body, 200), ("/rerank", {**body, "capacity": 5}, 200),
                 ("/explain", {"as_of": worklist["as_of"], "item": worklist["items"][0]}, 200),
                 ("/score", {"items": []}, 400),
                 ("/score", {**body, "ledger": "other"}, 409)]
        answers = [(path, status, c.post(path, json=b)) for path, b, status in calls]
        answers.append(("/metadata", 200, c.get("/metadata")))
    for path, status, r in answers:
        assert r.status_code == status, r.text
        method = "get" if path == "/metadata" else "post"
        schema = doc["paths"][path][method]["responses"][str(status)]["content"][
            "application/json"]["schema"]
        jsonschema.validate(r.json(), {**schema, "components": doc["components"]},
                            cls=jsonschema.Draft202012Validator)


MARK = "MARK9q"


def test_no_client_data_reaches_the_server_log(server, worklist):
    """Marker strings in every field, as every key and in every content type; valid and
    refused requests alike: none reaches the log, and no request is logged at ERROR or with a
    traceback (a 400 is one WARNING line)."""
    good = {**worklist["items"][0], "customer_id": SENTINEL, "amount": SENTINEL_AMOUNT,
            "open_amount": 12.5}
    marked = {k: (f"{MARK}-{k}" if isinstance(v, str) or v is None else v)
              for k, v in worklist["items"][0].items()}
    keyed = {f"{MARK}-key-{k}": v for k, v in worklist["items"][0].items()}
    calls = [
        ("/score", {"as_of": worklist["as_of"], "items": [good]}, None),  # valid: 200
        ("/rerank", {"as_of": worklist["as_of"], "items": [good]}, None),  # valid: 200
        ("/explain", {"as_of": worklist["as_of"], "item": good}, None),  # valid: 200
        ("/score", {"as_of": worklist["as_of"],
                    "items": [{**good, "dunning_level": SENTINEL}]}, None),  # 400 (pydantic)
        ("/score", {"as_of": worklist["as_of"],
                    "items": [{**good, "customer_id": SENTINEL * 10}]}, None),  # 400: too long
        ("/score", {"as_of": worklist["as_of"],
                    "items": [{**good, "net_due_date": "1999-01-01T00:00:00"}]}, None),  # 422
        ("/score", {"items": [{**good, "extra_field": SENTINEL}]}, None),  # 400: unknown field
        ("/score", {"items": [marked]}, None),  # markers in every field: 400
        ("/score", {"items": [keyed], f"{MARK}-top": 1}, None),  # markers as every key: 400
        ("/rerank", {"items": [good], "ledger": MARK}, None),  # 409
    ] + [("/score", {"items": [marked, keyed]}, ctype) for ctype in (
        "application/x-www-form-urlencoded", "multipart/form-data",
        "multipart/form-data; boundary=" + MARK, "text/plain", f"application/{MARK}",
        f"application/json; charset={MARK}")]
    with server.client() as c:
        statuses = []
        for path, body, ctype in calls:
            if ctype is None:
                statuses.append(c.post(path, json=body).status_code)
            else:
                statuses.append(c.post(path, content=json.dumps(body),
                                       headers={"content-type": ctype}).status_code)
    assert statuses == [200, 200, 200, 400, 400, 422, 400, 400, 400, 409] + [415] * 6
    time.sleep(1.0)  # let the access log flush
    log = server.log_text()
    assert "request refused (400) on /score [POST]" in log  # the 400s were logged...
    assert SENTINEL not in log and MARK not in log  # ...without what the client sent
    assert str(SENTINEL_AMOUNT) not in log and "987654" not in log
    assert "[ERROR]" not in log and "Traceback" not in log


def _score_count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("bentoml_service_request_total{") and 'endpoint="/score"' in line \
                and 'http_response_code="200"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_paydelay_serve_honours_paydelay_model_keeps_metrics_apart_and_stops_on_sigterm(
        server, worklist, tmp_path):
    """`paydelay serve` with PAYDELAY_MODEL (the README's rollback) serves that version; a second
    server on the same BENTOML_HOME leaves the first one's metrics alone; SIGTERM to `paydelay
    serve` stops its server before it exits."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    from serving.launcher import free_port, wait_ready

    with server.client() as c:
        assert c.post("/score", json={"as_of": worklist["as_of"],
                                      "items": worklist["items"][:2]}).status_code == 200
        before = _score_count(c.get("/metrics").text)
    assert before >= 1
    port = free_port()
    version = str(server.registered.version)
    env = {**server.env, "PAYDELAY_MODEL": version, "PAYDELAY_WORKERS": "1"}
    paydelay = Path(sys.executable).parent / "paydelay"
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(paydelay), "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ready(url, proc, 120), (tmp_path / "serve.log").read_text()[-3000:]
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
            meta = c.get("/metadata").json()
        assert meta["model_ref"] == version and meta["model"]["version"] == int(version)
        with server.client() as c:  # the first server still reports its own counters
            assert _score_count(c.get("/metrics").text) >= before
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        with pytest.raises(httpx.HTTPError):  # its server is gone with it
            httpx.get(f"{url}/livez", timeout=5, trust_env=False)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        log.close()
