"""The simulated receivables world drawn partition by partition on Dask workers.

The simulator's customers are independent of each other (each has its own latent habits, master
history and invoices), so a world of C customers and N invoices is drawn as P smaller worlds of
about C/P customers and N/P invoices, each by `features.simulate.ledger.simulate_ledger` on a
worker, from its own seed (`partition_seed`: seed and partition number through numpy's
SeedSequence). The result is reproducible for a (config, seed, P) and never materialised
whole: each worker writes its part files (features.engine.partitions layout) and returns its
ledger summary.

What differs from one in-process world of the same size and seed: the draws (another world of
the same law, not the same invoices), and the ids, renumbered so that they stay unique across
partitions (customers, invoices, clearing documents and dispute cases of partition k continue
where partition k-1's ended; a partition has at most one clearing document and one dispute case
per invoice, so the invoice offsets serve all three).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from distributed import Client

from features.config.simulator import SimulatorConfig
from features.engine.cluster import gathered
from features.engine.partitions import clear_tables, write_part, write_partitioning
from features.ingest import ledger_summary
from features.ingest.ledger_files import EVENTS, MASTER, TRUTH
from features.simulate.ledger import simulate_ledger

SCHEME = "simulated: contiguous blocks of customers, one world per partition"
_ID_WIDTH = 10  # the simulator's ids are 10-digit numbers (KUNNR, BELNR-like)


def partition_seed(seed: int, k: int) -> int:
    """Partition k's simulator seed, derived from the config's seed."""
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])


def shares(total: int, n_partitions: int) -> np.ndarray:
    """`total` split into n_partitions near-equal integer shares (the first ones get the rest)."""
    base, rest = divmod(int(total), int(n_partitions))
    return base + (np.arange(n_partitions) < rest).astype(np.int64)


def renumber(ids: pd.Series, offset: int) -> pd.Series:
    """Numeric ids shifted by `offset`, zero-padded as the simulator writes them (missing ones
    stay missing); each distinct id is converted once."""
    codes, uniques = pd.factorize(ids)
    shifted = np.char.zfill((np.asarray(uniques, dtype=object).astype(np.int64)
                             + int(offset)).astype(str), _ID_WIDTH)
    table = pa.array(shifted, type=pa.string())
    taken = table.take(pa.array(np.maximum(codes, 0), mask=codes < 0))
    return pd.Series(taken, dtype="str", index=ids.index)


def simulate_partition(config: SimulatorConfig, seed: int, k: int, n_partitions: int,
                       out: str) -> dict:
    """Draw partition k's world, renumber its ids, write its part files; its ledger summary."""
    customers = shares(config.n_customers, n_partitions)
    invoices = shares(config.n_invoices, n_partitions)
    cust_offset, inv_offset = int(customers[:k].sum()), int(invoices[:k].sum())
    part = config.model_copy(update={"n_customers": int(customers[k]),
                                     "n_invoices": int(invoices[k])})
    ledger = simulate_ledger(part, partition_seed(seed, k))
    events = ledger.events.assign(
        invoice_id=renumber(ledger.events["invoice_id"], inv_offset),
        customer_id=renumber(ledger.events["customer_id"], cust_offset),
        clearing_document=renumber(ledger.events["clearing_document"], inv_offset),
        dispute_case_id=renumber(ledger.events["dispute_case_id"], inv_offset))
    master = ledger.master.assign(customer_id=renumber(ledger.master["customer_id"], cust_offset))
    truth = ledger.truth.assign(invoice_id=renumber(ledger.truth["invoice_id"], inv_offset),
                                customer_id=renumber(ledger.truth["customer_id"], cust_offset))
    del ledger
    write_part(out, EVENTS, k, events)
    write_part(out, MASTER, k, master)
    write_part(out, TRUTH, k, truth)
    return ledger_summary.summarise(events)


def combine_summaries(parts: list[dict]) -> dict:
    """One ledger summary (features.ingest.ledger_summary.summarise) of disjoint partitions:
    counts and amounts added, the late share weighted by closed invoices; the DSO, which needs
    every partition's sales, is left out."""
    closed = sum(p["closed_invoices"] for p in parts)
    out = {
        "partitions": len(parts),
        "invoices": sum(p["invoices"] for p in parts),
        "customers": sum(p["customers"] for p in parts),
        "events": sum(p["events"] for p in parts),
        "first_posting": min((p["first_posting"] for p in parts if p["first_posting"]),
                             default=""),
        "as_of": max(p["as_of"] for p in parts),
        "closed_invoices": closed,
        "open_invoices": sum(p["open_invoices"] for p in parts),
        "share_paid_late": (sum(p["share_paid_late"] * p["closed_invoices"] for p in parts)
                            / closed if closed else 0.0),
        "written_off": sum(p["written_off"] for p in parts),
        "open_receivables": float(sum(p["open_receivables"] for p in parts)),
    }
    activities = parts[0]["events_per_activity"] if parts else {}
    out["events_per_activity"] = {a: sum(p["events_per_activity"][a] for p in parts)
                                  for a in activities}
    return out


def simulate_partitioned(client: Client, config: SimulatorConfig, seed: int, out: str | Path,
                         n_partitions: int, say: Callable[[str], None] | None = None) -> dict:
    """A simulated ledger folder of n_partitions partitions at `out` (module docstring), drawn
    on the client's workers (`say` hears a line as each is written); the combined ledger
    summary."""
    out = Path(out).resolve()
    n_partitions = max(1, min(int(n_partitions), config.n_customers, config.n_invoices))
    clear_tables(out, (EVENTS, MASTER, TRUTH, "customers.parquet"))
    futures = [client.submit(simulate_partition, config, seed, k, n_partitions, str(out),
                             pure=False) for k in range(n_partitions)]
    summary = combine_summaries(gathered(futures, "simulate", say))
    write_partitioning(out, n_partitions, scheme=SCHEME)
    return summary


__all__ = ["simulate_partitioned", "simulate_partition", "partition_seed", "shares",
           "renumber", "combine_summaries", "SCHEME"]
