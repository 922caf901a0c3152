"""The BentoML service class without a server: readiness follows the background model load."""

from __future__ import annotations

import json
import threading
import time

import pytest

from serving.handlers import Refused


@pytest.fixture(scope="module")
def service_module():
    import serving.service  # noqa: PLC0415 - imports BentoML and reads the environment at import

    return serving.service


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    return cond()


def test_ready_only_once_the_model_is_loaded(service_module, monkeypatch, world):
    import serving.loading as predict

    release = threading.Event()

    def slow_load(config):
        release.wait(10)
        return world.model

    monkeypatch.setattr(predict, "load_serving_model", slow_load)
    svc = service_module.PaydelayService.inner()
    assert svc.__is_ready__() is False
    assert service_module.metadata_of(svc.model, svc.loading_error)["ready"] is False
    with pytest.raises(Refused) as err:
        svc._model()
    assert err.value.status == 503
    release.set()
    assert _wait(svc.__is_ready__)
    assert svc._model() is world.model


def test_a_failed_load_is_retried_with_back_off_then_livez_fails(service_module, monkeypatch,
                                                                caplog):
    """Each failure is logged with its message (for the operator); /metadata and the 503s
    name the kind only (they are open or reach clients); after the last attempt the service
    is no longer alive, so a supervisor restarts it."""
    import serving.loading as predict

    calls = []

    def broken(config):
        calls.append(time.monotonic())
        raise FileNotFoundError("MLflow store /secret/path/mlflow.db does not exist")

    monkeypatch.setattr(predict, "load_serving_model", broken)
    monkeypatch.setattr(service_module, "LOAD_ATTEMPTS", 3)
    monkeypatch.setattr(service_module, "LOAD_BACKOFF_S", 0.05)
    svc = service_module.PaydelayService.inner()
    assert svc.__is_alive__()
    assert _wait(lambda: svc.loading["gave_up"])
    assert len(calls) == 3 and calls[2] - calls[1] >= 2 * (calls[1] - calls[0]) * 0.8
    assert not svc.__is_ready__() and not svc.__is_alive__()
    meta = service_module.metadata_of(None, svc.loading_error, svc.loading)
    assert meta["ready"] is False and meta["loading"]["attempts"] == 3
    assert meta["error"] == "model store or model not found"
    with pytest.raises(Refused) as err:
        svc._model()
    assert err.value.status == 503 and "/secret" not in err.value.error
    assert "/secret/path/mlflow.db" in caplog.text and "giving up" in caplog.text


def test_a_load_that_succeeds_on_retry_serves(service_module, monkeypatch, world):
    import serving.loading as predict

    outcomes = [RuntimeError("store busy"), world.model]

    def flaky(config):
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    monkeypatch.setattr(predict, "load_serving_model", flaky)
    monkeypatch.setattr(service_module, "LOAD_BACKOFF_S", 0.01)
    svc = service_module.PaydelayService.inner()
    assert _wait(svc.__is_ready__)
    assert svc.__is_alive__() and svc.loading_error is None


def test_the_published_openapi_document_is_valid_and_complete(service_module):
    from openapi_spec_validator import validate

    doc = json.loads(service_module.PAGES["/docs.json"][1])
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    for path in ("/score", "/rerank", "/explain"):
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["required"] is True
        assert {"200", "400", "405", "408", "409", "413", "415", "422", "503"} <= set(
            op["responses"])
        assert all("content" in r for r in op["responses"].values())
    item = doc["components"]["schemas"]["OpenItem"]["properties"]
    assert "1990-01-01" in item["posting_time"]["description"]
    assert "2100-12-31" in item["posting_time"]["description"]
    assert "pattern" in item["posting_time"] and "format" not in item["posting_time"]
    assert "null" not in json.dumps(item["invoice_id"])  # required: no null, no default


def test_the_docs_pages_fetch_nothing_from_elsewhere(service_module):
    page = service_module.PAGES["/docs"][1].decode()
    assert service_module.PAGES["/"] == service_module.PAGES["/docs"]
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'href="/docs.json"' in page


def test_bearer_scheme_is_documented_only_with_a_token():
    from features.config.serving import ServingConfig
    from serving.api_models import ApiModels, openapi_document

    api = ApiModels(ServingConfig())
    with_token, without = openapi_document(api, True), openapi_document(api, False)
    assert with_token["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert with_token["paths"]["/score"]["post"]["security"] == [{"bearer": []}]
    assert "401" in with_token["paths"]["/score"]["post"]["responses"]
    assert "securitySchemes" not in without["components"]
    assert "401" not in without["paths"]["/score"]["post"]["responses"]


def test_unknown_paths_share_one_metrics_label(service_module):
    from bentoml._internal.server.http import instruments

    assert getattr(instruments.RunnerTrafficMetricsMiddleware, "_paydelay_bounded", False)
    path = service_module.metric_path
    for known in ("/score", "/score/", "/rerank", "/explain", "/metadata", "/metrics", "/",
                  "/docs", "/docs.json", "/livez", "/readyz"):
        assert path(known) == known
    assert {path(f"/random-{i}") for i in range(50)} == {service_module.OTHER_PATH}
