"""Invoices, not rows: a quarantined payment or clearing takes its whole invoice along, and every
invoice is accounted for from the extract to the training and scoring rows."""

from __future__ import annotations

import pandas as pd

from features.config.features import FeatureConfig
from features.ingest.ledger_in import ingest_ledger, write_ingest
from features.ingest.ledger_summary import summarise
from features.pit.build import AFTER_END, CLOSED_BY_NOW, NEVER_OPEN, build_feature_sets
from features.reconcile import IN, OUT, read_reconciliation

HEADER = "event_time,activity,invoice_id,customer_id,net_due_date,amount,last_refresh\n"
LEDGER = [
    # P: paid late, a normal life.
    "2024-01-02,invoice_posted,P,C1,2024-02-01,100,2024-06-30",
    "2024-02-10,incoming_payment_posted,P,C1,,100,2024-06-30",
    "2024-02-10,invoice_cleared,P,C1,,,2024-06-30",
    # B: its payment and clearing are dated before its posting (a typo in the posting date).
    # Kept alone, the posting would be an open item, overdue since March: a phantom.
    "2024-02-01,invoice_posted,B,C1,2024-03-02,500,2024-06-30",
    "2024-01-20,incoming_payment_posted,B,C1,,500,2024-06-30",
    "2024-01-20,invoice_cleared,B,C1,,,2024-06-30",
    # S: paid and cleared the day it was posted (a date-only log): never open at a known instant.
    "2024-03-05,invoice_posted,S,C2,2024-04-04,40,2024-06-30",
    "2024-03-05,incoming_payment_posted,S,C2,,40,2024-06-30",
    "2024-03-05,invoice_cleared,S,C2,,,2024-06-30",
    # O: still open.
    "2024-05-01,invoice_posted,O,C2,2024-05-31,70,2024-06-30",
]


def _ingest(tmp_path):
    path = tmp_path / "extract.csv"
    path.write_text(HEADER + "\n".join(LEDGER) + "\n")
    return ingest_ledger(path)


def test_a_quarantined_outcome_quarantines_the_whole_invoice(tmp_path):
    result = _ingest(tmp_path)
    q = result.validation.quarantine
    assert q["invoice_id"].tolist() == ["B", "B", "B"]
    assert q["reason"].tolist() == ["invoice_quarantined", "before_posting", "before_posting"]
    assert q["reason_text"][0] == ("invoice quarantined: before_posting: event before its "
                                   "invoice was posted")
    assert "B" not in set(result.events["invoice_id"])
    # Open receivables hold O only (70), not the phantom 500 of B.
    assert summarise(result.events)["open_receivables"] == 70.0
    rec = result.reconciliation
    assert rec.balanced
    assert rec.count("ingest", "invoices", IN) == 4
    assert rec.count("ingest", "invoices", "invoice quarantined: before_posting") == -1
    assert rec.count("ingest", "invoices", OUT) == 3
    assert rec.count("ingest", "rows", "quarantined: before_posting (event before its invoice "
                     "was posted)") == -2
    written = write_ingest(result, tmp_path / "ledger")
    assert read_reconciliation(written["reconciliation"]) == rec
    assert pd.read_csv(written["quarantine"])["invoice_id"].tolist() == ["B", "B", "B"]


def test_every_ledger_invoice_has_a_row_or_a_counted_reason(tmp_path):
    events = _ingest(tmp_path).events
    sets = build_feature_sets(events, None, FeatureConfig(), seed=0)
    assert sets.scoring["invoice_id"].tolist() == ["O"]
    assert set(sets.training["invoice_id"]) == {"P", "O"}
    late = sets.training.loc[sets.training["label_late"].eq(1.0), "invoice_id"]
    assert set(late) == {"P"}  # B, the would-be phantom, is no late row
    rec = sets.reconciliation
    assert rec.balanced
    what = "invoices -> training rows"
    assert [rec.count("features", what, r) for r in (IN, NEVER_OPEN, OUT)] == [3, -1, 2]
    scoring = "invoices -> scoring rows (open now)"
    assert [rec.count("features", scoring, r) for r in (IN, CLOSED_BY_NOW, OUT)] == [3, -2, 1]
    assert rec.count("features", "training rows", OUT) == len(sets.training)


def test_an_invoice_posted_after_the_end_of_observation_is_counted(tmp_path):
    events = _ingest(tmp_path).events
    sets = build_feature_sets(events, None, FeatureConfig(), seed=0, end_time="2024-04-01")
    rec = sets.reconciliation
    what = "invoices -> training rows"
    assert rec.count("features", what, AFTER_END) == -1  # O
    assert rec.count("features", what, NEVER_OPEN) == -1  # S
    assert rec.count("features", what, OUT) == 1 and rec.balanced
