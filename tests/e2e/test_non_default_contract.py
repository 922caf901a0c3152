"""A model trained with non-default feature settings is served with them, end to end.

Grace days, history windows, cold-start threshold, bucket edges and the rule strategy all differ
from the defaults; the model is simulated, trained, registered and served by a real BentoML
server whose own config is the default one (no PAYDELAY_CONFIG). Everything the server answers
must follow the model's contract (stored in its bundle) and equal in-process scoring of the same
registered bundle: scores, delay buckets (number, labels, probabilities), reasons and the rule
strategy's priorities.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from features.config import PaydelayConfig
from features.config.rules import PriorityConfig
from features.pit.feature_spec import feature_set_version
from features.pit.item_state import item_state_at
from features.pit.snapshots import scoring_snapshots
from serving import api_models as am
from serving.api_models import items_payload
from serving.demo import demo_config, train_and_register
from serving.handlers import handle_rerank, handle_score
from serving.launcher import running_server, server_env
from serving.model import from_bundle
from serving.store import load_store_for_run
from training.registry import load_bundle

pytestmark = pytest.mark.slow
TOKEN = "e2e-contract-81c2"
FEATURES = {"grace_days": 3, "history_windows_days": (60, 180, 400),
            "cold_start_min_cleared": 5, "bucket_edges": (0, 15, 45)}
# Priorities no default strategy gives: the server must take them from the model, not its config.
PRIORITIES = (PriorityConfig(name="very_high", min_percent=40),
              PriorityConfig(name="high", min_percent=25),
              PriorityConfig(name="medium", min_percent=10),
              PriorityConfig(name="low", min_percent=0))


def _config() -> PaydelayConfig:
    base = demo_config(n_customers=60, n_invoices=1800, months=12, seed=13)
    return base.model_copy(update={
        "features": base.features.model_copy(update=FEATURES),
        "rule_strategy": base.rule_strategy.model_copy(update={"name": "PD_E2E",
                                                               "priorities": PRIORITIES}),
    })


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The registered model, the same bundle loaded in process, a worklist, the server URL."""
    workdir = tmp_path_factory.mktemp("e2e-contract")
    config = _config()
    reg = train_and_register(workdir / "model", config)
    bundle = load_bundle(reg.version, name=reg.registered_model, tracking_uri=reg.tracking_uri)
    # In process: the serving process's config is the default one, as the server's is.
    model = from_bundle(bundle, load_store_for_run(reg.run_id, reg.tracking_uri),
                        PaydelayConfig())
    state = item_state_at(reg.events, scoring_snapshots(reg.events))
    worklist = {"as_of": reg.last_refresh.isoformat(), "items": items_payload(state)[:120]}
    env = server_env(tracking_uri=reg.tracking_uri, token=TOKEN, model=str(reg.version),
                     workers=1, extra={"BENTOML_HOME": str(workdir / "bentoml")})
    for key in ("PAYDELAY_CONFIG", "PAYDELAY_STORE_PATH", "PAYDELAY_RELEASE"):
        env.pop(key, None)
    with running_server(env, workdir / "server.log", ready_timeout_s=120) as url:
        yield config, bundle, model, worklist, url


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=60, trust_env=False)


def test_the_bundle_carries_the_non_default_contract(served):
    config, bundle, _, _, url = served
    c = bundle.contract
    assert c.feature_config == config.features
    assert c.feature_set_version == feature_set_version(config.features) != feature_set_version()
    assert "hist_n_cleared_400d" in c.feature_names and "hist_n_cleared_90d" not in c.feature_names
    assert [b.label for b in c.buckets] == ["on time or up to 3 days late", "4-15 days late",
                                            "16-45 days late",
                                            "more than 45 days late or written off"]
    assert c.rule_strategy.name == "PD_E2E"
    with _client(url) as client:
        meta = client.get("/metadata").json()
    assert meta["feature_set_version"] == c.feature_set_version
    assert meta["delay_buckets"] == [b.to_dict() for b in c.buckets]
    assert meta["rule_strategy"] == "PD_E2E" and meta["grace_days"] == 3


def test_score_over_http_equals_in_process_scoring(served):
    _, bundle, model, worklist, url = served
    body = {"as_of": worklist["as_of"], "items": worklist["items"][:60]}
    with _client(url) as client:
        r = client.post("/score", json=body)
    assert r.status_code == 200, r.text
    got = am.ScoreResponse.model_validate(r.json())
    expected = am.ScoreResponse.model_validate(_in_process_score(model, body))
    labels = [b.label for b in bundle.contract.buckets]
    assert len(got.items) == len(body["items"])
    for g, e in zip(got.items, expected.items, strict=True):
        assert g.invoice_id == e.invoice_id
        assert [b.label for b in g.delay_buckets] == labels  # four buckets, the model's edges
        probs = np.array([b.probability for b in g.delay_buckets])
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)
        assert probs[0] == pytest.approx(1 - g.p_late, abs=1e-12)
        np.testing.assert_allclose(probs, [b.probability for b in e.delay_buckets], rtol=1e-12)
        assert g.p_late == pytest.approx(e.p_late, rel=1e-12)
        assert g.expected_amount_at_risk == pytest.approx(e.expected_amount_at_risk, rel=1e-12)
        assert g.risk_class == e.risk_class and g.pay_date_p50 == e.pay_date_p50
        assert g.cold_start == e.cold_start
    # very late = the bucket beyond 30 days with these edges: more than 45 days late or lost
    open_amount = {it["invoice_id"]: it["open_amount"] for it in body["items"]}
    for g in got.items:
        assert g.expected_amount_at_risk == pytest.approx(
            open_amount[g.invoice_id] * g.delay_buckets[3].probability, rel=1e-12)


def _in_process_score(model, body: dict) -> dict:
    request = am.ApiModels(model.serving).ScoreRequest.model_validate(body)
    return handle_score(model, request.as_of, request.items)


def test_rerank_over_http_gives_the_models_reasons_and_rule_priorities(served):
    _, bundle, model, worklist, url = served
    body = {**worklist, "capacity": 10}
    with _client(url) as client:
        r = client.post("/rerank", json=body)
    assert r.status_code == 200, r.text
    got = am.RerankResponse.model_validate(r.json())
    request = am.ApiModels(model.serving).RerankRequest.model_validate(body)
    expected = am.RerankResponse.model_validate(
        handle_rerank(model, request.as_of, request.items, request.capacity))
    assert [i.invoice_id for i in got.items] == [i.invoice_id for i in expected.items]
    for g, e in zip(got.items, expected.items, strict=True):
        assert (g.rank, g.rule_rank, g.rule_priority, g.rules_hit) == \
               (e.rank, e.rule_rank, e.rule_priority, e.rules_hit)
        assert g.rule_points == pytest.approx(e.rule_points)
        assert [r.sentence for r in g.reasons] == [r.sentence for r in e.reasons]
        np.testing.assert_allclose([r.contribution for r in g.reasons],
                                   [r.contribution for r in e.reasons], rtol=1e-9, atol=1e-12)
        assert len(g.delay_buckets) == 4
    # The priorities are the model's strategy (PD_E2E), not the serving config's default one.
    points = np.array([i.rule_points for i in got.items])
    max_points = sum(rule.points for rule in bundle.contract.rule_strategy.collection_rules)
    share = 100 * points / max_points
    expected_priority = np.select([share >= 40, share >= 25, share >= 10],
                                  ["very_high", "high", "medium"], "low")
    assert [i.rule_priority for i in got.items] == expected_priority.tolist()
    default = PaydelayConfig().rule_strategy
    assert default.priorities != bundle.contract.rule_strategy.priorities
    # ... and on this worklist they differ from what the default thresholds would say
    assert (((share >= 40) & (share < 80)) | ((share >= 25) & (share < 60))
            | ((share >= 10) & (share < 30))).any()
    # the reasons speak of the model's windows (400 days), never of the default ones
    features = {r.feature for i in got.items for r in i.reasons}
    assert features <= set(bundle.contract.feature_names)
