"""Past one machine: simulate -> features -> train -> score of N invoices on a local Dask cluster,
out of core, against the same four stages in process on a reference ledger, in one run.

    .venv/bin/python benchmarks/bench_dask.py --invoices 10000000            # the target run
    .venv/bin/python benchmarks/bench_dask.py --invoices 200000 --reference-invoices 200000
    .venv/bin/python benchmarks/bench_dask.py --invoices 100000 --no-reference   # quick

Dask run (N invoices, N/40 customers, a LocalCluster of --workers processes with
--memory-limit each; the dashboard link is printed when it starts):
- simulate: the world drawn in partitions of --customers-per-partition customers, each worker
  writing its part files (features.engine.simulate);
- features: every partition built by the in-process builder on a worker, training / scoring /
  customer-history rows written as part files (features.engine.build);
- train: training.distributed.train_dask (the row budget training.sampling.max_rows, boosters
  by lightgbm.dask, calibrator and conformal shift on pooled out-of-time predictions, the test
  window scored part by part), not registered;
- score: every item open at the end scored part by part (training.distributed.score_partitions).
Nothing is held whole by the client: the parts live in --workdir, which every worker sees.

Reference (--reference-invoices, default 1M, in a child process so that its memory is its
own): simulate_ledger, build_feature_sets (rows written as the CLI writes them), the trainer's
reader + training.pipeline.train (training.rows: the same row budget; no report, not
registered, as the Dask run), and batch scoring of the open items (training.batch_score).

Printed per stage: wall time; peak resident memory of each worker, of the client, of all of this
run's processes together (sampled every 0.2 s) and of the whole machine (psutil: used =
total - available, other programs included); then the totals and the ratio of each Dask stage
(and of the total) to the reference's. The issue's targets at 10M invoices on a 2-core 24 GiB
machine: no stage over 24 GiB in total, total time <= 12x the 1M in-process run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.config import PaydelayConfig  # noqa: E402
from features.config.engine import EngineConfig  # noqa: E402

GIB = 2**30
STAGES = ("simulate", "features", "train", "score")


class Peaks:
    """Peak resident memory, sampled in a thread: of each watched process, of their sum, and of
    the whole machine (used = total - available)."""

    def __init__(self, pids: dict[str, int], interval: float = 0.2):
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval = interval
        self.peak = {name: 0 for name in pids}
        self.together = 0
        self.machine = 0
        self._stop = threading.Event()

    def sample(self) -> None:
        total = 0
        for name, proc in self.procs.items():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:  # a worker restarted: its replacement is not watched
                continue
            self.peak[name] = max(self.peak[name], rss)
            total += rss
        self.together = max(self.together, total)
        vm = psutil.virtual_memory()
        self.machine = max(self.machine, vm.total - vm.available)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def __enter__(self) -> Peaks:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@contextmanager
def stage(name: str, results: dict, pids: dict[str, int]):
    print(f"== {name} ...", flush=True)
    t0 = time.perf_counter()
    with Peaks(pids) as peaks:
        yield
    wall = time.perf_counter() - t0
    results[name] = {"wall_s": wall, "peak_gib": {k: v / GIB for k, v in peaks.peak.items()},
                     "together_gib": peaks.together / GIB, "machine_gib": peaks.machine / GIB}
    workers = ", ".join(f"{k} {v / GIB:.2f}" for k, v in peaks.peak.items())
    print(f"== {name}: {wall:.1f} s; peak GiB: {workers}; all of ours together "
          f"{peaks.together / GIB:.2f}; machine {peaks.machine / GIB:.2f}", flush=True)


def dask_run(n: int, workdir: Path, engine: EngineConfig, config: PaydelayConfig) -> dict:
    """The four stages on a LocalCluster (module docstring)."""
    import pandas as pd

    from features.engine.build import build_features
    from features.engine.cluster import dask_client, worker_memory
    from features.engine.partitions import n_partitions_for
    from features.engine.simulate import simulate_partitioned
    from training.distributed import score_partitions, train_dask

    shutil.rmtree(workdir, ignore_errors=True)
    sim = config.simulator.model_copy(update={"n_invoices": n, "n_customers": max(n // 40, 1)})
    results: dict = {}
    with dask_client(engine, print) as client:
        pids = {"client": os.getpid(),
                **{f"worker{i}": pid for i, pid in enumerate(client.run(os.getpid).values())}}
        n_parts = n_partitions_for(sim.n_customers, engine.customers_per_partition)
        with stage("simulate", results, pids):
            summary = simulate_partitioned(client, sim, config.seed, workdir / "raw", n_parts)
        print(f"   {summary['invoices']:,} invoices, {summary['events']:,} events in "
              f"{summary['partitions']} partitions")
        with stage("features", results, pids):
            built = build_features(client, workdir / "raw", workdir / "rows", config.features,
                                   config.seed, engine.customers_per_partition)
        print(f"   {built.summary['rows']:,} training rows, {built.scoring_rows:,} open items")
        with stage("train", results, pids):
            truth = pd.read_parquet(workdir / "raw" / "truth.parquet",
                                    columns=["invoice_id", "oracle_p_late"])
            trained = train_dask(client, built.training, config, config.seed, truth=truth,
                                 register=False, progress=lambda line: print("  ", line,
                                                                            flush=True))
        m = trained.metrics
        print(f"   at posting ROC-AUC {m['risk_posting']['roc_auc']:.4f}, ECE "
              f"{m['risk_posting']['ece']:.4f}; payment MAE {m['payment']['mae_days']:.2f} d")
        with stage("score", results, pids):
            scored = score_partitions(client, built.ledger, built.n_partitions, trained.bundle,
                                      built.end_time, workdir / "scores")
        print(f"   {len(scored.items):,} open items scored, {len(scored.worklists)} worklists")
        lifetime = worker_memory(client)
    results["metrics"] = {"auc_posting": m["risk_posting"]["roc_auc"],
                          "training_sample": trained.plan.as_dict()}
    results["worker_lifetime_peak_gib"] = {k: v["peak"] / GIB for k, v in lifetime.items()}
    return results


def reference_run(n: int, workdir: Path, config: PaydelayConfig) -> dict:
    """The four stages in this process (module docstring)."""
    from features.pit.build import build_feature_sets, write_rows
    from features.simulate.ledger import simulate_ledger
    from training.batch_score import score_frame
    from training.pipeline import train
    from training.rows import read_training_rows

    shutil.rmtree(workdir, ignore_errors=True)
    sim = config.simulator.model_copy(update={"n_invoices": n, "n_customers": max(n // 40, 1)})
    results: dict = {}
    pids = {"process": os.getpid()}
    with stage("simulate", results, pids):
        ledger = simulate_ledger(sim, config.seed)
    events, master, truth = ledger.events, ledger.master, ledger.truth
    del ledger
    with stage("features", results, pids):
        sets = build_feature_sets(events, master, config.features, seed=config.seed)
        write_rows(sets.training, workdir / "training.parquet")
        end = sets.training["snapshot_time"].max()
        del sets
    with stage("train", results, pids):
        rows = read_training_rows(workdir / "training.parquet", config, config.seed)
        trained = train(rows, config, config.seed, truth=truth, register=False,
                        with_report=False, progress=lambda line: print("  ", line, flush=True))
        del rows
    with stage("score", results, pids):
        as_of = events["last_refresh"].max() if "last_refresh" in events else end
        scored = score_frame(events, master, trained.bundle, as_of)
        scored.to_parquet(workdir / "predictions.parquet")
    results["metrics"] = {"auc_posting": trained.metrics["risk_posting"]["roc_auc"]}
    return results


def _table(dask: dict, ref: dict | None, n: int, n_ref: int | None) -> None:
    print()
    head = f"{'stage':<10}{'dask s':>10}{'peak GiB (all ours / machine)':>32}"
    if ref:
        head += f"{'in-process s':>14}{'ratio':>8}"
    print(head)
    for name in (*STAGES, "total"):
        if name == "total":
            wall = sum(dask[s]["wall_s"] for s in STAGES)
            mem = max(dask[s]["together_gib"] for s in STAGES)
            machine = max(dask[s]["machine_gib"] for s in STAGES)
        else:
            wall, mem, machine = (dask[name]["wall_s"], dask[name]["together_gib"],
                                  dask[name]["machine_gib"])
        line = f"{name:<10}{wall:>10.1f}{f'{mem:.2f} / {machine:.2f}':>32}"
        if ref:
            rwall = (sum(ref[s]["wall_s"] for s in STAGES) if name == "total"
                     else ref[name]["wall_s"])
            line += f"{rwall:>14.1f}{wall / rwall:>7.2f}x"
        print(line)
    if ref:
        total = sum(dask[s]["wall_s"] for s in STAGES) / sum(ref[s]["wall_s"] for s in STAGES)
        print(f"\nDask at {n:,} invoices / in process at {n_ref:,}: {total:.2f}x the time "
              f"(target at 10M vs 1M: <= 12x); at-posting ROC-AUC {dask['metrics']['auc_posting']:.4f}"
              f" vs {ref['metrics']['auc_posting']:.4f}")
    worst = max(dask[s]["together_gib"] for s in STAGES)
    print(f"Largest stage, all of this run's processes together: {worst:.2f} GiB (target: "
          "under 24 GiB); per worker over its life: "
          + ", ".join(f"{v:.2f}" for v in dask["worker_lifetime_peak_gib"].values()) + " GiB")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000_000)
    parser.add_argument("--reference-invoices", type=int, default=1_000_000)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the in-process reference run (quick runs)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--memory-limit", default="10GiB", help="per worker (Dask's limit)")
    parser.add_argument("--customers-per-partition", type=int, default=5_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "data/processed/bench_dask")
    parser.add_argument("--reference-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = PaydelayConfig()

    if args.reference_child:  # the reference, in its own process: print its figures as JSON
        out = reference_run(args.reference_invoices, args.workdir / "reference", config)
        print("REFERENCE " + json.dumps(out))
        return out

    ref = None
    if not args.no_reference:
        print(f"# reference: {args.reference_invoices:,} invoices in process (child process)")
        child = subprocess.run([sys.executable, __file__, "--reference-child",
                                "--reference-invoices", str(args.reference_invoices),
                                "--workdir", str(args.workdir)], stdout=subprocess.PIPE,
                               text=True, check=True)
        for line in child.stdout.splitlines():
            if line.startswith("REFERENCE "):
                ref = json.loads(line[len("REFERENCE "):])
            else:
                print(line)
    engine = EngineConfig(kind="dask", n_workers=args.workers, threads_per_worker=args.threads,
                          memory_limit_per_worker=args.memory_limit,
                          customers_per_partition=args.customers_per_partition,
                          local_directory=str(args.workdir / "dask-spill"))
    print(f"# Dask: {args.invoices:,} invoices, {args.workers} workers x {args.threads} "
          f"thread(s), {args.memory_limit} each, {args.customers_per_partition:,} customers "
          "per partition")
    dask = dask_run(args.invoices, args.workdir / "dask", engine, config)
    _table(dask, ref, args.invoices, None if ref is None else args.reference_invoices)
    return {"dask": dask, "reference": ref}


if __name__ == "__main__":
    main()
