"""The stricter promotion gate: every rule passes or says, in its refusal, what failed."""

from __future__ import annotations

import pandas as pd

from features.config.monitoring import MonitoringConfig
from features.config.training import PromotionConfig
from training.gate import (beats_best_baseline, beats_champion, canary_passed, decide,
                           slice_floors, strict_gate)

SCORERS = pd.DataFrame([
    {"scorer": "model", "kind": "model", "roc_auc": 0.85, "brier": 0.15},
    {"scorer": "due_date", "kind": "baseline", "roc_auc": 0.70, "brier": 0.22},
    {"scorer": "hist_avg_delay", "kind": "baseline", "roc_auc": 0.80, "brier": 0.18},
    {"scorer": "rule_strategy", "kind": "rule", "roc_auc": 0.78, "brier": float("nan")},
    {"scorer": "oracle", "kind": "oracle", "roc_auc": 0.95, "brier": 0.10},
])
SLICES = pd.DataFrame([
    {"slice": "customer_segment", "value": "sme", "scorer": "model", "n": 400, "roc_auc": 0.82,
     "ece": 0.05},
    {"slice": "customer_history", "value": "new", "scorer": "model", "n": 120, "roc_auc": 0.60,
     "ece": 0.08},
    {"slice": "amount_band", "value": ">=100k", "scorer": "model", "n": 12, "roc_auc": 0.40,
     "ece": 0.30},
    {"slice": "customer_history", "value": "new", "scorer": "due_date", "n": 120,
     "roc_auc": 0.50, "ece": 0.30},
])
OK_CANARY = {"ok": True, "detail": "200 rows scored"}


def test_beats_champion_and_best_baseline():
    cfg = PromotionConfig()
    assert beats_champion({"roc_auc": 0.85, "brier": 0.15}, None, cfg).passed
    worse = beats_champion({"roc_auc": 0.85, "brier": 0.15}, {"roc_auc": 0.86, "brier": 0.14},
                           cfg)
    assert not worse.passed and "0.8600" in worse.detail
    base = beats_best_baseline({"roc_auc": 0.79, "brier": 0.15},
                               {"hist_avg_delay": {"roc_auc": 0.80, "brier": 0.18}})
    assert not base.passed and "hist_avg_delay 0.8000" in base.detail


def test_a_slice_below_its_floor_is_named_and_small_slices_are_not_judged():
    rule = slice_floors(SLICES[SLICES["scorer"] == "model"], MonitoringConfig())
    assert not rule.passed
    assert "customer_history=new ROC-AUC 0.600 < 0.65" in rule.detail
    assert ">=100k" not in rule.detail.split(";")[0] and "not judged" in rule.detail


def test_every_refusal_says_which_rule_failed():
    d = strict_gate(SCORERS, SLICES, {"roc_auc": 0.84, "brier": 0.16}, PromotionConfig(),
                    MonitoringConfig(), {"ok": False, "detail": "the serving path failed: X"})
    assert not d.promote
    assert [r.rule for r in d.failed] == ["slice_floors", "canary"]
    assert d.reason.startswith("refused: slice_floors: FAILED (customer_history=new")
    assert "canary: FAILED (the serving path failed: X)" in d.reason


def test_all_rules_pass_promotes_and_a_missing_canary_refuses():
    good = SLICES[SLICES["value"] != "new"]
    d = strict_gate(SCORERS, good, None, PromotionConfig(), MonitoringConfig(), OK_CANARY)
    assert d.promote and d.reason.startswith("promoted:")
    assert not canary_passed(None).passed
    assert not decide([canary_passed(None)]).promote
