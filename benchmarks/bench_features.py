"""Benchmark of the point-in-time training-set build on a simulated ledger.

    .venv/bin/python benchmarks/bench_features.py --invoices 1000000 --seed 42

Prints the ledger size, then for the build: rows, rows/s, wall time, peak memory (resident set
sampled during the build, and the process's lifetime maximum), and the ratio of the build's wall
time to a plain sort of the event log by (customer_id, event_time) measured in the same run, a
yardstick that makes figures comparable across machines.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import psutil

from features.pit.build import build_training_set, summary
from features.config.features import FeatureConfig
from features.config.simulator import SimulatorConfig
from features.simulate.ledger import simulate_ledger


class PeakRSS:
    """Samples this process's resident memory in a thread while a block runs."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=None,
                        help="default: one customer per 40 invoices")
    parser.add_argument("--months", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    customers = args.customers or max(args.invoices // 40, 1)
    t0 = time.perf_counter()
    ledger = simulate_ledger(SimulatorConfig(n_invoices=args.invoices, n_customers=customers,
                                             months=args.months), seed=args.seed)
    events, master = ledger.events, ledger.master
    del ledger  # the oracle truth and latent customer table are not inputs of the build
    print(f"simulated {args.invoices:,} invoices, {customers:,} customers, "
          f"{len(events):,} events in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    events.sort_values(["customer_id", "event_time"], kind="stable")
    sort_s = time.perf_counter() - t0
    print(f"baseline sort of the event log by (customer_id, event_time): {sort_s:.2f} s")

    config = FeatureConfig()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        rows = build_training_set(events, master, config, seed=args.seed)
        build_s = time.perf_counter() - t0
    s = summary(rows)
    gib = 1024 ** 3
    print(f"training set: {s['rows']:,} rows x {s['features']} features, "
          f"{s['invoices']:,} invoices, censored {s['censored_share']:.1%}, "
          f"late among uncensored {s['late_share_uncensored']:.1%}")
    print(f"build wall time: {build_s:.1f} s  ({s['rows'] / build_s:,.0f} rows/s, "
          f"{len(events) / build_s:,.0f} events/s)")
    print(f"peak RSS during build: {mem.peak / gib:.2f} GiB; process max RSS: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib:.2f} GiB")
    print(f"ratio build / sort: {build_s / sort_s:.1f}x")


if __name__ == "__main__":
    main()
