"""How long `paydelay models` takes: the listing itself (training.registry.list_models reads the
SQLite store with sqlite3, no MLflow import) and the whole command in a fresh process.

    .venv/bin/python benchmarks/bench_models.py sqlite:///models/mlflow.db
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(uri: str) -> None:
    code = ("import time; t = time.perf_counter(); from training.registry import list_models; "
            f"n = len(list_models({uri!r})); print(n, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    print(f"list_models (fresh process, imports included): {float(out[1]):.2f} s, "
          f"{out[0]} versions")
    t = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("paydelay")), "models"], cwd=ROOT,
                   env={**os.environ, "PAYDELAY_TRACKING_URI": uri}, capture_output=True,
                   check=True)
    print(f"paydelay models (whole command): {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{ROOT / 'models' / 'mlflow.db'}")
