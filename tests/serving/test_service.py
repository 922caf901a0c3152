"""The BentoML service class without a server: readiness follows the background model load."""

from __future__ import annotations

import threading
import time

import pytest


@pytest.fixture(scope="module")
def service_module():
    return pytest.importorskip("serving.service")


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
    from serving.handlers import Refused

    with pytest.raises(Refused) as err:
        svc._model()
    assert err.value.status == 503
    release.set()
    assert _wait(svc.__is_ready__)
    assert svc._model() is world.model


def test_a_failed_load_is_reported_not_ready(service_module, monkeypatch):
    import serving.loading as predict

    def broken(config):
        raise FileNotFoundError("no registered model 'paydelay' @champion")

    monkeypatch.setattr(predict, "load_serving_model", broken)
    svc = service_module.PaydelayService.inner()
    assert _wait(lambda: svc.loading_error is not None)
    assert not svc.__is_ready__()
    assert svc.loading_error == "FileNotFoundError: no registered model 'paydelay' @champion"
    assert service_module.metadata_of(None, svc.loading_error) == {
        "ready": False, "error": svc.loading_error}
