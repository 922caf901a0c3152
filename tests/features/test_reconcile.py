"""features.reconcile: in + differences = out per (stage, what), never a silent loss."""

from __future__ import annotations

from features.reconcile import (ADDED, IN, OUT, UNEXPLAINED, Line, Reconciliation, combine,
                                read_reconciliation, reconcile_counts, reconcile_ids,
                                write_reconciliation)


def test_counts_add_up_and_zero_differences_are_left_out():
    rec = reconcile_counts("ingest", "rows", 10, 11, {"quarantined: orphan": -2,
                                                      "derived: due_date_passed": 3,
                                                      "quarantined: bad_value": 0})
    assert rec.lines == (Line("ingest", "rows", 10, IN),
                         Line("ingest", "rows", -2, "quarantined: orphan"),
                         Line("ingest", "rows", 3, "derived: due_date_passed"),
                         Line("ingest", "rows", 11, OUT))
    assert rec.balanced


def test_a_gap_becomes_an_unexplained_line():
    rec = reconcile_counts("train", "rows", 10, 7, {"censored": -2})
    assert rec.count("train", "rows", UNEXPLAINED) == -1 and not rec.balanced


def test_ids_go_to_their_first_reason_and_the_rest_is_unexplained():
    rec = reconcile_ids("features", "invoices", ["a", "b", "c", "d", "e"], ["a", "z"],
                        {"never open": ["b", "c"], "posted late": ["c", "d", "a"]})
    # c counts under the first reason only; a is not lost; e has no reason; z was added.
    assert rec.frame().values.tolist() == [
        ["features", "invoices", 5, IN], ["features", "invoices", -2, "never open"],
        ["features", "invoices", -1, "posted late"], ["features", "invoices", 1, ADDED],
        ["features", "invoices", -1, UNEXPLAINED], ["features", "invoices", 2, OUT]]
    assert not rec.balanced


def test_write_read_round_trip_and_printable_rows(tmp_path):
    rec = combine(reconcile_counts("ingest", "rows", 1200, 1195, {"quarantined: orphan": -5}),
                  reconcile_ids("ingest", "invoices", ["1", "2"], ["1", "2"]))
    path = write_reconciliation(rec, tmp_path)
    assert path.name == "reconciliation.csv"
    assert read_reconciliation(tmp_path) == rec == read_reconciliation(path)
    assert rec.printable()[:2] == [("ingest", "rows", "1,200", IN),
                                   ("ingest", "rows", "-5", "quarantined: orphan")]
    assert (Reconciliation() + rec).lines == rec.lines
    assert len(rec.differences()) == 1
