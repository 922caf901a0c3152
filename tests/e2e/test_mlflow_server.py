"""MLflow the way teams use it: a real `mlflow server` on loopback (SQLite behind it, artifacts
stored by the server), a small seeded model trained and registered against its URL, listed by
`paydelay models --tracking-uri`, and served by a real BentoML server that is told nothing but
$MLFLOW_TRACKING_URI. The embedded SQLite default (models/) is never written: the tests point
that default at an empty folder of their own and check it stays absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import mlflow
import pytest
from typer.testing import CliRunner

import paydelay_cli
from features.pit.item_state import item_state_at
from features.pit.snapshots import scoring_snapshots
from serving import api_models as am
from serving.api_models import items_payload
from serving.demo import demo_config, train_and_register
from serving.launcher import free_port, running_server, server_env, stop
from training import registry

pytestmark = pytest.mark.slow
MLFLOW_CLI = Path(sys.executable).parent / "mlflow"
TOKEN = "mlflow-server-e2e-8c2d"
READY_TIMEOUT_S = 180
# Variables that would point these processes at a store, customer store or ledger the test
# did not name: each process here gets exactly the store it is told.
STORE_VARIABLES = (registry.TRACKING_ENV, registry.MLFLOW_TRACKING_ENV,
                   registry.MLFLOW_REGISTRY_ENV, "PAYDELAY_STORE_PATH", registry.LEDGER_ENV)


@contextmanager
def mlflow_server(workdir: Path):
    """A team's tracking server in miniature: `mlflow server` with a SQLite backend and the
    artifacts it stores itself (--artifacts-destination); yields its URL once /health answers."""
    port = free_port()
    log_path = workdir / "mlflow-server.log"
    cmd = [str(MLFLOW_CLI), "server", "--backend-store-uri",
           f"sqlite:///{(workdir / 'server.db').resolve()}", "--artifacts-destination",
           str((workdir / "server-artifacts").resolve()), "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not answer /health; its log ends "
                                       "with:\n" + log_path.read_text(errors="replace")[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """(tracking server URL, the model registered on it, the default store's folder, work dir).

    Training names the server explicitly (as `--tracking-uri` does); the default store is
    redirected to a folder that must never appear."""
    work = tmp_path_factory.mktemp("mlflow-server")
    default_models = work / "default-models"
    with pytest.MonkeyPatch.context() as mp:
        for key in STORE_VARIABLES:
            mp.delenv(key, raising=False)
        mp.setattr(registry, "MODELS", default_models)
        with mlflow_server(work) as url:
            reg = train_and_register(work / "model", demo_config(n_customers=60, n_invoices=1800,
                                                                  months=12, seed=5),
                                     tracking_uri=url)
            yield url, reg, default_models, work


def test_the_run_and_the_champion_live_on_the_server(team):
    url, reg, default_models, work = team
    assert reg.tracking_uri == url and reg.alias == "champion"
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    run = client.get_run(reg.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ledger"] == "demo"
    assert 0.5 < run.data.metrics["risk.roc_auc"] <= 1
    # the server stores the artifacts (model and customer store), not this machine's models/
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert {"customer_store"} <= {a.path for a in client.list_artifacts(reg.run_id)}
    assert list((work / "server-artifacts").rglob("model.lgb"))
    assert list((work / "server-artifacts").rglob("customer_store/store.json"))
    champion = client.get_model_version_by_alias("paydelay-demo", "champion")
    assert (champion.version, champion.run_id) == (str(reg.version), reg.run_id)
    assert champion.tags["ledger"] == "demo"
    assert not default_models.exists()
    assert not (work / "model" / "mlflow.db").exists()  # nor a store of the harness's own


def test_paydelay_models_lists_the_servers_registry(team):
    url, reg, default_models, _ = team
    result = CliRunner().invoke(paydelay_cli.app, ["models", "--tracking-uri", url],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Registered models by ledger ({url})" in result.output
    row = next(line for line in result.output.splitlines() if "paydelay-demo" in line)
    cells = [c.strip() for c in re.split(r"[│|]", row) if c.strip()]
    assert cells[:4] == ["demo", "paydelay-demo", str(reg.version), "champion"]
    # the REST listing carries the figures the registry holds for that version
    tags = mlflow.MlflowClient(registry_uri=url, tracking_uri=url).get_model_version(
        "paydelay-demo", str(reg.version)).tags
    assert f"{float(tags['headline.roc_auc_posting']):.3f}" in cells
    assert not default_models.exists()


def test_a_service_told_only_mlflow_tracking_uri_serves_the_servers_champion(team):
    url, reg, default_models, work = team
    env = server_env(tracking_uri=None, token=TOKEN, workers=1,
                     extra={"BENTOML_HOME": str(work / "bentoml")})
    for key in STORE_VARIABLES:
        env.pop(key, None)
    env[registry.MLFLOW_TRACKING_ENV] = url
    state = item_state_at(reg.events, scoring_snapshots(reg.events))
    body = {"as_of": reg.last_refresh.isoformat(), "items": items_payload(state)[:25]}
    with running_server(env, work / "service.log", ready_timeout_s=READY_TIMEOUT_S) as service:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=service, timeout=60, trust_env=False,
                          headers=headers) as client:
            meta = client.get("/metadata").json()
            answer = client.post("/score", json=body)
    assert answer.status_code == 200, answer.text
    scored = am.ScoreResponse.model_validate(answer.json())
    assert (scored.model.registered_model, scored.model.version, scored.model.ledger) == (
        "paydelay-demo", reg.version, "demo")
    assert scored.model.run_id == reg.run_id and "champion" in scored.model.aliases
    assert [i.invoice_id for i in scored.items] == [i["invoice_id"] for i in body["items"]]
    assert all(0 <= i.p_late <= 1 for i in scored.items)
    # the customer store came from the server's artifacts with the model
    assert meta["model"]["run_id"] == reg.run_id and meta["store"]["n_customers"] > 0
    assert not default_models.exists()
