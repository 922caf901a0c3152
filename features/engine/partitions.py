"""A ledger cut into partitions of whole customers, as a folder of Parquet part files.

Every feature is a function of one customer's events up to t (features.pit), so a ledger split
by customer is built partition by partition with the in-process code and gives the same rows.

Layout: a partitioned ledger folder is an ordinary ledger folder (features.ingest.ledger_files)
whose tables are folders of part files, one per partition, plus PARTITIONS_FILE saying how it
was cut:

    ledger/events.parquet/part-00000.parquet, part-00001.parquet, ...
    ledger/master.parquet/part-00000.parquet, ...
    ledger/truth.parquet/part-00000.parquet, ...        (simulated ledgers)
    ledger/partitions.json                              {"by": "customer_id", "n_partitions": P}

Any Parquet reader (pandas, pyarrow, Dask) reads such a folder as one table, so the in-process
stages read it too (at in-process memory cost). Part k holds the customers of partition k and
every row of theirs, in the order of the ledger they came from: the replay's tie-break on
input position (features.pit.item_state) sees the same order.

A customer's partition is `partition_of`: a stable hash of its id (pandas' hash_array with its
fixed key, not Python's per-process salted hash) modulo P, the same on every worker and run.
`split_ledger` cuts a single-file ledger (what `ingest` writes) into such a folder through files
the workers share: each task reads a slice of row groups and writes one file per partition it
meets; then each partition's files are read back in slice order, which keeps the ledger order.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from distributed import Client

from features.ingest.ledger_files import EVENTS, MASTER, TRUTH

PARTITIONS_FILE = "partitions.json"
TABLES = (EVENTS, MASTER, TRUTH)
_SPLIT_DIR = "_split"
ROW_GROUPS_PER_TASK = 4


def part_name(k: int) -> str:
    return f"part-{k:05d}.parquet"


def part_path(folder: str | Path, table: str, k: int) -> Path:
    """Part k of one table of a partitioned folder (table: "events.parquet", ...)."""
    return Path(folder) / table / part_name(k)


def n_partitions_for(n_customers: int, customers_per_partition: int) -> int:
    return max(1, math.ceil(int(n_customers) / int(customers_per_partition)))


def partition_of(customer_ids: pd.Series | np.ndarray, n_partitions: int) -> np.ndarray:
    """The partition (0..P-1) of each customer id: stable hash modulo P (module docstring).
    Each distinct id is hashed once."""
    codes, uniques = pd.factorize(pd.Series(customer_ids).astype("str"))
    hashed = pd.util.hash_array(np.asarray(uniques, dtype=object))
    part = (hashed % np.uint64(n_partitions)).astype(np.int64)
    return np.where(codes >= 0, part[np.maximum(codes, 0)], 0)


HASH_SCHEME = "pandas.util.hash_array(customer_id) % n_partitions"


def write_partitioning(folder: str | Path, n_partitions: int, scheme: str = HASH_SCHEME
                       ) -> Path:
    """PARTITIONS_FILE: every customer's rows are in one part, cut by `scheme`."""
    path = Path(folder) / PARTITIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"by": "customer_id", "n_partitions": int(n_partitions),
                                "scheme": scheme}, indent=1))
    return path


def clear_tables(folder: str | Path, tables: tuple[str, ...] = TABLES) -> None:
    """Remove the tables (files or part folders) and PARTITIONS_FILE a folder holds, so that no
    part of an earlier, differently cut run is read with the new ones."""
    folder = Path(folder)
    for name in (*tables, PARTITIONS_FILE):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def read_partitioning(folder: str | Path) -> int | None:
    """The number of partitions of a partitioned ledger folder, None for a single-file one."""
    path = Path(folder) / PARTITIONS_FILE
    if not path.is_file() or not (Path(folder) / EVENTS).is_dir():  # a stale note is ignored
        return None
    return int(json.loads(path.read_text())["n_partitions"])


def write_part(folder: str | Path, table: str, k: int, frame: pd.DataFrame) -> Path:
    path = part_path(folder, table, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def read_part(folder: str | Path, table: str, k: int) -> pd.DataFrame | None:
    """Part k of a table, None when the partition has no rows of it (or the table is absent)."""
    path = part_path(folder, table, k)
    return pd.read_parquet(path) if path.is_file() else None


# --- cutting a single-file ledger ---------------------------------------------------------------
def _split_slice(source: str, table: str, groups: list[int], slice_no: int, scratch: str,
                 n_partitions: int) -> list[int]:
    """Rows of some row groups of one table, written as one file per partition met."""
    frame = pq.ParquetFile(source).read_row_groups(groups).to_pandas()
    part = partition_of(frame["customer_id"], n_partitions)
    met = []
    for k in np.unique(part):  # a loop over partitions, not rows
        rows = frame.iloc[np.flatnonzero(part == k)]
        path = Path(scratch) / table / part_name(int(k)) / f"slice-{slice_no:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(path, index=False)
        met.append(int(k))
    return met


def _gather_part(scratch: str, out: str, table: str, k: int) -> int:
    """Partition k's slices of one table, in slice (= ledger) order, as its part file."""
    folder = Path(scratch) / table / part_name(k)
    slices = sorted(folder.glob("slice-*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in slices], ignore_index=True)
    write_part(out, table, k, frame)
    return len(frame)


def split_ledger(client: Client, ledger: str | Path, out: str | Path, n_partitions: int
                 ) -> Path:
    """A single-file ledger folder cut by customer into a partitioned one at `out` (module
    docstring); the workers read and write the files themselves."""
    ledger, out = Path(ledger).resolve(), Path(out).resolve()
    scratch = out / _SPLIT_DIR
    shutil.rmtree(scratch, ignore_errors=True)
    clear_tables(out)
    tasks, sources = [], []
    for table in TABLES:
        source = ledger / table
        if not source.is_file():
            continue
        n_groups = pq.ParquetFile(source).num_row_groups
        for s, start in enumerate(range(0, max(n_groups, 1), ROW_GROUPS_PER_TASK)):
            groups = list(range(start, min(start + ROW_GROUPS_PER_TASK, n_groups)))
            tasks.append(client.submit(_split_slice, str(source), table, groups, s, str(scratch),
                                       n_partitions, pure=False))
            sources.append((table, s))
    met = client.gather(tasks)  # the partitions each slice met
    done = sorted({(table, k) for (table, _), ks in zip(sources, met, strict=True) for k in ks})
    client.gather([client.submit(_gather_part, str(scratch), str(out), table, k, pure=False)
                   for table, k in done])
    shutil.rmtree(scratch, ignore_errors=True)
    write_partitioning(out, n_partitions)
    return out


__all__ = ["PARTITIONS_FILE", "TABLES", "part_name", "part_path", "n_partitions_for",
           "partition_of", "write_partitioning", "clear_tables", "HASH_SCHEME", "read_partitioning", "write_part", "read_part",
           "split_ledger"]
