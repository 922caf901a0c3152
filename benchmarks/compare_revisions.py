"""Before / after in one run: the benchmarks of two revisions, run alternately on this machine.

    .venv/bin/python benchmarks/compare_revisions.py --base 2b65aa7 [--head WORKTREE] [--quick]

These machines are noisy, so a figure measured today against one measured yesterday says little.
This script checks the base revision out into a temporary git worktree and runs each benchmark
there and in the head tree (this checkout by default) one after the other, with the same
interpreter and arguments, then prints the closing lines of each pair side by side. Benchmarks
run as separate processes with the tree first on PYTHONPATH, so each imports its own code.

Benchmarks: bench_features (1M invoices; 200k with --quick), bench_serving (500-item re-rank
with reasons), bench_http (16 clients x 50-item worklists for 60 s; 20 s with --quick) and
model_targets (the model targets, to the last digit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def benches(quick: bool) -> list[tuple[str, list[str], int]]:
    """(script, arguments, how many closing lines to show)."""
    return [
        ("bench_features.py", ["--invoices", "200000" if quick else "1000000"], 12),
        ("bench_serving.py", ["--items", "500", "--repeats", "40"], 14),
        ("bench_http.py", ["--clients", "16", "--items", "50",
                           "--duration", "20" if quick else "60"], 10),
        ("model_targets.py", [], 30),
    ]


def run_in(tree: Path, script: str, args: list[str], timeout_s: float) -> tuple[str, float, int]:
    """The script's output, wall seconds and exit code, run from `tree` with its own code."""
    env = {**os.environ, "PYTHONPATH": str(tree), "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / script), *args], cwd=tree,
                          env=env, capture_output=True, text=True, timeout=timeout_s)
    return done.stdout + done.stderr, time.perf_counter() - start, done.returncode


def worktree(base: str, where: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(where), base], cwd=ROOT,
                   check=True)
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision measured as 'before'")
    ap.add_argument("--base-tree", type=Path, default=None,
                    help="an existing checkout of --base to use instead of a temporary worktree "
                    "(e.g. one beside this checkout, where an old revision finds its data)")
    ap.add_argument("--head", type=Path, default=ROOT, help="tree measured as 'after'")
    ap.add_argument("--only", nargs="*", default=None, help="benchmark scripts to run")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, shorter load")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per benchmark run")
    args = ap.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="paydelay-base-") as tmp:
        base_tree = args.base_tree or worktree(args.base, Path(tmp) / "base")
        try:
            for script, bargs, tail in benches(args.quick):
                if args.only and script not in args.only:
                    continue
                for label, tree in (("before", base_tree), ("after", args.head)):
                    out, wall, rc = run_in(tree, script, bargs, args.timeout)
                    failed += rc != 0
                    print(f"\n===== {script} {' '.join(bargs)} | {label} ({tree}) | "
                          f"{wall:.0f} s, exit {rc}")
                    print("\n".join(out.strip().splitlines()[-tail:]), flush=True)
        finally:
            if args.base_tree is None:
                subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)],
                               cwd=ROOT, check=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
