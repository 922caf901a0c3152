"""The IBM accounts-receivable sample as our event log (the real file and tiny hand-made ones)."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest

from features import paths, schema
from features.ingest.ibm import (DISPUTE_CAVEAT, OUTCOME_COLUMNS, SampleFileError, load_ibm_ar,
                                 verify_checksum)
from features.reconcile import IN, OUT
from features.ingest.validate import validate_event_log

T = pd.Timestamp
HEADER = ("countryCode,customerID,PaperlessDate,invoiceNumber,InvoiceDate,DueDate,InvoiceAmount,"
          "Disputed,SettledDate,PaperlessBill,DaysToSettle,DaysLate\n")

@pytest.fixture(scope="module")
def ledger():
    return load_ibm_ar()


def test_shape_and_outcomes(ledger):
    ev = ledger.events
    posted = ev[ev["activity"] == "invoice_posted"]
    assert len(posted) == ev["invoice_id"].nunique() == 2466
    assert ev["customer_id"].nunique() == 100
    assert sorted(ev["company_code"].unique()) == ["391", "406", "770", "818", "897"]
    late = ev.groupby("invoice_id")["activity"].apply(lambda s: s.eq("due_date_passed").any())
    assert round(100 * late.mean(), 1) == 35.6
    cleared = ev[ev["activity"] == "invoice_cleared"]
    assert cleared["invoice_id"].nunique() == 2466 and len(cleared) == 2466
    assert (ev["activity"] == "dispute_case_created").sum() == 561
    assert ev["activity"].value_counts().to_dict() == {
        "invoice_posted": 2466, "incoming_payment_posted": 2466, "invoice_cleared": 2466,
        "due_date_passed": 877, "dispute_case_created": 561}
    assert ledger.last_refresh == T("2014-01-10")
    assert (ev["last_refresh"] == ledger.last_refresh).all()
    assert DISPUTE_CAVEAT in ledger.caveats


def test_no_outcome_columns_and_ids_keep_zeros(ledger):
    ev = ledger.events
    assert list(ev.columns) == list(schema.EVENT_COLUMN_NAMES)
    assert not set(OUTCOME_COLUMNS) & set(ev.columns)
    assert not {"DaysToSettle", "DaysLate", "SettledDate"} & set(ledger.master.columns)
    assert "0000611365" in set(ev["invoice_id"])
    assert ev["invoice_id"].str.len().eq(10).all()


def test_validation_quarantines_nothing(ledger):
    result = validate_event_log(ledger.events)
    assert result.quarantine.empty and result.counts == {}
    assert len(result.events) == len(ledger.events)


def test_one_late_disputed_invoice_in_detail(ledger):
    # 406,8976-AMJEO,3/3/2012,0007900770,1/26/2013,2/25/2013,61.74,Yes,3/3/2013,Electronic,36,6
    inv = ledger.events[ledger.events["invoice_id"] == "0007900770"]
    assert inv["activity"].tolist() == ["invoice_posted", "dispute_case_created",
                                        "due_date_passed", "incoming_payment_posted",
                                        "invoice_cleared"]
    assert inv["event_time"].tolist() == [T("2013-01-26"), T("2013-01-26"), T("2013-02-26"),
                                          T("2013-03-03"), T("2013-03-03")]
    posted = inv.iloc[0]
    assert posted["amount"] == 61.74 and posted["net_due_date"] == T("2013-02-25")
    assert posted["payment_terms"] == "NT30" and posted["document_type"] == "RV"
    assert posted["company_code"] == "406" and posted["customer_id"] == "8976-AMJEO"
    assert inv["dispute_case_id"].iloc[1] == "D0007900770" and inv["amount"].iloc[1] == 61.74
    assert (inv["customer_segment"] == "paperless").all()  # switched on 2012-03-03


def test_billing_mode_is_point_in_time(ledger):
    # Customer 6708-DPYTF went paperless on 2012-08-02; its invoice of that very day was
    # still billed on paper (PaperlessBill=Paper in the file).
    m = ledger.master[ledger.master["customer_id"] == "6708-DPYTF"]
    assert m["customer_segment"].tolist() == ["paper", "paperless"]
    assert m["valid_from"].iloc[1] == T("2012-08-03")
    assert m["valid_to"].tolist()[0] == T("2012-08-03") and pd.isna(m["valid_to"].iloc[1])
    ev = ledger.events
    posted = ev[(ev["customer_id"] == "6708-DPYTF") & (ev["activity"] == "invoice_posted")]
    on_switch_day = posted[posted["event_time"] == T("2012-08-02")]
    assert on_switch_day["customer_segment"].tolist() == ["paper"]
    assert set(posted.loc[posted["event_time"] > T("2012-08-02"), "customer_segment"]) == {
        "paperless"}


def _write(tmp_path, *lines: str):
    path = tmp_path / "ar.csv"
    path.write_text(HEADER + "".join(line + "\r\n" for line in lines))
    return path


def test_tiny_file(tmp_path):
    path = _write(tmp_path,
                  "391,0001-AAAAA,6/1/2012,0000000001,1/2/2012,2/1/2012,100.50,No,1/20/2012,"
                  "Paper,18,0",
                  "391,0001-AAAAA,6/1/2012,0000000002,7/1/2012,7/31/2012,20,Yes,8/3/2012,"
                  "Electronic,33,3")
    out = load_ibm_ar(path)
    ev = out.events
    assert out.last_refresh == T("2012-08-04")
    assert ev[ev["invoice_id"] == "0000000001"]["activity"].tolist() == [
        "invoice_posted", "incoming_payment_posted", "invoice_cleared"]
    late = ev[ev["invoice_id"] == "0000000002"]
    assert late["activity"].tolist() == ["invoice_posted", "dispute_case_created",
                                         "due_date_passed", "incoming_payment_posted",
                                         "invoice_cleared"]
    assert late["event_time"].iloc[2] == T("2012-08-01")
    assert out.master["customer_segment"].tolist() == ["paper", "paperless"]
    assert out.master["valid_from"].tolist() == [T("2012-01-02"), T("2012-06-02")]


@pytest.mark.parametrize("line, message", [
    # DaysLate disagrees with the dates.
    ("391,0001-AAAAA,6/1/2012,0000000001,1/2/2012,2/1/2012,100,No,2/5/2012,Paper,34,0",
     r"DaysLate .* line\(s\) 2"),
    # DaysToSettle disagrees with the dates.
    ("391,0001-AAAAA,6/1/2012,0000000001,1/2/2012,2/1/2012,100,No,1/20/2012,Paper,17,0",
     r"DaysToSettle .* line\(s\) 2"),
    ("391,0001-AAAAA,6/1/2012,0000000001,13/2/2012,2/1/2012,100,No,1/20/2012,Paper,18,0",
     r"unparseable InvoiceDate on line\(s\) 2"),
    ("391,0001-AAAAA,6/1/2012,0000000001,1/2/2012,2/1/2012,100,Maybe,1/20/2012,Paper,18,0",
     r"Disputed not Yes/No"),
    # An electronic bill before the customer went paperless contradicts the billing reading.
    ("391,0001-AAAAA,6/1/2012,0000000001,1/2/2012,2/1/2012,100,No,1/20/2012,Electronic,18,0",
     r"PaperlessBill does not follow PaperlessDate"),
])
def test_bad_files_raise_naming_the_line(tmp_path, line, message):
    with pytest.raises(ValueError, match=message):
        load_ibm_ar(_write(tmp_path, line))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        load_ibm_ar(tmp_path / "absent.csv")


def test_the_sample_ships_in_the_repository_with_its_checksum():
    assert paths.IBM_AR_CSV.is_relative_to(paths.ROOT / "data" / "external")
    verify_checksum(paths.IBM_AR_CSV)  # raises when the committed file was altered
    sums = (paths.IBM_AR_CSV.parent / "SHA256SUMS").read_text()
    assert hashlib.sha256(paths.IBM_AR_CSV.read_bytes()).hexdigest() in sums


def test_an_altered_copy_is_refused_in_one_line(tmp_path):
    copy = tmp_path / paths.IBM_AR_CSV.name
    shutil.copy(paths.IBM_AR_CSV, copy)
    shutil.copy(paths.IBM_AR_CSV.parent / "SHA256SUMS", tmp_path / "SHA256SUMS")
    load_ibm_ar(copy)  # an intact copy with its SHA256SUMS loads
    copy.write_bytes(copy.read_bytes().replace(b"391,", b"392,", 1))
    with pytest.raises(SampleFileError, match=r"differs from SHA256SUMS .* altered") as err:
        load_ibm_ar(copy)
    assert "\n" not in str(err.value)


def test_a_missing_default_file_says_how_to_restore_it(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "IBM_AR_CSV", tmp_path / "gone.csv")
    with pytest.raises(FileNotFoundError, match=r"gone.csv: no such file; .*git checkout"):
        load_ibm_ar(tmp_path / "gone.csv")


def test_every_invoice_and_row_is_reconciled(ledger):
    rec = ledger.reconciliation
    assert rec.balanced
    assert rec.count("ibm", "invoices", IN) == rec.count("ibm", "invoices", OUT) == 2466
    what = "rows (CSV rows -> events)"
    assert rec.count("ibm", what, IN) == 2466
    assert rec.count("ibm", what, "added: due_date_passed") == 877
    assert rec.count("ibm", what, OUT) == len(ledger.events) == 8836
