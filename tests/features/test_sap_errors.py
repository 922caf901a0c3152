"""Bad SAP extracts get clear errors naming the table, column and row, and go through the
reconciliation; SAP formats (YYYYMMDD, HHMMSS, timestamps, trailing minus, leading zeros) read;
a missing optional table is reported in the summary, not guessed."""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema
from features.config.simulator import SimulatorConfig
from features.ingest.sap import (SapExtractError, _parse_date, _parse_number, _parse_time,
                                 _parse_timestamp, convert_sap_extracts, summary_text)
from features.simulate.ledger import simulate_ledger
from features.simulate.sap_tables import (SIMULATOR_SAP_CONFIG, ledger_to_sap_tables,
                                          write_sap_tables)

A = schema.Activity


@pytest.fixture(scope="module")
def tables():
    ledger = simulate_ledger(SimulatorConfig(n_customers=20, n_invoices=200, months=8), seed=4)
    return ledger_to_sap_tables(ledger.events, ledger.master, ledger.customers,
                                last_refresh=ledger.last_refresh)


def _convert(tables: dict, tmp_path, config=SIMULATOR_SAP_CONFIG, fmt="csv"):
    write_sap_tables(tables, tmp_path, fmt)
    return convert_sap_extracts(tmp_path, config)


def _copy(tables: dict) -> dict:
    return {k: v.copy() for k, v in tables.items()}


def _issue(result, table: str, reason: str) -> pd.DataFrame:
    q = result.quarantine
    return q[q["table"].eq(table) & q["reason"].eq(reason)]


def _accounted(result) -> None:
    rec = result.reconciliation.set_index("table").drop(index="(derived)")
    assert (rec["rows_in"] == rec["mapped"] + rec["ignored"] + rec["quarantined"]).all()


def test_missing_key_column_names_table_and_column(tables, tmp_path):
    bad = _copy(tables)
    bad["BKPF"] = bad["BKPF"].drop(columns=["BUDAT"])
    with pytest.raises(SapExtractError, match=r"BKPF \(BKPF.csv\), header row: missing key "
                                              r"column\(s\) BUDAT"):
        _convert(bad, tmp_path)


def test_missing_required_table(tables, tmp_path):
    bad = _copy(tables)
    del bad["BSAD"]
    with pytest.raises(SapExtractError, match="required table.*BSAD"):
        _convert(bad, tmp_path)


def test_unknown_document_type_is_quarantined_with_its_items(tables, tmp_path):
    bad = _copy(tables)
    row = bad["BKPF"].index[bad["BKPF"]["BLART"].eq("DZ")][0]
    bad["BKPF"].loc[row, "BLART"] = "XY"
    result = _convert(bad, tmp_path)
    hit = _issue(result, "BKPF", "unknown_document_type")
    assert hit["row"].tolist() == [row + 1] and hit["column"].tolist() == ["BLART"]
    text = hit["reason_text"].iloc[0]
    assert f"BKPF row {row + 1}, column BLART: document type 'XY'" in text and "DZ" in text
    belnr = bad["BKPF"].loc[row, "BELNR"]
    items = pd.concat([_issue(result, t, "header_quarantined") for t in ("BSID", "BSAD")])
    assert len(items) == 1 and f"BELNR={belnr}" in items["key"].iloc[0]
    assert f"(BKPF row {row + 1})" in items["reason_text"].iloc[0]
    rec = result.reconciliation.set_index("table")
    assert rec.loc["BKPF", "quarantined"] == 1
    assert "unknown_document_type 1" in rec.loc["BKPF", "quarantine_reasons"]
    _accounted(result)


def test_cleared_item_without_clearing_date(tables, tmp_path):
    bad = _copy(tables)
    bad["BSAD"].loc[2, "AUGDT"] = ""
    result = _convert(bad, tmp_path)
    hit = _issue(result, "BSAD", "missing_clearing_date")
    assert hit["row"].tolist() == [3] and hit["column"].tolist() == ["AUGDT"]
    assert hit["reason_text"].iloc[0].startswith("BSAD row 3, column AUGDT: empty")
    _accounted(result)


def test_currency_mismatch_in_header_and_in_promises(tables, tmp_path):
    bad = _copy(tables)
    bad["BKPF"].loc[4, "HWAER"] = "JPY"
    company = bad["BKPF"].loc[4, "BUKRS"]
    expected = bad["T001"].set_index("BUKRS")["WAERS"][company]
    bad["UDM_P2P_ATTR"].loc[0, "PROMISED_CURR"] = "CHF"
    result = _convert(bad, tmp_path)
    hit = _issue(result, "BKPF", "currency_mismatch")
    assert hit["row"].tolist() == [5] and hit["column"].tolist() == ["HWAER"]
    assert (f"BKPF row 5, column HWAER: local currency 'JPY' but company code {company} "
            f"books in {expected}") == hit["reason_text"].iloc[0]
    p2p = _issue(result, "UDM_P2P_ATTR", "currency_mismatch")
    assert p2p["row"].tolist() == [1] and p2p["column"].tolist() == ["PROMISED_CURR"]
    assert "amount in 'CHF'" in p2p["reason_text"].iloc[0]
    _accounted(result)


def test_unreadable_values_name_table_column_and_row(tables, tmp_path):
    bad = _copy(tables)
    bad["BKPF"].loc[0, "BUDAT"] = "2023-13-45"
    bad["BSAD"].loc[1, "DMBTR"] = "12,50"
    result = _convert(bad, tmp_path)
    date = _issue(result, "BKPF", "bad_value")
    assert date["reason_text"].tolist() == [
        "BKPF row 1, column BUDAT: '2023-13-45' is not a date (YYYYMMDD)"]
    amount = _issue(result, "BSAD", "bad_value")
    assert amount["reason_text"].tolist() == [
        "BSAD row 2, column DMBTR: '12,50' is not a number ('.' as decimal separator)"]
    _accounted(result)


def test_leading_zeros_are_restored_and_kept(tables, tmp_path):
    """Excel drops the zeros of 0000100004; the reader pads ids back to their SAP length."""
    stripped = _copy(tables)
    for name in ("BSID", "BSAD", "KNA1", "KNB1", "KNKK"):
        stripped[name]["KUNNR"] = stripped[name]["KUNNR"].str.lstrip("0")
    result = _convert(stripped, tmp_path)
    assert result.quarantine.empty and result.event_quarantine.empty
    assert result.events["customer_id"].str.fullmatch(r"0{4}\d{6}").all()
    assert result.master["customer_id"].str.len().eq(10).all()
    assert result.events["risk_category"].notna().all()


def test_sap_date_time_and_number_formats():
    days, bad = _parse_date(pd.Series(["20230105", "2023-01-05", "00000000", "", None, "2023x"]))
    assert days.tolist()[:2] == [pd.Timestamp("2023-01-05")] * 2
    assert days.isna().tolist()[2:] == [True] * 4 and bad.tolist() == [False] * 5 + [True]
    times, bad = _parse_time(pd.Series(["093000", "93000", "235959", "246000"]))
    assert times.dt.total_seconds().tolist()[:3] == [34200, 34200, 86399]
    assert bad.tolist() == [False, False, False, True]
    stamps, _ = _parse_timestamp(pd.Series(["20230105093015", "20230105093015.1234567",
                                            "0"]))
    assert stamps.tolist()[:2] == [pd.Timestamp("2023-01-05 09:30:15")] * 2
    assert pd.isna(stamps.iloc[2])
    numbers, bad = _parse_number(pd.Series(["100.50", "100.50-", "-3", "1.234,5"]))
    assert numbers.tolist()[:3] == [100.5, -100.5, -3.0] and bad.tolist()[3]


def test_missing_optional_tables_are_stated(tables, tmp_path):
    partial = _copy(tables)
    for name in ("UDM_P2P_ATTR", "MHND", "MHNK", "UDM_CONTACT"):
        del partial[name]
    result = _convert(partial, tmp_path)
    missing = dict(result.missing_tables)
    assert set(missing) == {"UDM_P2P_ATTR", "MHND", "UDM_CONTACT"}
    assert "no promise events" in missing["UDM_P2P_ATTR"]
    text = summary_text(result)
    assert "UDM_P2P_ATTR: no Collections Management promises" in text
    assert "MHND not exported" in text  # the fallback on BSID/BSAD-MADAT is said, not silent
    acts = set(result.events["activity"])
    assert A.PROMISE_TO_PAY_CREATED.value not in acts
    assert A.COLLECTION_CONTACT.value not in acts
    dunning = result.events[result.events["activity"].eq(A.DUNNING_RUN)]
    assert len(dunning) > 0  # one run per item, from MADAT / MANST


def test_unassigned_payment_is_quarantined_not_dropped(tables, tmp_path):
    bad = _copy(tables)
    bsid = bad["BSID"]
    rows = bsid.index[bsid["SHKZG"].eq("H")]
    if len(rows) == 0:  # no open payment in this world: make one from a cleared one
        row = bad["BSAD"].index[bad["BSAD"]["SHKZG"].eq("H")][0]
        moved = bad["BSAD"].loc[[row]].drop(columns=["AUGBL", "AUGDT"])
        bad["BSAD"] = bad["BSAD"].drop(index=row).reset_index(drop=True)
        bad["BSID"] = pd.concat([bsid, moved], ignore_index=True)
        rows = [len(bad["BSID"]) - 1]
    bad["BSID"].loc[rows[0], ["REBZG", "REBZJ", "REBZZ"]] = ""
    result = _convert(bad, tmp_path)
    hit = _issue(result, "BSID", "unassigned_item")
    assert hit["row"].tolist() == [rows[0] + 1] and "cash on account" in hit[
        "reason_text"].iloc[0]
    _accounted(result)


def test_validation_quarantine_keeps_the_source_row(tables, tmp_path):
    """An event the validation rejects (here a promise before its invoice's posting) keeps the
    SAP table and row it came from."""
    bad = _copy(tables)
    bad["UDM_P2P_ATTR"].loc[0, "CREATE_TIME"] = "20000101000000"
    result = _convert(bad, tmp_path)
    q = result.event_quarantine
    assert q[["source_table", "source_row", "reason"]].values.tolist() == [
        ["UDM_P2P_ATTR", 1, "before_posting"]]
    rec = result.reconciliation.set_index("table")
    assert rec.loc["UDM_P2P_ATTR", "events_quarantined"] == 1


def test_rows_of_unknown_invoices_are_quarantined(tables, tmp_path):
    """A dunning line, a dispute and a contact about documents that are in no extract."""
    bad = _copy(tables)
    bad["MHND"].loc[0, "BELNR"] = "1999999999"
    bad["MHND"].loc[1, "LAUFD"] = "20231340"  # and a bad row before it, in the same table
    bad["UDM_CASE_ATTR00"].loc[0, "BELNR"] = "1999999999"
    result = _convert(bad, tmp_path)
    mhnd = result.quarantine[result.quarantine["table"].eq("MHND")]
    assert mhnd[["row", "reason"]].values.tolist() == [[1, "unknown_invoice"], [2, "bad_value"]]
    assert "document 1999999999 of company code" in mhnd["reason_text"].iloc[0]
    assert _issue(result, "UDM_CASE_ATTR00", "unknown_invoice")["row"].tolist() == [1]
    _accounted(result)
