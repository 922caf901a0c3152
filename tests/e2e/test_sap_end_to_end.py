"""The SAP path end to end on the committed sample: SAP extracts (data/sample/sap/) -> `paydelay
sap` (default settings, as a user without the simulator's would run it) -> point-in-time features
-> train + register -> a real BentoML server scoring the open items of the extract.

Everything lands in tmp (its own SQLite MLflow store); the boosters are the demo's small ones.
"""

from __future__ import annotations

import httpx
import pytest

from features import paths
from features.ingest.ledger_files import read_ledger_dir
from features.ingest.sap import run_sap
from serving.launcher import running_server, server_env

pytestmark = pytest.mark.slow
TOKEN = "sap-e2e-token"


def test_sap_extract_to_served_scores(tmp_path):
    from features.pit.build import build_training_set
    from features.pit.item_state import item_state_at
    from features.pit.snapshots import scoring_snapshots
    from serving.api_models import items_payload
    from serving.demo import demo_config
    from serving.store import build_store, log_store
    from training.pipeline import train

    # 1. sap: extracts -> validated ledger folder (events, master, quarantine, reconciliation).
    result = run_sap(paths.SAMPLE / "sap", tmp_path / "ledger")
    assert result.quarantine.empty and result.event_quarantine.empty
    assert (tmp_path / "ledger" / "sap_summary.md").is_file()
    ledger = read_ledger_dir(tmp_path / "ledger")

    # 2. features and 3. train + register, as `paydelay features` / `paydelay train` do.
    config = demo_config(seed=5)
    config = config.model_copy(update={"training": config.training.model_copy(
        update={"min_cleared_invoices": 30, "min_late_invoices": 5})})
    rows = build_training_set(ledger.events, ledger.master, config.features, config.seed)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    trained = train(rows, config, config.seed, tracking_uri=uri, with_report=False)
    assert trained.model_version is not None
    store = build_store(ledger.events, ledger.master, None, config.features,
                        trained.bundle.feature_set_version)
    log_store(store, trained.run_id, uri)

    # 4. serve: score the open items of the extract.
    snaps = scoring_snapshots(ledger.events)
    state = item_state_at(ledger.events, snaps)
    body = {"as_of": snaps["snapshot_time"].max().isoformat(), "items": items_payload(state)}
    assert len(body["items"]) > 5
    env = server_env(tracking_uri=uri, token=TOKEN, workers=1,
                     extra={"BENTOML_HOME": str(tmp_path / "bentoml")})
    env.pop("PAYDELAY_STORE_PATH", None)
    with running_server(env, tmp_path / "server.log", ready_timeout_s=90) as url:
        with httpx.Client(base_url=url, timeout=60, trust_env=False,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            answer = client.post("/score", json=body)
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [i["invoice_id"] for i in items] == [i["invoice_id"] for i in body["items"]]
    assert all(0 <= i["p_late"] <= 1 for i in items)
