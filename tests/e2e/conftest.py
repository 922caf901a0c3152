"""A real `bentoml serve` on 127.0.0.1 against a real registered model, for the e2e tests.

`registered` trains a small model on a simulated ledger into a temporary MLflow store (its own
SQLite file), registers it (it becomes @champion) and logs the customer store beside it.
`server` starts the BentoML service as a subprocess pointed at that store by environment
variables, with a bearer token, waits for /readyz, and stops it (its own process group) at the
end. Its stdout + stderr go to a file the log-safety test reads.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token-5d1c"
READY_TIMEOUT_S = 120


@dataclass
class Server:
    url: str
    log_path: Path
    token: str
    registered: object

    def client(self, token: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def registered(tmp_path_factory):
    from serving.demo import demo_config, train_and_register

    workdir = tmp_path_factory.mktemp("e2e-model")
    return train_and_register(workdir, demo_config(n_customers=60, n_invoices=1800, months=12,
                                                   seed=5))


@pytest.fixture(scope="session")
def server(registered, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e-server")
    port = _free_port()
    log_path = workdir / "server.log"
    env = {
        **os.environ,
        "PAYDELAY_TRACKING_URI": registered.tracking_uri,
        "PAYDELAY_API_TOKEN": TOKEN,
        "PAYDELAY_WORKERS": "1",
        "BENTOML_HOME": str(workdir / "bentoml"),
        "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PAYDELAY_MODEL", None)
    env.pop("PAYDELAY_STORE_PATH", None)
    bentoml = Path(sys.executable).parent / "bentoml"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(bentoml), "serve", "serving.service:PaydelayService", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    ready = False
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as c:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if c.get("/readyz").status_code == 200:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    if not ready:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        pytest.fail(f"server did not become ready in {READY_TIMEOUT_S}s:\n"
                    + log_path.read_text(errors="replace")[-3000:])
    yield Server(url, log_path, TOKEN, registered)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def worklist(registered):
    """JSON items of the invoices open at the extract's time, as a worklist engine sends them."""
    from features.item_state import item_state_at
    from features.snapshots import scoring_snapshots
    from serving.api_models import items_payload

    state = item_state_at(registered.events, scoring_snapshots(registered.events))
    return {"as_of": registered.last_refresh.isoformat(), "items": items_payload(state)}
