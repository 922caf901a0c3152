"""Validation: every kind of bad row is quarantined with its reason; good rows pass unchanged."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.ingest.validate import (
    REASONS,
    summary,
    validate_event_log,
    validate_master,
    write_quarantine,
)

COLUMNS = ("event_time", "activity", "invoice_id", "customer_id", "net_due_date", "amount",
           "dunning_level", "promised_date", "clearing_document", "is_written_off", "user_name")

# (expected reason or None for a good row, expected activity code for good rows, raw values...)
# Raw values are text, as a CSV read gives them; "" is an empty cell.
ROWS = [
    # --- invoice 0001 (customer C001): overdue, dunned, paid, then a returned payment -------
    (None, "invoice_posted", "2024-01-10", "invoice_posted", "0001", "C001", "2024-02-09", "1000",
     "", "", "", "", "ALICE"),
    # English label; same instant as the posting is allowed (date-only logs).
    (None, "dispute_case_created", "2024-01-10T00:00:00", "Dispute Case Created", "0001", "C001",
     "", "200", "", "", "", "", ""),
    (None, "due_date_passed", "2024-02-10", "due_date_passed", "0001", "C001", "2024-02-09", "",
     "", "", "", "", ""),
    # French seed label.
    (None, "dunning_run", "2024-02-15", "Lancement de relance exécuté", "0001", "C001", "", "",
     "1", "", "", "", ""),
    (None, "incoming_payment_posted", "2024-02-20", "incoming_payment_posted", "0001", "C001", "",
     "1000", "", "", "", "", "ALICE"),
    (None, "invoice_cleared", "2024-02-21", "invoice_cleared", "0001", "C001", "", "0", "", "",
     "0100000001", "", ""),
    # A reversal: a negative payment after clearing is the one event allowed after the end.
    (None, "incoming_payment_posted", "2024-03-01", "incoming_payment_posted", "0001", "C001", "",
     "-1000", "", "", "", "", ""),
    # --- invoice 0002 (C001): partial payment, broken promise, credit memo --------------------
    (None, "invoice_posted", "2024-01-15", "INVOICE POSTED", "0002", "C001", "2024-02-14", "500",
     "", "", "", "", ""),
    (None, "incoming_payment_posted", "2024-01-20", "incoming_payment_posted", "0002", "C001", "",
     "200", "", "", "", "", ""),
    (None, "residual_item_created", "2024-01-20", "Poste résiduel créé", "0002", "C001", "",
     "300", "", "", "", "", ""),
    (None, "promise_to_pay_created", "2024-02-01", "promise_to_pay_created", "0002", "C001", "",
     "300", "", "2024-02-10", "", "", ""),
    (None, "promise_to_pay_broken", "2024-02-11", "promise_to_pay_broken", "0002", "C001", "",
     "", "", "", "", "", ""),
    (None, "credit_memo_posted", "2024-02-20", "credit_memo_posted", "0002", "C001", "", "300",
     "", "", "", "", ""),
    (None, "invoice_cleared", "2024-02-20", "invoice_cleared", "0002", "C001", "", "300", "", "",
     "0100000002", "", ""),
    # A cancelled credit memo after clearing: also a reversal.
    (None, "credit_memo_posted", "2024-02-25", "credit_memo_posted", "0002", "C001", "", "-50",
     "", "", "", "", ""),
    # --- invoice 0003 (C002): due on posting day, written off ---------------------------------
    (None, "invoice_posted", "2024-01-05 09:30:00", "Facture comptabilisée", "0003", "C002",
     "2024-01-05", "80", "", "", "", "", ""),
    (None, "invoice_written_off", "2024-03-01", "Invoice Written Off", "0003", "C002", "", "80",
     "", "", "", "true", ""),
    # Same instant as the terminal event: accepted.
    (None, "collection_contact", "2024-03-01", "collection_contact", "0003", "C002", "", "", "",
     "", "", "", ""),
    # --- invoice 0004 (C002): open; time with an offset becomes naive UTC ---------------------
    (None, "invoice_posted", "2024-02-01T08:00:00+01:00", "invoice_posted", "0004", "C002",
     "2024-03-02", "120", "", "", "", "", ""),
    (None, "payment_block_set", "2024-02-05", "payment_block_set", "0004", "C002", "", "", "", "",
     "", "", ""),
    (None, "collection_contact", "2024-02-05", "collection_contact", "0004", "C002", "", "", "",
     "", "", "", ""),
    # --- invoice 00005 (customer 007): leading zeros everywhere -------------------------------
    (None, "invoice_posted", "2024-02-02", "invoice_posted", "00005", "007", "2024-03-03",
     "99.99", "", "", "", "", ""),

    # --- bad rows -------------------------------------------------------------------------------
    ("missing_required", None, "2024-02-16", "dunning_run", "0001", "", "", "", "2", "", "", "",
     ""),
    ("missing_required", None, "", "collection_contact", "0002", "C001", "", "", "", "", "", "",
     ""),
    ("missing_required", None, "2024-02-16", "collection_contact", "", "C001", "", "", "", "", "",
     "", ""),
    ("missing_required", None, "2024-02-16", "  ", "0001", "C001", "", "", "", "", "", "", ""),
    ("unknown_activity", None, "2024-02-16", "Invoice Eaten", "0001", "C001", "", "", "", "", "",
     "", ""),
    ("bad_event_time", None, "2024-13-45", "dunning_run", "0001", "C001", "", "", "1", "", "", "",
     ""),
    # (A bad payment would quarantine its whole invoice: see test_invoice_quarantine.py.)
    ("bad_value", None, "2024-01-25", "dispute_case_created", "0002", "C001", "", "12,x", "",
     "", "", "", ""),
    ("bad_value", None, "2024-02-16", "dunning_run", "0001", "C001", "", "", "2.5", "", "", "",
     ""),
    ("bad_value", None, "2024-02-16", "collection_contact", "0003", "C002", "", "", "", "", "",
     "maybe", ""),
    ("bad_value", None, "2024-02-02", "promise_to_pay_created", "0002", "C001", "", "300", "",
     "soon", "", "", ""),
    ("missing_activity_value", None, "2024-01-03", "invoice_posted", "0010", "C003", "", "70", "",
     "", "", "", ""),
    ("orphan", None, "2024-01-20", "incoming_payment_posted", "0010", "C003", "", "70", "", "",
     "", "", ""),
    ("missing_activity_value", None, "2024-02-03", "promise_to_pay_created", "0002", "C001", "",
     "300", "", "", "", "", ""),
    # Copy of 0001's payment entered by someone else: still the same event.
    ("duplicate_event", None, "2024-02-20", "incoming_payment_posted", "0001", "C001", "", "1000",
     "", "", "", "", "BOB"),
    ("duplicate_posting", None, "2024-01-16", "invoice_posted", "0002", "C001", "2024-02-15",
     "510", "", "", "", "", ""),
    ("negative_invoice_amount", None, "2024-01-04", "invoice_posted", "0011", "C003",
     "2024-02-03", "-50", "", "", "", "", ""),
    ("orphan", None, "2024-01-30", "invoice_cleared", "0011", "C003", "", "", "", "", "", "", ""),
    ("due_before_posting", None, "2024-03-01", "invoice_posted", "0012", "C003", "2024-02-28",
     "40", "", "", "", "", ""),
    ("orphan", None, "2024-03-05", "incoming_payment_posted", "0012", "C003", "", "40", "", "",
     "", "", ""),
    ("orphan", None, "2024-02-16", "dunning_run", "9999", "C003", "", "", "1", "", "", "", ""),
    ("inconsistent_customer", None, "2024-02-10", "dunning_run", "0004", "C009", "", "", "1", "",
     "", "", ""),
    ("before_posting", None, "2024-01-31", "collection_contact", "0004", "C002", "", "", "", "",
     "", "", ""),
    # Written off at the same instant as it was cleared: one terminal too many.
    ("second_terminal", None, "2024-02-21", "invoice_written_off", "0001", "C001", "", "0", "",
     "", "", "true", ""),
    ("second_terminal", None, "2024-03-05", "invoice_cleared", "0002", "C001", "", "0", "", "",
     "0100000003", "", ""),
    ("after_terminal", None, "2024-03-02", "collection_contact", "0001", "C001", "", "", "", "",
     "", "", ""),
    ("after_terminal", None, "2024-03-10", "incoming_payment_posted", "0003", "C002", "", "80",
     "", "", "", "", ""),
    # Invoice 0013: paid and cleared "before" its posting (a typo in the posting date). Without
    # its outcome the posting would be a phantom open item, so the invoice goes as a whole.
    ("invoice_quarantined", None, "2024-02-01", "invoice_posted", "0013", "C004", "2024-03-02",
     "60", "", "", "", "", ""),
    ("before_posting", None, "2024-01-20", "incoming_payment_posted", "0013", "C004", "", "60",
     "", "", "", "", ""),
    ("before_posting", None, "2024-01-20", "invoice_cleared", "0013", "C004", "", "", "", "",
     "0100000013", "", ""),
    # A positive credit memo after clearing is not a reversal.
    ("after_terminal", None, "2024-03-03", "credit_memo_posted", "0001", "C001", "", "50", "", "",
     "", "", ""),
]


def _interleave(rows: list[tuple]) -> list[tuple]:
    """Good and bad rows alternate (each copy still comes after its original)."""
    good = [r for r in rows if r[0] is None]
    bad = [r for r in rows if r[0] is not None]
    mixed = [r for pair in zip(good, bad) for r in pair]
    return mixed + good[len(bad):] + bad[len(good):]


def _frame(rows: list[tuple]) -> pd.DataFrame:
    raw = pd.DataFrame([r[2:] for r in rows], columns=list(COLUMNS), dtype="str")
    return raw.replace("", np.nan)  # what read_csv gives for an empty cell


@pytest.fixture(scope="module")
def case():
    rows = _interleave(ROWS)
    expected = [r[0] for r in rows]
    codes = [r[1] for r in rows]
    raw = _frame(rows)
    return raw, expected, codes, validate_event_log(raw)


def test_every_bad_row_gets_its_reason(case):
    raw, expected, _, result = case
    bad_positions = [i for i, e in enumerate(expected) if e is not None]
    assert result.quarantine["row_number"].tolist() == bad_positions
    assert result.quarantine["reason"].tolist() == [expected[i] for i in bad_positions]
    assert result.counts == dict(Counter(e for e in expected if e is not None))
    # Every reason of the list is exercised by this log.
    assert set(result.counts) == {r.code for r in REASONS}


def test_nothing_is_lost(case):
    raw, _, _, result = case
    assert len(result.events) + len(result.quarantine) == len(raw)
    assert sum(result.counts.values()) == len(result.quarantine)


def test_quarantine_keeps_original_values_and_names_the_column(case):
    raw, _, _, result = case
    q = result.quarantine.set_index("row_number")
    for pos, row in q.iterrows():
        for col in COLUMNS:
            assert (pd.isna(row[col]) and pd.isna(raw.at[pos, col])) or row[col] == raw.at[pos, col]
    texts = q["reason_text"].tolist()
    assert "missing required value in column 'customer_id'" in texts
    assert "unparseable float in column 'amount': '12,x'" in texts
    assert "unparseable int in column 'dunning_level': '2.5'" in texts
    assert "invoice_posted without net_due_date" in texts
    assert "unknown activity 'Invoice Eaten'" in texts


def test_good_rows_are_kept_unchanged_and_typed(case):
    raw, expected, codes, result = case
    good = raw[[e is None for e in expected]].reset_index(drop=True)
    ev = result.events
    assert len(ev) == len(good)
    assert ev["activity"].tolist() == [c for c, e in zip(codes, expected) if e is None]
    times = [pd.Timestamp(t).tz_convert(None) if pd.Timestamp(t).tzinfo else pd.Timestamp(t)
             for t in good["event_time"]]
    assert ev["event_time"].tolist() == times
    assert ev["invoice_id"].tolist() == good["invoice_id"].tolist()
    assert ev["customer_id"].tolist() == good["customer_id"].tolist()
    np.testing.assert_array_equal(ev["amount"].to_numpy(),
                                  pd.to_numeric(good["amount"]).to_numpy())
    # Of the two copies of 0001's payment the first read (ALICE's) is the one kept.
    paid = ev[(ev["invoice_id"] == "0001") & (ev["amount"] == 1000)
              & (ev["activity"] == "incoming_payment_posted")]
    assert paid["user_name"].tolist() == ["ALICE"]
    posted_0004 = ev[(ev["invoice_id"] == "0004") & (ev["activity"] == "invoice_posted")]
    assert posted_0004["event_time"].iloc[0] == pd.Timestamp("2024-02-01 07:00:00")
    assert "00005" in set(ev["invoice_id"]) and "007" in set(ev["customer_id"])
    # is_written_off: parsed where given, True on write-offs when missing, else False.
    assert ev.loc[ev["activity"] == "invoice_written_off", "is_written_off"].tolist() == [True]
    assert not ev.loc[ev["activity"] != "invoice_written_off", "is_written_off"].any()
    assert list(ev.columns) == list(schema.EVENT_COLUMN_NAMES)
    assert str(ev["event_time"].dtype) == "datetime64[us]"
    assert str(ev["net_due_date"].dtype) == "datetime64[us]"
    assert ev["amount"].dtype == np.float64 and ev["credit_limit"].dtype == np.float64
    assert str(ev["dunning_level"].dtype) == "Int8"
    assert ev["is_written_off"].dtype == bool
    assert pd.api.types.is_string_dtype(ev["invoice_id"])


def test_result_does_not_depend_on_row_order():
    # Drop the one duplicate whose copies differ (by user): there the first copy read is kept.
    rows = [r for r in ROWS if r[-1] != "BOB"]
    straight = validate_event_log(_frame(rows))
    shuffled = validate_event_log(_frame([rows[i] for i in
                                          np.random.default_rng(5).permutation(len(rows))]))

    def bag(frame: pd.DataFrame, extra: tuple[str, ...]) -> Counter:
        cols = list(COLUMNS) + list(extra)
        return Counter(map(tuple, frame[cols].astype(str).to_numpy()))

    assert bag(shuffled.quarantine, ("reason",)) == bag(straight.quarantine, ("reason",))
    assert bag(shuffled.events, ()) == bag(straight.events, ())


def test_validation_is_idempotent(case):
    _, _, _, result = case
    again = validate_event_log(result.events)
    assert again.quarantine.empty and again.counts == {}
    pd.testing.assert_frame_equal(again.events, result.events)


def test_summary_and_quarantine_file(case, tmp_path):
    raw, _, _, result = case
    table = summary(result)
    assert table.set_index("reason").loc["total", "rows"] == len(raw)
    assert table.set_index("reason").loc["orphan", "rows"] == 4
    assert table["reason"].tolist()[:2] == ["missing_required", "unknown_activity"]
    path = write_quarantine(result, tmp_path / "q" / "quarantine.csv")
    back = pd.read_csv(path, dtype=str)
    assert back["reason"].tolist() == result.quarantine["reason"].tolist()
    assert back["row_number"].astype(int).tolist() == result.quarantine["row_number"].tolist()


def test_extra_columns_are_carried_through():
    raw = pd.DataFrame({"event_time": ["2024-01-01", "2024-01-02"],
                        "activity": ["invoice_posted", "dunning_run"],
                        "invoice_id": ["1", "2"], "customer_id": ["C", "C"],
                        "net_due_date": ["2024-01-31", None], "amount": ["10", None],
                        "plant": ["P1", "P2"]})
    result = validate_event_log(raw)
    assert result.events["plant"].tolist() == ["P1"]
    assert result.quarantine["plant"].tolist() == ["P2"]
    assert result.quarantine["reason"].tolist() == ["orphan"]


def test_missing_required_column_raises():
    raw = pd.DataFrame({"event_time": ["2024-01-01"], "activity": ["invoice_posted"],
                        "invoice_id": ["1"]})
    with pytest.raises(ValueError, match=r"customer_id.*Kunnr"):
        validate_event_log(raw)


def test_validate_master():
    raw = pd.DataFrame({
        "Kunnr": ["C1", "C1", "C1", "C2", "", "C3", "C4"],
        "ValidFrom": ["2024-01-01", "2024-03-01", "2024-01-01", "2024-01-01", "2024-01-01",
                      "someday", "2024-02-01"],
        "ValidTo": [None, None, None, None, None, None, "2024-01-01"],
        "Ctlpc": ["A01", "B02", "C03", "A01", "A01", "A01", "A01"],
        "Klimk": ["1000", "2000", "3000", "lots", "1", "1", "1"],
    })
    master, quarantine = validate_master(raw)
    assert quarantine["reason"].tolist() == ["duplicate_version", "bad_value", "missing_required",
                                             "bad_value", "bad_interval"]
    assert quarantine["row_number"].tolist() == [2, 3, 4, 5, 6]
    assert master["customer_id"].tolist() == ["C1", "C1"]
    assert master["risk_category"].tolist() == ["A01", "B02"]
    assert master["valid_to"].tolist() == [pd.Timestamp("2024-03-01"), pd.NaT]
    assert master["credit_limit"].tolist() == [1000.0, 2000.0]
