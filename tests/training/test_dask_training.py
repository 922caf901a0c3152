"""Training and batch scoring on Dask (training.distributed) on a real two-process LocalCluster:
LightGBM's Dask learner fits the bundle from part files, the at-posting ROC-AUC on the same
holdout is within 0.005 of the in-process model's, the run is logged and registered in MLflow
like any run, the row budget samples later snapshots by invoice with their weights, and batch
scoring across partitions gives the in-process scores of every open item."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.config import PaydelayConfig
from features.config.engine import EngineConfig
from features.config.training import LgbParams
from features.engine.build import build_features, read_rows_dir
from features.engine.cluster import dask_client, worker_memory
from features.ingest.ledger_files import write_ledger_dir
from features.simulate.ledger import simulate_ledger
from training import registry, sampling
from training.batch_score import score_frame
from training.core.scoring import score
from training.dask_parts import part_plan, sample_part
from training.distributed import (part_files, score_ledger_dir_dask, table_cutoffs, table_plan,
                                  train_dask)
from training.pipeline import train
from training.splits import resolve_cutoffs


def _config() -> PaydelayConfig:
    base = PaydelayConfig(seed=42)
    training = base.training.model_copy(update={
        "bucket": LgbParams(n_estimators=20, num_leaves=7),
        "payment": LgbParams(n_estimators=40, learning_rate=0.1, num_leaves=15),
        "payment_tails": LgbParams(n_estimators=20, learning_rate=0.1, num_leaves=7),
        "calibration_folds": 1, "min_cleared_invoices": 50, "min_late_invoices": 10})
    return base.model_copy(update={"training": training})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulated ledger (single files), its rows built on the cluster, the in-process rows."""
    tmp = tmp_path_factory.mktemp("dask_world")
    config = _config()
    ledger = simulate_ledger(config.simulator.model_copy(update={
        "n_customers": 150, "n_invoices": 6000, "months": 30, "oracle_mc_draws": 4}), seed=42)
    write_ledger_dir(tmp / "ledger", ledger.events, ledger.master, ledger.truth)
    return config, ledger, tmp


@pytest.fixture(scope="module")
def cluster(world):
    """Two worker processes, one thread each: what `--engine dask` starts, link said first."""
    said: list[str] = []
    engine = EngineConfig(kind="dask", n_workers=2, memory_limit_per_worker="2GiB",
                          dashboard_address=":0", customers_per_partition=40)
    with dask_client(engine, say=said.append) as client:
        config, _, tmp = world
        built = build_features(client, tmp / "ledger", tmp / "rows", config.features, 42,
                               engine.customers_per_partition)
        yield client, said, built


def test_the_cluster_says_its_dashboard_and_holds_its_workers(cluster):
    client, said, built = cluster
    assert len(said) == 1 and "LocalCluster of 2 workers, 2 threads" in said[0]
    assert "dashboard http://" in said[0] and said[0].endswith("/status")
    memory = worker_memory(client)
    assert len(memory) == 2
    assert all(0 < m["rss"] <= m["peak"] < 2 * 2**30 for m in memory.values())
    assert built.n_partitions == 4 and len(part_files(built.training)) == 4


def test_dask_model_matches_the_in_process_model_and_is_registered(cluster, world, tmp_path):
    client, _, built = cluster
    config, ledger, _ = world
    rows = read_rows_dir(built.training).sort_values(["snapshot_time", "invoice_id"],
                                                     kind="stable").reset_index(drop=True)
    local = train(rows, config, 42, truth=ledger.truth, register=False, with_report=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lines: list[str] = []
    dist = train_dask(client, built.training, config, 42, truth=ledger.truth,
                      tracking_uri=uri, ledger={"name": "dask-world"}, progress=lines.append)
    # the same windows and the same holdout rows, in the same order
    assert dist.cutoffs == resolve_cutoffs(rows, config)
    assert dist.metrics["risk_posting"]["n"] == local.metrics["risk_posting"]["n"] > 800
    assert list(dist.test["invoice_id"]) == list(local.test_rows["invoice_id"])
    ours, theirs = (dist.metrics["risk_posting"]["roc_auc"],
                    local.metrics["risk_posting"]["roc_auc"])
    assert ours > 0.85 and abs(ours - theirs) < 0.005
    assert abs(dist.metrics["risk"]["roc_auc"] - local.metrics["risk"]["roc_auc"]) < 0.005
    assert abs(dist.metrics["payment"]["mae_days"] - local.metrics["payment"]["mae_days"]) < 1.5
    b = dist.bundle
    assert b.very_late is not None and b.bucket is not None and set(b.quantiles) == {
        "p10", "p50", "p90"}
    assert b.risk.num_trees() == b.risk_rounds and b.training_window["engine"] == "dask"
    assert any(line.startswith("final risk model") for line in lines)
    # logged and registered like any run: params, metrics, bundle, version, alias
    assert dist.registered_model == "paydelay-dask-world" and dist.alias == "champion"
    run = mlflow.MlflowClient(uri).get_run(dist.run_id)
    assert run.data.params["engine"] == "dask"
    assert run.data.metrics["risk_posting.roc_auc"] == pytest.approx(ours)
    loaded = registry.load_bundle("champion", "paydelay", uri, ledger="dask-world")
    assert loaded.source["version"] == dist.model_version == 1
    sample = rows.head(300)
    pd.testing.assert_frame_equal(score(loaded, sample), score(b, sample))
    # batch scoring across partitions: the in-process scores of every open item
    as_of = pd.Timestamp("2025-03-03")
    scored = score_ledger_dir_dask(client, world[2] / "ledger", as_of=as_of,
                                   out_dir=tmp_path / "scores", ledger="dask-world",
                                   config=config, tracking_uri=uri, log=False)
    expected = score_frame(ledger.events, ledger.master, loaded, as_of)
    got = pd.read_parquet(scored.path).sort_values("invoice_id").reset_index(drop=True)
    assert len(got) == len(expected) == len(scored.items) > 200
    for col in ("p_late", "p_very_late", "days_to_clear_p50", "expected_amount_at_risk"):
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy())
    assert scored.reconciliation.balanced and sum(
        len(pd.read_csv(p)) for p in scored.worklists.values()) == len(got)


def test_the_row_budget_samples_later_snapshots_by_invoice(cluster, world):
    """Over the budget: every posting row kept, later snapshots of a seeded share of invoices
    (all of an invoice's or none), weight 1/p; the same rows whichever part they are read in."""
    client, _, built = cluster
    config, _, _ = world
    parts = part_files(built.training)
    small = config.model_copy(update={"training": config.training.model_copy(update={
        "sampling": config.training.sampling.model_copy(update={"max_rows": 12_000})})})
    cut = table_cutoffs(client, parts, small)
    counts = [part_plan(p, cut.calibration_end, small, 42) for p in parts]
    plan = table_plan(counts, cut.calibration_end, small, 42)
    rows = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    whole = sampling.plan(rows[["invoice_id", "snapshot_kind", "snapshot_time"]],
                          cut.calibration_end, small, 42)
    assert plan.active and plan.p == pytest.approx(whole.p)
    kept = pd.concat([sample_part(p, plan, small) for p in parts], ignore_index=True)
    assert len(kept) == whole.rows_out - (len(rows) - plan.fit_rows)
    fit = rows[rows["snapshot_time"] <= cut.calibration_end]
    assert (kept["snapshot_kind"] == "posting").sum() == (fit["snapshot_kind"] == "posting").sum()
    later = kept[kept["snapshot_kind"] != "posting"]
    assert np.allclose(later[sampling.WEIGHT], 1 / plan.p)
    per_invoice = fit[fit["snapshot_kind"] != "posting"].groupby("invoice_id").size()
    kept_per_invoice = later.groupby("invoice_id").size()
    assert (kept_per_invoice == per_invoice[kept_per_invoice.index]).all()
