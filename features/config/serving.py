"""Serving settings: which model to serve, request limits, reasons, the token variable, the
batch scores folder the worklist page can start from."""

from __future__ import annotations

from pydantic import Field

from features.config.base import Section


class ServingConfig(Section):
    model_ref: str = "champion"  # registry alias ("champion", "challenger") or version number
    max_items: int = Field(1_000, ge=1)  # worklist / score request size limit (413 above it)
    max_body_bytes: int = Field(4_000_000, ge=1_000)  # request body limit, checked before parsing
    n_reasons: int = Field(3, ge=1, le=10)  # reasons per invoice on /rerank
    token_env: str = "PAYDELAY_API_TOKEN"  # env var holding the optional bearer token
    max_amount: float = Field(1e12, gt=0)  # larger amounts are refused as absurd
    min_date: str = "1990-01-01"  # dates outside [min_date, max_date] are refused
    max_date: str = "2100-12-31"
    # A company code or payment-terms key the model never saw is accepted and flagged
    # (in the item's `warnings`) unless this is True, then refused with a 422.
    refuse_unknown_categories: bool = False
    # Where batch scoring (`paydelay score`) writes, read for the "latest batch-scored worklist":
    # None is its default, data/processed/<the served model's ledger>/scores. The environment
    # variable PAYDELAY_SCORES_DIR, when set, wins (a service beside a scheduled batch job).
    scores_dir: str | None = None
