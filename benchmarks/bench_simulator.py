"""Speed and memory of the receivables simulator, with a same-run sort of an event-log-sized array
as the reference (figures are meaningful as ratios on the machine that printed them).

    .venv/bin/python benchmarks/bench_simulator.py --invoices 1000000 --customers 20000
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features.config.simulator import SimulatorConfig  # noqa: E402
from features.simulate.ledger import simulate_ledger, write_ledger  # noqa: E402


def _peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024**3 if sys.platform == "darwin" else 1024**2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None,
                        help="optional folder for the ledger's Parquet files (timed apart)")
    args = parser.parse_args(argv)

    config = SimulatorConfig(n_invoices=args.invoices, n_customers=args.customers)
    t0, c0 = time.perf_counter(), time.process_time()
    ledger = simulate_ledger(config, seed=args.seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_rss_gib()
    n_events = len(ledger.events)

    # Reference: sorting one int64 array as long as the event log, in this same process.
    keys = np.random.default_rng(0).integers(0, 2**62, n_events)
    t1 = time.perf_counter()
    np.sort(keys)
    sort_s = time.perf_counter() - t1

    figures = {
        "invoices": args.invoices,
        "customers": args.customers,
        "events": n_events,
        "wall_s": wall,
        "cpu_s": cpu,  # less sensitive than wall time to other work on a shared machine
        "invoices_per_s": args.invoices / wall,
        "events_per_s": n_events / wall,
        "peak_rss_gib": peak,
        "reference_np_sort_s": sort_s,
        "ratio_to_sort": wall / sort_s,
    }
    print(f"python {platform.python_version()} on {platform.machine()}, seed {args.seed}")
    print(f"simulated {args.invoices:,} invoices / {args.customers:,} customers -> "
          f"{n_events:,} events in {wall:.1f} s (CPU {cpu:.1f} s)")
    print(f"  {figures['invoices_per_s']:,.0f} invoices/s, {figures['events_per_s']:,.0f} events/s")
    print(f"  peak RSS {peak:.2f} GiB")
    print(f"  reference np.sort of {n_events:,} int64: {sort_s:.2f} s "
          f"(simulator = {figures['ratio_to_sort']:.0f}x the sort)")
    if args.out is not None:
        t2 = time.perf_counter()
        paths = write_ledger(ledger, args.out)
        figures["write_s"] = time.perf_counter() - t2
        size = sum(p.stat().st_size for p in paths.values()) / 1024**2
        print(f"  wrote {args.out} ({size:,.0f} MiB) in {figures['write_s']:.1f} s")
    return figures


if __name__ == "__main__":
    main()
