"""Offline against live: a simulated world replayed week by week through the real HTTP service
agrees with the model's offline holdout within their invoice-bootstrap intervals.

A model is trained on the world up to its cut-off and registered (its own SQLite MLflow store),
the customer store materialised at the cut-off; a real `bentoml serve` loads it. Every week for
four weeks the open items of that day (replayed from the events, what a worklist engine sends)
are POSTed to /score with the day as as_of. Months later the outcomes are read from the ledger
with the monitor's maturity rules (training.monitor.with_outcomes) and the live predictions'
ROC-AUC and ECE, with their invoice-bootstrap intervals, are set against the holdout's. The
store is not refreshed during the replay (the service has no hot reload), so the weeks past
`max_request_ahead_days` also carry the far-future warning, which the test checks.
"""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
WEEKS = 4


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def test_live_replay_agrees_with_the_offline_holdout(tmp_path):
    from features.pit.build import build_training_set
    from features.pit.item_state import item_state_at
    from features.pit.snapshots import scoring_snapshots
    from serving.api_models import items_payload
    from serving.launcher import running_server, server_env
    from serving.store import build_store, log_store
    from tests.training.monitor_worlds import CUTOFF, world, world_config
    from training.metrics import ece_interval
    from training.monitor import _quality, auc_interval, with_outcomes
    from training.pipeline import train

    config = world_config()
    led = world(config, 7)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rows = build_training_set(led.events, led.master, config.features, config.seed, CUTOFF)
    result = train(rows, config, config.seed, tracking_uri=uri, ledger="replay",
                   with_report=False)
    store = build_store(led.events, led.master, CUTOFF, config.features,
                        result.bundle.feature_set_version)
    log_store(store, result.run_id, uri)
    bundle = result.bundle

    frames, warned = [], []
    env = server_env(tracking_uri=uri, token=None, workers=1,
                     extra={"BENTOML_HOME": str(tmp_path / "bentoml"), "PAYDELAY_LEDGER": "replay"})
    env.pop("PAYDELAY_STORE_PATH", None)
    with running_server(env, tmp_path / "server.log", ready_timeout_s=180) as url, \
            httpx.Client(base_url=url, timeout=120, trust_env=False) as http:
        for week in range(WEEKS):
            as_of = CUTOFF + pd.Timedelta(days=7 * week)
            snaps = scoring_snapshots(led.events, as_of)
            state = item_state_at(led.events, snaps)
            resp = http.post("/score", json={"as_of": as_of.isoformat(),
                                             "items": items_payload(state)})
            assert resp.status_code == 200, resp.text[:500]
            items = pd.DataFrame(resp.json()["items"])
            warned.append(any("after the customer-history store" in w
                              for ws in items["warnings"] for w in ws))
            keys = state[["invoice_id", "net_due_date", "posting_time", "open_amount"]]
            assert items["invoice_id"].tolist() == keys["invoice_id"].astype(str).tolist()
            frames.append(items.assign(snapshot_time=as_of, as_of=as_of,
                                       net_due_date=keys["net_due_date"].to_numpy(),
                                       posting_time=keys["posting_time"].to_numpy(),
                                       open_amount=keys["open_amount"].to_numpy()))
    live = pd.concat(frames, ignore_index=True)
    live["invoice_id"] = live["invoice_id"].astype(str)
    outcomes = with_outcomes(live, led.events, bundle, led.events["event_time"].max())
    got = _quality(outcomes, led.events["event_time"].max(), config.evaluation.ece_bins,
                   120.0, seed=0, intervals=True)

    test = result.test_rows
    used = test["risk_used"].to_numpy(dtype=bool)
    y = test["target_late"].to_numpy(dtype="float64")[used]
    p = result.predictions["p_late"].to_numpy(dtype="float64")[used]
    groups = test["invoice_id"].to_numpy()[used]
    offline_auc = auc_interval(y, p, groups)
    offline_ece = ece_interval(y, p, groups, config.evaluation.ece_bins, seed=config.seed)

    summary = {"live_auc": (got["roc_auc"], got["auc_lo"], got["auc_hi"]),
               "offline_auc": offline_auc, "live_ece": (got["ece"], got["ece_lo"], got["ece_hi"]),
               "offline_ece": offline_ece, "decided": got["n_decided"]}
    print("live replay:", summary)
    assert got["n_decided"] >= 500, summary
    assert _overlap((got["auc_lo"], got["auc_hi"]), offline_auc), summary
    assert _overlap((got["ece_lo"], got["ece_hi"]), offline_ece), summary
    # the store was materialised at the cut-off: requests 3 weeks later are warned about it
    assert warned == [False, False, False, True]
    assert np.isfinite(live["p_late"]).all()
