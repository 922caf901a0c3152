"""The chunked history step of the batch build (columns filled chunk by chunk, to bound memory)
gives what the one-shot aggregates -> history_features path (shared with serving) gives,
bit for bit (the EWM features too: their weighted sums are row-wise, not a BLAS product whose
rounding depends on the rows around)."""

import numpy as np
import pandas as pd
import pytest

import features.pit.history as history
from features.config import PaydelayConfig
from features.pit.build import build_training_set, step_item_state
from features.pit.columns import frame_of
from features.pit.item_state import prepare_log
from features.pit.snapshots import training_codes
from features.simulate.ledger import simulate_ledger


def assert_same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert sum(c.startswith("hist_ewm_") for c in left.columns) == 5
    pd.testing.assert_frame_equal(left, right, check_exact=True)


@pytest.fixture(scope="module")
def ledger_rows():
    cfg = PaydelayConfig(seed=5)
    sim = cfg.simulator.model_copy(update={"n_customers": 40, "n_invoices": 1500, "months": 18})
    ledger = simulate_ledger(sim, seed=cfg.seed)
    log = prepare_log(ledger.events)
    inv, t, _ = training_codes(log, cfg.features, cfg.seed)
    return cfg, ledger, log, inv, t


def test_chunked_history_equals_one_shot(ledger_rows, monkeypatch):
    cfg, ledger, log, inv, t = ledger_rows
    state = step_item_state(log, inv, t)
    tables = history.build_customer_tables(log, cfg.features, ledger.master)
    codes = log.inv_cust[inv]
    aggs = history.aggregates_for_codes(tables, codes, t)
    whole = frame_of(history.history_features(aggs, state, t.view("datetime64[us]"),
                                              cfg.features))

    # 97 rows a chunk: chunk borders fall inside customers and inside a snapshot instant.
    monkeypatch.setattr(history, "HISTORY_CHUNK_ROWS", 97)
    assert len(inv) > 20 * 97
    chunked, customer_open = history.history_for_codes(tables, codes, t, state, cfg.features)
    chunked = frame_of(chunked)

    assert_same(chunked, whole)
    np.testing.assert_array_equal(customer_open, aggs["cust_open_cents"] / 100.0)
    # Not a vacuous match: the customers have paid histories and open exposure.
    assert (chunked["hist_n_cleared"] > 0).mean() > 0.5
    assert chunked["hist_ewm_days_late_season_adj"].notna().sum() > len(chunked) // 2
    # The customer's open amount includes the row's own open invoice.
    assert (customer_open >= state["open_amount"] - 1e-9).all()
    assert (customer_open > state["open_amount"]).mean() > 0.5


def test_training_set_does_not_depend_on_the_chunk_size(ledger_rows, monkeypatch):
    cfg, ledger, _, _, _ = ledger_rows
    one = build_training_set(ledger.events, ledger.master, cfg.features, seed=cfg.seed)
    monkeypatch.setattr(history, "HISTORY_CHUNK_ROWS", 251)
    many = build_training_set(ledger.events, ledger.master, cfg.features, seed=cfg.seed)
    assert_same(many, one)
    assert one["hist_n_cleared"].max() > 10


def test_ewm_of_a_row_does_not_depend_on_the_rows_scored_with_it():
    # Serving computes a request's rows, the batch build a whole chunk: the same row must come
    # out bit-identical either way (a BLAS product rounded about half of them differently).
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 30.0, (3000, 8))
    values[rng.random(values.shape) < 0.3] = np.nan
    together = history._ewm(values)
    alone = np.concatenate([history._ewm(values[i:i + 1]) for i in range(len(values))])
    in_blocks = np.concatenate([history._ewm(values[i:i + 37]) for i in range(0, 3000, 37)])
    np.testing.assert_array_equal(alone, together)
    np.testing.assert_array_equal(in_blocks, together)
    assert np.isnan(together).sum() == np.isnan(values).all(axis=1).sum() < 10
