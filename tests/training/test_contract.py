"""The model contract: derived once from the config, stored as JSON, the same facts for everyone."""

from __future__ import annotations

import json

import pytest

from features.config import PaydelayConfig
from features.pit.feature_spec import feature_names, feature_set_version
from training.core.contract import (FeatureSet, ModelContract, delay_buckets,
                                    very_late_buckets)

NON_DEFAULT = {"features": {"grace_days": 3, "history_windows_days": [60, 180, 400],
                            "cold_start_min_cleared": 5, "bucket_edges": [0, 15, 45]},
               "training": {"risk_class_cutoffs": [0.1, 0.4, 0.7]},
               "rule_strategy": {"name": "PD_OTHER"}}


def test_the_default_contract_is_the_catalogue_and_the_default_buckets():
    c = ModelContract.from_config(PaydelayConfig())
    assert c.feature_names == feature_names() and c.feature_set_version == feature_set_version()
    assert c.bucket_columns == tuple(f"p_bucket_{k}" for k in range(5))
    assert [b.label for b in c.buckets] == ["on time", "1-30 days late", "31-60 days late",
                                            "61-90 days late",
                                            "more than 90 days late or written off"]
    assert c.very_late == (2, 3, 4)  # more than 30 days late (backtest_late_days) or lost
    assert c.payment_anchor == "hist_ewm_days_late" and c.rule_strategy.name == "PD_DEFAULT"


def test_a_non_default_config_changes_features_version_buckets_and_rules():
    cfg = PaydelayConfig.model_validate(NON_DEFAULT)
    c = ModelContract.from_config(cfg)
    assert c.feature_set_version == feature_set_version(cfg.features)
    assert c.feature_set_version.endswith("+w60-180-400.g3.c5")
    assert "hist_n_cleared_400d" in c.feature_names and "hist_n_cleared_90d" not in c.feature_names
    assert [(b.label, b.from_days, b.to_days) for b in c.buckets] == [
        ("on time or up to 3 days late", None, 3), ("4-15 days late", 4, 15),
        ("16-45 days late", 16, 45), ("more than 45 days late or written off", 46, None)]
    assert c.n_late_buckets == 3 and c.very_late == (3,)
    assert c.risk_class_cutoffs == (0.1, 0.4, 0.7) and c.rule_strategy.name == "PD_OTHER"
    assert c.grace_days == 3 and c.bucket_edges == (0, 15, 45)


def test_contract_round_trips_through_json():
    c = ModelContract.from_config(PaydelayConfig.model_validate(NON_DEFAULT))
    again = ModelContract.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c and again.buckets == c.buckets


def test_very_late_falls_back_to_the_last_bucket():
    assert very_late_buckets((0, 30, 60, 90), 30) == [2, 3, 4]
    cfg = PaydelayConfig.model_validate({"features": {"bucket_edges": [0, 10]},
                                         "evaluation": {"backtest_late_days": 30}})
    assert ModelContract.from_config(cfg).very_late == (2,)


def test_inconsistent_contracts_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        delay_buckets((0, 30, 30), 0)
    with pytest.raises(ValueError, match="empty"):
        delay_buckets((0, 5, 30), 7)
    cfg = PaydelayConfig()
    with pytest.raises(ValueError, match="not a model feature"):
        ModelContract.from_config(cfg).__class__(
            features=FeatureSet(("x",)), feature_config=cfg.features, very_late=(2,),
            late_days=30, payment_anchor="y", risk_class_cutoffs=(0.2, 0.5, 0.8),
            rule_strategy=cfg.rule_strategy)
    # The anchor is resolved against the features: a feature set without it means None.
    assert ModelContract.from_config(cfg, FeatureSet(("x",))).payment_anchor is None
