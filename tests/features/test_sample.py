"""The committed sample ledger: readable in both spellings, identical content, nothing quarantined,
and still what the simulator produces (so the README's numbers do not drift from the code)."""

import pandas as pd
import pytest

from features import paths
from features.config import PaydelayConfig
from features.ingest.io import read_event_log
from features.schema import Activity
from features.simulate.ledger import simulate_ledger
from features.ingest.validate import validate_event_log


@pytest.fixture(scope="module")
def sample_events():
    return {name: validate_event_log(read_event_log(paths.SAMPLE / name))
            for name in ("events.csv", "events_seed_names.csv")}


def test_both_spellings_read_to_the_same_clean_log(sample_events):
    ours, seeds = sample_events["events.csv"], sample_events["events_seed_names.csv"]
    assert len(ours.quarantine) == 0 and len(seeds.quarantine) == 0
    pd.testing.assert_frame_equal(ours.events, seeds.events)
    assert set(ours.events["activity"]) == {a.value for a in Activity}


def test_sample_is_what_the_simulator_makes(sample_events):
    cfg = PaydelayConfig()
    sim = cfg.simulator.model_copy(update={"n_invoices": 2_000, "n_customers": 80, "months": 24})
    fresh = simulate_ledger(sim, seed=cfg.seed).events
    committed = sample_events["events.csv"].events
    assert len(committed) == len(fresh)
    assert committed["invoice_id"].tolist() == fresh["invoice_id"].tolist()
    assert committed["activity"].tolist() == fresh["activity"].astype(str).tolist()
    assert (committed["amount"].fillna(-1).round(2) == fresh["amount"].fillna(-1).round(2)).all()
