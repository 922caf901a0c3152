"""Worklist ordering: expected amount at risk first, the rule strategy's order beside it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.rerank import ml_ranks, rerank, rule_ranks


def _scored() -> pd.DataFrame:
    # comment per row: why it lands where it does
    return pd.DataFrame({
        "invoice_id": ["A", "B", "C", "D", "E"],
        "expected_amount_at_risk": [500.0, 900.0, 500.0, 0.0, 500.0],
        "p_late": [0.5, 0.9, 0.25, 0.0, 0.5],  # A and E tie on amount and p_late
        "open_amount": [1000.0, 1000.0, 2000.0, 0.0, 1000.0],
        "days_overdue": [10.0, 0.0, 40.0, 0.0, 10.0],
    })


def _rules() -> pd.DataFrame:
    return pd.DataFrame({"priority": ["high", "low", "very_high", "low", "high"],
                         "priority_rank": [2, 4, 1, 4, 2], "points": [60.0, 0.0, 85.0, 0.0, 60.0],
                         "rules_hit": ["R01,R02", "", "R01,R02,R03", "", "R01,R02"]})


def test_ml_order_is_amount_at_risk_then_p_late_then_open_amount_then_id():
    # B (900) > A = E (500, p 0.5, 1000: id decides) > C (500 but p 0.25) > D (nothing at risk)
    assert ml_ranks(_scored()).tolist() == [2, 1, 4, 5, 3]


def test_rule_order_is_priority_then_points_then_days_overdue():
    # C very_high > A = E high (id decides) > B = D low (0 days overdue, open 1000 beats 0)
    assert rule_ranks(_scored(), _rules()).tolist() == [2, 4, 1, 5, 3]


def test_rerank_returns_the_ml_order_with_positions_and_the_summary():
    order, summary = rerank(_scored(), _rules(), capacity=2)
    assert order["position"].tolist() == [1, 0, 4, 2, 3]
    assert order["rank"].tolist() == [1, 2, 3, 4, 5]
    assert order["in_capacity"].tolist() == [True, True, False, False, False]
    assert order["rule_rank"].tolist() == [4, 2, 3, 1, 5]
    assert order["rule_priority"].tolist() == ["low", "high", "high", "very_high", "low"]
    assert summary == {"n_items": 5, "capacity": 2, "amount_at_risk_total": 2400.0,
                       "amount_at_risk_in_capacity": 1400.0,
                       "rule_amount_at_risk_in_capacity": 1000.0}


def test_without_capacity_everything_is_in_capacity():
    order, summary = rerank(_scored(), _rules())
    assert order["in_capacity"].all() and summary["capacity"] is None
    assert summary["amount_at_risk_in_capacity"] == summary["amount_at_risk_total"]


def test_the_order_does_not_depend_on_the_input_order(rng):
    scored, rules = _scored(), _rules()
    perm = rng.permutation(len(scored))
    order, _ = rerank(scored.iloc[perm].reset_index(drop=True),
                      rules.iloc[perm].reset_index(drop=True))
    ids = scored["invoice_id"].to_numpy()[perm][order["position"].to_numpy()]
    assert ids.tolist() == ["B", "A", "E", "C", "D"]


def test_misaligned_inputs_are_refused():
    with pytest.raises(ValueError, match="one index"):
        rerank(_scored(), _rules().iloc[:3])
    assert np.array_equal(ml_ranks(_scored().iloc[:0]), np.array([], dtype=np.int64))


def test_several_worklists_at_once_rank_each_on_its_own():
    from serving.rerank import rerank_groups

    a, ra = _scored(), _rules()
    b = _scored().assign(invoice_id=list("VWXYZ"), expected_amount_at_risk=[1.0, 5.0, 3.0,
                                                                            2.0, 4.0])
    both = pd.concat([a, b], ignore_index=True)
    rules = pd.concat([ra, _rules()], ignore_index=True)
    order, summaries = rerank_groups(both, rules, np.repeat([0, 1], 5), [2, None])
    alone_a, sum_a = rerank(a, ra, capacity=2)
    alone_b, sum_b = rerank(b, _rules())
    assert order["group"].tolist() == [0] * 5 + [1] * 5
    assert order["position"].tolist() == alone_a["position"].tolist() + \
        [p + 5 for p in alone_b["position"]]
    assert order["rank"].tolist() == [1, 2, 3, 4, 5] * 2
    assert order["rule_rank"].tolist() == alone_a["rule_rank"].tolist() + \
        alone_b["rule_rank"].tolist()
    assert summaries == [sum_a, sum_b]
