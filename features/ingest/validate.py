"""Validation of raw event logs and customer masters: parse, check, and quarantine bad rows.

`validate_event_log` turns a raw frame (text values, as `features.ingest.io` reads them) into the
canonical typed event log and a quarantine of the rows it cannot trust. Nothing is lost: every
input row ends up either clean or quarantined with exactly one reason, the first of REASONS (in
that order) that applies. Later checks only look at rows that passed the earlier ones, so a bad
posting quarantines its invoice's other events as "orphan" rather than letting them through.

Parsing rules
- Dates: a format per column, given (`date_format`: one format for every column, or
  {column: format}) or detected (ISO 8601, else the one common format that reads the column;
  ambiguous columns are refused, naming column and row): see `features.ingest.dates`. ISO times
  with an offset are converted to UTC and made naive; naive times are taken as they are.
- Missing: an empty cell; in non-id columns also nan / NA / N/A / null / None / NaT.
- Text is stripped of surrounding spaces; ids keep leading zeros.
- is_written_off accepts true/false, 1/0, yes/no, vrai/faux, oui/non; when missing it is True on
  an `invoice_written_off` event and False elsewhere.

Definitions
- Duplicate event: a row equal to an earlier row on DUPLICATE_KEY (what happened, to which
  invoice, when, for how much), whatever its user, source system or extract time. The first copy
  is kept. Two genuinely distinct equal payments on the same instant cannot be told apart
  without a payment document number; they are treated as one.
- The posting of an invoice is its earliest `invoice_posted` row (ties: first in the input); any
  other `invoice_posted` row of the invoice is a "duplicate_posting".
- Terminal event: the earliest `invoice_cleared` / `invoice_written_off` row of the invoice (at
  the same instant a clearing wins over a write-off, then input order decides).
- Reversal: an `incoming_payment_posted` or `credit_memo_posted` row with a negative amount (a
  returned payment, a cancelled credit memo). It is the only event allowed after the terminal
  event; it does not reopen the invoice (the invoice's outcome stays its terminal event).
- Events at the same instant as the posting or as the terminal event are accepted: logs with
  dates only cannot order same-day events.

Invoice-level quarantine (no phantom open items)
- An invoice whose outcome-deciding event (schema.OUTCOME_ACTIVITIES: incoming payment, credit
  memo, residual item, clearing, write-off) is quarantined for a reason that leaves its outcome
  unknown is quarantined as a whole: its other rows go to the quarantine too, with the reason
  "invoice_quarantined" and the text "invoice quarantined: <the deciding row's reason>". Kept,
  its posting alone would make a paid invoice look open: an open receivable, a row of the scoring
  set and a "late" training row. The reasons that do not make the outcome unknown are
  duplicate_event (the first copy is kept), second_terminal and after_terminal (the invoice's
  first terminal event stands) and orphan (the invoice has no valid posting, so all its rows are
  quarantined already). An unknown activity name cannot be told to be a payment: it quarantines
  its row only, and its name is in the row's reason text.

Clean rows keep their input order (index reset). Unknown extra columns are carried through as
they are, after our columns.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema
from features.ingest.dates import format_of, parse_date_formats, parse_dates
from features.ingest.io import canonicalise_columns, write_table

A = schema.Activity


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


# Precedence order: a row gets the first reason that applies.
REASONS: tuple[Reason, ...] = (
    Reason("missing_required", "missing value in a required column"),
    Reason("unknown_activity", "activity name matches none of the fourteen activities"),
    Reason("bad_event_time", "event time cannot be parsed"),
    Reason("bad_value", "value in another column cannot be parsed (date, amount, level, flag)"),
    Reason("missing_activity_value", "activity lacks a value it must carry (e.g. a posting "
                                     "without amount or net due date)"),
    Reason("duplicate_event", "same invoice, activity, time and values as an earlier row"),
    Reason("duplicate_posting", "second invoice_posted for the same invoice"),
    Reason("negative_invoice_amount", "invoice posted with a negative amount"),
    Reason("due_before_posting", "net due date before the posting date"),
    Reason("orphan", "invoice has no valid invoice_posted event"),
    Reason("inconsistent_customer", "customer differs from the customer of the invoice's posting"),
    Reason("before_posting", "event before its invoice was posted"),
    Reason("second_terminal", "second clearing / write-off of an invoice already closed"),
    Reason("after_terminal", "event after the invoice was cleared or written off "
                             "(not a reversal)"),
    Reason("invoice_quarantined", "another event of the invoice that decides its outcome "
                                  "(payment, credit memo, residual item, clearing, write-off) "
                                  "is quarantined"),
)
REASON_TEXT: dict[str, str] = {r.code: r.text for r in REASONS}

# Values an activity must carry for the features to make sense of it: data of the schema, so the
# input contract (docs/input_contract.md) and this check read the same table.
ACTIVITY_REQUIRED_VALUES: dict[str, tuple[str, ...]] = schema.ACTIVITY_REQUIRED_VALUES
OUTCOME_ACTIVITIES = frozenset(a.value for a in schema.OUTCOME_ACTIVITIES)
# Row reasons that leave the invoice's outcome known (see "Invoice-level quarantine").
OUTCOME_KEEPING_REASONS = frozenset({"duplicate_event", "second_terminal", "after_terminal",
                                     "orphan"})
DUPLICATE_KEY: tuple[str, ...] = (
    "invoice_id", "activity", "event_time", "amount", "dunning_level", "promised_date",
    "dispute_case_id", "payment_block", "clearing_document", "is_written_off",
)
QUARANTINE_COLUMNS: tuple[str, ...] = ("row_number", "reason", "reason_text")
REVERSAL_ACTIVITIES = frozenset({A.INCOMING_PAYMENT_POSTED.value, A.CREDIT_MEMO_POSTED.value})
TERMINAL = frozenset(a.value for a in schema.TERMINAL_ACTIVITIES)

_MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "nat"})
_TRUE = frozenset({"true", "1", "1.0", "yes", "y", "t", "vrai", "oui", "x"})
_FALSE = frozenset({"false", "0", "0.0", "no", "n", "f", "faux", "non"})
_ID_COLUMNS = frozenset({"invoice_id", "customer_id", "company_code", "clearing_document",
                         "dispute_case_id"})


@dataclass
class ValidationResult:
    events: pd.DataFrame  # clean canonical typed rows
    quarantine: pd.DataFrame  # bad rows, original values + row_number, reason, reason_text
    counts: dict[str, int] = field(default_factory=dict)  # reason code -> rows

    @property
    def n_input(self) -> int:
        return len(self.events) + len(self.quarantine)


# --- parsing ----------------------------------------------------------------------------------
def _text(series: pd.Series) -> pd.Series:
    if not pd.api.types.is_string_dtype(series):
        series = series.astype("str")
    return series.str.strip()


def _missing_mask(series: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_string_dtype(series) or series.dtype == object:
        text = _text(series)
        if column in _ID_COLUMNS:
            return text.isna() | text.eq("")
        return text.isna() | text.str.lower().isin(_MISSING_TOKENS)
    return series.isna()


def parse_column(series: pd.Series, kind: str, column: str, date_format: str | None = None,
                 source: object = "event log") -> tuple[pd.Series, pd.Series]:
    """Parse one raw column to its kind; return (typed values, mask of unparseable cells).

    date_format is this column's format; None detects it (features.ingest.dates)."""
    missing = _missing_mask(series, column)
    if kind == "string":
        return _text(series).where(~missing).astype("str"), pd.Series(False, index=series.index)
    if kind == "datetime":
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            out = series.dt.tz_convert("UTC").dt.tz_localize(None)
        elif pd.api.types.is_datetime64_dtype(series):
            out = series
        else:
            out = parse_dates(_text(series).where(~missing), column, date_format, source)
        out = out.astype("datetime64[us]")
        return out, out.isna() & ~missing
    if kind in ("float", "int"):
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            num = series.astype("float64")
        else:
            num = pd.to_numeric(_text(series).where(~missing), errors="coerce").astype("float64")
        bad = ~missing & ~pd.Series(np.isfinite(num.to_numpy()), index=series.index)
        if kind == "int":
            integral = num.mod(1).eq(0) & num.abs().le(127)
            bad = bad | (~missing & ~integral.fillna(False))
            return num.where(~bad & ~missing).astype("Int8"), bad
        return num.where(~bad & ~missing), bad
    if kind == "bool":
        if pd.api.types.is_bool_dtype(series):
            return series.astype("boolean"), pd.Series(False, index=series.index)
        low = _text(series).str.lower()
        out = pd.Series(pd.NA, index=series.index, dtype="boolean")
        out[low.isin(_TRUE).to_numpy()] = True
        out[low.isin(_FALSE).to_numpy()] = False
        return out, out.isna() & ~missing
    raise ValueError(f"unknown column kind {kind!r} for {column}")


def normalise_activities(series: pd.Series) -> pd.Series:
    """Map codes, English labels and the data model's French labels to activity codes (NaN when
    unknown)."""
    text = _text(series)
    mapping = {}
    for value in text.dropna().unique():  # a handful of distinct names, not a loop over rows
        key = schema.normalise_activity_name(unicodedata.normalize("NFC", str(value)))
        hit = schema.ACTIVITY_ALIASES.get(key)
        mapping[value] = hit.value if hit is not None else None
    return text.map(mapping).astype("str")


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """table[key] for each key (NaN/NaT where absent); table has a unique index.

    Series.map(Series) tries to cast an empty datetime table to float in pandas 3.1, so reindex.
    """
    return pd.Series(table.reindex(keys.to_numpy()).to_numpy(), index=keys.index,
                     dtype=table.dtype)


# --- validation -------------------------------------------------------------------------------
class _Flags:
    """One reason per row: a later flag never overwrites an earlier one."""

    def __init__(self, n: int):
        self.code = np.full(n, None, dtype=object)
        self.text = np.full(n, None, dtype=object)

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(self.code)

    def flag(self, mask, code: str, text) -> None:
        hit = np.asarray(mask, dtype=bool) & self.ok
        self.code[hit] = code
        self.text[hit] = text[hit] if isinstance(text, np.ndarray) else text


def _detail(prefix: str, raw: pd.Series) -> np.ndarray:
    return (prefix + " '" + _text(raw).fillna("") + "'").to_numpy(dtype=object)


def _first_per_invoice(frame: pd.DataFrame, tie: pd.Series | None = None) -> pd.Series:
    """True on the earliest row per invoice; ties go to the lower `tie`, then to input order."""
    tie = pd.Series(0, index=frame.index) if tie is None else tie
    order = frame.assign(_tie=tie.to_numpy(), _pos=np.arange(len(frame))).sort_values(
        ["invoice_id", "event_time", "_tie", "_pos"], kind="stable")
    first = ~order["invoice_id"].duplicated(keep="first")
    return first.reindex(frame.index)


def _quarantine_invoices(flags: _Flags, invoice: pd.Series, activity: pd.Series) -> None:
    """Quarantine every row of an invoice whose outcome-deciding event is quarantined."""
    deciding = (~flags.ok & activity.isin(OUTCOME_ACTIVITIES).fillna(False).to_numpy()
                & invoice.notna().to_numpy()
                & ~pd.Series(flags.code).isin(OUTCOME_KEEPING_REASONS).to_numpy())
    if not deciding.any():
        return
    # The first deciding row of the invoice (input order) names the reason.
    first = pd.Series(np.flatnonzero(deciding).astype(np.float64),
                      index=invoice[deciding].to_numpy())
    first = first[~first.index.duplicated(keep="first")]
    pos = lookup(invoice, first)
    hit = pos.notna().to_numpy()
    where = pos[hit].astype(np.int64).to_numpy()
    text = np.full(len(invoice), None, dtype=object)
    text[hit] = ("invoice quarantined: " + pd.Series(flags.code[where]).astype(str) + ": "
                 + pd.Series(flags.text[where]).astype(str)).to_numpy(dtype=object)
    flags.flag(hit, "invoice_quarantined", text)


def validate_event_log(raw: pd.DataFrame,
                       date_format: str | Iterable[str] | Mapping[str, str] | None = None
                       ) -> ValidationResult:
    """Parse and check a raw event log; return clean events, quarantined rows and counts.

    date_format: None (detect per column), one strftime format for every date column,
    'column=format' strings or a {column: format} mapping (features.ingest.dates)."""
    raw = canonicalise_columns(raw, table="events", source=raw.attrs.get("source", "event log"),
                               warn=False).reset_index(drop=True)
    reserved = [c for c in QUARANTINE_COLUMNS if c in raw.columns]
    if reserved:  # e.g. a quarantine file fed back in as it is
        raise ValueError(f"event log: column(s) {reserved} are reserved for the quarantine; "
                         "drop or rename them")
    n = len(raw)
    flags = _Flags(n)
    formats = parse_date_formats(date_format)
    source = raw.attrs.get("source", "event log")
    typed: dict[str, pd.Series] = {}
    bad: dict[str, pd.Series] = {}
    for spec in schema.EVENT_COLUMNS:
        if spec.name == "activity":
            continue
        col = raw[spec.name] if spec.name in raw else pd.Series(pd.NA, index=raw.index,
                                                                dtype="object")
        typed[spec.name], bad[spec.name] = parse_column(
            col, spec.kind, spec.name, format_of(formats, spec.name), source)
    activity = normalise_activities(raw["activity"])
    typed["activity"] = activity

    for col in schema.REQUIRED_EVENT_COLUMNS:
        flags.flag(_missing_mask(raw[col], col), "missing_required",
                   f"missing required value in column '{col}'")
    flags.flag(activity.isna(), "unknown_activity", _detail("unknown activity", raw["activity"]))
    flags.flag(bad["event_time"], "bad_event_time", _detail("unparseable event time",
                                                            raw["event_time"]))
    for spec in schema.EVENT_COLUMNS:
        if spec.name not in ("event_time", "activity") and bad[spec.name].any():
            flags.flag(bad[spec.name], "bad_value",
                       _detail(f"unparseable {spec.kind} in column '{spec.name}':", raw[spec.name]))
    for act, cols in ACTIVITY_REQUIRED_VALUES.items():
        for col in cols:
            flags.flag(activity.eq(act).fillna(False) & typed[col].isna(), "missing_activity_value",
                       f"{act} without {col}")
    wo = typed["is_written_off"]
    is_write_off = activity.eq(A.INVOICE_WRITTEN_OFF).fillna(False)
    typed["is_written_off"] = wo.fillna(is_write_off).astype(bool)

    ev = pd.DataFrame(typed)[list(schema.EVENT_COLUMN_NAMES)]

    # Duplicates, on rows that parsed.
    alive = flags.ok
    dup = ev.loc[alive, list(DUPLICATE_KEY)].duplicated(keep="first")
    flags.flag(dup.reindex(ev.index, fill_value=False), "duplicate_event",
               "same invoice, activity, time and values as an earlier row")

    # The posting: earliest invoice_posted per invoice.
    is_post = activity.eq(A.INVOICE_POSTED).fillna(False).to_numpy()
    posts = ev.loc[flags.ok & is_post, ["invoice_id", "event_time", "amount", "net_due_date",
                                         "customer_id"]]
    first = _first_per_invoice(posts)
    flags.flag(ev.index.isin(posts.index[~first.to_numpy()]), "duplicate_posting",
               "second invoice_posted for the same invoice")
    posts = posts[first.to_numpy()]
    flags.flag(ev.index.isin(posts.index[posts["amount"].lt(0).to_numpy()]),
               "negative_invoice_amount", "invoice posted with a negative amount")
    early_due = posts["net_due_date"].dt.normalize() < posts["event_time"].dt.normalize()
    flags.flag(ev.index.isin(posts.index[early_due.to_numpy()]), "due_before_posting",
               "net due date before the posting date")
    posts = posts[flags.ok[posts.index]].set_index("invoice_id")

    # Invoice-level checks against the valid posting.
    post_time = lookup(ev["invoice_id"], posts["event_time"])
    flags.flag(post_time.isna(), "orphan", "invoice has no valid invoice_posted event")
    post_customer = lookup(ev["invoice_id"], posts["customer_id"])
    flags.flag(post_customer.ne(ev["customer_id"]).fillna(False), "inconsistent_customer",
               ("customer '" + ev["customer_id"].fillna("") + "' but the invoice was posted to '"
                + post_customer.fillna("") + "'").to_numpy(dtype=object))
    flags.flag(ev["event_time"].lt(post_time).fillna(False), "before_posting",
               "event before its invoice was posted")

    # Terminal event: earliest clearing / write-off.
    is_term = activity.isin(TERMINAL).fillna(False).to_numpy()
    terms = ev.loc[flags.ok & is_term, ["invoice_id", "event_time"]]
    # Cleared and written off at the same instant: the clearing counts (lifecycle order).
    first_term = _first_per_invoice(
        terms, activity[terms.index].eq(A.INVOICE_WRITTEN_OFF).astype(int)).to_numpy()
    flags.flag(ev.index.isin(terms.index[~first_term]), "second_terminal",
               "second clearing / write-off of an invoice already closed")
    term_time = lookup(ev["invoice_id"],
                       terms[first_term].set_index("invoice_id")["event_time"])
    reversal = activity.isin(REVERSAL_ACTIVITIES).fillna(False) & ev["amount"].lt(0).fillna(False)
    flags.flag(ev["event_time"].gt(term_time).fillna(False) & ~reversal, "after_terminal",
               "event after the invoice was cleared or written off (not a reversal)")
    _quarantine_invoices(flags, ev["invoice_id"], activity)

    keep = flags.ok
    extras = [c for c in raw.columns if c not in schema.EVENT_COLUMN_NAMES]
    clean = pd.concat([ev[keep], raw.loc[keep, extras]], axis=1).reset_index(drop=True)
    quarantine = raw.loc[~keep].copy()
    quarantine.insert(0, "row_number", np.flatnonzero(~keep))
    quarantine["reason"] = pd.Series(flags.code[~keep], index=quarantine.index, dtype="str")
    quarantine["reason_text"] = pd.Series(flags.text[~keep], index=quarantine.index, dtype="str")
    quarantine = quarantine.reset_index(drop=True)
    if len(clean) + len(quarantine) != n:  # nothing may ever be lost
        raise AssertionError(f"validation lost rows: {len(clean)} + {len(quarantine)} != {n}")
    counts = quarantine["reason"].value_counts()
    ordered = {r.code: int(counts[r.code]) for r in REASONS if r.code in counts.index}
    return ValidationResult(events=clean, quarantine=quarantine, counts=ordered)


def summary(result: ValidationResult) -> pd.DataFrame:
    """Rows per reason (in precedence order) plus the clean and total rows, for printing."""
    rows = [(r.code, r.text, result.counts.get(r.code, 0)) for r in REASONS
            if result.counts.get(r.code, 0)]
    rows += [("clean", "rows kept", len(result.events)),
             ("total", "rows read", result.n_input)]
    return pd.DataFrame(rows, columns=["reason", "description", "rows"])


def write_quarantine(result: ValidationResult, path: str | Path) -> Path:
    """Write the quarantined rows (with row_number, reason, reason_text) as CSV or Parquet."""
    return write_table(result.quarantine, path)


# --- customer master --------------------------------------------------------------------------
MASTER_REASONS: tuple[Reason, ...] = (
    Reason("missing_required", "missing customer_id or valid_from"),
    Reason("bad_value", "value cannot be parsed (date, credit limit)"),
    Reason("duplicate_version", "second version of a customer with the same valid_from"),
    Reason("bad_interval", "valid_to not after valid_from"),
)


def validate_master(raw: pd.DataFrame,
                    date_format: str | Iterable[str] | Mapping[str, str] | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse and check a customer master; return (master, quarantine).

    The master comes back sorted by (customer_id, valid_from); a missing valid_to is filled with
    the next version's valid_from (NaT for the current version).
    """
    raw = canonicalise_columns(raw, table="master", source=raw.attrs.get("source", "master"),
                               warn=False).reset_index(drop=True)
    flags = _Flags(len(raw))
    formats = parse_date_formats(date_format)
    typed, bad = {}, {}
    for spec in schema.MASTER_COLUMNS:
        col = raw[spec.name] if spec.name in raw else pd.Series(pd.NA, index=raw.index,
                                                                dtype="object")
        typed[spec.name], bad[spec.name] = parse_column(
            col, spec.kind, spec.name, format_of(formats, spec.name),
            raw.attrs.get("source", "master"))
    for col in ("customer_id", "valid_from"):
        flags.flag(_missing_mask(raw[col], col), "missing_required",
                   f"missing required value in column '{col}'")
    for spec in schema.MASTER_COLUMNS:
        flags.flag(bad[spec.name], "bad_value",
                   _detail(f"unparseable {spec.kind} in column '{spec.name}':",
                           raw[spec.name]) if spec.name in raw else "")
    master = pd.DataFrame(typed)[list(schema.MASTER_COLUMN_NAMES)]
    dup = master.loc[flags.ok, ["customer_id", "valid_from"]].duplicated(keep="first")
    flags.flag(dup.reindex(master.index, fill_value=False), "duplicate_version",
               "second version of a customer with the same valid_from")
    flags.flag(master["valid_to"].le(master["valid_from"]).fillna(False), "bad_interval",
               "valid_to not after valid_from")
    keep = flags.ok
    extras = [c for c in raw.columns if c not in schema.MASTER_COLUMN_NAMES]
    clean = pd.concat([master[keep], raw.loc[keep, extras]], axis=1)
    clean = clean.sort_values(["customer_id", "valid_from"], kind="stable").reset_index(drop=True)
    nxt = clean.groupby("customer_id", sort=False)["valid_from"].shift(-1)
    clean["valid_to"] = clean["valid_to"].fillna(nxt)
    quarantine = raw.loc[~keep].copy()
    quarantine.insert(0, "row_number", np.flatnonzero(~keep))
    quarantine["reason"] = pd.Series(flags.code[~keep], index=quarantine.index, dtype="str")
    quarantine["reason_text"] = pd.Series(flags.text[~keep], index=quarantine.index, dtype="str")
    if len(clean) + len(quarantine) != len(raw):
        raise AssertionError("master validation lost rows")
    return clean, quarantine.reset_index(drop=True)


__all__ = [
    "REASONS", "REASON_TEXT", "ACTIVITY_REQUIRED_VALUES", "DUPLICATE_KEY", "ValidationResult",
    "validate_event_log", "validate_master", "summary", "write_quarantine", "parse_column",
    "normalise_activities", "lookup",
]
