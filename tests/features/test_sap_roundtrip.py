"""SAP tables round trip: a simulated ledger written as SAP extracts (features.simulate.sap_tables)
and read back (features.ingest.sap) is the same event log and master history.

The explicit and inferred activities come back equal in every column (times to the second,
amounts, ids, users, dispute ids, blocks...), compared with the simulated log after the same
validation `ingest` applies. The two calculated activities are not in SAP: the reader derives them
by the pipeline's rule (features.ingest.derive), so they are compared on what the rule decides
(invoice, time, promised date, due date, customer attributes), not on who "recorded" them.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema
from features.config.simulator import SimulatorConfig
from features.ingest.derive import sort_events
from features.ingest.sap import convert_sap_extracts
from features.ingest.validate import validate_event_log
from features.simulate.ledger import simulate_ledger
from features.simulate.sap_tables import (SIMULATOR_SAP_CONFIG, ledger_to_sap_tables,
                                          write_sap_tables)

A = schema.Activity
WORLD = SimulatorConfig(n_customers=40, n_invoices=600, months=12)
CALCULATED = {a.value for a in schema.CALCULATED_ACTIVITIES}
CALCULATED_COLUMNS = ["invoice_id", "activity", "event_time", "customer_id", "company_code",
                      "net_due_date", "payment_terms", "promised_date", "risk_category",
                      "credit_limit", "customer_segment", "collector", "last_refresh"]
MASTER_ATTRS = ["risk_category", "credit_limit", "customer_segment", "collector",
                "payment_terms"]


@pytest.fixture(scope="module")
def ledger():
    return simulate_ledger(WORLD, seed=3)


@pytest.fixture(scope="module")
def tables(ledger):
    return ledger_to_sap_tables(ledger.events, ledger.master, ledger.customers,
                                last_refresh=ledger.last_refresh)


@pytest.fixture(scope="module", params=["csv", "parquet"])
def read_back(request, tables, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"sap-{request.param}")
    write_sap_tables(tables, folder, request.param)
    return convert_sap_extracts(folder, SIMULATOR_SAP_CONFIG)


def _split(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    events = sort_events(events)
    calc = events["activity"].isin(CALCULATED)
    return (events[~calc].reset_index(drop=True),
            events.loc[calc, CALCULATED_COLUMNS].reset_index(drop=True))


def collapse(master: pd.DataFrame) -> pd.DataFrame:
    """Master versions with consecutive equal versions merged (SAP records changes only)."""
    m = master.sort_values(["customer_id", "valid_from"]).reset_index(drop=True)
    prev = m.groupby("customer_id")[MASTER_ATTRS].shift()
    same = m[MASTER_ATTRS].eq(prev).all(axis=1) & m["customer_id"].eq(m["customer_id"].shift())
    m = m[~same].copy()
    m["valid_to"] = m.groupby("customer_id")["valid_from"].shift(-1)
    return m.reset_index(drop=True)


def test_the_world_has_every_activity(ledger):
    counts = ledger.events["activity"].value_counts()
    assert set(counts.index) == {a.value for a in A}
    # The cases the issue names: residual items after partial payments, disputes with credit
    # memos, promises (and broken ones), blocks, contacts and write-offs.
    assert counts[A.RESIDUAL_ITEM_CREATED] > 5 and counts[A.INVOICE_WRITTEN_OFF] >= 1
    assert counts[A.CREDIT_MEMO_POSTED] > 5 and counts[A.PROMISE_TO_PAY_BROKEN] >= 1


def test_nothing_is_quarantined_and_every_row_is_accounted_for(read_back):
    assert read_back.quarantine.empty and read_back.event_quarantine.empty
    rec = read_back.reconciliation.set_index("table")
    body = rec.drop(index="(derived)")
    assert (body["rows_in"] == body["mapped"] + body["ignored"] + body["quarantined"]).all()
    assert rec["events_out"].sum() == len(read_back.events)
    assert read_back.missing_tables == []
    assert read_back.source_system == "SIMULATOR"


def test_explicit_events_come_back_identical(ledger, read_back):
    expected, _ = _split(validate_event_log(ledger.events).events)
    got, _ = _split(read_back.events)
    assert len(got) == len(expected)
    pd.testing.assert_frame_equal(got[list(schema.EVENT_COLUMN_NAMES)],
                                  expected[list(schema.EVENT_COLUMN_NAMES)], check_dtype=False)


def test_calculated_events_follow_the_same_rule(ledger, read_back):
    _, expected = _split(validate_event_log(ledger.events).events)
    _, got = _split(read_back.events)
    assert len(expected) > 50
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_master_history_comes_back(ledger, read_back):
    pd.testing.assert_frame_equal(collapse(read_back.master), collapse(ledger.master),
                                  check_dtype=False)


def test_net_due_date_from_baseline_date_and_terms(ledger, tables, tmp_path):
    """Without NETDT the due date is ZFBDT + ZBDxT days; without those, ZFBDT + ZTERM's days."""
    partial = dict(tables)
    for name in ("BSID", "BSAD"):
        partial[name] = tables[name].drop(columns=["NETDT"])
    write_sap_tables(partial, tmp_path / "no_netdt", "csv")
    got = convert_sap_extracts(tmp_path / "no_netdt", SIMULATOR_SAP_CONFIG).events
    posted = got[got["activity"].eq(A.INVOICE_POSTED)].set_index("invoice_id")["net_due_date"]
    truth = ledger.events[ledger.events["activity"].eq(A.INVOICE_POSTED)].set_index(
        "invoice_id")["net_due_date"]
    assert posted.sort_index().equals(truth.sort_index())
    for name in ("BSID", "BSAD"):
        partial[name] = partial[name].drop(columns=["ZBD1T", "ZBD2T"])
    write_sap_tables(partial, tmp_path / "terms_only", "csv")
    got = convert_sap_extracts(tmp_path / "terms_only", SIMULATOR_SAP_CONFIG).events
    posted = got[got["activity"].eq(A.INVOICE_POSTED)].set_index("invoice_id")
    simple = posted["payment_terms"].ne("ZD60")  # end-of-month terms shift ZFBDT itself
    assert posted.loc[simple, "net_due_date"].sort_index().equals(
        truth[posted.index[simple]].sort_index())


def test_promise_tolerance_days_delay_the_broken_promise(tables, tmp_path):
    write_sap_tables(tables, tmp_path, "csv")
    strict = convert_sap_extracts(tmp_path, SIMULATOR_SAP_CONFIG).events
    lenient = convert_sap_extracts(tmp_path, SIMULATOR_SAP_CONFIG.model_copy(
        update={"promise_tolerance_days": 5})).events
    broken = lenient[lenient["activity"].eq(A.PROMISE_TO_PAY_BROKEN)]
    assert ((broken["event_time"] - broken["promised_date"]) == pd.Timedelta(days=6)).all()
    assert len(broken) <= (strict["activity"] == A.PROMISE_TO_PAY_BROKEN).sum()
    created = lenient[lenient["activity"].eq(A.PROMISE_TO_PAY_CREATED)]
    assert created["promised_date"].tolist() == strict.loc[
        strict["activity"].eq(A.PROMISE_TO_PAY_CREATED), "promised_date"].tolist()
