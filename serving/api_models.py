"""Pydantic request / response models of the HTTP API, built from the one schema.

The open item a request carries is exactly `features.pit.item_state.ITEM_STATE_COLUMNS` (what the
batch pipeline replays from events at t), so its field names and types are generated from that
dict; descriptions come from `features.schema` where the column is an event-log column, and from
`ITEM_NOTES` below otherwise. A test fails when ITEM_STATE_COLUMNS gains a column without a note.

Two layers of validation (documented in the OpenAPI description and tested):
- **400**, here: malformed input - wrong JSON types (strict: no coercion of strings, numbers or
  booleans into one another), missing required fields, NaN / infinite numbers, negative amounts
  or counts, amounts above `max_amount`, dates that are not ISO 8601 / RFC 3339 strings or lie
  outside [min_date, max_date], unknown fields. Dates may carry an offset (`Z`, `+02:00`): it is
  dropped and the wall-clock time as written is taken as business time (the ledger is naive).
- **422**, in `serving.validation`: well-formed but impossible items - due date before posting
  date, open / paid / disputed / credit-memo / promised amount above the invoice amount, an item
  posted (or an activity recorded) after the request's `as_of`, duplicate invoice ids, max
  dunning level below the current one.

/latest_worklist answers with the request shape itself: a collector's open items from the newest
batch scoring (LatestWorklistResponse: as_of, ledger, items), so they go to /rerank as sent.

`openapi_document` builds the published OpenAPI 3.1 document (served at /docs.json) from these
models: every response code with its schema, the bearer scheme, the date pattern and bounds.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator,
                      WithJsonSchema, create_model)
from pydantic_core import PydanticCustomError

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


# Dates and date-times: ISO 8601 / RFC 3339 strings, a calendar date between the configured bounds,
# an optional time (to the microsecond) and an optional offset. The JSON schema pattern below says
# exactly what is accepted (leap days included); the parser reads the pattern's own groups.
OUT_DATETIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"


def _year_regex(lo: int, hi: int, keep=lambda y: True) -> str:
    years = [y for y in range(lo, hi + 1) if keep(y)]
    return "(?:" + "|".join(str(y) for y in years) + ")" if years else "(?!)"


def date_pattern(min_date: str, max_date: str, named: bool = False) -> str:
    """The regular expression (ECMA 262 and Python) of an accepted date(-time): a calendar date
    (leap days included) of the years min_date.year .. max_date.year, an optional time to the
    microsecond and, with a time, an optional offset. `named`: with Python group names, for the
    parser (the published pattern has none)."""
    def g(name: str) -> str:
        return f"(?P<{name}>" if named else "(?:"

    lo, hi = datetime.fromisoformat(min_date).year, datetime.fromisoformat(max_date).year
    years = _year_regex(lo, hi)
    leap = _year_regex(lo, hi, lambda y: y % 4 == 0 and (y % 100 != 0 or y % 400 == 0))
    day = (r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
           r"|(?:0[13578]|1[02])-31)")
    time = (rf"(?:[Tt ]{g('H')}[01][0-9]|2[0-3]):{g('M')}[0-5][0-9])"
            rf"(?::{g('S')}[0-5][0-9])(?:\.{g('F')}[0-9]{{1,6}}))?)?"
            r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?")
    return (rf"^(?:{g('Y')}{years})-{g('md')}{day})|{g('LY')}{leap})-{g('ld')}02-29)){time}$")


def date_note(cfg: ServingConfig) -> str:
    return (f"ISO 8601 / RFC 3339 date or date-time between {cfg.min_date} and "
            f"{cfg.max_date} (e.g. 2024-05-31 or 2024-05-31T14:00:00); an offset (Z, +02:00) is "
            "accepted and dropped: the wall-clock time as written is business time.")


def business_time(cfg: ServingConfig, description: str):
    """The pydantic type of a request date(-time): strict (a string, never a number), parsed by
    `date_pattern`, the offset dropped, bounded by [min_date, max_date]."""
    pattern = date_pattern(cfg.min_date, cfg.max_date)
    regex = re.compile(date_pattern(cfg.min_date, cfg.max_date, named=True))
    lo = datetime.fromisoformat(cfg.min_date)
    hi = datetime.fromisoformat(cfg.max_date)
    if len(cfg.max_date) <= 10:  # a date: all of that day
        hi = hi.replace(hour=23, minute=59, second=59, microsecond=999999)

    def parse(value):
        if isinstance(value, datetime):  # already parsed (model_validate of Python objects)
            when = value.replace(tzinfo=None)
        elif not isinstance(value, str):
            raise PydanticCustomError(
                "datetime_type", "expected an ISO 8601 date or date-time string such as "
                "2024-05-31 or 2024-05-31T00:00:00 (epoch numbers are not accepted)")
        else:
            m = regex.search(value)
            if m is None:
                raise PydanticCustomError(
                    "datetime_format", "expected an ISO 8601 date or date-time between "
                    f"{cfg.min_date} and {cfg.max_date}, such as 2024-05-31T00:00:00 "
                    "(an offset such as Z or +02:00 is allowed and dropped)")
            year = int(m["Y"] or m["LY"])
            month, dom = (int(x) for x in (m["md"] or m["ld"]).split("-"))
            frac = (m["F"] or "").ljust(6, "0")
            when = datetime(year, month, dom, int(m["H"] or 0), int(m["M"] or 0),
                            int(m["S"] or 0), int(frac or 0))
        if not lo <= when <= hi:
            raise PydanticCustomError(
                "datetime_bounds", f"date outside [{cfg.min_date}, {cfg.max_date}]")
        return when

    schema = {"type": "string", "pattern": pattern,
              "description": f"{description} {date_note(cfg)}",
              "examples": ["2024-05-31T00:00:00"]}
    return Annotated[datetime, PlainValidator(parse, json_schema_input_type=str),
                     WithJsonSchema(schema)]


def _integral(value):
    """JSON Schema's integer includes 3.0: accept a float with no fractional part as that
    integer (strings and booleans stay refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(lo: int, hi: int):
    """A request integer in [lo, hi]: strict (no "3", no true), but 3.0 is 3 (as the JSON
    schema says)."""
    return Annotated[int, BeforeValidator(_integral), Field(ge=lo, le=hi),
                     WithJsonSchema({"type": "integer", "minimum": lo, "maximum": hi})]


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
            return integer(0, upper) | None, Field(None, description=desc)
        return integer(0, upper), Field(0, description=desc)
    if dtype == "bool":
        return bool, Field(False, description=desc)
    if dtype.startswith("datetime64"):
        when = business_time(cfg, desc)
        note = f"{desc} {date_note(cfg)}"
        if required:
            return when, Field(..., description=note)
        return when | None, Field(None, description=note)
    raise TypeError(f"item-state column {name!r} has an unsupported dtype {dtype!r}")


class _Strict(BaseModel):
    """Request models: strict JSON types (true is not 1.0, "3" is not 3), no unknown fields,
    strings taken as sent (an id is not trimmed)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# Response date-times are naive business time, written by the server as below.
OutDatetime = Annotated[datetime, WithJsonSchema(
    {"type": "string", "pattern": OUT_DATETIME_PATTERN,
     "description": "Naive business time, ISO 8601 without offset."})]


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(..., description="Path of the problem in the request body "
                                                  "(a field name the API does not know is "
                                                  "never echoed).")
    msg: str = Field(..., description="The problem, without the value sent.")
    type: str = Field(..., description="Machine-readable kind, e.g. missing, int_type, "
                                       "date_order, duplicate.")


class ErrorResponse(BaseModel):
    """Every error of the API has this shape (400, 401, 404, 405, 408, 409, 413, 415, 422, 500,
    503); `detail` is empty when there is nothing per field to say."""

    error: str = Field(..., description="What went wrong, never quoting the request.")
    detail: list[ErrorDetail] = Field(default_factory=list)


class Metadata(BaseModel):
    """GET /metadata. When not ready, only `ready`, `error` (a category, never an exception
    text) and the loading state; when ready, what is served (ModelInfo, contract, metrics,
    limits, ledger)."""

    model_config = ConfigDict(extra="allow")
    ready: bool
    error: str | None = None


class ModelInfo(BaseModel):
    registered_model: str | None = Field(None, description="MLflow registered model name.")
    version: int | None = Field(None, description="Registered model version served.")
    aliases: list[str] = Field(default_factory=list, description="Aliases on that version.")
    run_id: str | None = Field(None, description="MLflow run that trained it.")
    feature_set_version: str = Field(..., description="Version of the feature definitions.")
    store_as_of: OutDatetime | None = Field(None, description="Customer-history snapshot "
                                                              "time.")
    ledger: str | None = Field(None, description="Name of the ledger the model learned from "
                               "(null when the model records none); a request naming another "
                               "ledger is refused with 409.")


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
    p_very_late: float = Field(..., description=(
        "Chance of paying more than 30 days late or not at all (the threshold is the served "
        "model's very_late_days, GET /metadata): calibrated P(paid more than very_late_days "
        "after the due date, or written off) of the very-late model, at most p_late. The "
        "worklist is ordered by open_amount x p_very_late; the reasons explain it."))
    delay_buckets: list[DelayBucket] = Field(..., description=(
        "P(each delay bucket of the served model), from on time to the open-ended last "
        "bucket; sums to 1."))
    risk_class: Literal["low", "medium", "high", "very_high"]
    days_to_clear_p10: float | None = Field(..., description="10 % quantile of days from as_of to "
                                                      "clearing.")
    days_to_clear_p50: float | None = Field(..., description="Median days from as_of to clearing.")
    days_to_clear_p90: float | None = Field(..., description="90 % quantile of days to clearing.")
    pay_date_p10: date | None
    pay_date_p50: date | None
    pay_date_p90: date | None
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
    as_of: OutDatetime
    model: ModelInfo
    items: list[ScoredItem]


class Reason(BaseModel):
    feature: str = Field(..., description="Feature name (for machines; collectors read "
                                          "`sentence`).")
    value: float | str | bool | None = Field(..., description="The feature's value.")
    contribution: float = Field(..., description="SHAP contribution in log-odds of the "
                                                 "ranking model (p_very_late's).")
    direction: Literal["raises", "lowers"]
    sentence: str
    weight: float = Field(..., description="The reason's share of the move from the base rate "
                                           "to p_very_late, in probability (0.12 = 12 "
                                           "percentage points); signed like the contribution.")


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
    as_of: OutDatetime
    model: ModelInfo
    summary: RerankSummary
    items: list[RankedItem]


class Contribution(BaseModel):
    feature: str
    value: float | str | bool | None
    contribution: float
    sentence: str
    weight: float = Field(..., description="Share of the move from base_probability to "
                                           "p_very_late, in probability (all weights add up "
                                           "to p_very_late - base_probability).")


class ExplainResponse(BaseModel):
    as_of: OutDatetime
    model: ModelInfo
    item: ScoredItem
    base_value: float = Field(..., description="Expected log-odds of the ranking (very-late) "
                                               "model (before calibration).")
    base_probability: float = Field(..., description="The base rate the weights start from: "
                                                     "the calibrated probability at "
                                                     "base_value.")
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
        as_of = (business_time(cfg, "Scoring time t (business time); items must be posted "
                                    "by then. Default (absent or null): now.") | None,
                 Field(None, description="Scoring time t; default now."))
        items = (list[self.OpenItem], Field(
            ..., min_length=1, json_schema_extra={"maxItems": cfg.max_items}, description=(
                f"Open items; more than {cfg.max_items} are refused with 413.")))
        ledger = (str | None, Field(None, min_length=1, max_length=_ID_LIMIT, description=(
            "Name of the ledger the items come from (optional). When given and not the "
            "ledger the served model was trained on (GET /metadata `ledger`), the request is "
            "refused with 409.")))
        self.ScoreRequest = create_model("ScoreRequest", __base__=_Strict, as_of=as_of,
                                         items=items, ledger=ledger)
        self.RerankRequest = create_model(
            "RerankRequest", __base__=_Strict, as_of=as_of, items=items, ledger=ledger,
            capacity=(integer(1, cfg.max_items) | None, Field(None, description=(
                "Items the collector can work; summary compares ML and rule order on them."))))
        self.ExplainRequest = create_model(
            "ExplainRequest", __base__=_Strict, as_of=as_of, ledger=ledger,
            item=(self.OpenItem, Field(..., description="The item to explain.")))
        self.LatestWorklistRequest = create_model(
            "LatestWorklistRequest", __base__=_Strict,
            __doc__="Which collector's worklist to load from the latest batch (in the body, so "
                    "no name reaches a URL).",
            collector=(str | None, Field(None, min_length=1, max_length=_ID_LIMIT, description=(
                "The collector (customer master KNB1-SACHP; 'unassigned' for customers without "
                "one). Absent or null: only what the batch holds (as_of, collectors), no "
                "items. A collector the batch does not list has an empty worklist."))))
        self.LatestWorklistResponse = create_model(
            "LatestWorklistResponse",
            __doc__="A collector's open items from the newest batch scoring (`paydelay score`), "
                    "in the /rerank request's shape: post as_of, items and ledger to /rerank.",
            as_of=(OutDatetime, Field(..., description=(
                "The batch's scoring time: the items' states are as of then; re-rank them as "
                "of it."))),
            ledger=(str | None, Field(None, description=(
                "The ledger the batch scored (null when it records none); /rerank refuses it "
                "with 409 when it is not the served model's."))),
            collectors=(list[str], Field(..., description=(
                "Every collector with open items in the batch, sorted."))),
            collector=(str | None, Field(None, description="The collector asked for.")),
            n_items=(int, Field(..., ge=0, description=(
                "The collector's open items in the batch (0 when none was asked for, or the "
                "batch lists no such collector)."))),
            items=(list[self.OpenItem], Field(..., description=(
                f"The collector's open items, riskiest money first as the batch ranked them; "
                f"the first {cfg.max_items} (max_items) when there are more."))))


_ERRORS = {
    400: "Malformed request: not JSON, wrong types (strict), missing or unknown fields, values "
         "outside their bounds. `detail` names each field (never the value sent).",
    401: "Missing or wrong bearer token (header `Authorization: Bearer <token>`).",
    405: "Method not allowed (POST only).",
    408: "The request body was not received in time.",
    409: "The request's `ledger` is not the ledger the served model was trained on.",
    413: "Body larger than max_body_bytes, or more items than max_items.",
    415: "Content-Type is not application/json (the body is not read).",
    422: "Well-formed but impossible items (e.g. due date before posting date, an amount above "
         "the invoice amount, an item posted after as_of, duplicate invoice ids).",
    503: "The model is not loaded (yet): retry when /readyz is 200.",
}
# The answers of /latest_worklist, which reads no items: a 404 instead of 409 and 422.
_LATEST_ERRORS = {
    **{code: text for code, text in _ERRORS.items() if code not in (409, 422)},
    404: "No batch-scored worklist in the scores folder yet (`paydelay score` writes one).",
}


def openapi_document(api: ApiModels, token_required: bool, version: str = "1") -> dict:
    """The published OpenAPI 3.1 document: request bodies required, every response code the
    service answers with its schema, the bearer scheme (when a token is configured), dates with
    their pattern and bounds. Served at /docs.json; a validator and a schema-driven fuzzer check
    it against the real server (tests/e2e/test_openapi_contract.py)."""
    from pydantic.json_schema import models_json_schema  # noqa: PLC0415

    models = [(api.ScoreRequest, "validation"), (api.RerankRequest, "validation"),
              (api.ExplainRequest, "validation"), (api.LatestWorklistRequest, "validation"),
              (ScoreResponse, "serialization"), (RerankResponse, "serialization"),
              (ExplainResponse, "serialization"), (api.LatestWorklistResponse, "serialization"),
              (ErrorResponse, "serialization"), (Metadata, "serialization")]
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    ref = {model: refs[(model, mode)] for model, mode in models}
    json = "application/json"
    text = {"text/plain": {"schema": {"type": "string"}}}

    def errors(answers: dict[int, str]) -> dict:
        return {str(code): {"description": answer,
                            "content": {json: {"schema": ref[ErrorResponse]}}}
                for code, answer in sorted(answers.items()) if code != 401 or token_required}

    def post(summary: str, request, response, answers: dict[int, str] = _ERRORS) -> dict:
        op = {"summary": summary,
              "requestBody": {"required": True, "content": {json: {"schema": ref[request]}}},
              "responses": {"200": {"description": "OK",
                                    "content": {json: {"schema": ref[response]}}},
                            **errors(answers)}}
        if token_required:
            op["security"] = [{"bearer": []}]
        return {"post": op}

    cfg = api.cfg
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "paydelay", "version": version, "description": (
            "Payment-delay risk, payment dates and worklist re-ranking for AR collections. "
            f"Requests are JSON (Content-Type: application/json, at most {cfg.max_body_bytes} "
            f"bytes, at most {cfg.max_items} items). Dates are ISO 8601 between "
            f"{cfg.min_date} and {cfg.max_date}; an offset is accepted and dropped (business "
            "time is the wall-clock time written). Every error has the ErrorResponse shape.")},
        "paths": {
            "/score": post("Score open items", api.ScoreRequest, ScoreResponse),
            "/rerank": post("Re-rank a worklist", api.RerankRequest, RerankResponse),
            "/explain": post("Explain one item", api.ExplainRequest, ExplainResponse),
            "/latest_worklist": post("A collector's open items from the latest batch scoring",
                                     api.LatestWorklistRequest, api.LatestWorklistResponse,
                                     _LATEST_ERRORS),
            "/metadata": {"get": {"summary": "What is served", "responses": {
                "200": {"description": "Model, contract, metrics, limits (or not ready)",
                        "content": {json: {"schema": ref[Metadata]}}}}}},
            "/livez": {"get": {"summary": "Liveness: 503 when the service cannot recover",
                               "responses": {"200": {"description": "alive", "content": text},
                                             "503": {"description": "dead", "content": text}}}},
            "/readyz": {"get": {"summary": "Readiness: 200 once the model is loaded",
                                "responses": {"200": {"description": "ready", "content": text},
                                              "503": {"description": "not ready",
                                                      "content": text}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text format", "content": text}}}},
        },
        "components": {"schemas": defs.get("$defs", {})},
    }
    if token_required:
        doc["components"]["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "The token of $PAYDELAY_API_TOKEN; guards /score, /rerank, "
                           "/explain and /latest_worklist."}}
    return doc


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


__all__ = ["ApiModels", "ErrorResponse", "ErrorDetail", "Metadata", "openapi_document", "date_pattern",
           "business_time", "ModelInfo", "DelayBucket", "ScoredItem", "ScoreResponse", "Reason",
           "RankedItem", "RerankSummary", "RerankResponse", "Contribution", "ExplainResponse",
           "ITEM_NOTES", "REQUIRED_ITEM_FIELDS", "item_description", "items_payload"]
