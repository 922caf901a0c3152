"""The published contract holds: /docs.json is a valid OpenAPI document, and a schema-driven
fuzzer (Schemathesis, pinned in the dev extra) finds no request where the real server answers
otherwise than it says: no 5xx, no status or body outside the declared responses, no
schema-valid request refused as malformed (400), no schema-invalid request accepted.

The fuzzer runs as its CLI against the session's server (tests/e2e/conftest.py: a real
`bentoml serve` on loopback with a bearer token and a registered model), every check on,
deterministic generation, a bounded number of examples per operation; it takes about half a
minute. Schema-valid items are mostly impossible ones (random dates and amounts): those get
the documented 422 (and a foreign `ledger` the documented 409), which the positive-data check
therefore accepts beside 2xx; the 200s of real worklists are checked against the same
document in test_http_service.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
TIME_LIMIT_S = 120
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "409", "422"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "405", "409", "413", "415", "422"]
"""


def test_the_openapi_document_is_valid(server):
    from openapi_spec_validator import validate

    with server.client(token=False) as c:
        doc = c.get("/docs.json").json()
    validate(doc)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    for path in ("/score", "/rerank", "/explain"):
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["required"] and op["security"] == [{"bearer": []}]
        assert {"200", "400", "401", "405", "408", "409", "413", "415", "422",
                "503"} == set(op["responses"])


def test_a_schema_driven_fuzzer_finds_no_failure(server, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    st = Path(sys.executable).parent / "schemathesis"
    cmd = [str(st), "--config-file", str(config), "run", f"{server.url}/docs.json",
           "--header", f"Authorization: Bearer {server.token}", "--checks", "all",
           "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic", "--no-shrink",
           "--workers", "1", "--request-timeout", "30", "--phases", "examples,coverage,fuzzing"]
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_LIMIT_S + 60,
                         cwd=tmp_path)
    took = time.monotonic() - started
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report
    assert took < TIME_LIMIT_S, f"the fuzzer took {took:.0f} s"
    # the server stayed well: no request logged at ERROR, nothing with a traceback
    log = server.log_text()
    assert "[ERROR]" not in log and "Traceback" not in log
