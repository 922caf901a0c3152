"""Every share the history features report stays a share: collectors read them as percentages."""

import numpy as np

from features.pit.build import build_training_set
from features.config import PaydelayConfig
from features.pit.feature_spec import FEATURES
from features.simulate.ledger import simulate_ledger


def test_share_features_lie_between_zero_and_one():
    cfg = PaydelayConfig(seed=11)
    sim = cfg.simulator.model_copy(update={"n_customers": 60, "n_invoices": 3000, "months": 20})
    ledger = simulate_ledger(sim, seed=cfg.seed)
    rows = build_training_set(ledger.events, ledger.master, cfg.features, seed=cfg.seed)
    # credit_used_ratio is exposure against the limit: a customer over its limit is above 1.
    shares = [f.name for f in FEATURES if f.unit == "share" and f.name != "credit_used_ratio"]
    assert "hist_ewm_late_ratio_season_adj" in shares and "hist_late_ratio" in shares
    values = rows[shares].to_numpy(dtype="float64")
    known = values[~np.isnan(values)]
    assert known.size > 0 and known.min() >= 0.0 and known.max() <= 1.0
