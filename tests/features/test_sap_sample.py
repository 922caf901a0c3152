"""The committed SAP sample (data/sample/sap/): it reads without a quarantined row, shows every
activity, and is still what the writer makes from its simulated world."""

from __future__ import annotations

import pandas as pd
import pytest

from features import paths, schema
from features.ingest.sap import convert_sap_extracts, find_extracts, read_extract
from features.simulate.sap_tables import SIMULATOR_SAP_CONFIG, sap_sample_tables

SAMPLE = paths.SAMPLE / "sap"


@pytest.fixture(scope="module")
def result():
    return convert_sap_extracts(SAMPLE, SIMULATOR_SAP_CONFIG)


def test_sample_reads_clean_with_every_activity(result):
    assert result.quarantine.empty and result.event_quarantine.empty
    assert set(result.events["activity"]) == {a.value for a in schema.Activity}
    assert result.missing_tables == []
    posted = result.events[result.events["activity"].eq("invoice_posted")]
    assert 200 <= len(posted) <= 500  # small: a few hundred documents
    assert set(result.events["customer_id"]) <= set(result.master["customer_id"])


def test_sample_reads_with_the_default_settings_too():
    """A user without the simulator's settings still gets a clean ledger (segments are then
    the account group keys, dunning runs at 00:00)."""
    plain = convert_sap_extracts(SAMPLE)
    assert plain.quarantine.empty and plain.event_quarantine.empty
    assert set(plain.master["customer_segment"].dropna()) <= {"ZKEY", "ZMID", "ZSME", "ZPUB",
                                                              "ZICO"}


def test_sample_is_what_the_writer_makes():
    fresh = sap_sample_tables()
    files, unknown = find_extracts(SAMPLE)
    assert unknown == [] and set(files) == set(fresh)
    for name, path in files.items():
        committed = read_extract(path, name).fillna("")
        pd.testing.assert_frame_equal(committed, fresh[name].fillna(""), check_dtype=False,
                                      obj=name)
