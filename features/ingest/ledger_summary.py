"""Headline figures of a ledger a credit manager reads first: size, late share, DSO, activity mix."""

from __future__ import annotations

import pandas as pd

from features.schema import ACTIVITIES, Activity


def _as_of(events: pd.DataFrame) -> pd.Timestamp:
    if "last_refresh" in events and events["last_refresh"].notna().any():
        return pd.Timestamp(events["last_refresh"].max())
    return pd.Timestamp(events["event_time"].max())


def open_amount_at(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Open amount per invoice at `as_of`: posted amount less payments and credit memos so far.

    Terminal invoices (cleared or written off) are closed whatever the arithmetic says, since a
    clearing may absorb small differences (cash discount, rounding).
    """
    known = events[events["event_time"] <= as_of]
    act = known["activity"]
    signed = known["amount"].fillna(0.0).where(act == Activity.INVOICE_POSTED, 0.0) - known[
        "amount"].fillna(0.0).where(
        act.isin([Activity.INCOMING_PAYMENT_POSTED, Activity.CREDIT_MEMO_POSTED]), 0.0)
    open_amt = signed.groupby(known["invoice_id"]).sum()
    closed = known.loc[act.isin([Activity.INVOICE_CLEARED, Activity.INVOICE_WRITTEN_OFF]),
                       "invoice_id"].unique()
    open_amt[open_amt.index.isin(closed)] = 0.0
    return open_amt.clip(lower=0.0)


def summarise(events: pd.DataFrame, dso_window_days: int = 90) -> dict:
    """Invoices, customers, events, share paid late, 90-day DSO and events per activity.

    Share paid late counts invoices whose terminal event (clearing or write-off) falls after the
    net due date, among those with a terminal event. DSO is the classic
    open receivables / sales of the last `dso_window_days` days x `dso_window_days`.
    """
    as_of = _as_of(events)
    act = events["activity"]
    posted = events[act == Activity.INVOICE_POSTED]
    ends = events[act.isin([Activity.INVOICE_CLEARED, Activity.INVOICE_WRITTEN_OFF])]
    ends = ends.drop_duplicates("invoice_id")
    late = (ends["event_time"].dt.normalize() > ends["net_due_date"]).mean() if len(ends) else 0.0
    window_start = as_of - pd.Timedelta(days=dso_window_days)
    sales = posted.loc[posted["event_time"] > window_start, "amount"].sum()
    receivables = open_amount_at(events, as_of).sum()
    counts = act.value_counts()
    return {
        "invoices": int(posted["invoice_id"].nunique()),
        "customers": int(events["customer_id"].nunique()),
        "events": int(len(events)),
        "first_posting": str(posted["event_time"].min().date()) if len(posted) else "",
        "as_of": str(as_of.date()),
        "closed_invoices": int(len(ends)),
        "open_invoices": int(posted["invoice_id"].nunique() - len(ends)),
        "share_paid_late": float(late),
        "written_off": int((ends["activity"] == Activity.INVOICE_WRITTEN_OFF).sum()),
        "open_receivables": float(receivables),
        f"dso_{dso_window_days}d": float(receivables / sales * dso_window_days) if sales else float("nan"),
        "events_per_activity": {spec.label: int(counts.get(spec.activity.value, 0))
                                for spec in ACTIVITIES},
    }
