"""Pydantic request / response models of the HTTP API, built from the one schema.

The open item a request carries is exactly `features.pit.item_state.ITEM_STATE_COLUMNS` (what the
batch pipeline replays from events at t), so its field names and types are generated from that
dict; descriptions come from `features.schema` where the column is an event-log column, and from
`ITEM_NOTES` below otherwise. A test fails when ITEM_STATE_COLUMNS gains a column without a note.

Two layers of validation (documented in the OpenAPI description and tested):
- **400**, here: malformed input - wrong types, missing required fields, NaN / infinite numbers,
  negative amounts or counts, amounts above `max_amount`, dates outside [min_date, max_date],
  timezone-aware datetimes (the ledger is in naive business time), unknown fields.
- **422**, in `serving.validation`: well-formed but impossible items - due date before posting
  date, open amount above the invoice amount, an item posted (or an activity recorded) after the
  request's `as_of`, duplicate invoice ids, max dunning level below the current one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, NaiveDatetime, create_model

from features import schema
from features.config.serving import ServingConfig
from features.pit.item_state import ITEM_STATE_COLUMNS

# Descriptions (and per-field constraints) of the item-state columns that are not event columns.
ITEM_NOTES: dict[str, str] = {
    "invoice_id": "Invoice document number (BKPF-BELNR): identifies the open item.",
    "document_type": "Financial document type of the invoice (BKPF-BLART), RV by default.",
    "amount": "Invoice amount at posting, in local currency (BSEG-DMBTR of the invoice).",
    "open_amount": "Amount still open now: the invoice amount (or last residual item) less "
                   "incoming payments and credit memos.",
    "paid_amount": "Incoming payments posted on the item so far.",
    "posting_time": "When the invoice was posted (BKPF-BUDAT), naive business time.",
    "dunning_level": "Level of the last dunning run (MAHNS), 0 before any.",
    "max_dunning_level": "Highest dunning level reached (defaults to dunning_level).",
    "n_dunning_runs": "Number of dunning runs on the item (defaults to dunning_level).",
    "last_dunning_time": "When the last dunning run was executed.",
    "n_contacts": "Collection contacts recorded about the item.",
    "last_contact_time": "When the last collection contact was recorded.",
    "promise_open": "A promise to pay is open (created and not broken yet).",
    "promised_date": "Date promised by the customer (open promise only).",
    "promise_amount": "Amount promised (open promise only).",
    "n_promises": "Promises to pay created on the item.",
    "n_promises_broken": "Promises to pay broken on the item.",
    "dispute_open": "At least one dispute case on the item is open.",
    "dispute_open_since": "Start of the current run of open dispute cases.",
    "disputed_amount": "Amount under dispute in the open dispute cases.",
    "n_disputes": "Dispute cases created on the item.",
    "last_dispute_time": "When the last dispute case was created on the item.",
    "payment_block_active": "A payment block (ZLSPR) is set on the item.",
    "n_partial_payments": "Incoming payments posted while the item stayed open.",
    "n_residual_items": "Residual items created by partial clearing.",
    "n_credit_memos": "Credit memos posted against the item.",
    "credit_memo_amount": "Total amount of those credit memos.",
    "last_customer_reaction_time": "Last payment, promise or dispute by the customer.",
}

REQUIRED_ITEM_FIELDS: tuple[str, ...] = ("invoice_id", "customer_id", "company_code", "amount",
                                         "open_amount", "posting_time", "net_due_date")
# Optional item fields whose default is derived from another field in serving.validation.
DERIVED_DEFAULTS: dict[str, str] = {"max_dunning_level": "dunning_level",
                                    "n_dunning_runs": "dunning_level"}
_ID_LIMIT = 64
_MAX_COUNT = 100_000
_MAX_DUNNING = 9  # SAP allows dunning levels 1..9


def item_description(name: str) -> str:
    col = schema.COLUMNS_BY_NAME.get(name)
    if name in ITEM_NOTES:
        return ITEM_NOTES[name]
    if col is not None:
        return f"{col.description} (SAP {col.sap_field})" if col.sap_field else col.description
    raise KeyError(f"item-state column {name!r} has no description: add it to ITEM_NOTES")


def _item_field(name: str, dtype: str, cfg: ServingConfig) -> tuple[Any, Any]:
    desc = item_description(name)
    required = name in REQUIRED_ITEM_FIELDS
    lo = datetime.fromisoformat(cfg.min_date)
    hi = datetime.fromisoformat(cfg.max_date)
    if dtype == "str":
        if required:
            return str, Field(..., min_length=1, max_length=_ID_LIMIT, description=desc)
        default = "RV" if name == "document_type" else None
        return str | None, Field(default, max_length=_ID_LIMIT, description=desc)
    if dtype == "float64":
        kind = dict(ge=0, le=cfg.max_amount, allow_inf_nan=False, description=desc)
        if name == "amount":
            kind["gt"] = 0
            kind.pop("ge")
        if required:
            return float, Field(..., **kind)
        if name == "promise_amount":
            return float | None, Field(None, **kind)
        return float, Field(0.0, **kind)
    if dtype == "int64":
        upper = _MAX_DUNNING if "dunning_level" in name else _MAX_COUNT
        if name in DERIVED_DEFAULTS:
            return int | None, Field(None, ge=0, le=upper, description=desc)
        return int, Field(0, ge=0, le=upper, description=desc)
    if dtype == "bool":
        return bool, Field(False, description=desc)
    if dtype.startswith("datetime64"):
        if required:
            return NaiveDatetime, Field(..., ge=lo, le=hi, description=desc)
        return NaiveDatetime | None, Field(None, ge=lo, le=hi, description=desc)
    raise TypeError(f"item-state column {name!r} has an unsupported dtype {dtype!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ModelInfo(BaseModel):
    registered_model: str | None = Field(None, description="MLflow registered model name.")
    version: int | None = Field(None, description="Registered model version served.")
    aliases: list[str] = Field(default_factory=list, description="Aliases on that version.")
    run_id: str | None = Field(None, description="MLflow run that trained it.")
    feature_set_version: str = Field(..., description="Version of the feature definitions.")
    store_as_of: datetime | None = Field(None, description="Customer-history snapshot time.")


class DelayBucket(BaseModel):
    """One delay bucket of the served model and its probability. The buckets follow the bucket
    edges and grace days the model was trained with (its contract; GET /metadata lists them):
    the first is on time (up to the grace days late), the last is open-ended and includes
    written-off items."""

    label: str = Field(..., description="E.g. 'on time', '1-30 days late', 'more than 90 days "
                                        "late or written off'.")
    from_days: int | None = Field(..., description="First day late in the bucket (null for "
                                                   "the on-time bucket).")
    to_days: int | None = Field(..., description="Last day late in the bucket (null: no upper "
                                                 "bound).")
    probability: float = Field(..., description="P(the item is paid in this bucket); the "
                                                "item's buckets sum to 1, the first is "
                                                "1 - p_late.")


class ScoredItem(BaseModel):
    invoice_id: str
    customer_id: str
    p_late: float = Field(..., description="Calibrated P(paid after due date + grace, or lost).")
    delay_buckets: list[DelayBucket] = Field(..., description=(
        "P(each delay bucket of the served model), from on time to the open-ended last "
        "bucket; sums to 1."))
    risk_class: Literal["low", "medium", "high", "very_high"]
    days_to_clear_p10: float = Field(..., description="10 % quantile of days from as_of to "
                                                      "clearing.")
    days_to_clear_p50: float = Field(..., description="Median days from as_of to clearing.")
    days_to_clear_p90: float = Field(..., description="90 % quantile of days to clearing.")
    pay_date_p10: date
    pay_date_p50: date
    pay_date_p90: date
    expected_amount_at_risk: float = Field(..., description=(
        "open_amount x P(very late): the summed probability of the model's very-late buckets "
        "(those starting at or beyond evaluation.backtest_late_days, so more than 30 days late "
        "or written off with the default edges; GET /metadata lists them); definition in "
        "training.core.scoring."))
    cold_start: bool = Field(..., description="The customer has too little payment history "
                                              "(or is unknown to the history store).")
    warnings: list[str] = Field(default_factory=list,
                                description="Accepted-but-flagged inputs, e.g. a company code "
                                            "or payment terms key never seen in training.")


class ScoreResponse(BaseModel):
    as_of: datetime
    model: ModelInfo
    items: list[ScoredItem]


class Reason(BaseModel):
    feature: str = Field(..., description="Feature name (for machines; collectors read "
                                          "`sentence`).")
    value: float | str | bool | None = Field(..., description="The feature's value.")
    contribution: float = Field(..., description="SHAP contribution in log-odds of P(late).")
    direction: Literal["raises", "lowers"]
    sentence: str


class RankedItem(ScoredItem):
    rank: int = Field(..., description="1 = call first: ordered by expected amount at risk.")
    in_capacity: bool = Field(..., description="rank <= capacity (true when no capacity).")
    open_amount: float
    days_overdue: float
    rule_priority: str = Field(..., description="Priority of the SAP-style rule strategy.")
    rule_points: float
    rule_rank: int = Field(..., description="Rank the rule strategy gives the item.")
    rules_hit: str = Field(..., description="Collection rules that hold, comma separated.")
    reasons: list[Reason]


class RerankSummary(BaseModel):
    n_items: int
    capacity: int | None
    amount_at_risk_total: float
    amount_at_risk_in_capacity: float = Field(..., description="Expected amount at risk of the "
                                                               "first `capacity` items, ML order.")
    rule_amount_at_risk_in_capacity: float = Field(..., description="Same, for the items the "
                                                                    "rule strategy puts first.")


class RerankResponse(BaseModel):
    as_of: datetime
    model: ModelInfo
    summary: RerankSummary
    items: list[RankedItem]


class Contribution(BaseModel):
    feature: str
    value: float | str | bool | None
    contribution: float
    sentence: str


class ExplainResponse(BaseModel):
    as_of: datetime
    model: ModelInfo
    item: ScoredItem
    base_value: float = Field(..., description="Expected log-odds of the risk model (before "
                                               "calibration).")
    raw_log_odds: float = Field(..., description="base_value + sum of contributions.")
    contributions: list[Contribution] = Field(..., description="Every feature, largest "
                                                               "absolute contribution first.")
    sentences: list[str] = Field(..., description="The top reasons, as collectors read them.")


class ApiModels:
    """The request models for one ServingConfig (limits and bounds are configurable)."""

    def __init__(self, cfg: ServingConfig):
        self.cfg = cfg
        fields = {name: _item_field(name, dtype, cfg) for name, dtype in
                  ITEM_STATE_COLUMNS.items()}
        self.OpenItem = create_model(
            "OpenItem", __base__=_Strict,
            __doc__="One open receivable as the ledger knows it at `as_of`.", **fields)
        lo = datetime.fromisoformat(cfg.min_date)
        hi = datetime.fromisoformat(cfg.max_date)
        as_of = (NaiveDatetime | None, Field(
            None, ge=lo, le=hi, description="Scoring time t (naive business time); items must "
                                            "be posted by then. Default: now."))
        items = (list[self.OpenItem], Field(..., min_length=1, description=(
            f"Open items; more than {cfg.max_items} are refused with 413.")))
        self.ScoreRequest = create_model("ScoreRequest", __base__=_Strict, as_of=as_of,
                                         items=items)
        self.RerankRequest = create_model(
            "RerankRequest", __base__=_Strict, as_of=as_of, items=items,
            capacity=(int | None, Field(None, ge=1, le=cfg.max_items, description=(
                "Items the collector can work; summary compares ML and rule order on them."))))
        self.ExplainRequest = create_model(
            "ExplainRequest", __base__=_Strict, as_of=as_of,
            item=(self.OpenItem, Field(..., description="The item to explain.")))



def items_payload(state) -> list[dict]:
    """JSON-ready request items from an item-state frame (features.pit.item_state.item_state_at):
    datetimes as ISO strings, missing values as null. For clients, demos and the parity test."""
    cols: dict[str, list] = {}
    for name, dtype in ITEM_STATE_COLUMNS.items():
        col = state[name]
        if dtype.startswith("datetime64"):
            ts = pd.to_datetime(col)
            text = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").astype(object)
            cols[name] = text.where(ts.notna(), None).tolist()
        elif dtype == "str":
            cols[name] = col.astype("str").astype(object).where(col.notna(), None).tolist()
        elif dtype == "float64":
            cols[name] = col.astype(object).where(col.notna(), None).tolist()
        elif dtype == "bool":
            cols[name] = col.astype(bool).tolist()
        else:
            cols[name] = col.astype("int64").tolist()
    n = len(state)
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


__all__ = ["ApiModels", "ModelInfo", "DelayBucket", "ScoredItem", "ScoreResponse", "Reason",
           "RankedItem", "RerankSummary", "RerankResponse", "Contribution", "ExplainResponse",
           "ITEM_NOTES", "REQUIRED_ITEM_FIELDS", "item_description", "items_payload"]
