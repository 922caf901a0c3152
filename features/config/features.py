"""Point-in-time feature settings: snapshot grid, lateness grace, delay buckets, history windows.

These are part of every model's contract (training.core.contract): a model trained with them is
scored with them, whatever the serving config says."""

from __future__ import annotations

from pydantic import Field

from features.config.base import Section


class FeatureConfig(Section):
    grid_days: int = Field(7, ge=1)  # snapshot every N days while the invoice is open
    max_snapshots_per_invoice: int = Field(6, ge=1)  # cap so long-open invoices do not dominate
    grace_days: int = Field(0, ge=0)  # cleared up to N days after due still counts as on time
    bucket_edges: tuple[int, ...] = (0, 30, 60, 90)  # days late: on time | 1-30 | 31-60 | ...
    history_windows_days: tuple[int, ...] = (90, 365)
    # A customer with fewer settled (cleared) invoices known at t than this is a cold start.
    cold_start_min_cleared: int = Field(3, ge=1)

