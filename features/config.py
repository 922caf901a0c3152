"""One typed configuration for every stage, loaded explicitly from TOML (no import-time reads).

Each stage takes its own section as an argument; the seed lives at the top and is passed down
explicitly, so a run is reproduced by its config file alone.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatorConfig(_Section):
    n_customers: int = Field(600, ge=1)
    n_invoices: int = Field(20_000, ge=1)
    start: str = "2023-01-01"  # first posting date
    months: int = Field(30, ge=1)  # posting window length; the log ends at start + months
    company_codes: tuple[str, ...] = ("1000", "2000", "3000")
    n_collectors: int = Field(6, ge=1)
    # Causal knob: how much a collector contact pulls the payment earlier, in days, for customers
    # who respond to contact (their responsiveness is latent, between 0 and 1).
    contact_effect_days: float = Field(8.0, ge=0)
    contact_rate: float = Field(0.35, ge=0, le=1)  # share of overdue invoices a collector calls


class FeatureConfig(_Section):
    grid_days: int = Field(7, ge=1)  # snapshot every N days while the invoice is open
    max_snapshots_per_invoice: int = Field(6, ge=1)  # cap so long-open invoices do not dominate
    grace_days: int = Field(0, ge=0)  # cleared up to N days after due still counts as on time
    bucket_edges: tuple[int, ...] = (0, 30, 60, 90)  # days late: on time | 1-30 | 31-60 | ...
    history_windows_days: tuple[int, ...] = (90, 365)


class PaydelayConfig(_Section):
    seed: int = 42
    simulator: SimulatorConfig = SimulatorConfig()
    features: FeatureConfig = FeatureConfig()


def load_config(path: str | Path | None = None) -> PaydelayConfig:
    """Read a TOML file into the typed config; None gives the defaults."""
    if path is None:
        return PaydelayConfig()
    with open(path, "rb") as fh:
        return PaydelayConfig.model_validate(tomllib.load(fh))
