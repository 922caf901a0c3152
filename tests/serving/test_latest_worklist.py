"""The latest batch-scored worklist: what batch scoring writes is what /latest_worklist answers.

A real batch (training.batch_score.score_ledger of the session's world at two dates) in a
temporary scores folder; the handler reads the newest, answers a collector's items in the
/rerank request's shape - the item states replayed at the batch's date, in the batch's worklist
order - and those items re-rank as an upload does.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from serving.handlers import Refused, handle_rerank, latest_worklist, scores_folder


@pytest.fixture(scope="module")
def batch(world, tmp_path_factory):
    """Two batch scorings of the world: a week before its extract and at it (the newest)."""
    from training.batch_score import score_ledger

    folder = tmp_path_factory.mktemp("scores")
    older = score_ledger(world.events, world.master, world.bundle,
                         world.last_refresh - pd.Timedelta(days=7), folder, ledger="demo",
                         log=False)
    newest = score_ledger(world.events, world.master, world.bundle, world.last_refresh, folder,
                          ledger="demo", log=False)
    return folder, older, newest


def _busiest(result) -> str:
    """The collector with the longest worklist in a batch."""
    return max(result.worklists, key=lambda c: len(pd.read_csv(result.worklists[c])))


def test_the_newest_batch_lists_its_date_ledger_and_collectors(world, batch, api):
    folder, older, newest = batch
    answer = latest_worklist(world.model, None, folder)
    api.LatestWorklistResponse.model_validate(answer)
    assert answer["as_of"] == newest.as_of.isoformat() != older.as_of.isoformat()
    assert answer["ledger"] == "demo" == world.model.bundle.ledger["name"]
    assert answer["collectors"] == sorted(newest.worklists) and len(answer["collectors"]) > 1
    assert answer["collector"] is None and answer["n_items"] == 0 and answer["items"] == []


def test_a_collectors_items_are_the_batch_states_in_its_order_and_rerank_as_sent(
        world, batch, api):
    from features.pit.item_state import item_state_at
    from serving.api_models import items_payload

    folder, _, newest = batch
    collector = _busiest(newest)
    answer = latest_worklist(world.model, collector, folder)
    api.LatestWorklistResponse.model_validate(answer)
    worklist = pd.read_csv(newest.worklists[collector], dtype={"invoice_id": str})
    ids = [it["invoice_id"] for it in answer["items"]]
    # the collector's worklist of the batch, riskiest money first
    assert ids == worklist["invoice_id"].tolist() and answer["n_items"] == len(ids) > 5
    # each item is its state replayed from the events known at the batch's date
    state = item_state_at(world.events, pd.DataFrame({"invoice_id": ids,
                                                      "snapshot_time": newest.as_of}))
    assert answer["items"] == items_payload(state)
    # the answer is a /rerank request as it stands, and ranks like the batch scored it
    body = {"as_of": answer["as_of"], "items": answer["items"], "ledger": answer["ledger"]}
    request = api.RerankRequest.model_validate_json(json.dumps(body))
    ranked = handle_rerank(world.model, request.as_of, request.items, ledger=request.ledger)
    assert sorted(it["invoice_id"] for it in ranked["items"]) == sorted(ids)
    scored = newest.predictions.set_index(newest.predictions["invoice_id"].astype(str))
    got = {it["invoice_id"]: it["p_very_late"] for it in ranked["items"]}
    assert pd.Series(got)[ids].to_numpy() == pytest.approx(
        scored.loc[ids, "p_very_late"].to_numpy(), abs=1e-9)


def test_a_long_worklist_is_cut_at_max_items_and_says_how_long_it_is(world, batch):
    folder, _, newest = batch
    collector = _busiest(newest)
    serving = world.config.serving.model_copy(update={"max_items": 3})
    small = dataclasses.replace(world.model,
                                config=world.config.model_copy(update={"serving": serving}))
    answer = latest_worklist(small, collector, folder)
    full = latest_worklist(world.model, collector, folder)
    assert answer["n_items"] == full["n_items"] > 3
    assert answer["items"] == full["items"][:3]


def test_no_batch_is_a_404_saying_what_writes_one(world, tmp_path):
    with pytest.raises(Refused) as none:
        latest_worklist(world.model, "COLL01", tmp_path)
    assert none.value.status == 404 and "paydelay score" in none.value.error
    assert none.value.body() == {"error": none.value.error, "detail": []}


def test_a_collector_the_batch_does_not_list_has_an_empty_worklist(world, batch, api):
    folder, _, newest = batch
    answer = latest_worklist(world.model, "nobody", folder)
    api.LatestWorklistResponse.model_validate(answer)
    assert answer["items"] == [] and answer["n_items"] == 0
    assert answer["collectors"] == sorted(newest.worklists)  # a misspelt name shows here


def test_the_default_folder_is_where_batch_scoring_writes(world, tmp_path):
    from training.batch_score import scores_dir

    assert scores_folder(world.model, None) == scores_dir(world.model.bundle.ledger["name"])
    assert scores_folder(world.model, str(tmp_path)) == tmp_path
