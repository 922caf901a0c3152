"""Invoice, collection and dispute features: a pure function of the item state and the time t.

Serving calls the same function on the item state a request carries (both as Columns,
features.pit.columns). Conventions:
- "days since X" are exact fractional days between the two instants;
- due-date arithmetic is in calendar days: days_to_due = due date - date of t, days_overdue =
  max(0, date of t - due date), so an invoice is overdue from due date + 1 day, 00:00 (the
  instant of the due_date_passed event);
- a feature that does not apply (no dunning yet, no open promise or dispute) is NaN, not 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema
from features.pit.columns import DAY_US, NAT, Column, Columns, as_categorical, n_rows, us_of

INVOICE_FEATURE_COLUMNS: tuple[str, ...] = (
    # invoice
    "amount", "open_amount", "paid_fraction", "n_partial_payments", "n_residual_items",
    "n_credit_memos", "credit_memo_amount", "days_since_posting", "days_to_due", "days_overdue",
    "terms_net_days", "terms_discount_days", "terms_discount_pct", "payment_terms",
    "company_code", "due_weekday", "due_month",
    # collection
    "dunning_level", "max_dunning_level", "n_dunning_runs", "days_since_last_dunning",
    "dunning_no_reaction_days", "n_contacts", "days_since_last_contact", "promise_open",
    "days_to_promised_date", "promise_amount", "n_promises", "n_promises_broken",
    "days_since_customer_reaction",
    # dispute
    "dispute_open", "dispute_days_open", "disputed_amount", "disputed_share", "n_disputes",
    "payment_block_active",
)


def _col_us(state: Columns, column: str) -> np.ndarray:
    return us_of(state[column])


def _col(state: Columns, column: str, dtype: type = np.float64) -> np.ndarray:
    return np.asarray(state[column], dtype=dtype)


def _days_between(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """(later - earlier) in fractional days; NaN where either is NaT."""
    ok = (later != NAT) & (earlier != NAT)
    return np.where(ok, (later - np.where(ok, earlier, 0)) / DAY_US, np.nan)


def day_number(us: np.ndarray) -> np.ndarray:
    """Calendar day index (days since 1970-01-01) of each instant; NAT stays NAT."""
    return np.where(us != NAT, us // DAY_US, NAT)


def terms_table(keys: pd.Index) -> np.ndarray:
    """(net days, discount days, discount %) per payment terms key; NaN net when unknown."""
    rows = []
    for key in keys:  # the distinct keys: a handful
        parsed = schema.parse_payment_terms(key)
        rows.append((np.nan, 0.0, 0.0) if parsed is None else
                    (float(parsed.net_days), float(parsed.discount_days),
                     float(parsed.discount_pct)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def invoice_features(state: Columns, t: np.ndarray) -> dict[str, Column]:
    """Invoice + collection + dispute features (INVOICE_FEATURE_COLUMNS order) of each item
    state at its time t (datetime64[us], one per row)."""
    tt = us_of(t)
    if len(tt) != n_rows(state):
        raise ValueError(f"t has {len(tt)} values for {n_rows(state)} item states")
    t_day = day_number(tt)
    due_day = day_number(_col_us(state, "net_due_date"))
    post_us = _col_us(state, "posting_time")
    amount = _col(state, "amount")
    positive = amount > 0
    out: dict[str, Column] = {}

    out["amount"] = amount
    out["open_amount"] = _col(state, "open_amount")
    out["paid_fraction"] = np.where(
        positive, _col(state, "paid_amount") / np.where(positive, amount, 1), np.nan)
    for col in ("n_partial_payments", "n_residual_items", "n_credit_memos"):
        out[col] = _col(state, col)
    out["credit_memo_amount"] = _col(state, "credit_memo_amount")
    out["days_since_posting"] = _days_between(tt, post_us)
    days_to_due = (due_day - t_day).astype(np.float64)
    out["days_to_due"] = days_to_due
    out["days_overdue"] = np.maximum(-days_to_due, 0.0)

    terms = as_categorical(state["payment_terms"])
    table = np.vstack([terms_table(terms.categories), [np.nan, 0.0, 0.0]])
    looked = table[terms.codes]  # code -1 (missing key) reads the last, "unknown" row
    fallback = (due_day - day_number(post_us)).astype(np.float64)
    out["terms_net_days"] = np.where(np.isnan(looked[:, 0]), fallback, looked[:, 0])
    out["terms_discount_days"] = looked[:, 1]
    out["terms_discount_pct"] = looked[:, 2]
    out["payment_terms"] = terms
    out["company_code"] = as_categorical(state["company_code"])
    # Calendar of the due date: payment runs and cash application follow business days, and
    # some payers slow down in some months (1970-01-01 was a Thursday: Monday = 0).
    has_due = due_day != NAT
    out["due_weekday"] = np.where(has_due, (due_day + 3) % 7, np.nan)
    out["due_month"] = np.where(
        has_due, np.where(has_due, due_day, 0).astype("datetime64[D]").astype("datetime64[M]")
        .astype(np.int64) % 12 + 1, np.nan)

    for col in ("dunning_level", "max_dunning_level", "n_dunning_runs"):
        out[col] = _col(state, col)
    last_dun = _col_us(state, "last_dunning_time")
    reaction = _col_us(state, "last_customer_reaction_time")
    since_dun = _days_between(tt, last_dun)
    out["days_since_last_dunning"] = since_dun
    reacted = (reaction != NAT) & (reaction >= last_dun)
    out["dunning_no_reaction_days"] = np.where(last_dun == NAT, np.nan,
                                               np.where(reacted, 0.0, since_dun))
    out["n_contacts"] = _col(state, "n_contacts")
    out["days_since_last_contact"] = _days_between(tt, _col_us(state, "last_contact_time"))
    p_open = _col(state, "promise_open", bool)
    out["promise_open"] = p_open
    promised_day = day_number(_col_us(state, "promised_date"))
    out["days_to_promised_date"] = np.where(p_open & (promised_day != NAT),
                                            (promised_day - t_day).astype(np.float64), np.nan)
    out["promise_amount"] = np.where(p_open, _col(state, "promise_amount"), np.nan)
    out["n_promises"] = _col(state, "n_promises")
    out["n_promises_broken"] = _col(state, "n_promises_broken")
    out["days_since_customer_reaction"] = _days_between(tt, reaction)

    d_open = _col(state, "dispute_open", bool)
    out["dispute_open"] = d_open
    out["dispute_days_open"] = np.where(
        d_open, _days_between(tt, _col_us(state, "dispute_open_since")), np.nan)
    disputed = _col(state, "disputed_amount")
    out["disputed_amount"] = disputed
    out["disputed_share"] = np.where(positive, disputed / np.where(positive, amount, 1), np.nan)
    out["n_disputes"] = _col(state, "n_disputes")
    out["payment_block_active"] = _col(state, "payment_block_active", bool)
    return {k: out[k] for k in INVOICE_FEATURE_COLUMNS}


__all__ = ["invoice_features", "INVOICE_FEATURE_COLUMNS", "terms_table", "day_number"]
