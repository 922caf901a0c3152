"""Shared fixture of the running-loop tests (batch scoring, monitor): one small model trained on
a calm simulated world up to a cut-off (tests/training/monitor_worlds.py), once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def loop_model():
    from tests.training.monitor_worlds import trained_model, world_config

    config = world_config()
    ledger, result = trained_model(config)
    return config, ledger, result.bundle
