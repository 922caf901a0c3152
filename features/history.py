"""Customer payment-history features as of t, excluding the row's own invoice.

Two steps, so that batch and serving share the second one:

1. `customer_aggregates_at` reads, for each (customer, t), running totals over everything the
   system knew about the customer at t (all its invoices, this one included): invoices posted,
   open and overdue exposure, outcomes of settled invoices (counts, days late, amounts, also over
   the last W days), write-offs, promises, disputes, last payment. Each total is a per-customer
   step function built once from the log (cumulative sums over events sorted by known time, plus
   "virtual" events where an invoice becomes overdue or leaves a window) and read for all rows at
   once with a sorted search. The max of days late over a window uses a sparse table.
   `history_table` is the same read for every customer at one instant: the online store.
2. `history_features(aggregates, state, t)` turns totals into features and removes the row's own
   invoice using its item state (it is open at t, so it has no outcome; its open amount, overdue
   status, promises and disputes are taken out of the "other invoices" features).

An invoice counts for its customer from the instant its posting is known: its other events known
earlier (a backdated posting) join the customer's totals at that instant.

Definitions: a settled invoice's days late = date of its clearing - net due date (calendar days,
negative when early); late = days late > grace_days. Windows count outcomes known in (t - W, t].
An invoice is overdue at t from due date + 1 day (00:00) while open. Amount-weighted ratios weigh
by invoice amount. All sums are integers (cents, days), so they are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema
from features.config import FeatureConfig
from features.invoice_features import day_number, times_us
from features.item_state import (ACT, DAY_US, NAT, CumTable, Queries, RangeMax, ReplayLog,
                                 StepIndex, open_cents_after, prepare_log, to_us)

A = schema.Activity
_NEVER = np.iinfo(np.int64).max
_NO_MAX = np.iinfo(np.int64).min // 2


def _windows(config: FeatureConfig) -> tuple[int, ...]:
    return tuple(int(w) for w in config.history_windows_days)


@dataclass
class CustomerTables:
    """Per-customer step functions built once from a replayed log."""

    exposure: CumTable
    outcomes: CumTable
    days_late_max: RangeMax
    activity: CumTable
    postings: StepIndex
    posting_times: np.ndarray
    payments: StepIndex
    payment_times: np.ndarray
    disputed: CumTable
    windows: tuple[int, ...]
    customer_ids: np.ndarray


def _per_invoice_diff(log: ReplayLog, values: np.ndarray) -> np.ndarray:
    prev = np.concatenate([np.zeros(1, np.int64), values[:-1]])
    first = np.arange(len(values)) == log.group_start()
    return values - np.where(first, 0, prev)


def build_customer_tables(events: pd.DataFrame | ReplayLog, config: FeatureConfig
                          ) -> CustomerTables:
    log = prepare_log(events)
    n = len(log.act)
    cust = log.inv_cust[log.inv]
    inv_codes = np.arange(log.n_invoices)
    windows = _windows(config)

    # Exposure: open invoices and open cents, and the overdue part of them.
    open_after = open_cents_after(log)
    d_open = _per_invoice_diff(log, open_after)
    d_n_open = np.zeros(n, np.int64)
    d_n_open[log.post_idx] += 1
    term = log.term_idx
    closed = term >= 0
    d_n_open[term[closed]] -= 1
    post_known = log.known[log.post_idx]
    # A customer's books show an invoice's events from the instant its posting is known.
    eff = np.maximum(log.known, post_known[log.inv])
    term_known = np.where(closed, eff[np.maximum(term, 0)], _NEVER)
    due_day = day_number(log.due)
    start = np.maximum(post_known, (due_day + 1) * DAY_US)
    goes_overdue = start < term_known
    ev_start = start[log.inv]
    after_start = goes_overdue[log.inv] & (eff > ev_start)
    d_ov_cents = np.where(after_start, d_open, 0)
    d_n_ov = np.zeros(n, np.int64)
    d_due = np.zeros(n, np.int64)
    ended = goes_overdue & closed
    d_n_ov[term[ended]] -= 1
    d_due[term[ended]] -= due_day[ended]
    ov = inv_codes[goes_overdue]
    at_start = log.index.right(Queries(ov, start[ov])) - 1
    keep = (d_open != 0) | (d_n_open != 0) | (d_n_ov != 0)
    n_ov = len(ov)
    exposure = CumTable(
        np.concatenate([cust[keep], log.inv_cust[ov]]),
        np.concatenate([eff[keep], start[ov]]),
        {
            "n_open": np.concatenate([d_n_open[keep], np.zeros(n_ov, np.int64)]),
            "open_cents": np.concatenate([d_open[keep], np.zeros(n_ov, np.int64)]),
            "n_overdue": np.concatenate([d_n_ov[keep], np.ones(n_ov, np.int64)]),
            "overdue_cents": np.concatenate([d_ov_cents[keep], open_after[at_start]]),
            "overdue_due_sum": np.concatenate([d_due[keep], due_day[ov]]),
        })

    # Outcomes of settled invoices, at the instant they are known.
    settled = inv_codes[closed]
    tpos = term[settled]
    is_wo = log.act[tpos] == ACT[A.INVOICE_WRITTEN_OFF]
    dl = day_number(log.etime[tpos]) - due_day[settled]
    cleared = ~is_wo
    late = cleared & (dl > config.grace_days)
    inv_cents = log.cents[log.post_idx[settled]]
    before_term = np.where(tpos > log.inv_start[settled], open_after[np.maximum(tpos - 1, 0)], 0)
    outcomes = CumTable(log.inv_cust[settled], eff[tpos], {
        "n_cleared": cleared, "n_cleared_late": late,
        "cleared_cents": np.where(cleared, inv_cents, 0),
        "cleared_late_cents": np.where(late, inv_cents, 0),
        "sum_days_late": np.where(cleared, dl, 0), "sumsq_days_late": np.where(cleared, dl * dl, 0),
        "n_written_off": is_wo, "written_off_cents": np.where(is_wo, before_term, 0),
    })
    days_late_max = RangeMax(outcomes.index.take(np.where(cleared, dl, _NO_MAX)))

    def of(*acts: schema.Activity) -> np.ndarray:
        return np.isin(log.act, [ACT[a] for a in acts])

    act_rows = of(A.PROMISE_TO_PAY_CREATED, A.PROMISE_TO_PAY_BROKEN, A.DISPUTE_CASE_CREATED)
    a = log.act[act_rows]
    activity = CumTable(cust[act_rows], eff[act_rows], {
        "n_promises": a == ACT[A.PROMISE_TO_PAY_CREATED],
        "n_promises_broken": a == ACT[A.PROMISE_TO_PAY_BROKEN],
        "n_disputes": a == ACT[A.DISPUTE_CASE_CREATED],
    })
    postings = StepIndex(log.inv_cust, post_known)
    pay = of(A.INCOMING_PAYMENT_POSTED)
    payments = StepIndex(cust[pay], eff[pay])
    # Latest known payment time among those visible so far (eff order may differ from known).
    pay_seen = pd.Series(payments.take(log.known[pay])).groupby(
        payments.take(cust[pay])).cummax().to_numpy(dtype=np.int64)

    # Invoices whose latest dispute case (known) was created in the last W days: each creation
    # is "the latest" from its known time until the next creation on the invoice, and inside
    # the window for W days.
    cre = np.flatnonzero(log.act == ACT[A.DISPUTE_CASE_CREATED])
    c_known = log.known[cre]
    c_eff = eff[cre]
    same_next = np.concatenate([log.inv[cre][1:] == log.inv[cre][:-1], [False]])
    next_known = np.where(same_next, np.concatenate([c_known[1:], [0]]), _NEVER)
    c_cust = cust[cre]
    codes, times = [c_cust], [c_eff]
    cols: dict[str, list[np.ndarray]] = {f"w{w}": [] for w in windows}
    stops = {}
    for w in windows:
        stop = np.minimum(c_known + w * DAY_US, next_known)
        live = stop > c_eff  # empty when the next case is known at the same instant
        stops[w] = (stop, live)
        cols[f"w{w}"].append(live.astype(np.int64))
    for w in windows:
        stop, live = stops[w]
        codes.append(c_cust[live])
        times.append(stop[live])
        for other in windows:
            cols[f"w{other}"].append(np.full(int(live.sum()), -1 if other == w else 0, np.int64))
    disputed = CumTable(np.concatenate(codes), np.concatenate(times),
                        {k: np.concatenate(v) for k, v in cols.items()})
    return CustomerTables(
        exposure=exposure, outcomes=outcomes, days_late_max=days_late_max, activity=activity,
        postings=postings, posting_times=postings.take(post_known), payments=payments,
        payment_times=pay_seen, disputed=disputed, windows=windows,
        customer_ids=log.customer_ids)


def aggregate_columns(windows: tuple[int, ...]) -> tuple[str, ...]:
    """Columns of the customer aggregates (the online history store), in order."""
    outcome = ("n_cleared", "n_cleared_late", "cleared_cents", "cleared_late_cents",
               "sum_days_late", "sumsq_days_late", "max_days_late")
    cols = ["cust_n_posted", "cust_first_posting_time", "cust_n_open", "cust_open_cents",
            "cust_n_overdue", "cust_overdue_cents", "cust_overdue_due_sum"]
    cols += [f"cust_{c}" for c in outcome]
    for w in windows:
        cols += [f"cust_{c}_{w}d" for c in outcome]
    cols += ["cust_n_written_off", "cust_written_off_cents", "cust_n_promises",
             "cust_n_promises_broken", "cust_n_disputes"]
    cols += [f"cust_n_disputed_invoices_{w}d" for w in windows]
    cols += ["cust_last_payment_time"]
    return tuple(cols)


def _aggregates(tables: CustomerTables, q: Queries) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def read(table: CumTable) -> tuple[np.ndarray, np.ndarray]:
        return table.index.first(q), table.index.right(q)

    lo, hi = tables.postings.first(q), tables.postings.right(q)
    out["cust_n_posted"] = hi - lo
    out["cust_first_posting_time"] = np.where(
        hi > lo, tables.posting_times[np.minimum(lo, len(tables.posting_times) - 1)], NAT)

    lo, hi = read(tables.exposure)
    for name, val in tables.exposure.between(lo, hi).items():
        out[f"cust_{name}"] = val

    def outcome_block(lo: np.ndarray, hi: np.ndarray, suffix: str) -> None:
        sums = tables.outcomes.between(lo, hi)
        for name in ("n_cleared", "n_cleared_late", "cleared_cents", "cleared_late_cents",
                     "sum_days_late", "sumsq_days_late"):
            out[f"cust_{name}{suffix}"] = sums[name]
        mx = tables.days_late_max.query(lo, hi, _NO_MAX)
        out[f"cust_max_days_late{suffix}"] = np.where(mx > _NO_MAX, mx.astype(np.float64),
                                                     np.nan)
        if not suffix:
            out["cust_n_written_off"] = sums["n_written_off"]
            out["cust_written_off_cents"] = sums["written_off_cents"]

    o_lo, o_hi = read(tables.outcomes)
    outcome_block(o_lo, o_hi, "")
    for w in tables.windows:
        w_lo = tables.outcomes.index.right(q, shift=w * DAY_US)
        outcome_block(np.maximum(w_lo, o_lo), o_hi, f"_{w}d")

    lo, hi = read(tables.activity)
    for name, val in tables.activity.between(lo, hi).items():
        out[f"cust_{name}"] = val
    lo, hi = read(tables.disputed)
    for w, (name, val) in zip(tables.windows, tables.disputed.between(lo, hi).items()):
        out[f"cust_n_disputed_invoices_{w}d"] = val
    lo, hi = tables.payments.first(q), tables.payments.right(q)
    out["cust_last_payment_time"] = np.where(
        hi > lo, tables.payment_times[np.maximum(hi - 1, 0)] if len(tables.payment_times)
        else NAT, NAT)
    ordered = aggregate_columns(tables.windows)
    return {k: out[k] for k in ordered}


def _aggregate_frame(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame(arrays, copy=False)
    for col in ("cust_first_posting_time", "cust_last_payment_time"):
        frame[col] = frame[col].to_numpy(dtype=np.int64).view("datetime64[us]")
    return frame


def customer_codes(log: ReplayLog, customer_ids: object) -> np.ndarray:
    """Codes of customer ids in the log, -1 for customers the log does not know."""
    ids = pd.Series(customer_ids, dtype="str").to_numpy(dtype=object, na_value=None)
    return pd.Index(log.customer_ids).get_indexer(ids).astype(np.int64)


def customer_aggregates_at(events: pd.DataFrame | ReplayLog, customer_ids: object,
                           times: object, config: FeatureConfig = FeatureConfig(),
                           tables: CustomerTables | None = None) -> pd.DataFrame:
    """Running customer totals (aggregate_columns) as of each (customer, t), own invoice included.

    A customer the log does not know gets zero totals and NaT times.
    """
    log = prepare_log(events)
    tables = tables or build_customer_tables(log, config)
    codes = customer_codes(log, customer_ids)
    return aggregates_for_codes(tables, codes, times_us(times, len(codes)))


def aggregates_for_codes(tables: CustomerTables, codes: np.ndarray, t: np.ndarray
                         ) -> pd.DataFrame:
    """customer_aggregates_at for customer codes of the log (-1: unknown customer)."""
    return _aggregate_frame(_aggregates(tables, Queries(codes, t)))


def history_table(events: pd.DataFrame | ReplayLog, master: pd.DataFrame | None,
                  as_of: object = None, config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """One row per customer: aggregates and master attributes as of `as_of` (default last refresh).

    This is the online store serving loads; `join_history` turns it into features.
    """
    from features.master_asof import master_asof, master_from_events

    log = prepare_log(events)
    when = log.end_time if as_of is None else to_us(as_of)
    ids = pd.Series(log.customer_ids, dtype="str")
    t = np.full(len(ids), when, dtype=np.int64)
    aggs = customer_aggregates_at(log, ids, t, config)
    if master is None:
        if not isinstance(events, pd.DataFrame):
            raise ValueError("history_table needs the events DataFrame or a master table")
        master = master_from_events(events)
    attrs = master_asof(master, ids, t)
    head = pd.DataFrame({"customer_id": ids, "as_of": t.view("datetime64[us]")})
    return pd.concat([head, aggs, attrs], axis=1)


def _cents(values: pd.Series | np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(values, dtype=np.float64) * 100).astype(np.int64)


def history_feature_columns(config: FeatureConfig = FeatureConfig()) -> tuple[str, ...]:
    cols = ["hist_n_cleared", "hist_n_cleared_late", "hist_late_ratio", "hist_late_ratio_amount",
            "hist_avg_days_late", "hist_max_days_late", "hist_std_days_late"]
    for w in _windows(config):
        cols += [f"hist_n_cleared_{w}d", f"hist_n_cleared_late_{w}d", f"hist_late_ratio_{w}d",
                 f"hist_avg_days_late_{w}d", f"hist_max_days_late_{w}d",
                 f"hist_std_days_late_{w}d"]
    cols += ["hist_n_written_off", "hist_written_off_amount", "hist_n_open_other",
             "hist_open_amount_other", "hist_n_overdue_other", "hist_overdue_amount_other",
             "hist_avg_days_overdue_other", "hist_n_promises_other", "hist_promise_broken_rate",
             "hist_n_disputes_other"]
    cols += [f"hist_n_disputed_invoices_{w}d" for w in _windows(config)]
    cols += ["hist_days_since_last_payment", "hist_n_invoices", "hist_customer_tenure_days",
             "cold_start"]
    return tuple(cols)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def history_features(aggregates: pd.DataFrame, state: pd.DataFrame, t: object,
                     config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """History features of each row from its customer's aggregates and its own item state."""
    n = len(state)
    if len(aggregates) != n:
        raise ValueError(f"{len(aggregates)} aggregate rows for {n} item states")
    g = {c: aggregates[c].to_numpy() for c in aggregates.columns}
    tt = times_us(t, n)
    t_day = day_number(tt)
    out: dict[str, np.ndarray] = {}

    def outcome(suffix: str, with_amount: bool) -> None:
        n_c = g[f"cust_n_cleared{suffix}"].astype(np.float64)
        s = g[f"cust_sum_days_late{suffix}"].astype(np.float64)
        ss = g[f"cust_sumsq_days_late{suffix}"].astype(np.float64)
        out[f"hist_n_cleared{suffix}"] = n_c
        out[f"hist_n_cleared_late{suffix}"] = g[f"cust_n_cleared_late{suffix}"].astype(np.float64)
        out[f"hist_late_ratio{suffix}"] = _ratio(g[f"cust_n_cleared_late{suffix}"], n_c)
        if with_amount:
            out["hist_late_ratio_amount"] = _ratio(g["cust_cleared_late_cents"],
                                                   g["cust_cleared_cents"])
        out[f"hist_avg_days_late{suffix}"] = _ratio(s, n_c)
        out[f"hist_max_days_late{suffix}"] = g[f"cust_max_days_late{suffix}"].astype(np.float64)
        # n * sum(x^2) - sum(x)^2 is an exact integer here, so a constant history gives 0.
        var_n2 = np.maximum(n_c * ss - s * s, 0.0)
        out[f"hist_std_days_late{suffix}"] = np.where(
            n_c > 0, np.sqrt(var_n2) / np.where(n_c > 0, n_c, 1.0), np.nan)

    outcome("", True)
    for w in _windows(config):
        outcome(f"_{w}d", False)
    out["hist_n_written_off"] = g["cust_n_written_off"].astype(np.float64)
    out["hist_written_off_amount"] = g["cust_written_off_cents"] / 100.0

    own_cents = _cents(state["open_amount"])
    due_day = day_number(state["net_due_date"].to_numpy(dtype="datetime64[us]").view(np.int64))
    own_overdue = (t_day >= due_day + 1).astype(np.int64)
    # Clipped at 0: a stale online store may not know the item yet (never happens in batch).
    n_open_o = np.maximum(g["cust_n_open"] - 1, 0)
    out["hist_n_open_other"] = n_open_o.astype(np.float64)
    out["hist_open_amount_other"] = np.maximum(g["cust_open_cents"] - own_cents, 0) / 100.0
    n_ov_o = np.maximum(g["cust_n_overdue"] - own_overdue, 0)
    out["hist_n_overdue_other"] = n_ov_o.astype(np.float64)
    out["hist_overdue_amount_other"] = np.maximum(
        g["cust_overdue_cents"] - own_overdue * own_cents, 0) / 100.0
    due_sum_o = g["cust_overdue_due_sum"] - own_overdue * due_day
    out["hist_avg_days_overdue_other"] = _ratio(n_ov_o * t_day - due_sum_o, n_ov_o)
    n_prom_o = np.maximum(g["cust_n_promises"] - state["n_promises"].to_numpy(np.int64), 0)
    n_brk_o = np.maximum(
        g["cust_n_promises_broken"] - state["n_promises_broken"].to_numpy(np.int64), 0)
    out["hist_n_promises_other"] = n_prom_o.astype(np.float64)
    out["hist_promise_broken_rate"] = _ratio(n_brk_o, n_prom_o)
    out["hist_n_disputes_other"] = np.maximum(
        g["cust_n_disputes"] - state["n_disputes"].to_numpy(np.int64), 0).astype(np.float64)
    last_disp = state["last_dispute_time"].to_numpy(dtype="datetime64[us]").view(np.int64)
    for w in _windows(config):
        own_in = ((last_disp != NAT) & (last_disp <= tt) & (last_disp > tt - w * DAY_US))
        out[f"hist_n_disputed_invoices_{w}d"] = np.maximum(
            g[f"cust_n_disputed_invoices_{w}d"] - own_in, 0).astype(np.float64)

    def since(col: str) -> np.ndarray:
        v = aggregates[col].to_numpy(dtype="datetime64[us]").view(np.int64)
        return np.where(v != NAT, (tt - np.where(v != NAT, v, 0)) / DAY_US, np.nan)

    out["hist_days_since_last_payment"] = since("cust_last_payment_time")
    out["hist_n_invoices"] = np.maximum(g["cust_n_posted"] - 1, 0).astype(np.float64)
    out["hist_customer_tenure_days"] = since("cust_first_posting_time")
    out["cold_start"] = out["hist_n_cleared"] < config.cold_start_min_cleared
    return pd.DataFrame({k: out[k] for k in history_feature_columns(config)}, index=state.index,
                        copy=False)


def join_history(state: pd.DataFrame, table: pd.DataFrame, t: object,
                 config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """History + master features of item states from a `history_table` (the serving path).

    Customers missing from the table get empty histories (cold start) and unknown master data.
    """
    from features.master_asof import MASTER_ATTRIBUTES, master_features

    if table["customer_id"].duplicated().any():
        raise ValueError("history table has several rows for one customer_id")
    keys = pd.DataFrame({"customer_id": state["customer_id"].astype("str").to_numpy()})
    joined = keys.merge(table, how="left", on="customer_id")
    aggs = joined[list(aggregate_columns(_windows(config)))].copy()
    for col in aggs.columns:
        if col.endswith("_time"):
            continue
        if col.startswith("cust_max_days_late"):
            aggs[col] = aggs[col].astype(np.float64)
        else:
            aggs[col] = aggs[col].fillna(0).astype(np.int64)
    aggs.index = state.index
    hist = history_features(aggs, state, t, config)
    attrs = joined[list(MASTER_ATTRIBUTES)].set_axis(state.index)
    master = master_features(attrs, aggs["cust_open_cents"].to_numpy() / 100.0)
    return pd.concat([master, hist], axis=1)


__all__ = ["build_customer_tables", "customer_aggregates_at", "history_table",
           "history_features", "join_history", "aggregate_columns", "history_feature_columns",
           "CustomerTables"]
