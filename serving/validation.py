"""Request items -> item-state frame, and the deliberate handling of impossible or unknown input.

Pydantic (serving.api_models) already refused malformed input with a 400. What is left is
decided here, case by case, vectorised over the items (a problem names the item's position and
the field, never the value, since responses and logs must not echo client data back needlessly):

| case                                                        | decision                       |
|-------------------------------------------------------------|--------------------------------|
| net due date before the posting date                        | refuse (422)                   |
| open amount above the invoice amount (+ 1 cent)             | refuse (422)                   |
| paid, disputed, credit-memo or promised amount above the    | refuse (422)                   |
| invoice amount (+ 1 cent)                                   |                                |
| item posted after as_of; an activity time after as_of       | refuse (422): future knowledge |
| max_dunning_level below dunning_level                       | refuse (422)                   |
| the same invoice_id twice in one request                    | refuse (422)                   |
| more items than ServingConfig.max_items                     | refuse (413), in the service   |
| company code / payment terms never seen in training         | accept, scored as missing,     |
|                                                             | flagged in `warnings` (or 422  |
|                                                             | with refuse_unknown_categories)|
| payment terms key that cannot be parsed                     | accept, net days from due date |
|                                                             | - posting date, flagged        |
| customer unknown to the history store                       | accept, cold_start = True      |
| as_of before the history store's snapshot time              | accept, flagged (history may   |
|                                                             | include later events)          |
| max_dunning_level / n_dunning_runs not sent                 | default to dunning_level       |
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import schema
from features.config.monitoring import MonitoringConfig
from features.pit.item_state import column_array
from training.core.staleness import request_ahead_warning

_ACTIVITY_TIMES = ("last_dunning_time", "last_contact_time", "dispute_open_since",
                   "last_dispute_time", "last_customer_reaction_time")
_CENT = 0.005
# Parts of the invoice amount: none can exceed it.
_PART_AMOUNTS = ("paid_amount", "disputed_amount", "credit_memo_amount", "promise_amount")


@dataclass
class Problem:
    loc: tuple
    msg: str
    type: str
    group: int = 0  # the request it belongs to when several are checked together

    def as_dict(self) -> dict:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


@dataclass
class Checked:
    """The item-state frame, the problems that refuse the request, and per-item warnings."""

    state: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)


def items_columns(items: list, state_columns: dict[str, str]) -> dict[str, np.ndarray]:
    """Item-state columns (ITEM_STATE_COLUMNS) as numpy arrays from validated request items:
    strings as object arrays (None for missing), datetimes as datetime64[us] (NaT), numbers and
    flags typed. The request path works on these; items_frame makes the frame of them.

    One value read per item and column, then one typed numpy array per column.
    """
    try:  # pydantic models keep their fields in __dict__: twice as fast as getattr
        dicts = [it.__dict__ for it in items]
        raw = {name: [d[name] for d in dicts] for name in state_columns}
    except (AttributeError, KeyError):  # other objects carrying the fields as attributes
        raw = {name: [getattr(it, name) for it in items] for name in state_columns}
    for name, derived_from in (("max_dunning_level", "dunning_level"),
                               ("n_dunning_runs", "dunning_level")):
        if name in raw:
            raw[name] = [d if v is None else v for v, d in zip(raw[name], raw[derived_from])]
    cols: dict[str, np.ndarray] = {}
    for name, dtype in state_columns.items():
        values = raw[name]
        if dtype == "str":
            cols[name] = np.array(values, dtype=object).reshape(len(values))
        elif dtype.startswith("datetime64"):  # pandas parses datetime objects ~10x faster
            cols[name] = pd.DatetimeIndex(values).to_numpy(dtype=dtype)
        else:
            cols[name] = np.array(values, dtype=dtype).reshape(len(values))
    return cols


def items_frame(items: list, state_columns: dict[str, str]) -> pd.DataFrame:
    """Item-state frame (ITEM_STATE_COLUMNS dtypes) from validated request items."""
    cols = items_columns(items, state_columns)
    return pd.DataFrame({name: (pd.Series(cols[name], dtype="str") if dtype == "str"
                                else cols[name]) for name, dtype in state_columns.items()})


def _positions(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def check_items(state, as_of, categories: dict[str, list[str]],
                refuse_unknown_categories: bool = False, container: str = "items",
                indexed: bool = True, groups: np.ndarray | None = None,
                history_as_of=None,
                max_ahead_days: int = MonitoringConfig().max_request_ahead_days) -> Checked:
    """Problems (refuse) and warnings (accept and flag) of the items at as_of.

    history_as_of: the customer store's time; items scored before it get a warning (their
    customer history may include later events). Several requests can be checked at once:
    `groups` gives each row's request (rows of a request contiguous), `as_of` one time per row;
    a problem's loc then counts items within its request, and duplicates are looked for within
    each request.

    state: the item-state frame, or its columns as items_columns gives them (kept as given in
    the result).
    """
    n = len(column_array(state, "invoice_id"))
    out = Checked(state=state, warnings=[[] for _ in range(n)])
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    starts = np.searchsorted(groups, groups, side="left")  # first row of each row's request

    def refuse(mask: np.ndarray, column: str, msg: str, kind: str) -> None:
        for i in _positions(mask):  # only over the offending items
            local = int(i - starts[i])
            loc = (container, local, column) if indexed else (container, column)
            out.problems.append(Problem(loc, msg, kind, int(groups[i])))

    def warn(mask: np.ndarray, msg: str) -> None:
        for i in _positions(mask):
            out.warnings[i].append(msg)

    t = (np.datetime64(pd.Timestamp(as_of).as_unit("us")) if np.ndim(as_of) == 0
         else np.asarray(as_of, dtype="datetime64[us]"))
    posting = column_array(state, "posting_time", "datetime64[us]")
    due = column_array(state, "net_due_date", "datetime64[us]")
    refuse(due.astype("datetime64[D]") < posting.astype("datetime64[D]"), "net_due_date",
           "net due date is before the posting date", "date_order")
    amount = column_array(state, "amount", np.float64)
    refuse(column_array(state, "open_amount", np.float64) > amount + _CENT, "open_amount",
           "open amount exceeds the invoice amount", "amount_order")
    for col in _PART_AMOUNTS:
        if col in state:
            part = column_array(state, col, np.float64)
            refuse(~np.isnan(part) & (part > amount + _CENT), col,
                   f"{col.replace('_', ' ')} exceeds the invoice amount", "amount_order")
    refuse(posting > t, "posting_time", "item is posted after as_of (not known yet)",
           "after_as_of")
    for col in _ACTIVITY_TIMES:
        if col in state:
            when = column_array(state, col, "datetime64[us]")
            refuse(~np.isnat(when) & (when > t), col, "activity is after as_of (not known yet)",
                   "after_as_of")
    refuse(column_array(state, "max_dunning_level") < column_array(state, "dunning_level"),
           "max_dunning_level", "max dunning level is below the current dunning level",
           "dunning_order")
    # the first item of each (request, invoice id) is kept, later ones are duplicates
    ids, _ = _distinct(state, "invoice_id")
    keys = groups * (int(ids.max(initial=-1)) + 2) + ids + 1
    first = np.unique(keys, return_index=True)[1]
    dup = np.ones(n, dtype=bool)
    dup[first] = False
    refuse(dup, "invoice_id", "invoice_id repeats an earlier item of the request", "duplicate")

    for col in ("company_code", "payment_terms"):
        if col not in categories or col not in state:
            continue
        codes, distinct = _distinct(state, col)
        known = set(categories[col])
        unseen_key = np.array([k not in known for k in distinct], dtype=bool)  # distinct keys
        unseen = (codes >= 0) & np.append(unseen_key, False)[codes]
        if refuse_unknown_categories:
            refuse(unseen, col, f"{col.replace('_', ' ')} was never seen in training", "unknown")
        else:
            warn(unseen, f"{col.replace('_', ' ')} not seen in training: scored as missing")
    codes, distinct = _distinct(state, "payment_terms")
    unparsed = np.array([schema.parse_payment_terms(k) is None for k in distinct] + [True],
                        dtype=bool)  # distinct keys only; the last entry: a missing key
    warn(unparsed[codes], "payment terms unknown: net days taken from due date - posting date")
    if history_as_of is not None and not pd.isna(history_as_of):
        early = np.broadcast_to(t < np.datetime64(pd.Timestamp(history_as_of).as_unit("us")),
                                (n,))
        warn(early, "as_of is before the customer history snapshot: history may include "
             "later events")
        # and far after it: the store's histories miss every payment since (training.core
        # .staleness.request_ahead_warning, limit monitoring.max_request_ahead_days)
        times = np.broadcast_to(t, (n,))
        for when in np.unique(times):  # one as-of per request
            ahead = request_ahead_warning(pd.Timestamp(when), history_as_of, max_ahead_days)
            if ahead is not None:
                warn(times == when, ahead)
    out.problems.sort(key=lambda p: (p.group, p.loc))
    return out


def _distinct(state, column: str) -> tuple[np.ndarray, list[str]]:
    """Codes of a string column into its distinct values (-1: missing), and those values."""
    values = state[column]
    if isinstance(values, pd.Series):
        values = values.astype("str").to_numpy(dtype=object, na_value=None)
    codes, uniques = pd.factorize(values)
    return codes, [str(u) for u in uniques]


__all__ = ["Problem", "Checked", "items_columns", "items_frame", "check_items"]
