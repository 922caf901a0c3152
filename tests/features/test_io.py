"""Reading and writing event logs: spellings, ids as strings, clear errors, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.config.simulator import SimulatorConfig
from features.ingest.io import (
    EventLogError,
    ExtraColumnsWarning,
    read_event_log,
    read_master,
    write_event_log,
)
from features.ingest.validate import normalise_activities, validate_event_log
from features.simulate.ledger import simulate_ledger

SEED_CSV = """\
EventTime,ActivityName,InvoiceNumber,Kunnr,Bukrs,NetDueDate,Dmbtr,Mahns,Ctlpc,Klimk,Zterm,Blart,Augbl,Plant
2024-01-10,Facture comptabilisée,0000611365,0042,0100,2024-02-09,1500.50,,A01,10000,NT30,RV,,P1
2024-02-15,Lancement de relance exécuté,0000611365,0042,0100,,,1,A01,10000,,,,P1
2024-02-20,Facture apurée,0000611365,0042,0100,,1500.50,,A01,10000,,,0100000001,P2
"""


def _canonical_log() -> pd.DataFrame:
    """A small clean canonical log with every column filled somewhere."""
    raw = pd.DataFrame({
        "event_time": ["2024-01-10 09:15:00", "2024-01-10 09:15:00", "2024-02-10", "2024-02-15",
                       "2024-02-18", "2024-02-26", "2024-03-01", "2024-03-01", "2024-01-12"],
        "activity": ["invoice_posted", "dispute_case_created", "due_date_passed", "dunning_run",
                     "promise_to_pay_created", "promise_to_pay_broken", "incoming_payment_posted",
                     "invoice_cleared", "invoice_posted"],
        "invoice_id": ["0001"] * 8 + ["0002"],
        "customer_id": ["007"] * 9,
        "company_code": ["0100"] * 9,
        "collector": ["J. Smith"] * 9,
        "net_due_date": ["2024-02-09"] * 8 + ["2024-01-12"],
        "amount": ["1234.56", "100.1", None, None, "1234.56", "1234.56", "1234.56", "0",
                   "0.1"],
        "dunning_level": [None, None, None, "2", None, None, None, None, None],
        "risk_category": ["A01"] * 9,
        "credit_limit": ["50000"] * 9,
        "payment_terms": ["NT30"] * 8 + ["0001"],
        "document_type": ["RV", None, None, None, None, None, "DZ", None, "RV"],
        "clearing_document": [None] * 7 + ["0100000001", None],
        "dispute_case_id": [None, "4000000157"] + [None] * 7,
        "is_written_off": ["false"] * 9,
        "promised_date": [None] * 4 + ["2024-02-25"] + [None] * 4,
        "payment_block": [None, "R"] + [None] * 7,
        "customer_segment": ["sme"] * 9,
        "user_name": ["SMITHJ"] * 9,
        "source_system": ["ECC"] * 9,
        "recorded_time": [None, "2024-01-11 08:00:00"] + [None] * 7,
        "last_refresh": ["2024-03-31 23:00:00"] * 9,
    })
    result = validate_event_log(raw)
    assert result.quarantine.empty
    return result.events


def test_seed_names_are_read_and_ids_keep_leading_zeros(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(SEED_CSV, encoding="utf-8")
    with pytest.warns(ExtraColumnsWarning, match="Plant"):
        raw = read_event_log(path)
    assert raw.attrs["extra_columns"] == ["Plant"]
    assert raw["Plant"].tolist() == ["P1", "P1", "P2"]  # unknown column kept
    assert raw["invoice_id"].tolist() == ["0000611365"] * 3
    assert raw["customer_id"].tolist() == ["0042"] * 3
    assert raw["company_code"].tolist() == ["0100"] * 3
    result = validate_event_log(raw)
    assert result.quarantine.empty
    ev = result.events
    assert ev["activity"].tolist() == ["invoice_posted", "dunning_run", "invoice_cleared"]
    assert ev["amount"].tolist()[0] == 1500.50
    assert ev["dunning_level"].tolist()[1] == 1
    assert ev["clearing_document"].tolist()[2] == "0100000001"
    assert ev["Plant"].tolist() == ["P1", "P1", "P2"]


def test_names_match_case_insensitively_including_sap_fields(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("EVENTTIME;activityname;BELNR;kunnr;dmbtr;FAEDT\n"
                    "2024-01-10;invoice posted;0001;C1;10;2024-02-09\n", encoding="utf-8")
    raw = read_event_log(path)
    assert list(raw.columns) == ["event_time", "activity", "invoice_id", "customer_id", "amount",
                                 "net_due_date"]
    assert raw.attrs["extra_columns"] == []
    assert validate_event_log(raw).events["net_due_date"].iloc[0] == pd.Timestamp("2024-02-09")


def test_missing_required_column_names_it_and_its_spellings(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("EventTime,ActivityName,InvoiceNumber\n2024-01-10,invoice_posted,1\n")
    with pytest.raises(EventLogError) as err:
        read_event_log(path)
    message = str(err.value)
    assert str(path) in message and "customer_id" in message
    assert "Kunnr" in message and "KUNNR" in message
    assert "event_time" not in message.split("found")[0]  # only the missing one is named


def test_two_columns_with_the_same_meaning_are_rejected(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("EventTime,ActivityName,InvoiceNumber,Kunnr,customer_id\n"
                    "2024-01-10,invoice_posted,1,C1,C2\n")
    with pytest.raises(EventLogError, match="both mean 'customer_id'"):
        read_event_log(path)


def test_bad_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_event_log(tmp_path / "nope.csv")
    xlsx = tmp_path / "log.xlsx"
    xlsx.write_bytes(b"PK")
    with pytest.raises(EventLogError, match=r"log\.xlsx.*unsupported"):
        read_event_log(xlsx)
    broken = tmp_path / "log.parquet"
    broken.write_bytes(b"not a parquet file at all")
    with pytest.raises(EventLogError, match=r"log\.parquet.*cannot be read"):
        read_event_log(broken)
    with pytest.raises(FileNotFoundError, match="master.csv"):
        read_master(tmp_path / "master.csv")


def test_a_bad_value_does_not_break_the_read(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("EventTime,ActivityName,InvoiceNumber,Kunnr,Dmbtr,NetDueDate\n"
                    "2024-01-10,invoice_posted,1,C1,10,2024-02-09\n"
                    "2024-01-11,incoming_payment_posted,1,C1,ten,\n"
                    "yesterday,invoice_cleared,1,C1,,\n")
    raw = read_event_log(path)
    assert len(raw) == 3
    result = validate_event_log(raw)
    # The unreadable payment and clearing leave the outcome unknown: the invoice goes as a whole.
    assert result.quarantine["row_number"].tolist() == [0, 1, 2]
    assert result.quarantine["reason"].tolist() == ["invoice_quarantined", "bad_value",
                                                    "bad_event_time"]
    assert result.quarantine["reason_text"][0].startswith("invoice quarantined: bad_value: ")
    assert result.quarantine["amount"].tolist()[1] == "ten"


def test_seed_named_csv_round_trip(tmp_path):
    original = _canonical_log()
    path = write_event_log(original, tmp_path / "out" / "log.csv", naming="seed")
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:4] == ["EventTime", "ActivityName", "InvoiceNumber", "Kunnr"]
    assert "LastDataRefreshTimestamp" in header
    text = path.read_text(encoding="utf-8")
    assert "Invoice Posted" in text and "Payment Due Date Passed" in text
    assert "invoice_posted" not in text
    back = validate_event_log(read_event_log(path))
    assert back.quarantine.empty
    pd.testing.assert_frame_equal(back.events, original)


@pytest.mark.parametrize("naming", ["canonical", "seed"])
def test_parquet_round_trip(tmp_path, naming):
    original = _canonical_log()
    path = write_event_log(original, tmp_path / "log.parquet", naming=naming)
    back = validate_event_log(read_event_log(path))
    pd.testing.assert_frame_equal(back.events, original)


def test_parquet_numeric_ids_become_strings(tmp_path):
    frame = pd.DataFrame({"event_time": pd.to_datetime(["2024-01-10"]),
                          "activity": ["invoice_posted"], "invoice_id": [611365],
                          "customer_id": [42.0], "net_due_date": pd.to_datetime(["2024-02-09"]),
                          "amount": [10.0]})
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    raw = read_event_log(path)
    assert raw["invoice_id"].tolist() == ["611365"] and raw["customer_id"].tolist() == ["42"]
    ev = validate_event_log(raw).events
    assert ev["event_time"].iloc[0] == pd.Timestamp("2024-01-10")
    assert str(ev["event_time"].dtype) == "datetime64[us]"


def test_write_rejects_unknown_naming(tmp_path):
    with pytest.raises(ValueError, match="naming"):
        write_event_log(_canonical_log(), tmp_path / "log.csv", naming="sap")


def test_read_master_with_seed_names(tmp_path):
    path = tmp_path / "master.csv"
    path.write_text("Kunnr,ValidFrom,Ctlpc,Klimk,CustomerSegment,Sachp,Zterm\n"
                    "0042,2024-01-01,A01,10000,sme,J. Smith,NT30\n"
                    "0042,2024-06-01,B02,5000,sme,J. Smith,NT30\n")
    raw = read_master(path)
    assert raw["customer_id"].tolist() == ["0042", "0042"]
    assert set(schema.MASTER_COLUMN_NAMES) - {"valid_to"} <= set(raw.columns)
    path.write_text("Kunnr,Ctlpc\n0042,A01\n")
    with pytest.raises(EventLogError, match=r"valid_from.*ValidFrom"):
        read_master(path)


def test_activity_labels_survive_every_spelling():
    spellings = [s for spec in schema.ACTIVITIES
                 for s in (spec.activity.value, spec.label, spec.seed_label.upper())]
    raw = pd.DataFrame({"event_time": "2024-01-10", "activity": spellings,
                        "invoice_id": "1", "customer_id": "C"})
    codes = normalise_activities(raw["activity"])
    expected = np.repeat([spec.activity.value for spec in schema.ACTIVITIES], 3)
    assert codes.tolist() == expected.tolist()


def test_simulated_ledger_round_trips_through_seed_csv(tmp_path):
    ledger = simulate_ledger(
        SimulatorConfig(n_customers=30, n_invoices=400, months=12), seed=5)
    first = validate_event_log(ledger.events)
    assert len(first.quarantine) <= 0.001 * len(ledger.events)
    path = write_event_log(first.events, tmp_path / "sim.csv", naming="seed")
    back = validate_event_log(read_event_log(path))
    assert back.quarantine.empty
    pd.testing.assert_frame_equal(back.events, first.events)
