"""Suite-wide fixtures."""

from __future__ import annotations

import pytest

# The MLflow store follows these variables (training.registry.resolve_tracking_uri); a team
# server named in a developer's shell must never receive the test suite's runs.
_STORE_VARIABLES = ("PAYDELAY_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _no_store_from_the_shell(monkeypatch):
    for name in _STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
