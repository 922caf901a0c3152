"""The ingest stage as one library call: read, validate, derive, master, reconcile, write.

    extract (CSV / Parquet / ledger folder) ──read──> raw rows ──validate──> clean rows
        ──derive (due_date_passed, promise_to_pay_broken)──> events ──> master (given or derived)

`ingest_ledger` returns everything in an IngestResult; `write_ingest` writes the ledger folder
(events, master, truth), quarantine.csv (every rejected row with its reason), master_quarantine.csv
when the master lost rows, and reconciliation.csv: rows and invoices in against out, each
difference with its reason (features.reconcile). Notes say what the reader should know but that
is not an error: extra columns kept and unused, several currencies in one company code.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features import schema
from features.ingest.derive import add_calculated_activities, master_from_events
from features.ingest.io import read_event_log, read_master
from features.ingest.ledger_files import MASTER, read_ledger_dir, write_ledger_dir
from features.ingest.validate import (REASON_TEXT, ValidationResult, normalise_activities,
                                      validate_event_log, validate_master, write_quarantine)
from features.reconcile import (Reconciliation, combine, reconcile_counts, reconcile_ids,
                                write_reconciliation)

STAGE = "ingest"
QUARANTINE_FILE, MASTER_QUARANTINE_FILE = "quarantine.csv", "master_quarantine.csv"
NO_POSTING = "quarantined: orphan (no valid invoice_posted event)"
# Extra columns whose name says "currency": amounts are read as one currency per company code.
_CURRENCY_NAMES = frozenset({"waers", "currency", "currencycode", "curr", "hwaer", "currencykey"})


@dataclass(frozen=True)
class IngestResult:
    events: pd.DataFrame  # validated events plus the derived calculated activities
    master: pd.DataFrame
    truth: pd.DataFrame | None  # simulated ledgers only
    validation: ValidationResult  # clean rows (before derivation), quarantine, counts
    master_quarantine: pd.DataFrame
    reconciliation: Reconciliation
    notes: tuple[str, ...] = ()


def _row_reason(code: str) -> str:
    return f"quarantined: {code} ({REASON_TEXT.get(code, code)})"


def _lost_invoice_reasons(quarantine: pd.DataFrame) -> dict[str, pd.Series]:
    """{reason: invoice ids} of quarantined invoices, each named by its posting row's reason
    ("invoice quarantined: <deciding reason>" for an invoice quarantined as a whole)."""
    if quarantine.empty:
        return {}
    q = pd.DataFrame({
        "invoice": quarantine["invoice_id"].astype("str").str.strip().replace("", pd.NA),
        "post": normalise_activities(quarantine["activity"]).eq(
            schema.Activity.INVOICE_POSTED.value).fillna(False).to_numpy(),
        "code": quarantine["reason"].to_numpy(),
        "text": quarantine["reason_text"].astype("str").to_numpy(),
    }).dropna(subset=["invoice"])
    whole = q["code"].eq("invoice_quarantined")
    q["why"] = q["code"].map(_row_reason)
    q.loc[whole, "why"] = q.loc[whole, "text"].str.split(": ").str[:2].str.join(": ")
    q.loc[~q["post"], "why"] = NO_POSTING  # only when the invoice has no quarantined posting
    first = q.sort_values("post", ascending=False, kind="stable").drop_duplicates("invoice")
    return {why: ids["invoice"] for why, ids in first.groupby("why", sort=True)}


def ingest_reconciliation(raw: pd.DataFrame, validation: ValidationResult, events: pd.DataFrame,
                          master_in: int | None, master: pd.DataFrame,
                          master_quarantine: pd.DataFrame) -> Reconciliation:
    """Rows and invoices of the extract against the ledger written, with every reason."""
    derived = events["activity"].value_counts().sub(
        validation.events["activity"].value_counts(), fill_value=0).astype(int)
    derived = derived[derived != 0]
    rows = reconcile_counts(STAGE, "rows", len(raw), len(events), {
        **{_row_reason(code): -n for code, n in validation.counts.items()},
        **{f"derived: {act}": int(n) for act, n in derived.sort_index().items()}})
    ids_in = raw["invoice_id"].astype("str").str.strip().replace("", pd.NA).dropna()
    invoices = reconcile_ids(STAGE, "invoices", ids_in, events["invoice_id"],
                             _lost_invoice_reasons(validation.quarantine))
    if master_in is None:
        masters = reconcile_counts(STAGE, "master rows", 0, len(master),
                                   {"derived from the events' customer attributes": len(master)})
    else:
        lost = master_quarantine["reason"].value_counts() if len(master_quarantine) else {}
        masters = reconcile_counts(STAGE, "master rows", master_in, len(master),
                                   {f"quarantined: {k}": -int(v) for k, v in dict(lost).items()})
    return combine(rows, invoices, masters)


def _notes(raw: pd.DataFrame) -> tuple[str, ...]:
    extras = [c for c in raw.attrs.get("extra_columns", []) if c in raw.columns]
    notes = []
    if extras:
        notes.append(f"extra column(s) kept as they are, not used by the features: {extras}")
    for col in extras:
        if col.strip().lower().replace("_", "") in _CURRENCY_NAMES:
            per_code = (raw.groupby(raw["company_code"] if "company_code" in raw else 0)[col]
                        .nunique())
            if (per_code > 1).any():
                notes.append(f"column {col!r} holds several currencies within one company code: "
                             "amounts are read as one currency per company code; convert them "
                             "to the company code's currency before ingesting")
    return tuple(notes)


def ingest_ledger(source: str | Path, master: str | Path | None = None,
                  date_format: str | Iterable[str] | Mapping[str, str] | None = None
                  ) -> IngestResult:
    """Read and validate an event log (CSV or Parquet file, or a ledger folder), derive the
    calculated activities and the master (unless one is given), and reconcile.

    date_format: see features.ingest.dates (None detects a format per date column)."""
    source = Path(source)
    truth = None
    with warnings.catch_warnings():  # extra columns become a note, not a Python warning
        warnings.simplefilter("ignore")
        if source.is_dir():
            files = read_ledger_dir(source)
            raw, truth = files.events, files.truth
            master = master or source / MASTER
        else:
            raw = read_event_log(source)
        master_raw = read_master(master) if master is not None else None
    validation = validate_event_log(raw, date_format=date_format)
    events = add_calculated_activities(validation.events)
    if master_raw is not None:
        master_frame, master_bad = validate_master(master_raw, date_format=date_format)
    else:
        master_frame, master_bad = master_from_events(events), pd.DataFrame()
    rec = ingest_reconciliation(raw, validation, events,
                                None if master_raw is None else len(master_raw),
                                master_frame, master_bad)
    return IngestResult(events, master_frame, truth, validation, master_bad, rec, _notes(raw))


def write_ingest(result: IngestResult, out: str | Path) -> dict[str, Path]:
    """Write the ledger folder, the quarantine(s) and the reconciliation; return their paths."""
    out = Path(out)
    write_ledger_dir(out, result.events, result.master, result.truth)
    written = {"ledger": out, "quarantine": write_quarantine(result.validation,
                                                              out / QUARANTINE_FILE)}
    master_q = out / MASTER_QUARANTINE_FILE
    if len(result.master_quarantine):
        result.master_quarantine.to_csv(master_q, index=False)
        written["master_quarantine"] = master_q
    elif master_q.exists():  # a stale file from an earlier run would mislead
        master_q.unlink()
    written["reconciliation"] = write_reconciliation(result.reconciliation, out)
    return written


__all__ = ["IngestResult", "ingest_ledger", "write_ingest", "ingest_reconciliation",
           "QUARANTINE_FILE", "MASTER_QUARANTINE_FILE"]
