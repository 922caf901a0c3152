"""The event log's single source of truth: columns, activities, payment terms, customer master.

Everything that reads, writes, validates, simulates or explains an event log takes its names from
here. Each column carries its name in the process-mining event-log data model (`seed_name`, e.g.
InvoiceNumber) and the SAP field it comes from, so a data scientist holding an SAP extract can map
it without guessing. `seed_*` names throughout refer to that event-log data model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

@dataclass(frozen=True)
class Column:
    """One column of a table: our snake_case name, the data model's name, the SAP source and its
    meaning."""

    name: str
    kind: str  # "datetime" | "string" | "float" | "int" | "bool"
    seed_name: str | None
    sap_field: str | None
    description: str
    required: bool = False


# Event log columns. `amount` is read by activity: ActivitySpec.amount_meaning says what it means
# on each activity (docs/input_contract.md lists them, generated from this module).
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_time", "datetime", "EventTime", "BKPF-BUDAT / BKPF-CPUDT+CPUTM",
           "When the activity happened (business time).", required=True),
    Column("activity", "string", "ActivityName", "derived from TCODE / BLART / change logs",
           "Which of the fourteen activities happened.", required=True),
    Column("invoice_id", "string", "InvoiceNumber", "BKPF-BELNR",
           "The invoice (case id) the event belongs to.", required=True),
    Column("customer_id", "string", "Kunnr", "KUNNR",
           "The customer account.", required=True),
    Column("company_code", "string", "Bukrs", "BUKRS",
           "Legal entity the receivable is booked in."),
    Column("collector", "string", "Sachp", "KNB1-SACHP",
           "Accounting clerk / collector responsible for the customer."),
    Column("net_due_date", "datetime", "NetDueDate", "BSID-FAEDT (NETDT)",
           "Contractual due date of the invoice."),
    Column("amount", "float", "Dmbtr", "BSEG-DMBTR",
           "Amount in local currency; its meaning depends on the activity (see the activities)."),
    Column("dunning_level", "int", "Mahns", "BSID-MAHNS / MHNK-MAHNS",
           "Dunning level reached by this dunning run (1 to 4)."),
    Column("risk_category", "string", "Ctlpc", "KNKK-CTLPC",
           "Credit risk category of the customer when the event happened."),
    Column("credit_limit", "float", "Klimk", "KNKK-KLIMK",
           "Credit limit of the customer when the event happened."),
    Column("payment_terms", "string", "Zterm", "KNB1-ZTERM / BSEG-ZTERM",
           "Payment terms key of the invoice (e.g. NT30, Z210)."),
    Column("document_type", "string", "Blart", "BKPF-BLART",
           "Financial document type (RV invoice, DZ payment, DG credit memo, AB clearing...)."),
    Column("clearing_document", "string", "Augbl", "BSAD-AUGBL",
           "Document that cleared the invoice (set on 'invoice cleared')."),
    Column("dispute_case_id", "string", "DisputeCaseId", "UDM_CASE_ATTR00-CASE_GUID",
           "Dispute case linked to the invoice."),
    Column("is_written_off", "bool", "IsWrittenOff", "BSEG-RSTGR / BKPF-BLART",
           "True when the invoice was finally written off as bad debt."),
    Column("promised_date", "datetime", "PromisedDate", "UDM_P2P_ATTR-PROMISE_DATE",
           "Date the customer promised to pay by (on 'promise to pay created')."),
    Column("payment_block", "string", "PaymentBlock", "BSEG-ZLSPR",
           "Payment block key set on the item; blank on a 'payment block set' event lifts the block."),
    Column("customer_segment", "string", "CustomerSegment", "KNA1-KTOKD",
           "Customer segment (key account, SME, public sector...)."),
    Column("user_name", "string", "UserName", "BKPF-USNAM",
           "User who executed the activity."),
    Column("source_system", "string", "SourceSystemId", "LOGSYS",
           "System the event was extracted from."),
    Column("recorded_time", "datetime", "RecordedTime", "BKPF-CPUDT+CPUTM / CDHDR-UDATE",
           "When the event was entered in the system, if later than its business time."),
    Column("last_refresh", "datetime", "LastDataRefreshTimestamp", None,
           "When the extract was taken; the 'now' of scoring."),
)

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS)
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS if c.required)
COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in EVENT_COLUMNS}


class Activity(StrEnum):
    """The fourteen activities of the event-log data model; the value is the canonical code stored
    in logs."""

    INVOICE_POSTED = "invoice_posted"
    DUE_DATE_PASSED = "due_date_passed"
    DUNNING_RUN = "dunning_run"
    COLLECTION_CONTACT = "collection_contact"
    PROMISE_TO_PAY_CREATED = "promise_to_pay_created"
    PROMISE_TO_PAY_BROKEN = "promise_to_pay_broken"
    DISPUTE_CASE_CREATED = "dispute_case_created"
    DISPUTE_CASE_RESOLVED = "dispute_case_resolved"
    PAYMENT_BLOCK_SET = "payment_block_set"
    CREDIT_MEMO_POSTED = "credit_memo_posted"
    INCOMING_PAYMENT_POSTED = "incoming_payment_posted"
    RESIDUAL_ITEM_CREATED = "residual_item_created"
    INVOICE_CLEARED = "invoice_cleared"
    INVOICE_WRITTEN_OFF = "invoice_written_off"


@dataclass(frozen=True)
class ActivitySpec:
    activity: Activity
    label: str  # English display name
    seed_label: str  # French name used in the event-log data model
    event_type: str  # "explicit" | "inferred" | "calculated"
    sap_source: str
    document_type: str | None  # usual BLART where the activity is a posting
    amount_meaning: str = "not read"  # what `amount` means on this activity
    # Columns this activity must carry; a row without one is quarantined (missing_activity_value).
    required_values: tuple[str, ...] = ()
    # The event decides the invoice's outcome (what is paid, credited, still open, or closed): when
    # such an event is quarantined the whole invoice is, or it would become a phantom open item.
    decides_outcome: bool = False


ACTIVITIES: tuple[ActivitySpec, ...] = (
    ActivitySpec(Activity.INVOICE_POSTED, "Invoice Posted", "Facture comptabilisée", "explicit",
                 "BKPF/BSEG creation, BLART RV or DR", "RV",
                 amount_meaning="the invoice amount (gross, >= 0)",
                 required_values=("amount", "net_due_date")),
    ActivitySpec(Activity.DUE_DATE_PASSED, "Payment Due Date Passed",
                 "Date d'échéance du paiement dépassée", "calculated",
                 "BSID-NETDT compared with the timeline", None),
    ActivitySpec(Activity.DUNNING_RUN, "Dunning Run Executed", "Lancement de relance exécuté",
                 "explicit", "MHNK-LAUFD / MHNK-MAHNS", None),
    ActivitySpec(Activity.COLLECTION_CONTACT, "Collection Contact Recorded",
                 "Contact de Recouvrement Enregistré", "explicit",
                 "FSCM Collections customer contact (UDM_CONTACT)", None),
    ActivitySpec(Activity.PROMISE_TO_PAY_CREATED, "Promise To Pay Created",
                 "Promesse de paiement créée", "explicit", "UDM_P2P_ATTR creation", None,
                 amount_meaning="the promised amount (optional)",
                 required_values=("promised_date",)),
    ActivitySpec(Activity.PROMISE_TO_PAY_BROKEN, "Promise To Pay Broken",
                 "Promesse de paiement non respectée", "calculated",
                 "UDM_P2P_ATTR promise date against BSAD-AUGDT", None,
                 amount_meaning="the amount of the broken promise (copied, not read)"),
    ActivitySpec(Activity.DISPUTE_CASE_CREATED, "Dispute Case Created", "Cas de litige créé",
                 "explicit", "UDM_CASE / SCMG_T_CASE_ATTR creation", None,
                 amount_meaning="the disputed amount"),
    ActivitySpec(Activity.DISPUTE_CASE_RESOLVED, "Dispute Case Resolved",
                 "Cas de Litige Résolu", "inferred", "UDM_CASE status change (CDHDR/CDPOS)", None),
    ActivitySpec(Activity.PAYMENT_BLOCK_SET, "Payment Block Set",
                 "Facture bloquée pour paiement", "inferred", "BSEG-ZLSPR change (CDHDR/CDPOS)",
                 None),
    ActivitySpec(Activity.CREDIT_MEMO_POSTED, "Credit Memo Posted", "Avoir comptabilisé",
                 "explicit", "BKPF creation, BLART DG or G2", "DG",
                 amount_meaning="the credit granted against the invoice (negative: a cancelled "
                                "credit memo)",
                 required_values=("amount",), decides_outcome=True),
    ActivitySpec(Activity.INCOMING_PAYMENT_POSTED, "Incoming Payment Posted",
                 "Document de paiement entrant enregistré", "explicit",
                 "BKPF creation, BLART DZ", "DZ",
                 amount_meaning="the amount paid against the invoice (negative: a returned "
                                "payment)",
                 required_values=("amount",), decides_outcome=True),
    ActivitySpec(Activity.RESIDUAL_ITEM_CREATED, "Residual Item Created",
                 "Poste résiduel créé", "inferred", "clearing document with a new open item",
                 "AB", amount_meaning="the balance still open after a partial clearing",
                 required_values=("amount",), decides_outcome=True),
    ActivitySpec(Activity.INVOICE_CLEARED, "Invoice Cleared", "Facture apurée", "inferred",
                 "BSAD-AUGDT / BSAD-AUGBL", None, decides_outcome=True),
    ActivitySpec(Activity.INVOICE_WRITTEN_OFF, "Invoice Written Off", "Facture passée en perte",
                 "inferred", "clearing with BSEG-RSTGR write-off reason", "AB",
                 amount_meaning="the amount lost", decides_outcome=True),
)

ACTIVITY_SPECS: dict[Activity, ActivitySpec] = {a.activity: a for a in ACTIVITIES}
CALCULATED_ACTIVITIES: frozenset[Activity] = frozenset(
    a.activity for a in ACTIVITIES if a.event_type == "calculated"
)
# Columns each activity must carry (validation quarantines a row without one).
ACTIVITY_REQUIRED_VALUES: dict[Activity, tuple[str, ...]] = {
    a.activity: a.required_values for a in ACTIVITIES if a.required_values
}
# Activities whose quarantine quarantines their whole invoice (see ActivitySpec.decides_outcome).
OUTCOME_ACTIVITIES: frozenset[Activity] = frozenset(
    a.activity for a in ACTIVITIES if a.decides_outcome
)


def activities_requiring(column: str) -> tuple[Activity, ...]:
    """Activities that must carry `column` (beyond the columns every row needs)."""
    return tuple(a.activity for a in ACTIVITIES if column in a.required_values)


# Outcomes that end an invoice's life; features at t must never see them when they are after t.
TERMINAL_ACTIVITIES: frozenset[Activity] = frozenset(
    {Activity.INVOICE_CLEARED, Activity.INVOICE_WRITTEN_OFF}
)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9àâäéèêëîïôöùûüç]+", "_", text.strip().lower()).strip("_")


# Every spelling a reader accepts for an activity: our code, the English label, the data model's
# French label, case- and punctuation-insensitive.
ACTIVITY_ALIASES: dict[str, Activity] = {
    _norm(alias): spec.activity
    for spec in ACTIVITIES
    for alias in (spec.activity.value, spec.label, spec.seed_label)
}


def normalise_activity_name(text: str) -> str:
    """Key used to look a raw activity name up in ACTIVITY_ALIASES."""
    return _norm(text)


# Customer master data that changes over time: one row per validity interval, read as of t.
MASTER_COLUMNS: tuple[Column, ...] = (
    Column("customer_id", "string", "Kunnr", "KUNNR", "The customer account.", required=True),
    Column("valid_from", "datetime", "ValidFrom", "CDHDR-UDATE",
           "First instant this version of the master record is in force.", required=True),
    Column("valid_to", "datetime", "ValidTo", None,
           "Instant the next version takes over (NaT while current)."),
    Column("risk_category", "string", "Ctlpc", "KNKK-CTLPC", "Credit risk category."),
    Column("credit_limit", "float", "Klimk", "KNKK-KLIMK", "Credit limit in local currency."),
    Column("customer_segment", "string", "CustomerSegment", "KNA1-KTOKD", "Customer segment."),
    Column("collector", "string", "Sachp", "KNB1-SACHP", "Collector responsible."),
    Column("payment_terms", "string", "Zterm", "KNB1-ZTERM", "Default payment terms key."),
)
MASTER_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in MASTER_COLUMNS)

# Data-model / SAP spellings a reader accepts, mapped to our names (exact data-model names and SAP
# fields).
SEED_TO_CANONICAL: dict[str, str] = {
    **{c.seed_name: c.name for c in EVENT_COLUMNS if c.seed_name},
    **{c.seed_name: c.name for c in MASTER_COLUMNS if c.seed_name},
}
SAP_TO_CANONICAL: dict[str, str] = {
    "BUDAT": "event_time", "BELNR": "invoice_id", "KUNNR": "customer_id", "BUKRS": "company_code",
    "SACHP": "collector", "FAEDT": "net_due_date", "NETDT": "net_due_date", "DMBTR": "amount",
    "MAHNS": "dunning_level", "CTLPC": "risk_category", "KLIMK": "credit_limit",
    "ZTERM": "payment_terms", "BLART": "document_type", "AUGBL": "clearing_document",
    "ZLSPR": "payment_block", "KTOKD": "customer_segment", "USNAM": "user_name",
    "LOGSYS": "source_system",
}


@dataclass(frozen=True)
class PaymentTerms:
    code: str
    net_days: int
    discount_days: int = 0
    discount_pct: float = 0.0
    description: str = ""


# Payment terms keys the simulator uses and the features understand; other keys are parsed by
# `parse_payment_terms`, and anything unparseable falls back to (net due date - posting date).
PAYMENT_TERMS: dict[str, PaymentTerms] = {
    t.code: t
    for t in (
        PaymentTerms("0001", 0, description="payable immediately"),
        PaymentTerms("NT15", 15, description="net 15 days"),
        PaymentTerms("NT30", 30, description="net 30 days"),
        PaymentTerms("NT45", 45, description="net 45 days"),
        PaymentTerms("NT60", 60, description="net 60 days"),
        PaymentTerms("ZD60", 60, description="60 days end of month"),
        PaymentTerms("Z210", 30, 10, 2.0, description="2 % within 10 days, net 30"),
        PaymentTerms("Z315", 45, 15, 3.0, description="3 % within 15 days, net 45"),
    )
}

_TERMS_PATTERNS = (
    (re.compile(r"^(?:NT|N|NET\s*)(\d{1,3})$", re.I), lambda m: PaymentTerms(m[0], int(m[1]))),
    (re.compile(r"^(\d+(?:\.\d+)?)\s*/\s*(\d{1,3})\s*,?\s*net\s*(\d{1,3})$", re.I),
     lambda m: PaymentTerms(m[0], int(m[3]), int(m[2]), float(m[1]))),
)


def parse_payment_terms(code: str | None) -> PaymentTerms | None:
    """Known key, 'NT30'/'net 30', or '2/10 net 30'; None when the key says nothing usable."""
    if code is None:
        return None
    code = str(code).strip()
    if code in PAYMENT_TERMS:
        return PAYMENT_TERMS[code]
    for pattern, build in _TERMS_PATTERNS:
        match = pattern.match(code)
        if match:
            return build(match)
    return None


# Risk categories ordered from safest to riskiest (KNKK-CTLPC keys as the simulator writes them).
RISK_CATEGORIES: tuple[str, ...] = ("A01", "B02", "C03", "D04", "E05")
SEGMENTS: tuple[str, ...] = ("key_account", "mid_market", "sme", "public_sector", "intercompany")
DUNNING_LEVELS: tuple[int, ...] = (1, 2, 3, 4)


# --- Training / scoring rows: the contract between features, training and serving -------------
# A row is (invoice, snapshot time t). Key columns identify it, label columns come only from
# events after t, and the feature columns are listed in features.pit.feature_spec.FEATURES.
ROW_KEY_COLUMNS: tuple[str, ...] = (
    "invoice_id",  # string
    "customer_id",  # string
    "company_code",  # string
    "snapshot_time",  # datetime64: t; features use events with event_time <= t only
    "snapshot_kind",  # "posting" | "grid" | "now"
    "posting_time",  # datetime64: when the invoice was posted
    "net_due_date",  # datetime64
    "open_amount",  # float: what is still owed at t (used to value the worklist)
)
LABEL_COLUMNS: tuple[str, ...] = (
    "label_late",  # float 1.0 / 0.0: cleared after due date + grace days; NaN when censored
    "label_delay_bucket",  # Int8 0..4: on time, 1-30, 31-60, 61-90, >90 days late; NA if censored
    "label_days_late",  # float: outcome date - net due date in days (may be negative); NaN if censored
    "label_days_to_clear",  # float: days from t to clearing or write-off; NaN when censored
    "label_written_off",  # bool: the invoice ended in a write-off (False when censored)
    "censored",  # bool: the outcome is not known at the end of the log / the cutoff
    "observed_days",  # float: days from t to the outcome, or to the end of observation if censored
    "outcome_time",  # datetime64: clearing or write-off time; NaT when censored
)
DELAY_BUCKET_NAMES: tuple[str, ...] = ("on_time", "late_1_30", "late_31_60", "late_61_90",
                                       "late_over_90")
