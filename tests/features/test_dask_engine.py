"""The Dask engine builds the in-process rows: the same point-in-time code run per partition of
customers on a real LocalCluster gives the in-process training and scoring rows (values and
dtypes, after a stable sort), reconciliation, summary, customer store and ledger facts; it
passes the slow reference and the sentinel (a changed future cannot move what is known at t);
and the simulator drawn in partitions writes a ledger that every stage reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from features.config.engine import EngineConfig
from features.config.features import FeatureConfig
from features.config.simulator import SimulatorConfig
from features.engine.build import (HISTORY, LEDGER_PARTS, build_features, ledger_end, part_end,
                                   read_history_dir, read_rows_dir)
from features.engine.cluster import dask_client
from features.engine.partitions import PARTITIONS_FILE, part_path, read_partitioning
from features.engine.simulate import simulate_partitioned
from features.ingest.ledger_files import EVENTS, read_ledger_dir, write_ledger_dir
from features.pit.build import build_feature_sets, summary
from features.pit.feature_spec import FEATURE_NAMES
from features.pit.history import history_table
from features.pit.item_state import prepare_log
from features.pit.labels import labels_at
from features.simulate.ledger import simulate_ledger
from reference import Reference, adversarial_ledger
from test_pit_reference import CONFIG, compare
from test_pit_sentinel import CONFIG as SENTINEL_CONFIG
from test_pit_sentinel import _known, _open_at, mutate_after
from training.core.ledger import ledger_record

KEYS = ["snapshot_time", "invoice_id"]


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process: a real scheduler, tasks and part files."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


def _dask_sets(client, tmp_path, events, master, config, per_partition, end_time=None,
               truth=None):
    write_ledger_dir(tmp_path / "ledger", events, master, truth)
    built = build_features(client, tmp_path / "ledger", tmp_path / "rows", config, 7,
                           per_partition, end_time)
    training = read_rows_dir(built.training).sort_values(KEYS, kind="stable")
    scoring = read_rows_dir(built.scoring).sort_values(KEYS, kind="stable")
    return built, training.reset_index(drop=True), scoring.reset_index(drop=True)


@pytest.fixture(scope="module")
def simulated():
    ledger = simulate_ledger(SimulatorConfig(n_customers=60, n_invoices=2400, months=24), seed=7)
    return ledger.events, ledger.master


def test_dask_build_gives_the_in_process_rows(client, tmp_path, simulated):
    events, master = simulated
    config = FeatureConfig()
    local = build_feature_sets(events, master, config, seed=7)
    built, training, scoring = _dask_sets(client, tmp_path, events, master, config, 15)
    # 60 customers, 15 per partition: 4 partitions, every customer's rows in one of them
    assert built.n_partitions == 4 and read_partitioning(built.ledger) == 4
    assert built.ledger == (tmp_path / "rows" / LEDGER_PARTS).resolve()
    parts = [pd.read_parquet(part_path(built.ledger, EVENTS, k)) for k in range(4)]
    assert sum(len(p) for p in parts) == len(events)
    owners = pd.concat([p[["customer_id"]].drop_duplicates().assign(k=k)
                        for k, p in enumerate(parts)])
    assert not owners["customer_id"].duplicated().any() and len(owners) == 60
    assert len(training) == len(local.training) > 5_000
    pd.testing.assert_frame_equal(training, local.training, check_exact=True)
    pd.testing.assert_frame_equal(scoring, local.scoring, check_exact=True)
    assert training.attrs["feature_set_version"] == local.training["feature_set_version"][0]
    pd.testing.assert_frame_equal(built.reconciliation.frame(), local.reconciliation.frame())
    assert built.reconciliation.balanced
    assert built.summary == summary(local.training)
    assert built.scoring_rows == len(local.scoring)
    # one end of observation for every partition: the whole log's last refresh
    end = prepare_log(events).end_time
    assert ledger_end([part_end(str(built.ledger), k) for k in range(4)]) == end
    whole = history_table(events, master, None, config)
    pd.testing.assert_frame_equal(read_history_dir(built.history), whole, check_exact=True)
    record = ledger_record(events, "x")
    assert built.facts == {k: record[k] for k in ("first_event", "last_event", "n_invoices")}


def test_an_end_time_ends_every_partition_alike(client, tmp_path, simulated):
    events, master = simulated
    cutoff = pd.Timestamp("2024-03-10 12:00")
    local = build_feature_sets(events, master, CONFIG, seed=7, end_time=cutoff)
    _, training, scoring = _dask_sets(client, tmp_path, events, master, CONFIG, 20, cutoff)
    assert training["snapshot_time"].max() <= cutoff
    assert (scoring["snapshot_time"] == cutoff).all()
    pd.testing.assert_frame_equal(training, local.training, check_exact=True)
    pd.testing.assert_frame_equal(scoring, local.scoring, check_exact=True)


def test_dask_rows_equal_the_reference(client, tmp_path):
    """The slow, obviously-correct reference (tests/features/reference.py) on the Dask build of
    the adversarial ledger: late-recorded events, ties, odd disputes, every row compared."""
    events, master = adversarial_ledger(seed=11)
    built, training, scoring = _dask_sets(client, tmp_path, events, master, CONFIG, 3)
    assert built.n_partitions == 3
    ref = Reference(events, master, CONFIG)
    assert compare(training, ref, with_labels=True) > 400
    assert compare(scoring, ref, with_labels=False) > 5


@pytest.mark.parametrize("when", ["2023-11-02 13:37:11", "2024-05-20 09:00"])
def test_future_cannot_change_the_dask_build(client, tmp_path, when):
    """Sentinel on the Dask build: every event known after t mutated, deleted or joined by new
    ones, master versions after t changed; the rows built up to t (features and labels, which
    are censored at t) do not move, while the outcomes after t did change."""
    ledger = simulate_ledger(SimulatorConfig(n_customers=40, n_invoices=2500, months=20), seed=3)
    events, master, t = ledger.events, ledger.master, pd.Timestamp(when)
    mutated, m2 = mutate_after(events, master, t, seed=1)
    cols = KEYS + list(FEATURE_NAMES) + ["label_late", "label_days_to_clear", "censored"]
    _, before, _ = _dask_sets(client, tmp_path / "a", events, master, SENTINEL_CONFIG, 10, t)
    _, after, _ = _dask_sets(client, tmp_path / "b", mutated, m2, SENTINEL_CONFIG, 10, t)
    assert len(before) > 500 and (_known(mutated) > t).any()
    pd.testing.assert_frame_equal(before[cols], after[cols], check_exact=True)
    snaps = _open_at(events, t)
    assert not labels_at(events, snaps, SENTINEL_CONFIG).equals(
        labels_at(mutated, snaps, SENTINEL_CONFIG))


def test_partitioned_simulation_is_a_ledger_every_stage_reads(client, tmp_path):
    sim = SimulatorConfig(n_customers=30, n_invoices=1200, months=18)
    one = simulate_partitioned(client, sim, 42, tmp_path / "one", 3)
    again = simulate_partitioned(client, sim, 42, tmp_path / "again", 3)
    assert one == again and one["partitions"] == 3
    assert (one["invoices"], one["customers"]) == (1200, 30)
    assert (tmp_path / "one" / PARTITIONS_FILE).is_file()
    files = read_ledger_dir(tmp_path / "one")  # the in-process reader takes the part folders
    again_files = read_ledger_dir(tmp_path / "again")
    pd.testing.assert_frame_equal(files.events, again_files.events)
    assert len(files.events) == one["events"]
    assert files.truth["invoice_id"].is_unique and len(files.truth) == 1200
    assert files.master["customer_id"].nunique() == 30
    disputes = files.events["dispute_case_id"].dropna()
    per_case = files.events.loc[disputes.index].groupby("dispute_case_id")["invoice_id"]
    assert (per_case.nunique() == 1).all()  # renumbered case ids stay unique across partitions
    other = simulate_partitioned(client, sim, 43, tmp_path / "other", 3)
    assert other["events"] != one["events"]
    # features read the partitions as they are (no re-cut) and give the in-process rows
    built = build_features(client, tmp_path / "one", tmp_path / "rows", FeatureConfig(), 7,
                           customers_per_partition=1)
    assert built.n_partitions == 3 and not (tmp_path / "rows" / LEDGER_PARTS).exists()
    local = build_feature_sets(files.events, files.master, FeatureConfig(), seed=7)
    training = read_rows_dir(built.training).sort_values(KEYS, kind="stable")
    pd.testing.assert_frame_equal(training.reset_index(drop=True), local.training,
                                  check_exact=True)
    assert np.array_equal(sorted(pd.read_parquet(built.history)["customer_id"]),
                          sorted(files.master["customer_id"].unique()))
    assert (tmp_path / "rows" / HISTORY).is_dir()


def test_an_existing_cluster_is_joined_by_its_scheduler_address(client):
    """--scheduler: the stage joins the running cluster (and leaves it running)."""
    said: list[str] = []
    engine = EngineConfig(kind="dask", scheduler_address=client.scheduler.address)
    with dask_client(engine, say=said.append) as joined:
        assert joined.submit(sum, [1, 2, 3]).result() == 6
    assert said[0].startswith(f"Dask: joined {client.scheduler.address} (2 workers, 2 threads")
    assert "dashboard http" in said[0]
    assert client.submit(len, "abc").result() == 3  # still running for its owner
