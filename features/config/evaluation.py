"""Evaluation settings: calibration bins, slices, the worklist backtest, the baselines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from features.config.base import Section


class EvaluationConfig(Section):
    ece_bins: int = Field(10, ge=2)  # expected calibration error / reliability table bins
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # pinball loss for days_to_clear_p{10,50,90}
    # Days to clear of a written-off invoice is days to the write-off, not to a payment: the
    # payment-date metrics leave those rows out (and count them) unless told otherwise.
    date_metrics_exclude_written_off: bool = True
    amount_band_column: str = "open_amount"
    amount_band_edges: tuple[float, ...] = (1_000.0, 10_000.0, 100_000.0)
    slice_columns: tuple[str, ...] = (
        "customer_segment", "company_code", "risk_category", "amount_band", "customer_history",
    )
    min_slice_rows: int = Field(30, ge=1)  # smaller slices are flagged small_sample
    backtest_period: Literal["day", "week"] = "week"  # snapshots grouped into one worklist
    # Collector capacity K per worklist. Weekly worklists built from training rows hold only the
    # items with a snapshot that week (about 20 to 50 on the default simulation), hence small K.
    backtest_capacities: tuple[int, ...] = (5, 10, 20)
    backtest_late_days: int = Field(30, ge=0)  # "at risk" = paid more than N days late or lost
    headline_capacity: int | None = 10  # K quoted in the headline; None/absent = the first K
    # Baselines: P(late) of the pay-on-due-date baseline for items not yet past due + grace, and
    # the P(late) every baseline gives an item already past due + grace at t (its label is then
    # known to be late, so a baseline that ignored it would be a straw man).
    due_date_p_late: float = Field(0.02, gt=0, lt=1)
    determined_late_p: float = Field(0.999, gt=0, lt=1)
    add_min_invoices: int = Field(1, ge=1)  # paid invoices needed before ADD trusts a customer


