"""Adapter for IBM's "Accounts Receivable" sample (2,466 invoices, one row each) to our event log.

Each CSV row becomes an invoice's events (times at 00:00, dates are US M/D/YYYY):
- invoice_posted at InvoiceDate: amount = InvoiceAmount, net_due_date = DueDate, payment terms
  NT<DueDate - InvoiceDate> (NT30 on every row), company_code = countryCode,
  customer_id = customerID, document_type RV, customer_segment = billing mode (below);
- dispute_case_created when Disputed == "Yes" (see "Disputes" below);
- incoming_payment_posted (document_type DZ) and invoice_cleared at SettledDate, both for the full
  amount; the clearing document "CL<invoiceNumber>" is synthetic;
- due_date_passed, derived by `features.ingest.derive` at DueDate + 1 day when the invoice was still
  open then, i.e. exactly for the rows with DaysLate > 0.
Ids stay strings (invoiceNumber keeps its leading zeros). last_refresh = the latest date in the
file + 1 day. DaysToSettle and DaysLate are outcomes: they are only used to check that they agree
with the dates (a disagreement raises) and never reach the log.

Billing mode, point in time. PaperlessBill is the billing mode of each invoice, not a fixed
customer attribute: every invoice dated after the customer's PaperlessDate is "Electronic" and
every invoice on or before it "Paper". PaperlessDate is therefore the day the customer switched to
electronic bills, and the master holds two versions: customer_segment "paper" from the
customer's first invoice (only when an invoice shows the paper period), then "paperless" from
PaperlessDate + 1 day (an invoice dated on the switch day was still billed on paper). The loader
checks that the master read as of each InvoiceDate gives that invoice's PaperlessBill and raises
otherwise; events carry the segment as of their own time.

Disputes (leakage caveat). The file says whether an invoice was disputed, not when. The dispute is
placed at the posting instant (InvoiceDate 00:00, right after invoice_posted) with amount = the
invoice amount and dispute_case_id "D<invoiceNumber>", and it is never resolved before clearing.
So a feature such as "dispute open at t" is known from the posting onwards, which is optimistic:
the real dispute may have been raised later, possibly because the invoice was already late. Any
model report on this data must state it (DISPUTE_CAVEAT).

The file ships in the repository (data/external/ibm_ar/, with SOURCE.md and SHA256SUMS). The
loader checks the file against the SHA256SUMS beside it, when there is one listing it, and says
in one line what is wrong when the file is missing or altered. Every invoice and row is
reconciled from the CSV to the ledger (SourceLedger.reconciliation, stage "ibm").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features import paths, schema
from features.ingest.derive import add_calculated_activities
from features.ingest.io import EventLogError
from features.ingest.validate import validate_event_log
from features.reconcile import Reconciliation, combine, reconcile_counts, reconcile_ids

A = schema.Activity
SOURCE_SYSTEM = "IBM_AR_SAMPLE"
STAGE = "ibm"
CHECKSUMS = "SHA256SUMS"
IBM_COLUMNS: tuple[str, ...] = (
    "countryCode", "customerID", "PaperlessDate", "invoiceNumber", "InvoiceDate", "DueDate",
    "InvoiceAmount", "Disputed", "SettledDate", "PaperlessBill", "DaysToSettle", "DaysLate",
)
OUTCOME_COLUMNS: tuple[str, ...] = ("DaysToSettle", "DaysLate")
_DATE_COLUMNS = ("PaperlessDate", "InvoiceDate", "DueDate", "SettledDate")
SEGMENT_BY_BILL = {"Paper": "paper", "Electronic": "paperless"}
DISPUTE_CAVEAT = (
    "IBM AR sample: the file has no dispute date, so each dispute is placed at its invoice's "
    "posting; 'dispute open' features are known from posting, which is optimistic (the real "
    "dispute may have been raised later).")


@dataclass(frozen=True)
class SourceLedger:
    """An external data set turned into our tables, with the caveats a report must repeat."""

    events: pd.DataFrame
    master: pd.DataFrame
    last_refresh: pd.Timestamp
    caveats: tuple[str, ...] = field(default_factory=tuple)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)


class SampleFileError(EventLogError):
    """The sample file is altered (its checksum differs from SHA256SUMS)."""


def _rows(mask: pd.Series, limit: int = 5) -> str:
    idx = np.flatnonzero(mask.to_numpy())
    return ", ".join(str(i + 2) for i in idx[:limit]) + (" ..." if len(idx) > limit else "")


def _restore_hint(path: Path) -> str:
    if path.resolve() == paths.IBM_AR_CSV.resolve():
        return ("it ships with the repository in data/external/ibm_ar/ (SOURCE.md says where it "
                "comes from): restore it with `git checkout -- data/external/ibm_ar`")
    return f"pass the path of the IBM sample CSV (the repository's copy is {paths.IBM_AR_CSV})"


def verify_checksum(path: Path) -> None:
    """Compare the file with its line in the SHA256SUMS beside it (no such line: no check)."""
    sums = path.parent / CHECKSUMS
    if not sums.is_file():
        return
    want = {name.strip().lstrip("*"): digest for digest, _, name in
            (line.strip().partition(" ") for line in sums.read_text().splitlines() if line.strip())}
    if path.name not in want:
        return
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want[path.name]:
        raise SampleFileError(
            f"IBM AR sample {path}: sha256 {got[:12]}... differs from {sums.name} "
            f"({want[path.name][:12]}...): the file was altered; {_restore_hint(path)}")


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"IBM AR sample {path}: no such file; {_restore_hint(path)}")
    verify_checksum(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                      encoding="utf-8-sig")
    missing = [c for c in IBM_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"IBM AR sample {path}: missing column(s) {missing}")
    empty = raw[list(IBM_COLUMNS)].isna()
    if empty.any().any():
        col = empty.any()[lambda s: s].index[0]
        raise ValueError(f"IBM AR sample {path}: empty {col} on line(s) {_rows(empty[col])}")
    return raw


def _parse(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Typed copy of the file; any unparseable or inconsistent value raises naming its line."""
    df = raw.copy()
    for col in _DATE_COLUMNS:
        df[col] = pd.to_datetime(raw[col].str.strip(), format="%m/%d/%Y", errors="coerce"
                                 ).astype("datetime64[us]")
    for col in ("InvoiceAmount", "DaysToSettle", "DaysLate"):
        df[col] = pd.to_numeric(raw[col].str.strip(), errors="coerce")
    for col in (*_DATE_COLUMNS, "InvoiceAmount", "DaysToSettle", "DaysLate"):
        if df[col].isna().any():
            raise ValueError(f"IBM AR sample {path}: unparseable {col} on line(s) "
                             f"{_rows(df[col].isna())}")
    checks = {
        "Disputed not Yes/No": ~df["Disputed"].isin(["Yes", "No"]),
        "PaperlessBill not Paper/Electronic": ~df["PaperlessBill"].isin(list(SEGMENT_BY_BILL)),
        "duplicate invoiceNumber": df["invoiceNumber"].duplicated(keep=False),
        "DueDate before InvoiceDate": df["DueDate"] < df["InvoiceDate"],
        "SettledDate before InvoiceDate": df["SettledDate"] < df["InvoiceDate"],
        "negative InvoiceAmount": df["InvoiceAmount"] < 0,
        # The outcome columns must agree with the dates, or the dates cannot be trusted.
        "DaysToSettle != SettledDate - InvoiceDate":
            df["DaysToSettle"] != (df["SettledDate"] - df["InvoiceDate"]).dt.days,
        "DaysLate != max(0, SettledDate - DueDate)":
            df["DaysLate"] != (df["SettledDate"] - df["DueDate"]).dt.days.clip(lower=0),
    }
    for what, bad in checks.items():
        if bad.any():
            raise ValueError(f"IBM AR sample {path}: {what} on line(s) {_rows(bad)}")
    return df.drop(columns=list(OUTCOME_COLUMNS))


def billing_master(df: pd.DataFrame) -> pd.DataFrame:
    """Customer master with the billing mode as a point-in-time segment (see module docstring)."""
    cust = df.groupby("customerID", sort=True).agg(
        switch=("PaperlessDate", "first"), n_switch=("PaperlessDate", "nunique"),
        first_invoice=("InvoiceDate", "min"))
    if (cust["n_switch"] > 1).any():
        raise ValueError("IBM AR sample: customers with several PaperlessDate values: "
                         f"{list(cust.index[cust['n_switch'] > 1][:5])}")
    paper = cust[cust["first_invoice"] <= cust["switch"]]
    versions = pd.concat([
        pd.DataFrame({"customer_id": paper.index, "valid_from": paper["first_invoice"].to_numpy(),
                      "customer_segment": "paper"}),
        pd.DataFrame({"customer_id": cust.index,
                      "valid_from": (cust["switch"] + pd.Timedelta(days=1)).to_numpy(),
                      "customer_segment": "paperless"}),
    ], ignore_index=True).sort_values(["customer_id", "valid_from"], kind="stable")
    versions["valid_to"] = versions.groupby("customer_id")["valid_from"].shift(-1)
    versions["payment_terms"] = terms_code(df).groupby(df["customerID"]).last().reindex(
        versions["customer_id"]).to_numpy()
    master = versions.reindex(columns=list(schema.MASTER_COLUMN_NAMES)).reset_index(drop=True)
    kinds = {c.name: c.kind for c in schema.MASTER_COLUMNS}
    return master.astype({c: {"datetime": "datetime64[us]", "float": "float64", "string": "str"}[k]
                          for c, k in kinds.items()})


def segment_as_of(master: pd.DataFrame, customer: pd.Series, when: pd.Series) -> pd.Series:
    """customer_segment of each (customer, time) pair from the master versions (NaN before any)."""
    left = pd.DataFrame({"customer_id": customer.to_numpy(), "t": when.to_numpy(),
                         "_pos": np.arange(len(customer))}).sort_values("t", kind="stable")
    right = master[["customer_id", "valid_from", "customer_segment"]].sort_values("valid_from")
    merged = pd.merge_asof(left, right, left_on="t", right_on="valid_from", by="customer_id")
    return pd.Series(merged.sort_values("_pos")["customer_segment"].to_numpy(),
                     index=customer.index, dtype="str")


def terms_code(df: pd.DataFrame) -> pd.Series:
    return "NT" + (df["DueDate"] - df["InvoiceDate"]).dt.days.astype(str)


def _events(df: pd.DataFrame) -> pd.DataFrame:
    base = pd.DataFrame({
        "invoice_id": df["invoiceNumber"].to_numpy(), "customer_id": df["customerID"].to_numpy(),
        "company_code": df["countryCode"].to_numpy(), "net_due_date": df["DueDate"].to_numpy(),
        "payment_terms": terms_code(df).to_numpy(),
    })
    amount = df["InvoiceAmount"].to_numpy(dtype="float64")
    posted = base.assign(event_time=df["InvoiceDate"].to_numpy(), activity=A.INVOICE_POSTED.value,
                         amount=amount, document_type="RV")
    disputed = df["Disputed"].eq("Yes").to_numpy()
    dispute = base[disputed].assign(
        event_time=df["InvoiceDate"].to_numpy()[disputed], activity=A.DISPUTE_CASE_CREATED.value,
        amount=amount[disputed], dispute_case_id="D" + df["invoiceNumber"].to_numpy()[disputed])
    paid = base.assign(event_time=df["SettledDate"].to_numpy(),
                       activity=A.INCOMING_PAYMENT_POSTED.value, amount=amount,
                       document_type="DZ")
    cleared = base.assign(event_time=df["SettledDate"].to_numpy(),
                          activity=A.INVOICE_CLEARED.value, amount=amount,
                          clearing_document="CL" + df["invoiceNumber"].to_numpy())
    events = pd.concat([posted, dispute, paid, cleared], ignore_index=True)
    events["source_system"] = SOURCE_SYSTEM
    events["is_written_off"] = False
    return events


def ibm_reconciliation(df: pd.DataFrame, events: pd.DataFrame) -> Reconciliation:
    """CSV rows and invoices against the ledger's events and invoices: each row becomes its
    invoice_posted event; the other activities are added."""
    added = events["activity"].value_counts().drop(A.INVOICE_POSTED.value, errors="ignore")
    rows = reconcile_counts(STAGE, "rows (CSV rows -> events)", len(df), len(events),
                            {f"added: {act}": int(n) for act, n in added.sort_index().items()})
    invoices = reconcile_ids(STAGE, "invoices", df["invoiceNumber"], events["invoice_id"])
    return combine(rows, invoices)


def load_ibm_ar(path: str | Path = paths.IBM_AR_CSV) -> SourceLedger:
    """Read the IBM AR sample into a validated canonical event log and a point-in-time master."""
    path = Path(path)
    df = _parse(_read(path), path)
    last_refresh = pd.Timestamp(df[list(_DATE_COLUMNS)].max().max()) + pd.Timedelta(days=1)
    master = billing_master(df)
    on_invoice = segment_as_of(master, df["customerID"], df["InvoiceDate"])
    expected = df["PaperlessBill"].map(SEGMENT_BY_BILL)
    if not on_invoice.eq(expected).all():
        raise ValueError(f"IBM AR sample {path}: PaperlessBill does not follow PaperlessDate on "
                         f"line(s) {_rows(~on_invoice.eq(expected))}; the billing-mode reading "
                         "in features/ingest/ibm.py no longer holds")
    events = _events(df)
    events["last_refresh"] = last_refresh
    events = add_calculated_activities(validate_event_log(events).events, as_of=last_refresh)
    # Every event, derived ones included, carries the billing mode in force at its own time.
    events["customer_segment"] = segment_as_of(master, events["customer_id"],
                                               events["event_time"])
    checked = validate_event_log(events)
    if len(checked.quarantine):
        raise ValueError(f"IBM AR sample {path}: the adapter produced invalid events: "
                         f"{checked.counts}")
    return SourceLedger(events=checked.events, master=master, last_refresh=last_refresh,
                        caveats=(DISPUTE_CAVEAT,),
                        reconciliation=ibm_reconciliation(df, checked.events))


__all__ = ["SourceLedger", "load_ibm_ar", "verify_checksum", "SampleFileError",
           "ibm_reconciliation", "billing_master", "segment_as_of", "DISPUTE_CAVEAT",
           "IBM_COLUMNS", "OUTCOME_COLUMNS"]
