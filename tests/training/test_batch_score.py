"""Batch scoring by date: the dated table with its provenance, one worklist per collector, the
MLflow run, backfills, and point-in-time scoring (a date sees only what was known then)."""

from __future__ import annotations

import pandas as pd
import pytest

from training.batch_score import (read_predictions, score_frame, score_ledger, score_range,
                                  scoring_dates)

pytestmark = pytest.mark.slow  # the session's model takes ~30 s to train on two shared cores
AS_OF = pd.Timestamp("2024-04-01")


def test_a_dated_table_with_provenance_worklists_and_an_mlflow_run(loop_model, tmp_path):
    import mlflow

    config, led, bundle = loop_model
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = score_ledger(led.events, led.master, bundle, AS_OF, tmp_path / "scores",
                          ledger="sim", tracking_uri=uri)
    table = read_predictions(tmp_path / "scores" / "predictions_2024-04-01.parquet")
    meta = table.attrs["scoring"]
    assert len(table) == result.meta["n_items"] > 0
    assert meta["feature_set_version"] == bundle.feature_set_version
    assert meta["ledger"]["hash"] == table["ledger_hash"].iloc[0]
    assert {"model_version", "feature_set_version", "p_late", "pay_date_p50"} <= set(table)
    # every open item on one collector's list, the riskiest money first
    assert sum(len(pd.read_csv(p)) for p in result.worklists.values()) == len(table)
    one = pd.read_csv(next(iter(result.worklists.values())))
    assert one["expected_amount_at_risk"].is_monotonic_decreasing
    assert one["rank"].tolist() == list(range(1, len(one) + 1))
    run = mlflow.MlflowClient(uri).get_run(result.run_id)
    assert run.data.params["as_of"].startswith("2024-04-01")
    assert run.data.metrics["items"] == len(table)
    assert run.data.tags["ledger_hash"] == meta["ledger"]["hash"]
    # every ledger invoice accounted for: scored, posted later, or settled by the date
    rec = result.reconciliation
    assert rec.balanced
    posted = led.events.loc[led.events["activity"] == "invoice_posted", "invoice_id"].nunique()
    assert rec.count("score", rec.lines[0].what, "in") == posted
    assert rec.count("score", rec.lines[0].what, "out") == len(table)
    assert (tmp_path / "scores" / "reconciliation_2024-04-01.csv").is_file()


def test_a_backfill_writes_one_table_per_date(loop_model, tmp_path):
    _, led, bundle = loop_model
    results = score_range(led.events, led.master, bundle, "2024-03-01", "2024-03-15",
                          tmp_path, every_days=7, log=False)
    assert scoring_dates(tmp_path) == [pd.Timestamp(d) for d in
                                       ("2024-03-01", "2024-03-08", "2024-03-15")]
    for r in results:
        assert (pd.to_datetime(r.predictions["posting_time"]) <= r.as_of).all()


def test_scoring_a_past_date_sees_only_what_was_known_then(loop_model):
    # the ledger of today and the ledger cut at the date give the same scores for that date
    _, led, bundle = loop_model
    cut = led.events[led.events["event_time"] <= AS_OF]
    full = score_frame(led.events, led.master, bundle, AS_OF)
    then = score_frame(cut, led.master, bundle, AS_OF)
    pd.testing.assert_series_equal(full["p_late"].reset_index(drop=True),
                                   then["p_late"].reset_index(drop=True))


def test_the_open_items_are_written_as_the_service_re_ranks_them(loop_model, tmp_path):
    """items_<date>.parquet: every scored item's state at the date, as /rerank reads it (the
    replay of its events known then), on its collector's worklist, in that worklist's order;
    the worklists carry the ranking probability; the reconciliation counts both outputs."""
    from features.pit.item_state import ITEM_STATE_COLUMNS, item_state_at

    _, led, bundle = loop_model
    result = score_ledger(led.events, led.master, bundle, AS_OF, tmp_path, ledger="sim",
                          log=False)
    assert result.items_path == tmp_path / "items_2024-04-01.parquet"
    items = read_predictions(result.items_path)
    pred = result.predictions
    assert list(items.columns) == [*ITEM_STATE_COLUMNS, "collector"]
    assert items.attrs["scoring"]["as_of"] == AS_OF.isoformat()
    assert items.attrs["scoring"]["ledger"]["name"] == "sim"
    assert len(items) == len(pred) > 0
    assert set(items["invoice_id"]) == set(pred["invoice_id"].astype(str))
    # the values are the item state replayed at the date, invoice by invoice
    expected = item_state_at(led.events, pd.DataFrame({"invoice_id": items["invoice_id"],
                                                       "snapshot_time": AS_OF}))
    pd.testing.assert_frame_equal(items[list(ITEM_STATE_COLUMNS)], expected)
    assert (items["posting_time"] <= AS_OF).all()
    # the collector is the scored row's, and each collector's items follow its worklist
    by_invoice = pred.set_index(pred["invoice_id"].astype(str))
    assert (items["collector"].to_numpy()
            == by_invoice.loc[items["invoice_id"], "collector"].astype(str).to_numpy()).all()
    assert len(result.worklists) == items["collector"].nunique() > 1
    for collector, path in result.worklists.items():
        worklist = pd.read_csv(path, dtype={"invoice_id": str})
        mine = items.loc[items["collector"] == collector, "invoice_id"]
        assert mine.tolist() == worklist["invoice_id"].tolist()
        assert worklist["p_very_late"].to_numpy() == pytest.approx(
            by_invoice.loc[worklist["invoice_id"], "p_very_late"].to_numpy())
        assert (worklist["p_very_late"] <= worklist["p_late"] + 1e-12).all()
    rec = result.reconciliation
    assert rec.balanced
    states = "items scored -> item states as of 2024-04-01"
    assert rec.count("score", states, "in") == rec.count("score", states, "out") == len(items)
    rows = "items scored -> worklist rows as of 2024-04-01"
    assert rec.count("score", rows, "out") == len(pred)
    saved = pd.read_csv(tmp_path / "reconciliation_2024-04-01.csv")
    assert states in set(saved["what"]) and rows in set(saved["what"])
