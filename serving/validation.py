"""Request items -> item-state frame, and the deliberate handling of impossible or unknown input.

Pydantic (serving.api_models) already refused malformed input with a 400. What is left is
decided here, case by case, vectorised over the items (a problem names the item's position and
the field, never the value, since responses and logs must not echo client data back needlessly):

| case                                                        | decision                       |
|-------------------------------------------------------------|--------------------------------|
| net due date before the posting date                        | refuse (422)                   |
| open amount above the invoice amount (+ 1 cent)             | refuse (422)                   |
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

_ACTIVITY_TIMES = ("last_dunning_time", "last_contact_time", "dispute_open_since",
                   "last_dispute_time", "last_customer_reaction_time")
_CENT = 0.005


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


def items_frame(items: list, state_columns: dict[str, str]) -> pd.DataFrame:
    """Item-state frame (ITEM_STATE_COLUMNS dtypes) from validated request items.

    One attribute read per item and column, then one typed numpy array per column (None ->
    NaN / NaT / missing string), so the frame is built in one construction.
    """
    raw = {name: [getattr(it, name) for it in items] for name in state_columns}
    for name, derived_from in (("max_dunning_level", "dunning_level"),
                               ("n_dunning_runs", "dunning_level")):
        if name in raw:
            raw[name] = [d if v is None else v for v, d in zip(raw[name], raw[derived_from])]
    cols: dict[str, object] = {}
    for name, dtype in state_columns.items():
        values = raw[name]
        if dtype == "str":
            cols[name] = pd.Series(values, dtype="str")
        elif dtype.startswith("datetime64"):  # pandas parses datetime objects ~10x faster
            cols[name] = pd.DatetimeIndex(values).to_numpy(dtype=dtype)
        else:
            cols[name] = np.array(values, dtype=dtype)
    return pd.DataFrame(cols)


def _positions(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def check_items(state: pd.DataFrame, as_of, categories: dict[str, list[str]],
                refuse_unknown_categories: bool = False, container: str = "items",
                indexed: bool = True, groups: np.ndarray | None = None,
                history_as_of=None) -> Checked:
    """Problems (refuse) and warnings (accept and flag) of the items at as_of.

    history_as_of: the customer store's time; items scored before it get a warning (their
    customer history may include later events). Several requests can be checked at once: `groups` gives each row's request (rows of a
    request contiguous), `as_of` one time per row; a problem's loc then counts items within its
    request, and duplicates are looked for within each request.
    """
    out = Checked(state=state, warnings=[[] for _ in range(len(state))])
    n = len(state)
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
    posting = state["posting_time"].to_numpy(dtype="datetime64[us]")
    due = state["net_due_date"].to_numpy(dtype="datetime64[us]")
    refuse(due.astype("datetime64[D]") < posting.astype("datetime64[D]"), "net_due_date",
           "net due date is before the posting date", "date_order")
    amount = state["amount"].to_numpy(dtype=np.float64)
    refuse(state["open_amount"].to_numpy(dtype=np.float64) > amount + _CENT, "open_amount",
           "open amount exceeds the invoice amount", "amount_order")
    refuse(posting > t, "posting_time", "item is posted after as_of (not known yet)",
           "after_as_of")
    for col in _ACTIVITY_TIMES:
        if col in state.columns:
            when = state[col].to_numpy(dtype="datetime64[us]")
            refuse(~np.isnat(when) & (when > t), col, "activity is after as_of (not known yet)",
                   "after_as_of")
    refuse(state["max_dunning_level"].to_numpy() < state["dunning_level"].to_numpy(),
           "max_dunning_level", "max dunning level is below the current dunning level",
           "dunning_order")
    dup = pd.DataFrame({"g": groups, "id": state["invoice_id"]}).duplicated(keep="first")
    dup = dup.to_numpy()
    refuse(dup, "invoice_id", "invoice_id repeats an earlier item of the request", "duplicate")

    for col in ("company_code", "payment_terms"):
        if col not in categories or col not in state.columns:
            continue
        values = state[col].astype("str")
        unseen = (values.notna() & ~values.isin(categories[col])).to_numpy()
        if refuse_unknown_categories:
            refuse(unseen, col, f"{col.replace('_', ' ')} was never seen in training", "unknown")
        else:
            warn(unseen, f"{col.replace('_', ' ')} not seen in training: scored as missing")
    terms = state["payment_terms"].astype("str")
    keys = pd.unique(terms.dropna())
    unparsed = {k for k in keys if schema.parse_payment_terms(k) is None}  # distinct keys only
    warn(terms.isin(unparsed).to_numpy() | terms.isna().to_numpy(),
         "payment terms unknown: net days taken from due date - posting date")
    if history_as_of is not None and not pd.isna(history_as_of):
        early = np.broadcast_to(t < np.datetime64(pd.Timestamp(history_as_of).as_unit("us")),
                                (n,))
        warn(early, "as_of is before the customer history snapshot: history may include "
             "later events")
    out.problems.sort(key=lambda p: (p.group, p.loc))
    return out


__all__ = ["Problem", "Checked", "items_frame", "check_items"]
