"""SAP extracts against the event log: time to read + convert N invoices of SAP tables (Parquet,
text fields as exported) versus reading the same ledger as an event log (Parquet), both through
the same validation and calculated-activity derivation, in the same run. Target ratio <= 2.

    .venv/bin/python benchmarks/bench_sap.py --invoices 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from features.config.simulator import SimulatorConfig
from features.ingest.derive import add_calculated_activities
from features.ingest.io import read_event_log
from features.ingest.ledger_files import EVENTS, write_ledger_dir
from features.ingest.sap import convert_sap_extracts
from features.ingest.validate import validate_event_log
from features.simulate.ledger import simulate_ledger
from features.simulate.sap_tables import (SIMULATOR_SAP_CONFIG, ledger_to_sap_tables,
                                          write_sap_tables)


def read_event_log_path(folder: Path):
    result = validate_event_log(read_event_log(folder / EVENTS))
    return add_calculated_activities(result.events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings per path")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="time the SAP tables and event log already in --workdir (written by "
                             "an earlier run with the same --invoices) instead of simulating")
    args = parser.parse_args()
    customers = args.customers or max(100, args.invoices // 40)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_sap_"))
    if args.reuse:
        if not ((work / "sap").is_dir() and (work / "ledger").is_dir()):
            parser.error(f"--reuse: no sap/ and ledger/ folders in {work}")
        print(f"{args.invoices:,} invoices: reusing the SAP tables and event log in {work}")
    else:
        simulate_and_write(args.invoices, customers, work)
    time_both(work, args.repeat)


def simulate_and_write(invoices: int, customers: int, work: Path) -> None:
    t0 = time.perf_counter()
    ledger = simulate_ledger(SimulatorConfig(n_invoices=invoices, n_customers=customers),
                             seed=1)
    t1 = time.perf_counter()
    tables = ledger_to_sap_tables(ledger.events, ledger.master, ledger.customers,
                                  last_refresh=ledger.last_refresh)
    write_sap_tables(tables, work / "sap", "parquet")
    write_ledger_dir(work / "ledger", ledger.events, ledger.master)
    t2 = time.perf_counter()
    rows = {k: len(v) for k, v in tables.items()}
    print(f"{invoices:,} invoices, {customers:,} customers, {len(ledger.events):,} events; "
          f"simulated in {t1 - t0:.1f} s, written as SAP tables and event log in {t2 - t1:.1f} s")
    print("SAP rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    del ledger, tables


def time_both(work: Path, repeat: int) -> None:
    best_log = best_sap = float("inf")
    steps: dict[str, float] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        events = read_event_log_path(work / "ledger")
        best_log = min(best_log, time.perf_counter() - t)
        n_log = len(events)
        del events
        t = time.perf_counter()
        result = convert_sap_extracts(work / "sap", SIMULATOR_SAP_CONFIG)
        took = time.perf_counter() - t
        if took < best_sap:
            best_sap, steps = took, result.timings
        n_sap = len(result.events)
        del result
    print(f"event log: read + validate + derive   {best_log:8.1f} s  ({n_log:,} events)")
    print(f"SAP:       read + convert + validate   {best_sap:8.1f} s  ({n_sap:,} events)")
    print("SAP steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    ratio = best_sap / best_log
    print(f"ratio SAP / event log: {ratio:.2f} (target <= 2): {'OK' if ratio <= 2 else 'SLOW'}")


if __name__ == "__main__":
    main()
