"""Training / serving parity: the service's feature path equals the batch pipeline at the same t.

For several times t, the events known at t are replayed (everything later is cut off), the item
state of every invoice open at t becomes a JSON request exactly as a worklist engine would send
it, and the store is materialised from the same truncated log. The service's path (request
validation -> item-state columns -> serving.predict.feature_columns, as the handlers run it) must
give, for every feature of every item, the value features.pit.build.build_scoring_set computes
from the full log at t.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.pit.build import build_scoring_set
from features.pit.columns import frame_of
from features.pit.item_state import ITEM_STATE_COLUMNS, item_state_at
from features.pit.snapshots import scoring_snapshots
from serving.model import from_bundle
from serving.predict import feature_columns, model_matrix, score_matrix
from serving.store import build_store
from serving.validation import check_items, items_columns
from training.core.scoring import score


def _known_by(events: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    known = events["event_time"]
    if "recorded_time" in events.columns:
        known = known.where(events["recorded_time"].isna(),
                            np.maximum(known, events["recorded_time"]))
    return events[known <= t].reset_index(drop=True)


def _service_features(world, api, make_payload, t: pd.Timestamp) -> pd.DataFrame:
    events_t = _known_by(world.events, t)
    master_t = world.master[world.master["valid_from"] <= t]
    state_t = item_state_at(events_t, scoring_snapshots(events_t, now=t))
    store_t = build_store(events_t, master_t, t, world.model.feature_config)
    model_t = from_bundle(world.bundle, store_t, world.config, explainer=False)
    body = json.dumps(make_payload(state_t, t))  # what goes over the wire
    req = api.ScoreRequest.model_validate_json(body)
    state = items_columns(req.items, ITEM_STATE_COLUMNS)
    checked = check_items(state, req.as_of, world.bundle.categories)
    assert checked.problems == []
    return frame_of(feature_columns(model_t, checked.state, req.as_of))


@pytest.mark.parametrize("offset", [pd.Timedelta(0), pd.Timedelta(days=97, hours=7, minutes=13),
                                    pd.Timedelta(days=201, hours=16)])
def test_every_feature_matches_the_batch_pipeline(world, api, make_payload, offset):
    t = world.last_refresh - offset
    served = _service_features(world, api, make_payload, t)
    batch = build_scoring_set(world.events, world.master, world.model.feature_config, now=t)
    assert len(served) == len(batch) > 20
    served = served.set_index("invoice_id").loc[batch["invoice_id"]]
    batch = batch.set_index("invoice_id")
    names = world.model.feature_names
    assert set(names) <= set(served.columns)
    mismatched = {}
    for name in names:
        a, b = served[name], batch[name]
        if isinstance(b.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(b.dtype):
            same = a.astype("str").fillna("<NA>").to_numpy() == b.astype("str").fillna(
                "<NA>").to_numpy()
        else:
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same = (x == y) | (np.isnan(x) & np.isnan(y))
        if not same.all():
            mismatched[name] = int((~same).sum())
    assert mismatched == {}
    # the non-trivial parts of the state are exercised, not only defaults
    assert batch["hist_n_cleared"].gt(0).any() and batch["days_overdue"].gt(0).any()
    assert batch["dunning_level"].gt(0).any() and batch["n_contacts"].gt(0).any()
    assert (batch["dispute_open"] | batch["promise_open"] | batch["payment_block_active"]).any()
    for key in ("customer_id", "posting_time", "net_due_date", "open_amount"):
        assert (served[key].to_numpy() == batch[key].to_numpy()).all(), key


def test_served_scores_equal_batch_scores(world, api, make_payload):
    t = world.last_refresh - pd.Timedelta(days=30, hours=3)
    served = _service_features(world, api, make_payload, t).reset_index(drop=True)
    batch = build_scoring_set(world.events, world.master, world.model.feature_config, now=t)
    served = served.set_index("invoice_id").loc[batch["invoice_id"]].reset_index()
    ours = score_matrix(world.model, served, model_matrix(world.model, served))
    theirs = score(world.bundle, batch)
    np.testing.assert_allclose(ours["p_late"], theirs["p_late"], rtol=1e-12)
    np.testing.assert_allclose(ours["days_to_clear_p50"], theirs["days_to_clear_p50"], rtol=1e-12)
