"""Calculated activities and a customer master rebuilt from events.

Source logs often lack the two "calculated" activities of the event-log data model, because no
system records them: they follow from dates. `add_calculated_activities` adds them by the
project's rules:

- due_date_passed at net_due_date + 1 day (00:00), if the invoice has no invoice_cleared /
  invoice_written_off with event_time < that instant;
- promise_to_pay_broken at promised_date + 1 day (00:00), if the invoice has no clearing or
  write-off with event_time < that instant and no later promise of the invoice was created
  before that instant. A promise whose promised date had already passed when it was created
  (instant <= creation time) yields nothing: the broken event would precede its own promise.

Only instants <= as_of are emitted (as_of defaults to the extract's last_refresh, else the last
event time): an event in the future of the extract must not exist. An invoice that already has
events of an activity in the source keeps them and gets no derived event of that activity (the
source is trusted for that invoice; nothing is duplicated). Derived rows are marked
source_system = "derived".

`master_from_events` builds customer master validity intervals from the customer attributes
events carry, for users who have no master table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema
from features.ingest.validate import lookup

A = schema.Activity
DERIVED_SOURCE = "derived"
CUSTOMER_ATTRIBUTES: tuple[str, ...] = ("risk_category", "credit_limit", "customer_segment",
                                        "collector")
MASTER_ATTRIBUTES: tuple[str, ...] = CUSTOMER_ATTRIBUTES + ("payment_terms",)
ACTIVITY_RANK: dict[str, int] = {spec.activity.value: i for i, spec in enumerate(schema.ACTIVITIES)}
_ONE_DAY = pd.Timedelta(days=1)


def resolve_as_of(events: pd.DataFrame, as_of: pd.Timestamp | str | None = None) -> pd.Timestamp:
    """The extract's 'now': as_of if given, else last_refresh, else the last event time."""
    if as_of is not None:
        return pd.Timestamp(as_of)
    if "last_refresh" in events and events["last_refresh"].notna().any():
        return pd.Timestamp(events["last_refresh"].max())
    if len(events) == 0:
        raise ValueError("cannot choose as_of for an empty event log; pass as_of")
    return pd.Timestamp(events["event_time"].max())


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Order by invoice, time, then the activities' lifecycle order (posting first)."""
    rank = events["activity"].map(ACTIVITY_RANK).fillna(len(ACTIVITY_RANK))
    order = events.assign(_rank=rank.to_numpy(), _pos=np.arange(len(events))).sort_values(
        ["invoice_id", "event_time", "_rank", "_pos"], kind="stable")
    return order.drop(columns=["_rank", "_pos"]).reset_index(drop=True)


def _terminal_time(events: pd.DataFrame) -> pd.Series:
    term = events["activity"].isin([a.value for a in schema.TERMINAL_ACTIVITIES])
    return events.loc[term].groupby("invoice_id")["event_time"].min()


def _invoices_with(events: pd.DataFrame, activity: str) -> pd.Index:
    return pd.Index(events.loc[events["activity"].eq(activity), "invoice_id"].unique())


def _attributes_as_of(events: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Customer attributes as of each row's event_time, from that customer's events up to then."""
    attrs = [c for c in CUSTOMER_ATTRIBUTES if c in events]
    if not attrs or rows.empty:
        return rows
    state = events[["customer_id", "event_time", *attrs]].sort_values(
        ["customer_id", "event_time"], kind="stable")
    state[attrs] = state.groupby("customer_id", sort=False)[attrs].ffill()
    state = state.dropna(subset=["event_time", "customer_id"]).sort_values("event_time",
                                                                           kind="stable")
    left = rows.drop(columns=attrs, errors="ignore").assign(_pos=np.arange(len(rows)))
    left = left.sort_values("event_time", kind="stable")
    merged = pd.merge_asof(left, state, on="event_time", by="customer_id", direction="backward")
    return merged.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)


def _due_dates_passed(events: pd.DataFrame, as_of: pd.Timestamp, terminal: pd.Series
                      ) -> pd.DataFrame:
    posts = events[events["activity"].eq(A.INVOICE_POSTED)]
    posts = posts[~posts["invoice_id"].isin(_invoices_with(events, A.DUE_DATE_PASSED))]
    posts = posts.drop_duplicates("invoice_id", keep="first")
    instant = posts["net_due_date"].dt.normalize() + _ONE_DAY
    closed = lookup(posts["invoice_id"], terminal)
    keep = instant.le(as_of) & (closed.isna() | closed.ge(instant)) & instant.notna()
    out = posts.loc[keep, ["invoice_id", "customer_id", "company_code", "net_due_date",
                           "payment_terms"]].copy()
    out["event_time"] = instant[keep]
    out["activity"] = A.DUE_DATE_PASSED.value
    return out


def _promises_broken(events: pd.DataFrame, as_of: pd.Timestamp, terminal: pd.Series
                     ) -> pd.DataFrame:
    made = events[events["activity"].eq(A.PROMISE_TO_PAY_CREATED)]
    made = made[~made["invoice_id"].isin(_invoices_with(events, A.PROMISE_TO_PAY_BROKEN))]
    made = made.assign(_pos=np.arange(len(made))).sort_values(
        ["invoice_id", "event_time", "_pos"], kind="stable")
    next_made = made.groupby("invoice_id", sort=False)["event_time"].shift(-1)
    instant = made["promised_date"].dt.normalize() + _ONE_DAY
    closed = lookup(made["invoice_id"], terminal)
    keep = (instant.le(as_of) & instant.gt(made["event_time"])
            & (closed.isna() | closed.ge(instant))
            & (next_made.isna() | next_made.ge(instant)))
    out = made.loc[keep, ["invoice_id", "customer_id", "company_code", "net_due_date",
                          "payment_terms", "amount", "promised_date"]].copy()
    out["event_time"] = instant[keep]
    out["activity"] = A.PROMISE_TO_PAY_BROKEN.value
    return out


def add_calculated_activities(events: pd.DataFrame, as_of: pd.Timestamp | str | None = None
                              ) -> pd.DataFrame:
    """Return the log plus derived due_date_passed / promise_to_pay_broken events, sorted.

    `events` is a canonical typed log (see features.ingest.validate). The result is ordered by invoice,
    event time and lifecycle order (see `sort_events`).
    """
    needed = [c for c in ("event_time", "activity", "invoice_id", "customer_id", "net_due_date")
              if c not in events]
    if needed:
        raise ValueError(f"cannot derive calculated activities: missing column(s) {needed}")
    as_of = resolve_as_of(events, as_of)
    full = events.copy()
    for col in schema.EVENT_COLUMN_NAMES:  # optional columns may be absent; derivation needs them
        if col not in full:
            full[col] = (False if col == "is_written_off"
                         else pd.Series([None] * len(full), index=full.index,
                                        dtype=_dtype_of(col)))
    terminal = _terminal_time(full)
    derived = pd.concat([_due_dates_passed(full, as_of, terminal),
                         _promises_broken(full, as_of, terminal)], ignore_index=True)
    derived = _attributes_as_of(full, derived)
    derived["source_system"] = DERIVED_SOURCE
    derived["is_written_off"] = False
    if "last_refresh" in full and full["last_refresh"].notna().any():
        derived["last_refresh"] = full["last_refresh"].max()
    derived = derived.reindex(columns=full.columns)
    derived = derived.astype(full.dtypes.to_dict())
    out = pd.concat([full, derived], ignore_index=True) if len(derived) else full
    out = sort_events(out)
    return out[[c for c in events.columns] + [c for c in out.columns if c not in events.columns]]


def _dtype_of(column: str) -> str:
    kind = schema.COLUMNS_BY_NAME[column].kind
    return {"datetime": "datetime64[us]", "float": "float64", "int": "Int8", "bool": "bool",
            "string": "str"}[kind]


def master_from_events(events: pd.DataFrame, attributes: tuple[str, ...] = MASTER_ATTRIBUTES
                       ) -> pd.DataFrame:
    """Customer master versions from the attributes events carry.

    A new version starts each time a value changes for a customer, valid_from = the time of the
    event where the new value first appears; valid_to = the next version's valid_from (NaT for
    the current one). A blank attribute on an event means "not carried", not "cleared". Several
    events of a customer at the same instant count as one (the last non-blank value wins).
    payment_terms comes from invoices, so it records the terms of the customer's latest invoice.
    """
    attrs = [c for c in attributes if c in events]
    columns = list(schema.MASTER_COLUMN_NAMES)
    if not attrs:
        return pd.DataFrame({c: pd.Series(dtype=_master_dtype(c)) for c in columns})
    ev = events.loc[events[attrs].notna().any(axis=1), ["customer_id", "event_time", *attrs]]
    ev = ev.sort_values(["customer_id", "event_time"], kind="stable")
    snap = ev.groupby(["customer_id", "event_time"], sort=False)[attrs].last().reset_index()
    snap[attrs] = snap.groupby("customer_id", sort=False)[attrs].ffill()
    prev = snap.groupby("customer_id", sort=False)[attrs].shift()
    same = (snap[attrs].eq(prev) | (snap[attrs].isna() & prev.isna())).all(axis=1)
    new_customer = snap["customer_id"].ne(snap["customer_id"].shift())
    versions = snap[~same | new_customer].rename(columns={"event_time": "valid_from"})
    versions = versions.assign(
        valid_to=versions.groupby("customer_id", sort=False)["valid_from"].shift(-1))
    out = versions.reindex(columns=columns).reset_index(drop=True)
    return out.astype({c: _master_dtype(c) for c in columns})


def _master_dtype(column: str) -> str:
    kind = next(c.kind for c in schema.MASTER_COLUMNS if c.name == column)
    return {"datetime": "datetime64[us]", "float": "float64", "string": "str"}[kind]


__all__ = ["add_calculated_activities", "master_from_events", "resolve_as_of", "sort_events",
           "ACTIVITY_RANK", "DERIVED_SOURCE"]
