"""Order a worklist by expected amount at risk, with the rule strategy's order beside it.

Pure pandas over scored rows (keys + features + training.scoring outputs). The ML order is the
expected amount at risk (training.scoring: the open amount times the probability it is paid more
than 30 days late or lost), the quantity a collector's call can still move; ties
(e.g. two items with nothing open) fall back to P(late), then the open amount, then the invoice id,
so the order is total and repeatable. The rule order is the SAP-style strategy of
training.rules (higher priority first, then more valuation points), broken the same way by days
overdue, open amount and invoice id. With a capacity K, the summary compares the amount at risk
the first K items of each order cover.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _order(keys: list[np.ndarray]) -> np.ndarray:
    """Row positions sorted ascending by the keys, the first key most significant (keys that
    should sort descending are passed negated)."""
    return np.lexsort(list(reversed(keys)))


def _ranks(order: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rank 1.. of each row within its group, given an order sorted by group first."""
    ranks = np.empty(len(order), dtype=np.int64)
    g = groups[order]
    first = np.searchsorted(g, g, side="left")  # where each row's group starts in the order
    ranks[order] = np.arange(len(order)) - first + 1
    return ranks


def _id_rank(scored: pd.DataFrame) -> np.ndarray:
    ids = scored["invoice_id"].astype("str").to_numpy(dtype=object)
    return np.unique(ids, return_inverse=True)[1]


def _groups(scored: pd.DataFrame, groups: np.ndarray | None) -> np.ndarray:
    return np.zeros(len(scored), dtype=np.int64) if groups is None else np.asarray(groups)


def ml_order(scored: pd.DataFrame, groups: np.ndarray | None = None) -> np.ndarray:
    """Rows by group, then expected amount at risk (descending) and the tie-breaks."""
    return _order([
        _groups(scored, groups),
        -scored["expected_amount_at_risk"].to_numpy(dtype=np.float64),
        -scored["p_late"].to_numpy(dtype=np.float64),
        -scored["open_amount"].to_numpy(dtype=np.float64),
        _id_rank(scored),
    ])


def rule_order(scored: pd.DataFrame, rules: pd.DataFrame,
               groups: np.ndarray | None = None) -> np.ndarray:
    """Rows by group, then rule priority and points (descending) and the tie-breaks."""
    return _order([
        _groups(scored, groups),
        rules["priority_rank"].to_numpy(dtype=np.float64),
        -rules["points"].to_numpy(dtype=np.float64),
        -scored["days_overdue"].to_numpy(dtype=np.float64),
        -scored["open_amount"].to_numpy(dtype=np.float64),
        _id_rank(scored),
    ])


def ml_ranks(scored: pd.DataFrame, groups: np.ndarray | None = None) -> np.ndarray:
    """Rank 1.. of each row (within its group) by expected amount at risk."""
    return _ranks(ml_order(scored, groups), _groups(scored, groups))


def rule_ranks(scored: pd.DataFrame, rules: pd.DataFrame,
               groups: np.ndarray | None = None) -> np.ndarray:
    """Rank 1.. of each row (within its group) by the rule strategy."""
    return _ranks(rule_order(scored, rules, groups), _groups(scored, groups))


def rerank_groups(scored: pd.DataFrame, rules: pd.DataFrame, groups: np.ndarray,
                  capacities: list[int | None]) -> tuple[pd.DataFrame, list[dict]]:
    """Several worklists at once (groups 0..k-1, rows of a group contiguous or not).

    Returns a compact frame (no feature columns) with group 0's items from rank 1 down, then
    group 1's...: `position` (the item's row in `scored`), group, rank, rule_rank,
    rule_priority, rule_points, rules_hit, in_capacity; and one summary per group.
    """
    if len(scored) != len(rules) or not scored.index.equals(rules.index):
        raise ValueError("scored rows and rule points must share one index")
    groups = np.asarray(groups, dtype=np.int64)
    order = ml_order(scored, groups)
    rank = _ranks(order, groups)
    rule_rank = rule_ranks(scored, rules, groups)
    n_groups = len(capacities)
    sizes = np.bincount(groups, minlength=n_groups)
    cap = np.array([sizes[g] if c is None else int(c) for g, c in enumerate(capacities)])
    in_cap = rank <= cap[groups]
    out = pd.DataFrame({
        "position": order,
        "group": groups[order],
        "rank": rank[order],
        "in_capacity": in_cap[order],
        "rule_rank": rule_rank[order],
        "rule_priority": rules["priority"].astype("str").to_numpy(dtype=object)[order],
        "rule_points": rules["points"].to_numpy(dtype=np.float64)[order],
        "rules_hit": rules["rules_hit"].astype("str").fillna("").to_numpy(dtype=object)[order],
    })
    at_risk = scored["expected_amount_at_risk"].to_numpy(dtype=np.float64)
    total = np.bincount(groups, weights=at_risk, minlength=n_groups)
    ml_in = np.bincount(groups, weights=np.where(in_cap, at_risk, 0.0), minlength=n_groups)
    rule_in = np.bincount(groups, weights=np.where(rule_rank <= cap[groups], at_risk, 0.0),
                          minlength=n_groups)
    summaries = [{"n_items": int(sizes[g]), "capacity": capacities[g],
                  "amount_at_risk_total": float(total[g]),
                  "amount_at_risk_in_capacity": float(ml_in[g]),
                  "rule_amount_at_risk_in_capacity": float(rule_in[g])}
                 for g in range(n_groups)]
    return out, summaries


def rerank(scored: pd.DataFrame, rules: pd.DataFrame, capacity: int | None = None
           ) -> tuple[pd.DataFrame, dict]:
    """One worklist in ML order (see rerank_groups) and its summary."""
    out, summaries = rerank_groups(scored, rules, np.zeros(len(scored), dtype=np.int64),
                                   [capacity])
    return out.drop(columns="group"), summaries[0]


__all__ = ["rerank", "rerank_groups", "ml_ranks", "rule_ranks", "ml_order", "rule_order"]
