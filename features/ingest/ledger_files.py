"""A ledger on disk: one folder with events, master and (for simulated data) truth as Parquet.

The folder is the hand-over between stages (raw -> interim -> processed): the simulator and the
adapters write one, ingestion validates one, the feature builder reads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

EVENTS, MASTER, TRUTH = "events.parquet", "master.parquet", "truth.parquet"


@dataclass(frozen=True)
class LedgerFiles:
    events: pd.DataFrame
    master: pd.DataFrame
    truth: pd.DataFrame | None = None  # latent oracle per invoice, simulated ledgers only


def write_ledger_dir(folder: str | Path, events: pd.DataFrame, master: pd.DataFrame,
                     truth: pd.DataFrame | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    events.to_parquet(folder / EVENTS, index=False)
    master.to_parquet(folder / MASTER, index=False)
    if truth is not None:
        truth.to_parquet(folder / TRUTH, index=False)
    elif (folder / TRUTH).exists():  # a stale oracle from another ledger would mislead evaluation
        (folder / TRUTH).unlink()
    return folder


def read_ledger_dir(folder: str | Path) -> LedgerFiles:
    folder = Path(folder)
    missing = [name for name in (EVENTS, MASTER) if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a ledger folder: missing {', '.join(missing)}")
    truth = pd.read_parquet(folder / TRUTH) if (folder / TRUTH).exists() else None
    return LedgerFiles(pd.read_parquet(folder / EVENTS), pd.read_parquet(folder / MASTER), truth)
