"""Shared fixtures of the serving tests: one small simulated world with a trained bundle.

`world` simulates a small ledger (seeded), builds the training rows with the batch pipeline,
trains a bundle without MLflow (register=False, a few seconds), materialises the customer store
at the extract's time and wraps both in a ServingModel. `open_state` is the item state of every
invoice open at that time, replayed from the events: exactly what a worklist engine would send.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from features.config import PaydelayConfig
from serving.demo import demo_config


@dataclass
class World:
    config: PaydelayConfig
    events: pd.DataFrame
    master: pd.DataFrame
    last_refresh: pd.Timestamp
    rows: pd.DataFrame
    bundle: object
    store: object
    model: object


@pytest.fixture(scope="session")
def world() -> World:
    from serving.demo import simulate_and_train
    from serving.model import from_bundle

    config = demo_config(n_customers=60, n_invoices=1800, months=12, seed=11)
    ledger, rows, result, store = simulate_and_train(config, register=False)
    model = from_bundle(result.bundle, store, config)
    return World(config, ledger.events, ledger.master, pd.Timestamp(ledger.last_refresh), rows,
                 result.bundle, store, model)


@pytest.fixture(scope="session")
def open_state(world) -> pd.DataFrame:
    from features.pit.item_state import item_state_at
    from features.pit.snapshots import scoring_snapshots

    state = item_state_at(world.events, scoring_snapshots(world.events))
    assert len(state) >= 30, "the test world should have a real worklist"
    return state


@pytest.fixture(scope="session")
def api(world):
    from serving.api_models import ApiModels

    return ApiModels(world.config.serving)


@pytest.fixture(scope="session")
def make_payload():
    """JSON request body from an item-state frame at as_of (extra top-level fields allowed)."""
    from serving.api_models import items_payload

    def build(state: pd.DataFrame, as_of, **extra) -> dict:
        return {"as_of": pd.Timestamp(as_of).isoformat(), "items": items_payload(state), **extra}

    return build


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)
