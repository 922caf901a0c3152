"""Engine settings: where the stages run - in this process (the default) or on a Dask cluster.

One pipeline, two engines. `simulate`, `features`, `train` and `score` run the same
point-in-time and scoring code either way; with `kind = "dask"` the ledger is cut into
partitions of whole customers (every feature is a function of one customer's events up to t)
and each partition is simulated, built and scored by a Dask worker (features.engine,
training.distributed).

- `scheduler_address` names an existing cluster ("tcp://10.0.0.5:8786"); None starts a
  LocalCluster of `n_workers` processes on this machine. Either way every worker must see the
  data folders (a shared file system or the same machine): partitioned Parquet is read and
  written by the workers themselves, never shipped through the scheduler.
- `memory_limit_per_worker` is Dask's own limit (it spills, then pauses, then restarts a worker
  above it). A partition's feature build peaks at about 6.3 GiB per million invoices
  (benchmarks/bench_features.py), so `customers_per_partition` x invoices per customer must
  stay well under the limit: the default (5,000 customers, about 200,000 invoices at the
  simulator's 40 per customer) peaks near 1.3 GiB.
- Partitions: a customer's partition is a stable hash of its id modulo the number of partitions
  (ceil(customers / customers_per_partition)); a simulated ledger is drawn partition by
  partition, each from its own seed derived from the config's seed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from features.config.base import Section


class EngineConfig(Section):
    kind: Literal["local", "dask"] = "local"
    scheduler_address: str | None = None  # an existing cluster; None: a LocalCluster here
    n_workers: int = Field(2, ge=1)  # LocalCluster worker processes
    threads_per_worker: int = Field(1, ge=1)  # LocalCluster threads per worker
    memory_limit_per_worker: str = "5GiB"  # LocalCluster: Dask spills / pauses above it
    customers_per_partition: int = Field(5_000, ge=1)
    dashboard_address: str = ":8787"  # LocalCluster dashboard (":0" picks a free port)
    local_directory: str | None = None  # LocalCluster spill folder (default: Dask's temp dir)
