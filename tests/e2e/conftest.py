"""A real `bentoml serve` on 127.0.0.1 against a real registered model, for the e2e tests.

`registered` trains a small model on a simulated ledger into a temporary MLflow store (its own
SQLite file), registers it (it becomes @champion) and logs the customer store beside it.
`server` starts the BentoML service as a subprocess pointed at that store by environment
variables, with a bearer token, waits for /readyz, and stops it (its own process group) at the
end. Its stdout + stderr go to a file the log-safety test reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving.launcher import running_server, server_env

TOKEN = "e2e-token-5d1c"
READY_TIMEOUT_S = 120
BODY_TIMEOUT_S = 3  # a stalled upload is cut after this (the 408 test waits for it)


@dataclass
class Server:
    url: str
    log_path: Path
    token: str
    registered: object
    env: dict | None = None

    def client(self, token: bool = True) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def registered(tmp_path_factory):
    from serving.demo import demo_config, train_and_register

    workdir = tmp_path_factory.mktemp("e2e-model")
    return train_and_register(workdir, demo_config(n_customers=60, n_invoices=1800, months=12,
                                                   seed=5))


@pytest.fixture(scope="session")
def batch(registered, tmp_path_factory):
    """The champion's batch scoring of the ledger at its extract's time: the server's scores
    folder, so /latest_worklist and the page's batch button have a batch to answer with."""
    from training.batch_score import score_ledger
    from training.registry import load_bundle

    bundle = load_bundle("champion", registered.registered_model, registered.tracking_uri)
    return score_ledger(registered.events, registered.master, bundle, registered.last_refresh,
                        tmp_path_factory.mktemp("scores"), ledger=registered.ledger, log=False)


@pytest.fixture(scope="session")
def server(registered, batch, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e-server")
    log_path = workdir / "server.log"
    env = server_env(tracking_uri=registered.tracking_uri, token=TOKEN, workers=1,
                     extra={"BENTOML_HOME": str(workdir / "bentoml"),
                            "PAYDELAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
                            "PAYDELAY_SCORES_DIR": str(batch.path.parent)})
    env.pop("PAYDELAY_STORE_PATH", None)
    # A server that never gets ready raises with the tail of its log in the message.
    with running_server(env, log_path, ready_timeout_s=READY_TIMEOUT_S) as url:
        yield Server(url, log_path, TOKEN, registered, env)


@pytest.fixture(scope="session")
def worklist(registered):
    """JSON items of the invoices open at the extract's time, as a worklist engine sends them."""
    from features.pit.item_state import item_state_at
    from features.pit.snapshots import scoring_snapshots
    from serving.api_models import items_payload

    state = item_state_at(registered.events, scoring_snapshots(registered.events))
    return {"as_of": registered.last_refresh.isoformat(), "items": items_payload(state)}
