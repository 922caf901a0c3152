"""Training at scale: wall time and peak memory of the default training for two ledger sizes in
one run (200k and 1M invoices by default), and what the row budget costs.

    .venv/bin/python benchmarks/bench_training.py                      # 200k and 1M
    .venv/bin/python benchmarks/bench_training.py --invoices 50000 200000
    .venv/bin/python benchmarks/bench_training.py --compare-sampling --invoices 200000 \
        --max-rows 240000 --payment-max-rows 80000     # 1M's default sampling shares, at 200k

Each ledger is simulated and its features built once into --cache (not timed: the feature build
has its own benchmark); each training then runs in a fresh process the way `paydelay train`
runs it - the trainer's reader (training.rows: compact dtypes, the row budget applied while
reading), the full pipeline with the evaluation report - without registering, so the MLflow
store plays no part. The child reports its own wall time and peak RSS (ru_maxrss: everything it
ever held, the Parquet reading included) and the stage lines; the table gives both sizes and
their ratios (machines are noisy: compare sizes within one run).

--compare-sampling trains each size twice, in full (training.sampling.max_rows and
payment_max_rows = None) and under --max-rows / --payment-max-rows, and prints the at-posting
ROC-AUC, ECE and payment MAE of both on the same test window (which the budget never samples).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from features.config import load_config
from training.pipeline import train
from training.rows import read_training_rows
path, max_rows, payment_max_rows = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = load_config(None)
update = {key: None if value == "none" else int(value)
          for key, value in (("max_rows", max_rows), ("payment_max_rows", payment_max_rows))
          if value != "default"}
cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
    update={"sampling": cfg.training.sampling.model_copy(update=update)})})
stages = []
def say(line):
    stages.append(line)
    if "--live" in sys.argv:
        print("   ", line, file=sys.stderr, flush=True)
t = time.perf_counter()
rows = read_training_rows(path, cfg, cfg.seed)
say(f"read {len(rows):,} rows: {time.perf_counter() - t:.1f} s "
    f"(peak so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)")
r = train(rows, cfg, cfg.seed, register=False, progress=say)
m = r.metrics
print(json.dumps({
    "wall_s": time.perf_counter() - t0,
    "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    "rows_read": len(rows), "sample": r.bundle.training_window.get("sample"),
    "auc_posting": m["risk_posting"]["roc_auc"], "ece_posting": m["risk_posting"]["ece"],
    "auc": m["risk"]["roc_auc"], "ece": m["risk"]["ece"],
    "payment_mae": m["payment"]["mae_days"], "stages": stages}))
"""


def ensure_rows(n: int, cache: Path) -> Path:
    """Simulate a ledger of n invoices (n / 50 customers, the simulator's defaults otherwise)
    and build its features once, with the CLI."""
    rows = cache / f"rows{n}" / "training.parquet"
    if rows.exists():
        return rows
    paydelay = str(Path(sys.executable).with_name("paydelay"))
    raw = cache / f"raw{n}"
    subprocess.run([paydelay, "simulate", "--invoices", str(n), "--customers",
                    str(max(n // 50, 10)), "--out", str(raw)], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([paydelay, "features", "--ledger", str(raw), "--out", str(rows.parent),
                    "--ledger-name", f"bench{n}"], check=True, stdout=subprocess.DEVNULL)
    return rows


def train_child(rows: Path, max_rows: str, payment_max_rows: str, live: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(rows), max_rows, payment_max_rows,
                          *(["--live"] if live else [])], cwd=ROOT, stdout=subprocess.PIPE,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"training on {rows} failed (exit {out.returncode}; its errors are "
                         "above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--invoices", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--cache", type=Path, default=ROOT / "data" / "interim" / "bench_training")
    ap.add_argument("--compare-sampling", action="store_true")
    ap.add_argument("--max-rows", default="default",
                    help="training.sampling.max_rows for the (sampled) runs: a number, "
                         "'none', or 'default' (the config's)")
    ap.add_argument("--payment-max-rows", default="default",
                    help="training.sampling.payment_max_rows for the (sampled) runs")
    ap.add_argument("--stages", action="store_true",
                    help="print every stage line as it happens (with its time and peak memory)")
    args = ap.parse_args()
    results = {}
    for n in args.invoices:
        rows = ensure_rows(n, args.cache)
        runs = ({"sampled": (args.max_rows, args.payment_max_rows), "full": ("none", "none")}
                if args.compare_sampling else {"default": (args.max_rows,
                                                           args.payment_max_rows)})
        for label, (max_rows, payment_max_rows) in runs.items():
            r = train_child(rows, max_rows, payment_max_rows, args.stages)
            results[(n, label)] = r
            s = r["sample"] or {}
            print(f"{n:>9,} invoices [{label}]: {r['wall_s']:7.1f} s, peak {r['peak_gib']:.2f} "
                  f"GiB, {r['rows_read']:,} rows read (sampling p = {s.get('p', 1.0):.4f}, "
                  f"budget {s.get('max_rows')}); at posting ROC-AUC {r['auc_posting']:.4f}, "
                  f"ECE {r['ece_posting']:.4f}; all rows ROC-AUC {r['auc']:.4f}, ECE "
                  f"{r['ece']:.4f}; payment MAE {r['payment_mae']:.2f} d", flush=True)
    if args.compare_sampling:
        for n in args.invoices:
            a, b = results[(n, "sampled")], results[(n, "full")]
            print(f"{n:,} invoices, sampled - full: at-posting ROC-AUC "
                  f"{a['auc_posting'] - b['auc_posting']:+.4f}, ECE "
                  f"{a['ece_posting'] - b['ece_posting']:+.4f}, all-rows ROC-AUC "
                  f"{a['auc'] - b['auc']:+.4f}, payment MAE "
                  f"{a['payment_mae'] - b['payment_mae']:+.2f} d; time "
                  f"{a['wall_s'] / b['wall_s']:.2f}x, peak memory "
                  f"{a['peak_gib'] / b['peak_gib']:.2f}x")
    elif len(args.invoices) > 1:
        lo, hi = args.invoices[0], args.invoices[-1]
        a, b = results[(lo, "default")], results[(hi, "default")]
        print(f"{hi:,} / {lo:,} invoices ({hi / lo:.0f}x): time {b['wall_s'] / a['wall_s']:.2f}x, "
              f"peak memory {b['peak_gib'] / a['peak_gib']:.2f}x")


if __name__ == "__main__":
    main()
