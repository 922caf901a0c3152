"""The SAP collection rule strategy: basic rules, valuation points, priorities.

This is the incumbent the learned ranking has to beat, and the rule priority that the serving
re-rank endpoint shows beside the ML rank. Everything is configuration
(`features.config.RuleStrategyConfig`), evaluated vectorised over rows of open items:

1. A **basic rule** is one condition on an item or its customer: `field op value`, e.g.
   `days_overdue > 30`, `risk_category in (D04, E05)`, `dispute_open is_false`. A missing value
   never satisfies a condition (SAP does not valuate what it does not know).
2. A **collection rule** groups basic rules that must all hold and is worth valuation points. It
   may carry a **prerequisite** (another collection rule earlier in the strategy, or a basic
   rule): when the prerequisite does not hold, the rule is not valuated at all.
3. The **strategy** sums the points of the collection rules that hold and turns the sum into a
   percentage of the maximum attainable points (by default the sum of every rule's points, as in
   SAP's "percentage of the maximum valuation"; `max_points` overrides it when rules are mutually
   exclusive).
4. **Priorities** are derived from the percentage by thresholds, highest first (default:
   >= 80 % very_high, >= 60 % high, >= 30 % medium, else low). `priority_rank` 1 is the most
   urgent, as SAP's priority keys.

The default strategy `PD_DEFAULT` (config defaults, 100 points in all) follows the spirit of the
SAP collection strategy's worked example, where customer A comes out "very high" and customer B
"low":

| rule | points | holds when                                                        |
|------|-------:|-------------------------------------------------------------------|
| R01  | 10     | item overdue (days_overdue > 0)                                   |
| R02  | 15     | item more than 30 days overdue                                    |
| R03  | 20     | customer's overdue amount > 50,000 (customer-level)               |
| R04  | 15     | risk category D04 or E05                                          |
| R05  | 15     | at least one broken promise to pay on the item                    |
| R06  | 10     | dunning level >= 3 and no open dispute                            |
| R07  | 10     | customer paid > 50 % of invoices late; prerequisite B09: >= 3 paid |
| R08  | 5      | open amount > 10,000; prerequisite R01: the item is overdue       |

The prerequisite of R07 mirrors the SAP strategy's "rule 5 applies only if its prerequisite
holds": a late ratio on one or two invoices says little, so it is not valuated for thin
histories.

Customer-level fields (`customer_overdue_amount`, `customer_open_amount`,
`customer_n_overdue_items`, `customer_max_days_overdue`) are taken, in this order of preference,
from a row column of that name; from the feature builder's point-in-time totals over the
customer's other invoices (`hist_overdue_amount_other`, `hist_open_amount_other`,
`hist_n_overdue_other`) plus the item itself; or by aggregating the rows that share
`customer_group_keys` (customer and snapshot time): exact for a worklist of all open items at
one time, an under-count on sampled training rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.config.rules import BasicRuleConfig, RuleStrategyConfig

_DAY = np.timedelta64(1, "D")


def days_overdue(rows: pd.DataFrame) -> pd.Series:
    """Whole days past the net due date at t (0 while not due); the row column wins if present."""
    if "days_overdue" in rows.columns:
        col = rows["days_overdue"]
        if col.dtype == np.float64:  # already what the conversion below gives
            return col
        return pd.to_numeric(col).astype("float64")
    _require(rows, ("snapshot_time", "net_due_date"), "days_overdue")
    delta = (rows["snapshot_time"].dt.normalize() - rows["net_due_date"].dt.normalize()) / _DAY
    return delta.clip(lower=0).astype("float64")


def days_to_due(rows: pd.DataFrame) -> pd.Series:
    """Days from t to the net due date (negative once past due), fractional."""
    _require(rows, ("snapshot_time", "net_due_date"), "days_to_due")
    return ((rows["net_due_date"] - rows["snapshot_time"]) / _DAY).astype("float64")


def _customer_agg(rows: pd.DataFrame, values: pd.Series, how: str, keys: tuple[str, ...],
                  name: str) -> pd.Series:
    _require(rows, keys, name)
    frame = rows[list(keys)].assign(_v=values.to_numpy())
    return frame.groupby(list(keys), observed=True, dropna=True)["_v"].transform(how)


def _floats(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype="float64", na_value=np.nan)


def _own_plus_other(rows: pd.DataFrame, own: pd.Series | np.ndarray, other: str) -> pd.Series:
    # The feature builder's point-in-time total over the customer's OTHER invoices, plus this one.
    own = own if isinstance(own, np.ndarray) else _floats(own)
    other_values = _floats(rows[other])
    return pd.Series(own + np.where(np.isnan(other_values), 0.0, other_values),
                     index=rows.index)


def _customer_overdue_amount(rows: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    _require(rows, ("open_amount",), "customer_overdue_amount")
    if "hist_overdue_amount_other" in rows:
        overdue = np.where(days_overdue(rows).to_numpy() > 0, _floats(rows["open_amount"]), 0.0)
        return _own_plus_other(rows, overdue, "hist_overdue_amount_other")
    overdue = rows["open_amount"].where(days_overdue(rows) > 0, 0.0)
    return _customer_agg(rows, overdue, "sum", keys, "customer_overdue_amount")


def _customer_open_amount(rows: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    _require(rows, ("open_amount",), "customer_open_amount")
    if "hist_open_amount_other" in rows:
        return _own_plus_other(rows, rows["open_amount"], "hist_open_amount_other")
    return _customer_agg(rows, rows["open_amount"], "sum", keys, "customer_open_amount")


def _customer_max_days_overdue(rows: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    return _customer_agg(rows, days_overdue(rows), "max", keys, "customer_max_days_overdue")


def _customer_n_overdue_items(rows: pd.DataFrame, keys: tuple[str, ...]) -> pd.Series:
    overdue = (days_overdue(rows) > 0).astype("float64")
    if "hist_n_overdue_other" in rows:
        return _own_plus_other(rows, overdue, "hist_n_overdue_other")
    return _customer_agg(rows, overdue, "sum", keys, "customer_n_overdue_items")


# Fields a basic rule may name although rows need not carry them: computed from the keys.
DERIVED_FIELDS: dict[str, Callable[[pd.DataFrame, tuple[str, ...]], pd.Series]] = {
    "days_overdue": lambda rows, keys: days_overdue(rows),
    "days_to_due": lambda rows, keys: days_to_due(rows),
    "customer_overdue_amount": _customer_overdue_amount,
    "customer_open_amount": _customer_open_amount,
    "customer_max_days_overdue": _customer_max_days_overdue,
    "customer_n_overdue_items": _customer_n_overdue_items,
}


# The row columns each derived field may read (besides the group keys), for callers that pass
# rule_points only the columns a strategy needs: keep it in step with DERIVED_FIELDS.
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "days_overdue": ("days_overdue", "snapshot_time", "net_due_date"),
    "days_to_due": ("snapshot_time", "net_due_date"),
    "customer_overdue_amount": ("open_amount", "hist_overdue_amount_other", "days_overdue",
                                "snapshot_time", "net_due_date"),
    "customer_open_amount": ("open_amount", "hist_open_amount_other"),
    "customer_max_days_overdue": ("days_overdue", "snapshot_time", "net_due_date"),
    "customer_n_overdue_items": ("hist_n_overdue_other", "days_overdue", "snapshot_time",
                                 "net_due_date"),
}


def strategy_columns(cfg: RuleStrategyConfig, group_keys: tuple[str, ...] | None = None
                     ) -> tuple[str, ...]:
    """Every row column rule_points(rows, cfg, group_keys) may read: the rules' fields, the
    inputs of the derived ones, and the customer group keys. rule_points on just these columns
    valuates exactly as on the whole rows."""
    keys = tuple(group_keys) if group_keys is not None else tuple(cfg.customer_group_keys)
    cols: list[str] = []
    for b in cfg.basic_rules:
        cols += [b.field, *DERIVED_INPUTS.get(b.field, ())]
    return tuple(dict.fromkeys([*cols, *keys]))


def _require(rows: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise KeyError(f"{what} needs column(s) {missing}, absent from the rows")


def validate_strategy(cfg: RuleStrategyConfig) -> None:
    """Raise ValueError naming the rule when the strategy is inconsistent."""
    basic = [b.name for b in cfg.basic_rules]
    coll = [c.name for c in cfg.collection_rules]
    names = basic + coll
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"rule strategy {cfg.name}: duplicate rule name(s) {dupes}")
    for b in cfg.basic_rules:
        if b.op in ("is_true", "is_false"):
            continue
        if b.value is None:
            raise ValueError(f"basic rule {b.name}: op {b.op!r} needs a value")
        if b.op in ("in", "not_in") and not isinstance(b.value, (tuple, str)):
            raise ValueError(f"basic rule {b.name}: op {b.op!r} needs a list of strings")
    seen: set[str] = set()
    for c in cfg.collection_rules:
        unknown = [n for n in c.basic_rules if n not in basic]
        if unknown:
            raise ValueError(f"collection rule {c.name}: unknown basic rule(s) {unknown}")
        pre = c.prerequisite
        if pre is not None and pre not in basic and pre not in seen:
            raise ValueError(
                f"collection rule {c.name}: prerequisite {c.prerequisite!r} must be a basic rule "
                "or a collection rule defined earlier in the strategy")
        seen.add(c.name)
    if not cfg.collection_rules:
        raise ValueError(f"rule strategy {cfg.name}: no collection rules")
    if max_attainable_points(cfg) <= 0:
        raise ValueError(f"rule strategy {cfg.name}: maximum attainable points must be > 0")
    if not any(p.min_percent == 0 for p in cfg.priorities):
        raise ValueError(f"rule strategy {cfg.name}: one priority needs min_percent = 0 so that "
                         "every item gets a priority")
    pnames = [p.name for p in cfg.priorities]
    if len(set(pnames)) != len(pnames):
        raise ValueError(f"rule strategy {cfg.name}: duplicate priority names {pnames}")


def max_attainable_points(cfg: RuleStrategyConfig) -> float:
    """The denominator of the percentage: `max_points`, or the sum of all rules' points."""
    if cfg.max_points is not None:
        return float(cfg.max_points)
    return float(sum(c.points for c in cfg.collection_rules))


def _as_float(col: pd.Series, rule: BasicRuleConfig) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return col.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    if col.dtype == object:  # e.g. parsed JSON: True/False/None or numbers with None
        try:
            return pd.to_numeric(col.astype("boolean") if rule.op.startswith("is_") else col
                                 ).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"basic rule {rule.name}: field {rule.field!r} has dtype {col.dtype}, "
                    f"not numeric/boolean as op {rule.op!r} needs")


def _plain_numbers(col: pd.Series) -> np.ndarray | None:
    """float64 values of a column held as plain numpy numbers or booleans (NaN = missing), or
    None for any other dtype (nullable, strings, categoricals: the general path)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return col.to_numpy().astype(np.float64, copy=False)
    return None


def _category_hits(col: pd.Series, values: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray
                                                                     ] | None:
    """(present, value in `values`) of a categorical column of strings, read from its few
    categories; None for any other column."""
    if not isinstance(col.dtype, pd.CategoricalDtype):
        return None
    cat = col.array
    cats = cat.categories.tolist()  # a few values
    if not all(isinstance(c, str) for c in cats):
        return None
    wanted = set(values)
    codes = cat.codes
    hit = np.array([c in wanted for c in cats] + [False])[codes]  # code -1 (missing): False
    return codes >= 0, hit


def basic_rule_mask(col: pd.Series, rule: BasicRuleConfig) -> np.ndarray:
    """Boolean array: where the condition holds. Missing values never hold."""
    op, value = rule.op, rule.value
    # Plain numeric and categorical columns (every default rule) are read with numpy: a few
    # hundred rows of a serving request must not pay pandas' nullable-dtype conversions.
    x = _plain_numbers(col) if not isinstance(value, str) and op not in ("in", "not_in") \
        else None
    if x is not None:
        present = ~np.isnan(x)
        if op in ("is_true", "is_false"):
            truth = x != 0
            return present & (truth if op == "is_true" else ~truth)
        with np.errstate(invalid="ignore"):
            cmp = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
                   "==": np.equal, "!=": np.not_equal}[op](x, float(value))
        return present & cmp
    if op in ("in", "not_in"):
        values = (value,) if isinstance(value, str) else tuple(value)
        fast = _category_hits(col, values)
        if fast is not None:
            present, hit = fast
            return present & (hit if op == "in" else ~hit)
    present = col.notna().to_numpy()
    if op in ("is_true", "is_false"):
        truth = _as_float(col, rule) != 0
        return present & (truth if op == "is_true" else ~truth)
    if op in ("in", "not_in"):
        values = (value,) if isinstance(value, str) else tuple(value)
        hit = col.astype("string").isin(values).fillna(False).to_numpy(dtype=bool)
        return present & (hit if op == "in" else ~hit)
    if isinstance(value, str):
        x = col.astype("string")
        cmp = {">": x.gt, ">=": x.ge, "<": x.lt, "<=": x.le, "==": x.eq, "!=": x.ne}[op](value)
        return present & cmp.fillna(False).to_numpy(dtype=bool)
    x = _as_float(col, rule)
    with np.errstate(invalid="ignore"):
        cmp = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
               "==": np.equal, "!=": np.not_equal}[op](x, float(value))
    return present & cmp


def _field(rows: pd.DataFrame, name: str, keys: tuple[str, ...], cache: dict) -> pd.Series:
    if name not in cache:
        if name in rows.columns:
            cache[name] = rows[name]
        elif name in DERIVED_FIELDS:
            cache[name] = DERIVED_FIELDS[name](rows, keys)
        else:
            raise KeyError(f"rule field {name!r} is neither a row column nor one of the derived "
                           f"fields {sorted(DERIVED_FIELDS)}")
    return cache[name]


def _rules_held(rows: pd.DataFrame, cfg: RuleStrategyConfig,
                group_keys: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    validate_strategy(cfg)
    keys = tuple(group_keys) if group_keys is not None else tuple(cfg.customer_group_keys)
    cache: dict[str, pd.Series] = {}
    basic: dict[str, np.ndarray] = {}
    for b in cfg.basic_rules:  # a handful of rules: a loop over rules, vectorised over rows
        try:
            basic[b.name] = basic_rule_mask(_field(rows, b.field, keys, cache), b)
        except KeyError as err:
            raise KeyError(f"basic rule {b.name}: {err.args[0]}") from None
    held: dict[str, np.ndarray] = {}
    for c in cfg.collection_rules:
        ok = np.logical_and.reduce([basic[n] for n in c.basic_rules])
        if c.prerequisite is not None:
            ok = ok & (held[c.prerequisite] if c.prerequisite in held else basic[c.prerequisite])
        held[c.name] = ok
    return held


def rule_points(rows: pd.DataFrame, cfg: RuleStrategyConfig,
                group_keys: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Valuate every row: points, percent (of max attainable), priority, priority_rank, rules_hit.

    Index aligned with `rows`. `priority_rank` 1 is the most urgent priority. `group_keys`
    overrides `cfg.customer_group_keys` for derived customer-level fields.
    """
    held = _rules_held(rows, cfg, group_keys)
    matrix = np.column_stack([np.asarray(held[c.name], dtype=bool).reshape(len(rows))
                              for c in cfg.collection_rules])
    weights = np.array([c.points for c in cfg.collection_rules], dtype="float64")
    points = matrix.astype("float64") @ weights if len(rows) else np.zeros(0)
    percent = 100.0 * points / max_attainable_points(cfg)

    order = sorted(cfg.priorities, key=lambda p: -p.min_percent)
    names = np.array([p.name for p in order], dtype=object)
    thresholds = np.array([p.min_percent for p in order], dtype="float64")
    # First threshold (highest first) the percentage reaches; the 1e-9 absorbs float noise.
    reached = percent[:, None] + 1e-9 >= thresholds[None, :]
    first = reached.argmax(axis=1)

    # "R01,R03": one string per distinct combination of rules held (a few), not per row
    rule_names = [c.name for c in cfg.collection_rules]
    if len(rule_names) < 63:  # each combination as the bits of one integer
        bits = matrix.astype(np.int64) @ (np.int64(1) << np.arange(len(rule_names)))
        combos, inverse = np.unique(bits, return_inverse=True)
        combos = (combos[:, None] >> np.arange(len(rule_names))) & 1 == 1
    else:
        combos, inverse = np.unique(matrix, axis=0, return_inverse=True)
    texts = np.array([",".join(n for n, h in zip(rule_names, combo) if h) for combo in combos]
                     + [""], dtype=object)
    hit = texts[inverse.reshape(-1)]
    return pd.DataFrame({
        "points": points,
        "percent": percent,
        "priority": pd.Series(names[first], index=rows.index, dtype="string"),
        "priority_rank": (first + 1).astype("int64"),
        "rules_hit": pd.Series(hit, index=rows.index, dtype="string"),
    }, index=rows.index)


def rule_order_key(scored: pd.DataFrame) -> pd.Series:
    """A single descending sort key: higher priority first, then more points."""
    points = scored["points"].astype("float64")
    scale = float(points.max()) + 1.0 if len(points) else 1.0
    return -scored["priority_rank"].astype("float64") + points / scale


def describe_strategy(cfg: RuleStrategyConfig) -> pd.DataFrame:
    """The strategy as a table (rule, points, conditions, prerequisite) for reports and docs."""
    validate_strategy(cfg)
    basic = {b.name: b for b in cfg.basic_rules}

    def cond(name: str) -> str:
        b = basic[name]
        value = "" if b.value is None else (
            "(" + ", ".join(b.value) + ")" if isinstance(b.value, tuple) else f"{b.value:g}"
            if isinstance(b.value, float) else str(b.value))
        return f"{b.field} {b.op} {value}".strip()

    return pd.DataFrame({
        "rule": [c.name for c in cfg.collection_rules],
        "description": [c.description for c in cfg.collection_rules],
        "points": [c.points for c in cfg.collection_rules],
        "conditions": [" and ".join(cond(n) for n in c.basic_rules)
                       for c in cfg.collection_rules],
        "prerequisite": [(cond(c.prerequisite) if c.prerequisite in basic else c.prerequisite)
                         or "" for c in cfg.collection_rules],
    })
