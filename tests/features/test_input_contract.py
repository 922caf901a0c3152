"""docs/input_contract.md is generated from the schema and stays current; its example ingests."""

from __future__ import annotations

from features import paths, schema
from features.ingest import validate
from features.ingest.contract import input_contract
from features.ingest.ledger_in import ingest_ledger
from features.reconcile import IN, OUT


def test_the_committed_contract_is_current():
    committed = paths.INPUT_CONTRACT.read_text(encoding="utf-8")
    assert committed == input_contract(), (
        "docs/input_contract.md is stale: regenerate it with "
        "`python -c 'from features.ingest.contract import write_input_contract as w; w()'`")


def test_validation_and_the_contract_read_the_same_required_values():
    assert validate.ACTIVITY_REQUIRED_VALUES is schema.ACTIVITY_REQUIRED_VALUES
    assert schema.ACTIVITY_REQUIRED_VALUES[schema.Activity.INVOICE_POSTED] == (
        "amount", "net_due_date")
    text = input_contract()
    assert "| `net_due_date` | date / time | invoice_posted |" in text
    assert ("| `incoming_payment_posted` | Incoming Payment Posted | Document de paiement "
            "entrant enregistré | explicit | the amount paid against the invoice") in text
    assert {a.value for a in schema.OUTCOME_ACTIVITIES} == {
        "incoming_payment_posted", "credit_memo_posted", "residual_item_created",
        "invoice_cleared", "invoice_written_off"}


def test_the_tiny_example_ledger_ingests_cleanly():
    result = ingest_ledger(paths.TINY_LEDGER)
    rec = result.reconciliation
    assert result.validation.quarantine.empty and rec.balanced
    assert [rec.count("ingest", "rows", r) for r in
            (IN, "derived: due_date_passed", "derived: promise_to_pay_broken", OUT)] == [
        12, 2, 1, 15]
    assert rec.count("ingest", "invoices", OUT) == 3
    assert result.events["invoice_id"].iloc[0] == "0090000001"  # leading zeros kept
