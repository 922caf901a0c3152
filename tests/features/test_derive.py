"""Derived due_date_passed / promise_to_pay_broken events and the master rebuilt from events."""

from __future__ import annotations

import pandas as pd
import pytest

from features import schema
from features.config.simulator import SimulatorConfig
from features.ingest.derive import (
    DERIVED_SOURCE,
    add_calculated_activities,
    master_from_events,
)
from features.ingest.validate import validate_event_log
from features.simulate.ledger import simulate_ledger

AS_OF = "2024-03-01"
T = pd.Timestamp


def _log(rows: list[tuple], last_refresh: str | None = AS_OF) -> pd.DataFrame:
    """rows: (invoice, activity, event_time, net_due_date, promised_date, amount, risk)."""
    raw = pd.DataFrame(rows, columns=["invoice_id", "activity", "event_time", "net_due_date",
                                      "promised_date", "amount", "risk_category"], dtype="str")
    raw["customer_id"] = "C" + raw["invoice_id"].str[0]
    raw["last_refresh"] = last_refresh
    result = validate_event_log(raw)
    assert result.quarantine.empty, result.quarantine
    return result.events


def _post(inv, day, due, amount="100", risk=None):
    return (inv, "invoice_posted", day, due, None, amount, risk)


def _ev(inv, activity, day, promised=None, amount=None, risk=None):
    return (inv, activity, day, None, promised, amount, risk)


def _derived(out: pd.DataFrame, activity: str) -> dict[str, list]:
    sub = out[(out["activity"] == activity)]
    return {inv: sorted(g["event_time"]) for inv, g in sub.groupby("invoice_id")}


ROWS = [
    # A1: cleared well before due: no due_date_passed.
    _post("A1", "2024-01-01", "2024-01-31"), _ev("A1", "invoice_cleared", "2024-01-20"),
    # A2: cleared on the due date itself (afternoon): still on time.
    _post("A2", "2024-01-01", "2024-01-31"),
    _ev("A2", "invoice_cleared", "2024-01-31 15:00:00"),
    # A3: cleared at due + 1 day 00:00: the due date had passed at that instant.
    _post("A3", "2024-01-01", "2024-01-31"), _ev("A3", "invoice_cleared", "2024-02-01"),
    # A4: still open at as_of: passed on 2024-02-01.
    _post("A4", "2024-01-01", "2024-01-31"),
    # A5: due after as_of: nothing yet (it would be in the future of the extract).
    _post("A5", "2024-02-01", "2024-03-15"),
    # A6: due on 2024-02-29, so it passes at 2024-03-01 00:00 == as_of: emitted.
    _post("A6", "2024-01-30", "2024-02-29"),
    # A7: written off before its due date.
    _post("A7", "2024-01-01", "2024-01-31"), _ev("A7", "invoice_written_off", "2024-01-15",
                                                 amount="100"),
    # A8: the source already has its due_date_passed (a day late): kept, not duplicated.
    _post("A8", "2024-01-01", "2024-01-31"), _ev("A8", "due_date_passed", "2024-02-02"),
    # B1: promise kept (cleared on the promised date).
    _post("B1", "2024-02-01", "2024-04-01"),
    _ev("B1", "promise_to_pay_created", "2024-02-05", promised="2024-02-10", amount="100"),
    _ev("B1", "invoice_cleared", "2024-02-10 16:00:00"),
    # B2: promise broken, cleared later.
    _post("B2", "2024-02-01", "2024-04-01"),
    _ev("B2", "promise_to_pay_created", "2024-02-05", promised="2024-02-10", amount="60"),
    _ev("B2", "invoice_cleared", "2024-02-20"),
    # B3: first promise superseded by a second one made before it fell due; the second breaks.
    _post("B3", "2024-02-01", "2024-04-01"),
    _ev("B3", "promise_to_pay_created", "2024-02-05", promised="2024-02-10", amount="100"),
    _ev("B3", "promise_to_pay_created", "2024-02-09", promised="2024-02-20", amount="100"),
    # B4: first promise breaks, then a new promise is made later and kept.
    _post("B4", "2024-02-01", "2024-04-01"),
    _ev("B4", "promise_to_pay_created", "2024-02-01 10:00:00", promised="2024-02-03",
        amount="100"),
    _ev("B4", "promise_to_pay_created", "2024-02-10", promised="2024-02-12", amount="100"),
    _ev("B4", "invoice_cleared", "2024-02-12"),
    # B5: promised for the last day of the extract: it breaks only after as_of.
    _post("B5", "2024-02-01", "2024-04-01"),
    _ev("B5", "promise_to_pay_created", "2024-02-20", promised="2024-03-01", amount="100"),
    # B6: promised date already past when the promise was recorded: no broken event before it.
    _post("B6", "2024-02-01", "2024-04-01"),
    _ev("B6", "promise_to_pay_created", "2024-02-15", promised="2024-02-10", amount="100"),
]


@pytest.fixture(scope="module")
def derived():
    events = _log(ROWS)
    return events, add_calculated_activities(events)


def test_due_date_passed_rules(derived):
    _, out = derived
    assert _derived(out, "due_date_passed") == {
        "A3": [T("2024-02-01")],
        "A4": [T("2024-02-01")],
        "A6": [T("2024-03-01")],
        "A8": [T("2024-02-02")],  # the source's own event, alone
    }


def test_promise_to_pay_broken_rules(derived):
    _, out = derived
    assert _derived(out, "promise_to_pay_broken") == {
        "B2": [T("2024-02-11")],
        "B3": [T("2024-02-21")],
        "B4": [T("2024-02-04")],
    }
    b2 = out[(out["invoice_id"] == "B2") & (out["activity"] == "promise_to_pay_broken")]
    assert b2["amount"].tolist() == [60.0]  # the promised amount that was not paid
    assert b2["promised_date"].tolist() == [T("2024-02-10")]


def test_nothing_after_as_of_and_source_rows_untouched(derived):
    events, out = derived
    new = out[out["source_system"].eq(DERIVED_SOURCE).fillna(False)]
    assert len(out) == len(events) + len(new) == len(events) + 6  # A3 A4 A6 B2 B3 B4
    assert (new["event_time"] <= T(AS_OF)).all()
    assert (new["activity"].isin([a.value for a in schema.CALCULATED_ACTIVITIES])).all()
    kept = out[~out["source_system"].eq(DERIVED_SOURCE).fillna(False)]
    key = ["invoice_id", "activity", "event_time"]
    pd.testing.assert_frame_equal(
        kept.sort_values(key).reset_index(drop=True)[events.columns],
        events.sort_values(key).reset_index(drop=True))
    assert out.dtypes.equals(events.dtypes)
    assert (new["customer_id"] == "C" + new["invoice_id"].str[0]).all()
    assert (new["last_refresh"] == T(AS_OF)).all()


def test_output_is_sorted_and_valid(derived):
    _, out = derived
    assert out["invoice_id"].is_monotonic_increasing
    assert out.groupby("invoice_id")["event_time"].apply(lambda s: s.is_monotonic_increasing).all()
    assert validate_event_log(out).quarantine.empty
    # Deriving again adds nothing: every invoice now has its calculated events.
    again = add_calculated_activities(out)
    assert len(again) == len(out)


def test_as_of_argument_and_default_without_last_refresh():
    events = _log(ROWS, last_refresh=None)
    # Without last_refresh the extract ends at the last event (2024-02-20).
    out = add_calculated_activities(events)
    assert _derived(out, "due_date_passed").keys() == {"A3", "A4", "A8"}
    early = add_calculated_activities(events, as_of=T("2024-02-05"))
    assert _derived(early, "promise_to_pay_broken") == {"B4": [T("2024-02-04")]}
    assert set(_derived(early, "due_date_passed")) == {"A3", "A4", "A8"}


def test_derived_events_carry_customer_attributes_as_of_their_time():
    events = _log([
        _post("X1", "2024-01-01", "2024-01-31", risk="A01"),
        _post("X2", "2024-01-20", "2024-02-19", risk="C03"),  # customer re-rated before X1's due
        _post("X3", "2024-02-15", "2024-03-20", risk="E05"),  # ... and again after it
    ])
    out = add_calculated_activities(events)
    x1 = out[(out["invoice_id"] == "X1") & (out["activity"] == "due_date_passed")]
    assert x1["risk_category"].tolist() == ["C03"]
    assert x1["net_due_date"].tolist() == [T("2024-01-31")]


def test_missing_optional_columns_are_fine_but_net_due_date_is_needed():
    events = _log([_post("Z1", "2024-01-01", "2024-01-31")])
    slim = events[["event_time", "activity", "invoice_id", "customer_id", "net_due_date"]]
    out = add_calculated_activities(slim, as_of="2024-03-01")
    assert out["activity"].tolist() == ["invoice_posted", "due_date_passed"]
    with pytest.raises(ValueError, match="net_due_date"):
        add_calculated_activities(slim.drop(columns="net_due_date"))


def test_master_from_events():
    events = pd.DataFrame({
        "customer_id": ["C1", "C1", "C1", "C1", "C1", "C2"],
        "event_time": pd.to_datetime(["2024-01-01", "2024-01-05", "2024-02-01", "2024-02-01",
                                      "2024-03-01", "2024-01-03"]).astype("datetime64[us]"),
        "risk_category": ["A01", "A01", "B02", None, None, "C03"],
        "credit_limit": [1000.0, None, None, 2000.0, None, 500.0],
        "collector": [None, None, None, None, None, "TEAM-A"],
    }).astype({"customer_id": "str", "risk_category": "str", "collector": "str"})
    master = master_from_events(events)
    assert list(master.columns) == list(schema.MASTER_COLUMN_NAMES)
    c1 = master[master["customer_id"] == "C1"]
    # 01-05 repeats the same values (no new version); 02-01 changes both (one version);
    # 03-01 carries nothing.
    assert c1["valid_from"].tolist() == [T("2024-01-01"), T("2024-02-01")]
    assert c1["valid_to"].tolist() == [T("2024-02-01"), pd.NaT]
    assert c1["risk_category"].tolist() == ["A01", "B02"]
    assert c1["credit_limit"].tolist() == [1000.0, 2000.0]
    c2 = master[master["customer_id"] == "C2"]
    assert c2["collector"].tolist() == ["TEAM-A"] and c2["valid_to"].isna().all()
    assert str(master["valid_from"].dtype) == "datetime64[us]"


def test_rederiving_a_simulated_ledger_gives_back_its_calculated_events():
    ledger = simulate_ledger(
        SimulatorConfig(n_customers=40, n_invoices=600, months=12), seed=3)
    events = validate_event_log(ledger.events).events
    calculated = [a.value for a in schema.CALCULATED_ACTIVITIES]
    source = events[~events["activity"].isin(calculated)]
    # The simulator keeps events strictly before last_refresh; the deriver's as_of is inclusive
    # (features at t see event_time <= t), so stop it one microsecond short to compare.
    as_of = events["last_refresh"].max() - pd.Timedelta(microseconds=1)
    out = add_calculated_activities(source, as_of=as_of)
    key = ["invoice_id", "activity", "event_time"]

    def keys(frame: pd.DataFrame) -> list[tuple]:
        sub = frame[frame["activity"].isin(calculated)][key]
        return sorted(map(tuple, sub.astype(str).to_numpy()))

    expected = keys(events)
    assert len(expected) > 50  # the simulated ledger does have calculated events
    assert keys(out) == expected
