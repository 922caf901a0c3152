"""The SAP table -> event log mapping of the data-model document (seed 001), as data.

One readable table per SAP table (`TABLES`): the fields it must and may carry, how each is read
(its kind: SAP date YYYYMMDD, time HHMMSS, timestamp YYYYMMDDHHMMSS, amount, id with leading zeros)
and what it becomes in the event log or the customer master. `ACTIVITY_RULES` says, activity by
activity, which tables and fields produce it; `MASTER_RULES` the same for the master history.
The reader (`features.ingest.sap`) takes its required columns, parsers and id widths from here,
the simulator's writer (`features.simulate.sap_tables`) its column lists, and
`features.ingest.sap_docs` renders all of it as docs/sap_extracts.md. A rule is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

# Kinds of SAP fields and how they are read (the documentation prints this table too).
KINDS: dict[str, str] = {
    "id": "text key; purely numeric values are padded with leading zeros to the field's length "
          "(SAP's ALPHA conversion), so 100000 and 0000100000 are the same customer",
    "text": "text, surrounding spaces removed",
    "date": "SAP date YYYYMMDD (ISO YYYY-MM-DD also accepted); blank or 00000000 is empty",
    "time": "SAP time HHMMSS (HH:MM:SS also accepted; leading zero may be missing)",
    "timestamp": "SAP timestamp YYYYMMDDHHMMSS (DEC 15; a fraction after '.' is ignored), taken "
                 "as system time like every other time here",
    "amount": "decimal with '.' (SAP's trailing minus 100.00- is accepted)",
    "int": "whole number",
    "currency": "currency key (EUR, USD...)",
}


@dataclass(frozen=True)
class Field:
    """One SAP field of an extract: its kind, whether the table is unusable without it, and what
    it becomes."""

    name: str
    kind: str
    maps_to: str
    required: bool = False
    width: int | None = None  # id fields: SAP length for the leading zeros
    aliases: tuple[str, ...] = ()  # other field names accepted for it (older releases, labels)


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    required: bool
    fields: tuple[Field, ...]
    yields: str  # what the table produces
    if_missing: str  # what it means when the table is not in the folder (stated in the summary)
    export_hint: str  # what the basis team selects in SE16N / which ODP source
    aliases: tuple[str, ...] = ()  # other file names accepted for this table

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def _id(name: str, width: int | None, maps_to: str, required: bool = False,
        aliases: tuple[str, ...] = ()) -> Field:
    return Field(name, "id", maps_to, required, width, aliases)


_DOC_KEY = (
    _id("BUKRS", 4, "company_code", True),
    _id("BELNR", 10, "invoice_id of an invoice document; links every other table", True),
    _id("GJAHR", 4, "part of the document key (fiscal year)", True),
)
_ITEM_FIELDS = (
    _id("BUKRS", 4, "company_code", True),
    _id("KUNNR", 10, "customer_id", True),
    _id("BELNR", 10, "document of the line item (BKPF key)", True),
    _id("GJAHR", 4, "document fiscal year (BKPF key)", True),
    _id("BUZEI", 3, "line item number", True),
    Field("SHKZG", "text", "sign: S debit (invoice, residual item) / H credit (payment, credit "
          "memo)", True),
    Field("DMBTR", "amount", "amount in local currency (signed by SHKZG)", True),
    Field("NETDT", "date", "net_due_date (S/4HANA field; FAEDT in reports and older extracts)",
          aliases=("FAEDT",)),
    Field("ZFBDT", "date", "baseline date: net_due_date = ZFBDT + ZBD3T, else ZBD2T, else ZBD1T "
          "days, else + the net days of ZTERM, when NETDT/FAEDT is not exported"),
    Field("ZBD1T", "int", "cash discount days 1 (or net days of net-only terms)"),
    Field("ZBD2T", "int", "cash discount days 2 (net days of two-step terms)"),
    Field("ZBD3T", "int", "net payment days"),
    _id("ZTERM", None, "payment_terms of the invoice"),
    _id("REBZG", 10, "invoice the item belongs to (credit memo, payment, residual item); "
        "chains of residual items are followed to the first invoice"),
    _id("REBZJ", 4, "fiscal year of REBZG (empty: the same BELNR in any year)"),
    _id("REBZZ", 3, "line item of REBZG"),
    Field("MANST", "int", "current dunning level (BSID-MANST; MAHNS accepted): used with MADAT "
          "only when MHND is not exported", aliases=("MAHNS",)),
    Field("MADAT", "date", "last dunning date: a dunning run event when MHND is not exported"),
    _id("ZLSPR", None, "current payment block (history only from CDHDR/CDPOS)"),
    _id("RSTGR", None, "reason code; a write-off reason marks the clearing as a write-off"),
    _id("AUGBL", 10, "clearing document: the last clearing of an invoice's items is "
        "invoice_cleared (or invoice_written_off), clearing_document"),
    Field("AUGDT", "date", "clearing date (time of day from the clearing document's BKPF)"),
    _id("AUGGJ", 4, "fiscal year of the clearing document (else the year of AUGDT)"),
)


def _cleared(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    out = []
    for f in fields:
        if f.name in ("AUGBL", "AUGDT"):
            f = Field(f.name, f.kind, f.maps_to, True, f.width, f.aliases)
        out.append(f)
    return tuple(out)


TABLES: tuple[Table, ...] = (
    Table(
        "BKPF", "Accounting document header", True,
        _DOC_KEY + (
            Field("BLART", "text", "document_type; decides the activity with the configured "
                  "document types (invoice, credit memo, payment, clearing, write-off)", True),
            Field("BUDAT", "date", "event_time (posting date)", True),
            Field("CPUDT", "date", "recorded_time (entry date)"),
            Field("CPUTM", "time", "recorded_time (entry time); also the event's time of day "
                  "when CPUDT = BUDAT"),
            _id("USNAM", None, "user_name"),
            Field("HWAER", "currency", "local currency of DMBTR, checked against T001-WAERS / "
                  "sap.company_currencies"),
            Field("WAERS", "currency", "document currency (not used: amounts are DMBTR, local)"),
            Field("TCODE", "text", "not used (kept for the basis team's checks)"),
        ),
        "invoice_posted, credit_memo_posted, incoming_payment_posted, residual_item_created "
        "(with the items), the time of invoice_cleared / invoice_written_off",
        "required: no invoice can be posted without its header",
        "SE16N BKPF, all documents of the company codes with a customer line (join on BSID/BSAD "
        "BELNR) from the first posting date on; ODP: 0FI_GL_4 / ACDOCA header fields",
    ),
    Table(
        "BSID", "Customer open items", True, _ITEM_FIELDS,
        "the items still open at the extract: invoices, residual items, unapplied payments",
        "required (may be empty): without it no item is known to be open",
        "SE16N BSID, company codes in scope, all open customer items (S/4HANA: the BSID view or "
        "ACDOCA/BSEG with AUGBL empty); ODP: 0FI_AR_4",
    ),
    Table(
        "BSAD", "Customer cleared items", True, _cleared(_ITEM_FIELDS),
        "the cleared items: invoice_cleared / invoice_written_off from AUGBL/AUGDT",
        "required (may be empty): without it no invoice is ever cleared",
        "SE16N BSAD, company codes in scope, AUGDT from the first posting date on; ODP: 0FI_AR_4",
    ),
    Table(
        "BSEG", "Accounting document segment (reason codes)", False,
        _DOC_KEY + (
            _id("BUZEI", 3, "line item", True),
            _id("KOART", None, "account type (D customer, S G/L): any line counts"),
            _id("RSTGR", None, "reason code: a write-off reason on any line of the final "
                "clearing document makes it invoice_written_off", True),
        ),
        "write-off reason codes of clearing documents (also read from BSID/BSAD-RSTGR)",
        "write-offs are recognised by document type and by BSID/BSAD-RSTGR only",
        "SE16N BSEG, lines of the clearing documents with RSTGR not empty (any account type)",
    ),
    Table(
        "T001", "Company codes", False,
        (_id("BUKRS", 4, "company_code", True),
         Field("WAERS", "currency", "local currency: DMBTR and the dispute / promise amounts "
               "must be in it", True)),
        "the currency check of every amount",
        "amounts are checked against sap.company_currencies, else only against each other",
        "SE16N T001, BUKRS and WAERS of the company codes in scope",
    ),
    Table(
        "MHND", "Dunning data (items)", False,
        (Field("LAUFD", "date", "event_time of dunning_run (+ sap.dunning_run_time)", True),
         _id("LAUFI", None, "run identification"),
         _id("BUKRS", 4, "item key", True), _id("KUNNR", 10, "customer"),
         _id("BELNR", 10, "item key", True), _id("GJAHR", 4, "item key", True),
         _id("BUZEI", 3, "item key (empty: the document's customer item)"),
         Field("MAHNN", "int", "dunning_level reached by this run"),
         Field("MAHNS", "int", "dunning level before the run (used when MAHNN is missing)")),
        "dunning_run per dunned item and run",
        "dunning history is only the last run per open item (BSID-MADAT/MANST), or none",
        "SE16N MHND, LAUFD from the first posting date on, KOART = D; ODP: none standard "
        "(table extract)",
    ),
    Table(
        "MHNK", "Dunning data (account headers)", False,
        (Field("LAUFD", "date", "run date (checked only)", True), _id("LAUFI", None, "run id"),
         _id("KUNNR", 10, "customer"), Field("MAHNS", "int", "highest level of the notice")),
        "nothing by itself: the items of a run are in MHND",
        "nothing (MHND has the items)",
        "SE16N MHNK, same selection as MHND",
    ),
    Table(
        "SCMG_T_CASE_ATTR", "Case attributes (Dispute Management)", False,
        (_id("CASE_GUID", None, "links UDM_CASE_ATTR00 and the status change documents", True),
         _id("EXT_KEY", None, "dispute_case_id (else CASE_GUID)"),
         _id("CASE_TYPE", None, "not used"),
         Field("CREATE_TIME", "timestamp", "event_time of dispute_case_created"),
         _id("CREATED_BY", None, "user_name of dispute_case_created"),
         _id("STAT_ORDERNO", None, "status; its changes (CDHDR/CDPOS) give dispute_case_resolved")),
        "dispute_case_created (with UDM_CASE_ATTR00)",
        "no Dispute Management: no dispute events (disputes are unknown, not absent)",
        "SE16N SCMG_T_CASE_ATTR, CASE_TYPE of your dispute case types",
    ),
    Table(
        "UDM_CASE_ATTR00", "Dispute case attributes (FSCM)", False,
        (_id("CASE_GUID", None, "case key", True),
         _id("EXT_KEY", None, "dispute_case_id (when SCMG_T_CASE_ATTR is not exported)"),
         _id("FIN_BUKRS", 4, "company code of the disputed invoice"),
         _id("FIN_KUNNR", 10, "customer"),
         Field("FIN_DISPUTED_AMT", "amount", "amount of dispute_case_created"),
         Field("FIN_DISPUTE_CURR", "currency", "currency of the disputed amount (checked)"),
         _id("BELNR", 10, "disputed invoice (join it from the case's object link, "
             "SCMG_T_CASE_RECORD / UDMCASEATTR00 references, into the extract)", True),
         _id("GJAHR", 4, "fiscal year of the disputed invoice"),
         Field("CREATE_TIME", "timestamp", "event time when SCMG_T_CASE_ATTR is not exported"),
         _id("CREATED_BY", None, "user when SCMG_T_CASE_ATTR is not exported")),
        "dispute_case_created (amount, invoice)",
        "no Dispute Management: no dispute events (disputes are unknown, not absent)",
        "SE16N UDM_CASE_ATTR00 with the invoice of each case joined in",
    ),
    Table(
        "UDM_P2P_ATTR", "Promises to pay (FSCM Collections)", False,
        (_id("CASE_GUID", None, "promise key"),
         _id("BUKRS", 4, "company code of the invoice", True),
         _id("KUNNR", 10, "customer"),
         _id("BELNR", 10, "invoice promised", True), _id("GJAHR", 4, "its fiscal year"),
         Field("PROMISE_DATE", "date", "promised_date", True, aliases=("P2P_DATE",)),
         Field("PROMISED_AMT", "amount", "amount of promise_to_pay_created",
               aliases=("P2P_AMOUNT",)),
         Field("PROMISED_CURR", "currency", "currency of the promised amount (checked)"),
         Field("CREATE_TIME", "timestamp", "event_time of promise_to_pay_created", True),
         _id("CREATED_BY", None, "user_name")),
        "promise_to_pay_created; promise_to_pay_broken is derived (promised date + "
        "sap.promise_tolerance_days, invoice still open)",
        "no Collections Management promises: no promise events",
        "SE16N UDM_P2P_ATTR with the promised invoice items (UDM_P2P_ITEMS) joined in",
    ),
    Table(
        "UDM_CONTACT", "Customer contacts (FSCM Collections contact history)", False,
        (_id("BUKRS", 4, "company code of the invoice", True),
         _id("KUNNR", 10, "customer"),
         _id("BELNR", 10, "invoice the contact was about", True), _id("GJAHR", 4, "fiscal year"),
         Field("CREATE_TIME", "timestamp", "event_time of collection_contact", True),
         _id("CREATED_BY", None, "user_name (the collector)")),
        "collection_contact",
        "no contact history: no collection_contact events",
        "the Collections Management contact history (customer contact case type) with the "
        "invoices discussed; the table name differs by release: name the file UDM_CONTACT",
        aliases=("UDM_CCT_ATTR",),
    ),
    Table(
        "CDHDR", "Change document headers", False,
        (_id("OBJECTCLAS", None, "object class (BELEG, DEBI, KLIM, case management)", True),
         _id("OBJECTID", None, "changed object", True),
         _id("CHANGENR", 10, "change number", True),
         _id("USERNAME", None, "user_name of the change"),
         Field("UDATE", "date", "event_time of the change", True),
         Field("UTIME", "time", "time of day of the change")),
        "the time and user of every change read from CDPOS",
        "no history of changes: no payment block or dispute resolution events, master data "
        "only as of the extract",
        "SE16N CDHDR, OBJECTCLAS in (BELEG, DEBI, KLIM, your case object class), UDATE from the "
        "first posting date on",
    ),
    Table(
        "CDPOS", "Change document items", False,
        (_id("OBJECTCLAS", None, "object class", True),
         _id("OBJECTID", None, "changed object", True),
         _id("CHANGENR", 10, "change number", True),
         _id("TABNAME", None, "changed table", True),
         _id("TABKEY", None, "changed row: BSEG MANDT+BUKRS+BELNR+GJAHR+BUZEI, KNA1/KNB1/KNKK "
             "MANDT+KUNNR(+BUKRS/KKBER), case tables CASE_GUID", True),
         _id("FNAME", None, "changed field", True),
         _id("CHNGIND", None, "U update, I insert"),
         _id("VALUE_NEW", None, "value after the change"),
         _id("VALUE_OLD", None, "value before the change")),
        "payment_block_set (BSEG-ZLSPR), dispute_case_resolved (STAT_ORDERNO), master history "
        "(KNKK-CTLPC/KLIMK, KNA1-KTOKD, KNB1-SACHP/ZTERM)",
        "see CDHDR",
        "SE16N CDPOS for the CDHDR selection, TABNAME in (BSEG, KNA1, KNB1, KNKK, "
        "SCMG_T_CASE_ATTR)",
    ),
    Table(
        "KNA1", "Customer master (general)", False,
        (_id("KUNNR", 10, "customer_id", True),
         _id("KTOKD", None, "customer_segment (through sap.account_group_segments)"),
         Field("ERDAT", "date", "valid_from of the customer's first master version")),
        "customer_segment; the start of the master history",
        "no segment; master history starts at each customer's first event",
        "SE16N KNA1, customers of the items",
    ),
    Table(
        "KNB1", "Customer master (company code)", False,
        (_id("KUNNR", 10, "customer_id", True), _id("BUKRS", 4, "company code", True),
         _id("SACHP", None, "collector (KNB1-BUSAB accepted)", aliases=("BUSAB",)),
         _id("ZTERM", None, "default payment_terms of the master")),
        "collector and default payment terms (first company code per customer)",
        "no collector and no default payment terms in the master",
        "SE16N KNB1, customers of the items, company codes in scope",
    ),
    Table(
        "KNKK", "Customer credit management", False,
        (_id("KUNNR", 10, "customer_id", True), _id("KKBER", 4, "credit control area"),
         _id("CTLPC", None, "risk_category"),
         Field("KLIMK", "amount", "credit_limit")),
        "risk_category and credit_limit (their history from CDPOS KNKK-CTLPC/KLIMK)",
        "no risk category and no credit limit",
        "SE16N KNKK, customers of the items (S/4HANA: UKMBP_CMS_SGM / credit segment)",
    ),
    Table(
        "EXTRACT", "Extract run (written by the extraction, not an SAP table)", False,
        (_id("LOGSYS", None, "source_system"),
         Field("DATUM", "date", "last_refresh (date the extract was taken)", True),
         Field("UZEIT", "time", "last_refresh (time)")),
        "source_system and last_refresh",
        "last_refresh is sap.extract_time, else the latest time found in the extracts",
        "one row: the logical system (LOGSYS) and SY-DATUM / SY-UZEIT of the extraction",
    ),
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
REQUIRED_TABLES: tuple[str, ...] = tuple(t.name for t in TABLES if t.required)


@dataclass(frozen=True)
class ActivityRule:
    activity: str
    tables: str
    rule: str
    event_time: str
    amount: str


ACTIVITY_RULES: tuple[ActivityRule, ...] = (
    ActivityRule("invoice_posted", "BKPF + BSID/BSAD",
                 "document of an invoice type (sap.invoice_document_types, RV/DR); one case per "
                 "document, case id BELNR (sap.invoice_id)",
                 "BUDAT, time of day CPUTM when CPUDT = BUDAT", "S - H of its customer items"),
    ActivityRule("due_date_passed", "derived",
                 "net due date + 1 day while the invoice is open (features.ingest.derive)",
                 "NETDT + 1 day, 00:00", "-"),
    ActivityRule("dunning_run", "MHND (else BSID-MADAT/MANST)",
                 "one per dunned item and run; the item's invoice is followed through REBZG",
                 "LAUFD + sap.dunning_run_time", "-; dunning_level MAHNN"),
    ActivityRule("collection_contact", "UDM_CONTACT", "one per contact row",
                 "CREATE_TIME", "-"),
    ActivityRule("promise_to_pay_created", "UDM_P2P_ATTR", "one per promise row",
                 "CREATE_TIME", "PROMISED_AMT; promised_date PROMISE_DATE"),
    ActivityRule("promise_to_pay_broken", "derived",
                 "invoice still open on promised date + sap.promise_tolerance_days + 1 and no "
                 "newer promise by then (features.ingest.derive)",
                 "PROMISE_DATE + tolerance + 1 day, 00:00", "the promised amount"),
    ActivityRule("dispute_case_created", "SCMG_T_CASE_ATTR + UDM_CASE_ATTR00",
                 "one per case; dispute_case_id EXT_KEY", "CREATE_TIME", "FIN_DISPUTED_AMT"),
    ActivityRule("dispute_case_resolved", "CDHDR/CDPOS",
                 "STAT_ORDERNO changed into sap.dispute_resolved_statuses",
                 "CDHDR UDATE + UTIME", "-"),
    ActivityRule("payment_block_set", "CDHDR/CDPOS",
                 "BSEG-ZLSPR changed on an item of the invoice; blank VALUE_NEW lifts the "
                 "block; dispute_case_id of the invoice's latest dispute",
                 "CDHDR UDATE + UTIME", "-; payment_block VALUE_NEW"),
    ActivityRule("credit_memo_posted", "BKPF + BSID/BSAD",
                 "document of a credit memo type (DG/G2) with items referencing the invoice "
                 "(REBZG); dispute_case_id of the invoice's latest dispute",
                 "BUDAT (+ CPUTM)", "H - S of its items for the invoice"),
    ActivityRule("incoming_payment_posted", "BKPF + BSID/BSAD",
                 "document of a payment type (DZ) with items of the invoice (REBZG, or cleared "
                 "together with the invoice's items only)",
                 "BUDAT (+ CPUTM)", "H - S of its items for the invoice (cash received)"),
    ActivityRule("residual_item_created", "BKPF + BSID/BSAD",
                 "debit item (S) of a non-invoice document referencing the invoice (REBZG): "
                 "the new open item a clearing leaves",
                 "BUDAT (+ CPUTM) of its document", "DMBTR of the residual item"),
    ActivityRule("invoice_cleared", "BSAD + BKPF of AUGBL",
                 "all debit items of the invoice (invoice, residual items) are in BSAD: the "
                 "last clearing (latest AUGDT), unless it is a write-off; clearing_document AUGBL",
                 "AUGDT, time of day from AUGBL's BKPF-CPUTM",
                 "payments cleared by it (else the credit memos it cleared)"),
    ActivityRule("invoice_written_off", "BSAD + BKPF/BSEG of AUGBL",
                 "the last clearing is by a document of sap.write_off_document_types, or one with "
                 "a line whose RSTGR is in sap.write_off_reason_codes",
                 "AUGDT (+ AUGBL's CPUTM)",
                 "what was still open: the invoice's items it cleared, net of its own lines"),
)


@dataclass(frozen=True)
class MasterRule:
    column: str
    source: str
    history: str


MASTER_RULES: tuple[MasterRule, ...] = (
    MasterRule("customer_id", "KNA1/KNB1/KNKK-KUNNR", "-"),
    MasterRule("valid_from", "KNA1-ERDAT (else the customer's first event); then every change",
               "CDHDR UDATE + UTIME of each change below"),
    MasterRule("risk_category", "KNKK-CTLPC", "CDPOS TABNAME KNKK, FNAME CTLPC"),
    MasterRule("credit_limit", "KNKK-KLIMK", "CDPOS TABNAME KNKK, FNAME KLIMK"),
    MasterRule("customer_segment", "KNA1-KTOKD (sap.account_group_segments)",
               "CDPOS TABNAME KNA1, FNAME KTOKD"),
    MasterRule("collector", "KNB1-SACHP (BUSAB)", "CDPOS TABNAME KNB1, FNAME SACHP/BUSAB"),
    MasterRule("payment_terms", "KNB1-ZTERM", "CDPOS TABNAME KNB1, FNAME ZTERM"),
)
# (TABNAME, FNAME) of master change documents -> master column.
MASTER_CHANGE_FIELDS: dict[tuple[str, str], str] = {
    ("KNKK", "CTLPC"): "risk_category", ("KNKK", "KLIMK"): "credit_limit",
    ("KNA1", "KTOKD"): "customer_segment", ("KNB1", "SACHP"): "collector",
    ("KNB1", "BUSAB"): "collector", ("KNB1", "ZTERM"): "payment_terms",
}
PAYMENT_BLOCK_CHANGE = ("BSEG", "ZLSPR")
DISPUTE_STATUS_TABLES = ("SCMG_T_CASE_ATTR", "UDM_CASE_ATTR00")
DISPUTE_STATUS_FIELD = "STAT_ORDERNO"
# CDPOS-TABKEY layout: client (MANDT, 3) then the table's key fields at their SAP lengths.
CLIENT_WIDTH = 3
BSEG_TABKEY = (("BUKRS", 4), ("BELNR", 10), ("GJAHR", 4), ("BUZEI", 3))
CUSTOMER_TABKEY = (("KUNNR", 10),)

# Reasons an extract row is quarantined, in precedence order (the first that applies is given).
SAP_REASONS: dict[str, str] = {
    "bad_value": "a field cannot be read (date, time, amount, number)",
    "missing_key": "a key field is empty",
    "duplicate_key": "second row with the same key",
    "unknown_document_type": "BKPF-BLART is in none of the configured document type lists",
    "missing_clearing_date": "a BSAD (cleared) item without AUGDT or AUGBL",
    "currency_mismatch": "an amount's currency differs from its company code's local currency",
    "no_header": "a line item whose document is not in BKPF",
    "header_quarantined": "a line item whose BKPF header is quarantined",
    "open_and_cleared": "an item both in BSID and in BSAD (extracts taken at different times)",
    "unassigned_item": "an item that references no invoice (REBZG empty) and whose clearing "
                       "does not identify one: cash on account, not an invoice event",
    "unknown_invoice": "a row referring to an invoice that is not in BKPF/BSID/BSAD",
    "no_change_header": "a CDPOS row whose CDHDR header is not exported",
}
