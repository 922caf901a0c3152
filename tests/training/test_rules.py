"""The SAP-style rule strategy on constructed customers (seed 002's customer A and B)."""

import numpy as np
import pandas as pd
import pytest

from features.config import PaydelayConfig

from features.config.rules import BasicRuleConfig, CollectionRuleConfig, PriorityConfig, RuleStrategyConfig
from training.core.rules import describe_strategy, rule_points, validate_strategy

T = pd.Timestamp("2024-06-01")


def _customers() -> pd.DataFrame:
    """Row 0-1: customer A's items; row 2: customer B's item (default strategy PD_DEFAULT)."""
    return pd.DataFrame({
        "invoice_id": ["A1", "A2", "B1"],
        "customer_id": ["A", "A", "B"],
        "snapshot_time": [T, T, T],
        "net_due_date": [T - pd.Timedelta(days=45), T - pd.Timedelta(days=10),
                         T - pd.Timedelta(days=5)],
        "open_amount": [45_000.0, 12_000.0, 800.0],
        "risk_category": pd.Categorical(["E05", "E05", "A01"], categories=["A01", "E05"]),
        "dunning_level": pd.array([3, 2, 1], dtype="Int8"),
        "n_promises_broken": [1.0, 0.0, 0.0],
        "dispute_open": [False, False, False],
        "hist_n_cleared": [10.0, 10.0, 1.0],
        "hist_late_ratio": [0.8, 0.8, 0.9],  # B is late on its only invoice: too thin to judge
    }, index=[7, 3, 5])


def test_customer_a_very_high_and_b_low_with_exact_points():
    out = rule_points(_customers(), RuleStrategyConfig())
    assert list(out.index) == [7, 3, 5]
    a1, a2, b1 = out.loc[7], out.loc[3], out.loc[5]
    # A1 holds every rule: 10+15+20+15+15+10+10+5 = 100 of 100
    assert a1["points"] == 100 and a1["percent"] == 100 and a1["priority"] == "very_high"
    assert a1["priority_rank"] == 1
    # A2: overdue (10), customer overdue 57,000 > 50,000 (20), E05 (15), late payer (10),
    # large overdue item (5); not > 30 days, no broken promise, dunning 2
    assert a2["points"] == 60 and a2["priority"] == "high"
    assert a2["rules_hit"] == "R01,R03,R04,R07,R08"
    # B: only "item overdue"; its late ratio is not valuated (prerequisite: >= 3 paid invoices)
    assert b1["points"] == 10 and b1["percent"] == 10
    assert b1["priority"] == "low" and b1["priority_rank"] == 4 and b1["rules_hit"] == "R01"


def test_prerequisite_honoured():
    rows = _customers()
    rows.loc[5, "hist_n_cleared"] = 5.0  # now B has enough history: R07 is valuated
    assert rule_points(rows, RuleStrategyConfig()).loc[5, "points"] == 20
    # R08 (large item) has R01 (item overdue) as prerequisite: a large item not yet due is 0
    rows = _customers()
    rows.loc[3, "net_due_date"] = T + pd.Timedelta(days=10)
    out = rule_points(rows, RuleStrategyConfig()).loc[3]
    assert "R08" not in out["rules_hit"] and "R01" not in out["rules_hit"]


def _two_rule_strategy(**kw) -> RuleStrategyConfig:
    return RuleStrategyConfig(
        name="T2",
        basic_rules=(BasicRuleConfig(name="b_big", field="open_amount", op=">=", value=100),
                     BasicRuleConfig(name="b_old", field="days_overdue", op=">", value=0)),
        collection_rules=(CollectionRuleConfig(name="big", basic_rules=("b_big",), points=80),
                          CollectionRuleConfig(name="old", basic_rules=("b_old",), points=20)),
        **kw)


def test_percentages_and_priority_thresholds():
    rows = pd.DataFrame({
        "customer_id": list("wxyz"), "snapshot_time": [T] * 4,
        "net_due_date": [T - pd.Timedelta(days=1), T, T - pd.Timedelta(days=3), T],
        "open_amount": [100.0, 100.0, 50.0, 50.0],
    })
    out = rule_points(rows, _two_rule_strategy())
    assert list(out["percent"]) == [100.0, 80.0, 20.0, 0.0]
    assert list(out["priority"]) == ["very_high", "very_high", "low", "low"]
    out = rule_points(rows, _two_rule_strategy(max_points=200))
    assert list(out["percent"]) == [50.0, 40.0, 10.0, 0.0]
    assert list(out["priority"]) == ["medium", "medium", "low", "low"]
    custom = _two_rule_strategy(priorities=(PriorityConfig(name="now", min_percent=90),
                                            PriorityConfig(name="later", min_percent=0)))
    out = rule_points(rows, custom)
    assert list(out["priority"]) == ["now", "later", "later", "later"]
    assert list(out["priority_rank"]) == [1, 2, 2, 2]


def test_thresholds_boundaries_60_and_30():
    rows = pd.DataFrame({"customer_id": ["a", "b", "c"], "snapshot_time": [T] * 3,
                         "net_due_date": [T] * 3, "x": [60.0, 59.0, 30.0]})
    # one rule per point level: the percent equals x
    basic = tuple(BasicRuleConfig(name=f"b{i}", field="x", op=">=", value=i)
                  for i in range(1, 101))
    coll = tuple(CollectionRuleConfig(name=f"r{i}", basic_rules=(f"b{i}",), points=1)
                 for i in range(1, 101))
    out = rule_points(rows, RuleStrategyConfig(basic_rules=basic, collection_rules=coll))
    assert list(out["percent"]) == [60.0, 59.0, 30.0]
    assert list(out["priority"]) == ["high", "medium", "medium"]


def test_customer_overdue_amount_aggregates_overdue_items_per_customer_and_time():
    rows = _customers()
    rows.loc[3, "open_amount"] = 4_000.0  # A now owes 49,000 overdue: R03 no longer holds
    out = rule_points(rows, RuleStrategyConfig())
    assert "R03" not in out.loc[7, "rules_hit"] and out.loc[7, "points"] == 80
    # the builder's point-in-time total over the customer's other invoices wins over the rows
    rows["hist_overdue_amount_other"] = [6_000.0, 45_000.0, 0.0]  # A1: 45,000 + 6,000 > 50,000
    out = rule_points(rows, RuleStrategyConfig())
    assert out.loc[7, "points"] == 100 and "R03" not in out.loc[3, "rules_hit"]
    # and an explicit column of the rule's field name wins over everything
    rows["customer_overdue_amount"] = [0.0, 60_000.0, 0.0]
    out = rule_points(rows, RuleStrategyConfig())
    assert "R03" not in out.loc[7, "rules_hit"] and "R03" in out.loc[3, "rules_hit"]


def test_missing_values_never_hold():
    rows = _customers()
    rows["dunning_level"] = pd.array([pd.NA, pd.NA, pd.NA], dtype="Int8")
    rows["risk_category"] = pd.Categorical([None, None, None], categories=["E05"])
    rows["hist_late_ratio"] = np.nan
    out = rule_points(rows, RuleStrategyConfig())
    assert out.loc[7, "points"] == 100 - 10 - 15 - 10  # no R06, R04, R07


def test_operators_on_strings_and_bools():
    rows = pd.DataFrame({"risk_category": ["A01", "C03", "E05", None],
                         "dispute_open": [True, False, True, None],
                         "customer_id": list("abcd"), "snapshot_time": [T] * 4})
    rules = (BasicRuleConfig(name="hi", field="risk_category", op=">=", value="C03"),
             BasicRuleConfig(name="nd", field="dispute_open", op="is_true"),
             BasicRuleConfig(name="ni", field="risk_category", op="not_in", value=("A01",)))
    cfg = RuleStrategyConfig(basic_rules=rules, collection_rules=(
        CollectionRuleConfig(name="r1", basic_rules=("hi",), points=1),
        CollectionRuleConfig(name="r2", basic_rules=("nd",), points=2),
        CollectionRuleConfig(name="r3", basic_rules=("ni",), points=4)))
    assert list(rule_points(rows, cfg)["points"]) == [2, 5, 7, 0]


def test_bad_strategies_are_named():
    with pytest.raises(ValueError, match="collection rule r1: prerequisite 'r2'"):
        validate_strategy(RuleStrategyConfig(
            basic_rules=(BasicRuleConfig(name="b", field="x", op=">", value=1),),
            collection_rules=(
                CollectionRuleConfig(name="r1", basic_rules=("b",), points=1,
                                     prerequisite="r2"),
                CollectionRuleConfig(name="r2", basic_rules=("b",), points=1))))
    with pytest.raises(ValueError, match="unknown basic rule"):
        validate_strategy(RuleStrategyConfig(collection_rules=(
            CollectionRuleConfig(name="r", basic_rules=("nope",), points=1),)))
    rows = _customers().drop(columns=["hist_late_ratio"])
    with pytest.raises(KeyError, match="basic rule B10: rule field 'hist_late_ratio'"):
        rule_points(rows, RuleStrategyConfig())
    with pytest.raises(TypeError, match="basic rule X"):
        rule_points(_customers(), RuleStrategyConfig(
            basic_rules=(BasicRuleConfig(name="X", field="customer_id", op=">", value=3),),
            collection_rules=(CollectionRuleConfig(name="r", basic_rules=("X",), points=1),)))


def test_strategy_round_trips_through_config_and_describes_itself():
    cfg = PaydelayConfig.model_validate({"rule_strategy": {
        "name": "Z1",
        "basic_rules": [{"name": "b", "field": "risk_category", "op": "in",
                         "value": ["D04", "E05"]}],
        "collection_rules": [{"name": "r", "basic_rules": ["b"], "points": 3}]}})
    assert cfg.rule_strategy.basic_rules[0].value == ("D04", "E05")
    table = describe_strategy(RuleStrategyConfig())
    assert table["points"].sum() == 100
    assert table.set_index("rule").loc["R07", "prerequisite"] == "hist_n_cleared >= 3"
