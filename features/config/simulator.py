"""Simulator settings: the size and shape of a simulated receivables world."""

from __future__ import annotations

from pydantic import Field

from features.config.base import Section


class SimulatorConfig(Section):
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
    # Days overdue at which the weekly dunning run raises an item to levels 1, 2, 3 and 4.
    dunning_days: tuple[int, int, int, int] = (1, 15, 30, 45)
    # Fresh paths per invoice behind truth.oracle_expected_delay_days (seeded Monte Carlo).
    oracle_mc_draws: int = Field(32, ge=1)

