"""Every path the project reads or writes, from one place (raw -> interim -> processed)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
RAW = DATA / "raw"  # immutable inputs: simulated or extracted ledgers
INTERIM = DATA / "interim"  # validated event logs, quarantine files
PROCESSED = DATA / "processed"  # training and scoring sets
SAMPLE = DATA / "sample"  # small committed samples used by tests and the README
SIMULATED = RAW / "simulated"  # `paydelay simulate`: a simulated ledger folder
LEDGER = INTERIM / "ledger"  # `paydelay ingest`: the validated ledger and its quarantine
IBM_LEDGER = INTERIM / "ibm"  # `paydelay ibm`: the IBM sample as a ledger folder
FEATURE_ROWS = PROCESSED / "ledger"  # `paydelay features`: training and scoring rows, the store
DEMO = PROCESSED / "demo"  # `paydelay demo`: the demo's scratch folder
MODELS = ROOT / "models"  # MLflow's embedded store and exported bundles (git-ignored)
SHARED_DATASETS = Path(os.environ.get("PAYDELAY_DATASETS", ROOT.parent / "shared" / "datasets"))
IBM_AR_CSV = SHARED_DATASETS / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv"
