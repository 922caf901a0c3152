"""Order a worklist by expected amount at risk, with the rule strategy's order beside it.

Pure numpy over scored rows (keys + features + training.core.scoring outputs), given as a
DataFrame or as a mapping of column arrays (the request path). The ML order is the expected
amount at risk (training.core.scoring: the open amount times the probability it is paid very
late or lost - the model contract's very-late buckets, more than 30 days with the default
edges), the quantity a collector's call can still move; ties (e.g. two items with nothing open)
fall back to P(late), then the open amount, then the invoice id, so the order is total and
repeatable. The rule order is the served model's SAP-style strategy (its contract;
training.core.rules: higher priority first, then more valuation points), broken the same way by
days overdue, open amount and invoice id. With a capacity K, the summary compares the amount at
risk the first K items of each order cover.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.pit.item_state import column_array


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


def _id_rank(scored) -> np.ndarray:
    ids = scored["invoice_id"]
    if not (isinstance(ids, np.ndarray) and ids.dtype == object):
        ids = pd.Series(ids).astype("str").to_numpy(dtype=object)
    return np.unique(ids, return_inverse=True)[1].reshape(-1)


def _n(scored) -> int:
    return len(column_array(scored, "invoice_id"))


def _groups(scored, groups: np.ndarray | None) -> np.ndarray:
    return np.zeros(_n(scored), dtype=np.int64) if groups is None else np.asarray(groups)


def _floats(scored, name: str) -> np.ndarray:
    return column_array(scored, name, np.float64)


def ml_order(scored, groups: np.ndarray | None = None,
             id_rank: np.ndarray | None = None) -> np.ndarray:
    """Rows by group, then expected amount at risk (descending) and the tie-breaks."""
    return _order([
        _groups(scored, groups),
        -_floats(scored, "expected_amount_at_risk"),
        -_floats(scored, "p_late"),
        -_floats(scored, "open_amount"),
        _id_rank(scored) if id_rank is None else id_rank,
    ])


def rule_order(scored, rules: pd.DataFrame, groups: np.ndarray | None = None,
               id_rank: np.ndarray | None = None) -> np.ndarray:
    """Rows by group, then rule priority and points (descending) and the tie-breaks."""
    return _order([
        _groups(scored, groups),
        rules["priority_rank"].to_numpy(dtype=np.float64),
        -rules["points"].to_numpy(dtype=np.float64),
        -_floats(scored, "days_overdue"),
        -_floats(scored, "open_amount"),
        _id_rank(scored) if id_rank is None else id_rank,
    ])


def ml_ranks(scored: pd.DataFrame, groups: np.ndarray | None = None) -> np.ndarray:
    """Rank 1.. of each row (within its group) by expected amount at risk."""
    return _ranks(ml_order(scored, groups), _groups(scored, groups))


def rule_ranks(scored: pd.DataFrame, rules: pd.DataFrame,
               groups: np.ndarray | None = None) -> np.ndarray:
    """Rank 1.. of each row (within its group) by the rule strategy."""
    return _ranks(rule_order(scored, rules, groups), _groups(scored, groups))


def rerank_groups(scored, rules: pd.DataFrame, groups: np.ndarray,
                  capacities: list[int | None]) -> tuple[pd.DataFrame, list[dict]]:
    """Several worklists at once (groups 0..k-1, rows of a group contiguous or not).

    Returns a compact frame (no feature columns) with group 0's items from rank 1 down, then
    group 1's...: `position` (the item's row in `scored`), group, rank, rule_rank,
    rule_priority, rule_points, rules_hit, in_capacity; and one summary per group.
    """
    aligned = (scored.index.equals(rules.index) if isinstance(scored, pd.DataFrame)
               else isinstance(rules.index, pd.RangeIndex) and rules.index.start == 0)
    if _n(scored) != len(rules) or not aligned:
        raise ValueError("scored rows and rule points must share one index")
    groups = np.asarray(groups, dtype=np.int64)
    ids = _id_rank(scored)
    order = ml_order(scored, groups, ids)
    rank = _ranks(order, groups)
    rule_rank = _ranks(rule_order(scored, rules, groups, ids), groups)
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
        "rule_priority": rules["priority"].to_numpy(dtype=object, na_value=np.nan)[order],
        "rule_points": rules["points"].to_numpy(dtype=np.float64)[order],
        "rules_hit": rules["rules_hit"].to_numpy(dtype=object, na_value="")[order],
    })
    at_risk = _floats(scored, "expected_amount_at_risk")
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
    out, summaries = rerank_groups(scored, rules, np.zeros(_n(scored), dtype=np.int64),
                                   [capacity])
    return out.drop(columns="group"), summaries[0]


__all__ = ["rerank", "rerank_groups", "ml_ranks", "rule_ranks", "ml_order", "rule_order"]
