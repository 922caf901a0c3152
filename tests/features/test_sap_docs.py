"""docs/sap_extracts.md is generated from the mapping tables: regenerate it and fail when the
committed copy is stale (run `python -m features.ingest.sap_docs` to refresh it)."""

from features.ingest import sap_docs, sap_mapping
from features.schema import Activity


def test_committed_documentation_is_current():
    assert sap_docs.DOC_PATH.read_text(encoding="utf-8") == sap_docs.render(), (
        "docs/sap_extracts.md is stale: run `.venv/bin/python -m features.ingest.sap_docs`")


def test_every_activity_and_table_is_documented():
    text = sap_docs.render()
    assert {r.activity for r in sap_mapping.ACTIVITY_RULES} == {a.value for a in Activity}
    for table in sap_mapping.TABLES:
        assert f"### {table.name}:" in text
