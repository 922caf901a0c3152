"""Date formats per column: given, or detected; ambiguity refused naming column and row."""

from __future__ import annotations

import pandas as pd
import pytest

from features.ingest.dates import (AmbiguousDatesError, EVERY_COLUMN, detect_format,
                                   parse_date_formats)
from features.ingest.io import EventLogError
from features.ingest.validate import validate_event_log

T = pd.Timestamp


def _raw(event_times, due_dates):
    n = len(event_times)
    return pd.DataFrame({"event_time": event_times, "activity": ["invoice_posted"] * n,
                         "invoice_id": [f"I{i}" for i in range(n)], "customer_id": ["C"] * n,
                         "amount": ["10"] * n, "net_due_date": due_dates})


def test_formats_per_column_and_a_bare_one_for_the_rest():
    formats = parse_date_formats(["%d.%m.%Y", "NetDueDate=%Y%m%d", "recorded_time=%d/%m/%Y"])
    assert formats == {EVERY_COLUMN: "%d.%m.%Y", "net_due_date": "%Y%m%d",
                       "recorded_time": "%d/%m/%Y"}
    ev = validate_event_log(_raw(["31.01.2024", "01.02.2024"], ["20240301", "20240302"]),
                            date_format=["%d.%m.%Y", "net_due_date=%Y%m%d"]).events
    assert ev["event_time"].tolist() == [T("2024-01-31"), T("2024-02-01")]
    assert ev["net_due_date"].tolist() == [T("2024-03-01"), T("2024-03-02")]


def test_unknown_or_non_date_columns_are_refused():
    with pytest.raises(EventLogError, match="'amount' is not a date column"):
        parse_date_formats(["amount=%d.%m.%Y"])
    with pytest.raises(EventLogError, match="not a strftime format"):
        parse_date_formats(["event_time=dd.mm.yyyy"])


def test_mixed_formats_are_detected_per_column():
    ev = validate_event_log(_raw(["31.01.2024 08:30", "1.2.2024 09:00"],
                                 ["2024-03-01", "20240302"])).events
    assert ev["event_time"].tolist() == [T("2024-01-31 08:30"), T("2024-02-01 09:00")]
    assert ev["net_due_date"].tolist() == [T("2024-03-01"), T("2024-03-02")]
    # A day above 12 settles day-first against month-first.
    assert detect_format(pd.Series(["03/04/2024", "25/04/2024"]), "event_time") == "%d/%m/%Y"


def test_an_ambiguous_column_is_refused_naming_column_row_and_the_option():
    with pytest.raises(AmbiguousDatesError, match=r"'net_due_date' is ambiguous: row 1 \(line 3.*"
                       r"'03/04/2024'.*--date-format net_due_date="):
        validate_event_log(_raw(["2024-01-01", "2024-01-02"], ["01/01/2024", "03/04/2024"]))


def test_an_unreadable_value_is_quarantined_not_guessed():
    result = validate_event_log(_raw(["31.01.2024", "31.01.2024", "yesterday"],
                                     ["2024-03-01"] * 3))
    assert result.quarantine["row_number"].tolist() == [2]
    assert result.quarantine["reason_text"].tolist() == ["unparseable event time 'yesterday'"]
