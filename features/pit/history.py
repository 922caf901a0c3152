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
negative when early); late = days late > grace_days; days to settle = date of its clearing - date
of its posting. Windows count outcomes known in (t - W, t]. An invoice is overdue at t from due
date + 1 day (00:00) while open. Amount-weighted ratios weigh by invoice amount. All sums are
integers (cents, days), so they are exact.

Recency and season (why they exist: payment habits drift, and some customers pay late only in
some months of the year):
- "recent" features read the customer's last RECENT_PAID paid invoices in the order the system
  learned of their clearing (ties at one instant: by invoice id, the largest counting as the most
  recent). The store keeps their days late and days to settle as integers (most recent first), so
  the exponentially weighted means (EWM_HALFLIFE invoices), medians and the drift line (least
  squares of days late over due date, read at this invoice's due date) are computed per row in
  `history_features`, identically for batch and serving.
- "month" / "season" features aggregate the paid invoices whose net due date fell in the same
  calendar month as this invoice's due date / within one month of it (circular: December is next
  to January), over every year of history known at t. The store keeps counts and sums per month.
  The season-adjusted EWMs take each recent invoice's season effect out and put this invoice's
  back (`_season_adjusted`).
- "undisputed" features leave out paid invoices that had a dispute case known when their
  outcome was: a dispute delays payment whatever the customer's habit.
- "same segment" features aggregate the paid invoices posted while the customer was in the
  segment it is in at t (master as of the posting's known time vs as of t): a customer that
  changes segment (e.g. billing mode) often changes how it pays, so the older history misleads.
  They need the master (or the events' attributes); the store keeps the totals for the segment
  current at its as_of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema
from features.config.features import FeatureConfig
from features.pit.columns import (DAY_US, NAT, Columns, Instant, TimeLike, columns_of, frame_of,
                                  instants, n_rows, take, to_us, us_of)
from features.pit.invoice_features import day_number
from features.pit.item_state import (ACT, CumTable, Queries, RangeMax, ReplayLog, StepIndex,
                                     open_cents_after, prepare_log)
from features.pit.master_asof import (MASTER_ATTRIBUTES, master_asof, master_asof_codes,
                                      master_features, master_from_events)

A = schema.Activity
_NEVER = np.iinfo(np.int64).max
_NO_MAX = np.iinfo(np.int64).min // 2
RECENT_PAID = 8  # paid invoices kept per customer for the recency features
RECENT_MEDIAN = 5  # of which the median reads the last 5
EWM_HALFLIFE = 3.0  # invoices: the weight of the k-th most recent is 0.5 ** (k / 3)
SEASON_PRIOR = 3.0  # pseudo-invoices at the customer's overall rate in a season estimate
SLOPE_MIN_PAID = 3  # recent paid invoices needed for a drift line
MONTHS = 12


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
    posted_cum: np.ndarray  # running invoice amounts (cents) in `postings` order, 0 first
    paid: StepIndex  # paid invoices by (customer, known time of the clearing)
    paid_days_late: np.ndarray  # in `paid` order
    paid_days_to_settle: np.ndarray
    paid_due_month: np.ndarray  # 1..12
    paid_due_day: np.ndarray  # day number of the net due date
    by_month: CumTable  # paid invoices per calendar month of their due date
    # Paid invoices by (customer, segment at posting); None without a master. The segment of a
    # query is read from `master` as of its t.
    by_segment: CumTable | None = None
    master: pd.DataFrame | None = None
    n_segments: int = 0


def _per_invoice_diff(log: ReplayLog, values: np.ndarray) -> np.ndarray:
    prev = np.concatenate([np.zeros(1, np.int64), values[:-1]])
    first = np.arange(len(values)) == log.group_start()
    return values - np.where(first, 0, prev)


def segment_codes(master: pd.DataFrame, customer_ids: np.ndarray, codes: np.ndarray,
                  t: np.ndarray) -> tuple[np.ndarray, int]:
    """Customer segment of each (customer code, t) from the master as of t, as codes into the
    master's sorted segment values (-1: unknown), and the number of values."""
    seg = master_asof_codes(master, customer_ids, codes, t)["customer_segment"]
    return np.asarray(seg.codes, dtype=np.int64), len(seg.categories)


def build_customer_tables(events: pd.DataFrame | ReplayLog, config: FeatureConfig,
                          master: pd.DataFrame | None = None) -> CustomerTables:
    """Per-customer step functions of the log; with a master also the history per segment."""
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
    settle_days = day_number(log.etime[tpos]) - day_number(log.etime[log.post_idx[settled]])
    cleared = ~is_wo
    late = cleared & (dl > config.grace_days)
    inv_cents = log.cents[log.post_idx[settled]]
    before_term = np.where(tpos > log.inv_start[settled], open_after[np.maximum(tpos - 1, 0)], 0)
    # Disputed: a dispute case on the invoice was known no later than its outcome (so the flag
    # of a settled invoice never changes afterwards).
    cre_all = np.flatnonzero(log.act == ACT[A.DISPUTE_CASE_CREATED])
    first_dispute = np.full(log.n_invoices, _NEVER, dtype=np.int64)
    np.minimum.at(first_dispute, log.inv[cre_all], eff[cre_all])
    undisputed = cleared & (first_dispute[settled] > eff[tpos])
    outcomes = CumTable(log.inv_cust[settled], eff[tpos], {
        "n_cleared": cleared, "n_cleared_late": late,
        "cleared_cents": np.where(cleared, inv_cents, 0),
        "cleared_late_cents": np.where(late, inv_cents, 0),
        "sum_days_late": np.where(cleared, dl, 0), "sumsq_days_late": np.where(cleared, dl * dl, 0),
        "sum_days_to_settle": np.where(cleared, settle_days, 0),
        "n_cleared_undisputed": undisputed, "n_cleared_late_undisputed": undisputed & late,
        "sum_days_late_undisputed": np.where(undisputed, dl, 0),
        "n_written_off": is_wo, "written_off_cents": np.where(is_wo, before_term, 0),
    })
    # Paid invoices only, stably sorted: ties at one instant keep invoice-code (= id) order.
    paid = StepIndex(log.inv_cust[settled[cleared]], eff[tpos[cleared]])
    due_month = _month_of_day(due_day[settled[cleared]])
    month_cols = {}
    for m in range(MONTHS):  # twelve columns per quantity: a loop over months, not rows
        here = due_month == m
        month_cols[f"n_cleared_due_m{m + 1:02d}"] = here
        month_cols[f"n_cleared_late_due_m{m + 1:02d}"] = here & late[cleared]
        month_cols[f"sum_days_late_due_m{m + 1:02d}"] = np.where(here, dl[cleared], 0)
    by_month = CumTable(log.inv_cust[settled[cleared]], eff[tpos[cleared]], month_cols)
    by_segment, n_seg = None, 0
    if master is not None:
        # The segment the customer had when the invoice was posted (known).
        paid_inv = settled[cleared]
        seg, n_seg = segment_codes(master, log.customer_ids, log.inv_cust[paid_inv],
                                   post_known[paid_inv])
        has = seg >= 0
        by_segment = CumTable(log.inv_cust[paid_inv][has] * max(n_seg, 1) + seg[has],
                              eff[tpos[cleared]][has], {
                                  "n_cleared": np.ones(int(has.sum()), np.int64),
                                  "n_cleared_late": late[cleared][has],
                                  "sum_days_late": dl[cleared][has]})
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
        customer_ids=log.customer_ids,
        posted_cum=np.concatenate([np.zeros(1, np.int64),
                                   np.cumsum(postings.take(log.cents[log.post_idx]))]),
        paid=paid, paid_days_late=paid.take(dl[cleared]),
        paid_days_to_settle=paid.take(settle_days[cleared]),
        paid_due_month=paid.take(due_month + 1), paid_due_day=paid.take(due_day[settled[cleared]]),
        by_month=by_month, by_segment=by_segment, master=master, n_segments=n_seg)


def _month_of_day(day: np.ndarray) -> np.ndarray:
    """Calendar month 0..11 of day numbers (days since 1970-01-01)."""
    return (np.asarray(day, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]")
            .astype(np.int64) % MONTHS)


def _month_columns() -> tuple[str, ...]:
    return tuple(f"{q}_due_m{m + 1:02d}" for q in ("n_cleared", "n_cleared_late", "sum_days_late")
                 for m in range(MONTHS))


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
    # Added with feature set pit-1.1 (all integers: the online store fills a gap with 0).
    cols += ["cust_posted_cents", "cust_sum_days_to_settle", "cust_n_cleared_undisputed",
             "cust_n_cleared_late_undisputed", "cust_sum_days_late_undisputed"]
    cols += [f"cust_recent_days_late_{k}" for k in range(1, RECENT_PAID + 1)]
    cols += [f"cust_recent_days_to_settle_{k}" for k in range(1, RECENT_PAID + 1)]
    cols += [f"cust_recent_due_month_{k}" for k in range(1, RECENT_PAID + 1)]
    cols += [f"cust_recent_due_day_{k}" for k in range(1, RECENT_PAID + 1)]
    cols += [f"cust_{c}" for c in _month_columns()]
    cols += ["cust_n_cleared_same_segment", "cust_n_cleared_late_same_segment",
             "cust_sum_days_late_same_segment"]
    return tuple(cols)


def _aggregates(tables: CustomerTables, q: Queries) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def read(table: CumTable) -> tuple[np.ndarray, np.ndarray]:
        return table.index.first(q), table.index.right(q)

    lo, hi = tables.postings.first(q), tables.postings.right(q)
    out["cust_n_posted"] = hi - lo
    out["cust_posted_cents"] = tables.posted_cum[hi] - tables.posted_cum[lo]
    out["cust_first_posting_time"] = np.where(
        hi > lo, tables.posting_times[np.minimum(lo, len(tables.posting_times) - 1)], NAT)

    lo, hi = read(tables.exposure)
    for name, val in tables.exposure.between(lo, hi).items():
        out[f"cust_{name}"] = val

    windowed = ("n_cleared", "n_cleared_late", "cleared_cents", "cleared_late_cents",
                "sum_days_late", "sumsq_days_late")

    def outcome_block(lo: np.ndarray, hi: np.ndarray, suffix: str) -> None:
        # Windows need only their own columns: no point differencing every running sum.
        cum = tables.outcomes.cum
        sums = {name: cum[name][hi] - cum[name][lo] for name in (cum if not suffix else windowed)}
        for name in windowed:
            out[f"cust_{name}{suffix}"] = sums[name]
        mx = tables.days_late_max.query(lo, hi, _NO_MAX)
        out[f"cust_max_days_late{suffix}"] = np.where(mx > _NO_MAX, mx.astype(np.float64),
                                                     np.nan)
        if not suffix:
            out["cust_n_written_off"] = sums["n_written_off"]
            out["cust_written_off_cents"] = sums["written_off_cents"]
            for name in ("sum_days_to_settle", "n_cleared_undisputed",
                         "n_cleared_late_undisputed", "sum_days_late_undisputed"):
                out[f"cust_{name}"] = sums[name]

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

    lo, hi = tables.paid.first(q), tables.paid.right(q)
    for k in range(1, RECENT_PAID + 1):
        pos = hi - k
        has = pos >= lo
        at = np.clip(pos, 0, max(len(tables.paid_days_late) - 1, 0))
        for name, values in (("days_late", tables.paid_days_late),
                             ("days_to_settle", tables.paid_days_to_settle),
                             ("due_month", tables.paid_due_month),
                             ("due_day", tables.paid_due_day)):
            out[f"cust_recent_{name}_{k}"] = (np.where(has, values[at], 0) if len(values)
                                              else np.zeros(len(q), np.int64))
    lo, hi = read(tables.by_month)
    for name, val in tables.by_month.between(lo, hi).items():
        out[f"cust_{name}"] = val
    names = ("n_cleared", "n_cleared_late", "sum_days_late")
    if tables.by_segment is None:
        for name in names:
            out[f"cust_{name}_same_segment"] = np.zeros(len(q), np.int64)
    else:
        # The customer's segment at t picks which of its per-segment histories is read.
        seg, _ = segment_codes(tables.master, tables.customer_ids, np.maximum(q.codes, 0),
                               q.times)
        known = (seg >= 0) & (q.codes >= 0)
        sq = Queries(np.where(known, q.codes * max(tables.n_segments, 1) + seg, -1), q.times)
        lo, hi = tables.by_segment.index.first(sq), tables.by_segment.index.right(sq)
        sums = tables.by_segment.between(lo, hi)
        for name in names:
            out[f"cust_{name}_same_segment"] = np.where(known, sums[name], 0)
    ordered = aggregate_columns(tables.windows)
    return {k: out[k] for k in ordered}


_AGGREGATE_TIMES = ("cust_first_posting_time", "cust_last_payment_time")


def _with_times(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The aggregates with their instants (int64 microseconds) read as datetime64[us]."""
    for col in _AGGREGATE_TIMES:
        arrays[col] = np.asarray(arrays[col], dtype=np.int64).view("datetime64[us]")
    return arrays


def customer_codes(log: ReplayLog, customer_ids: Sequence[str] | np.ndarray | pd.Series
                   ) -> np.ndarray:
    """Codes of customer ids in the log, -1 for customers the log does not know."""
    ids = pd.Series(customer_ids, dtype="str").to_numpy(dtype=object, na_value=None)
    return pd.Index(log.customer_ids).get_indexer(ids).astype(np.int64)


def customer_aggregates_at(events: pd.DataFrame | ReplayLog,
                           customer_ids: Sequence[str] | np.ndarray | pd.Series,
                           times: TimeLike, config: FeatureConfig = FeatureConfig(),
                           tables: CustomerTables | None = None,
                           master: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Running customer totals (aggregate_columns) as of each (customer, t), own invoice included.

    A customer the log does not know gets zero totals and NaT times. Without a master (and
    without tables built with one) the per-segment totals are 0.
    """
    log = prepare_log(events)
    tables = tables or build_customer_tables(log, config, master)
    codes = customer_codes(log, customer_ids)
    return aggregates_for_codes(tables, codes, us_of(instants(times, len(codes))))


def aggregates_for_codes(tables: CustomerTables, codes: np.ndarray, t: np.ndarray
                         ) -> dict[str, np.ndarray]:
    """customer_aggregates_at for customer codes of the log (-1: unknown customer), t as int64
    us; instants as datetime64[us]."""
    return _with_times(_aggregates(tables, Queries(codes, t)))


HISTORY_CHUNK_ROWS = 250_000


def history_for_codes(tables: CustomerTables, codes: np.ndarray, t: np.ndarray,
                      state: Columns, config: FeatureConfig = FeatureConfig()
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """history_features of rows (customer code, t as int64 us) with their item states, and each
    customer's
    open amount at t; in chunks of HISTORY_CHUNK_ROWS rows, so that the ~190 aggregate columns
    of a large training set never sit in memory all at once.

    Each chunk's features are copied into columns allocated once for all rows: chunks joined at
    the end held every feature twice (and each chunk's columns kept alive the whole recency
    matrices its first column is a view of).
    """
    n = len(codes)
    columns: dict[str, np.ndarray] = {}
    customer_open = np.empty(n, dtype=np.float64)
    for lo in range(0, max(n, 1), HISTORY_CHUNK_ROWS):
        part = slice(lo, lo + HISTORY_CHUNK_ROWS)
        g = _with_times(_aggregates(tables, Queries(codes[part], t[part])))
        feats = history_features(g, take(state, part), t[part].view("datetime64[us]"), config)
        customer_open[part] = g["cust_open_cents"] / 100.0
        del g
        for name, values in feats.items():
            if name not in columns:
                columns[name] = np.empty(n, dtype=values.dtype)
            elif columns[name].dtype != values.dtype:  # a concat would have upcast
                raise AssertionError(f"history feature {name!r} is {values.dtype} in rows "
                                     f"{lo}.. but {columns[name].dtype} before")
            columns[name][part] = values
        del feats
    return columns, customer_open


def history_table(events: pd.DataFrame | ReplayLog, master: pd.DataFrame | None,
                  as_of: Instant | None = None,
                  config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """One row per customer: aggregates and master attributes as of `as_of` (default last refresh).

    This is the online store serving loads; `join_history` turns it into features.
    """
    log = prepare_log(events)
    when = log.end_time if as_of is None else to_us(as_of)
    ids = pd.Series(log.customer_ids, dtype="str")
    t = np.full(len(ids), when, dtype=np.int64).view("datetime64[us]")
    if master is None:
        if not isinstance(events, pd.DataFrame):
            raise ValueError("history_table needs the events DataFrame or a master table")
        master = master_from_events(events)
    aggs = customer_aggregates_at(log, ids, t, config, master=master)
    attrs = master_asof(master, ids, t)
    head = pd.DataFrame({"customer_id": ids, "as_of": t})
    return pd.concat([head, frame_of(aggs), attrs], axis=1)


def _cents(values: np.ndarray) -> np.ndarray:
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
    cols += list(RECENCY_SEASON_FEATURES)
    return tuple(cols)


RECENCY_SEASON_FEATURES: tuple[str, ...] = (
    "hist_avg_days_to_settle", "hist_undisputed_late_ratio", "hist_undisputed_avg_days_late",
    "hist_last_days_late", "hist_last_days_to_settle",
    "hist_ewm_days_late", "hist_ewm_days_to_settle", "hist_ewm_late_ratio",
    "hist_recent_median_days_late", "hist_days_late_trend", "hist_days_late_slope",
    "hist_days_late_trend_at_due",
    "hist_month_n_cleared", "hist_month_late_ratio", "hist_month_avg_days_late",
    "hist_season_n_cleared", "hist_season_late_ratio", "hist_season_avg_days_late",
    "hist_season_excess_days_late", "hist_ewm_late_ratio_season_adj",
    "hist_ewm_days_late_season_adj", "hist_season_effect", "hist_season_amplitude",
    "hist_same_segment_n_cleared",
    "hist_same_segment_share", "hist_same_segment_late_ratio", "hist_same_segment_avg_days_late",
    "hist_avg_invoice_amount", "amount_vs_customer_avg",
)


def _recent_matrix(g: dict[str, np.ndarray], name: str, n_paid: np.ndarray) -> np.ndarray:
    """(rows, RECENT_PAID) values of the most recent paid invoices, NaN beyond the history."""
    m = np.column_stack([g[f"cust_recent_{name}_{k}"] for k in range(1, RECENT_PAID + 1)]
                        ).astype(np.float64)
    have = np.arange(RECENT_PAID)[None, :] < n_paid[:, None]
    return np.where(have, m, np.nan)


def _ewm(values: np.ndarray) -> np.ndarray:
    """Weighted mean over each row's non-NaN values, weight 0.5 ** (k / EWM_HALFLIFE) for the
    k-th most recent (k = 0 the latest); NaN for an empty row."""
    w = 0.5 ** (np.arange(values.shape[1]) / EWM_HALFLIFE)
    ok = ~np.isnan(values)
    den = (ok * w).sum(axis=1)
    # A row-wise sum, not `@ w`: a BLAS product rounds a row differently with the batch around
    # it (last bits), and batch, chunked and per-request (serving) values must be identical.
    num = (np.where(ok, values, 0.0) * w).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _season_adjusted(g: dict[str, np.ndarray], n_paid: np.ndarray, month: np.ndarray,
                     has_due: np.ndarray, per_month: tuple[np.ndarray, np.ndarray, np.ndarray],
                     late_days: np.ndarray, out: dict[str, np.ndarray],
                     config: FeatureConfig) -> None:
    """Recent habit with the season taken out and this invoice's season put back.

    A season effect per due month m: the customer's late ratio (mean days late) over its paid
    invoices due within one month of m, shrunk towards its overall one by SEASON_PRIOR
    pseudo-invoices, minus the overall one. The EWM over the recent paid invoices subtracts each
    one's effect (its due month) and adds the effect of this invoice's due month, so a seasonal
    payer's late December does not make its March invoice look risky, nor the reverse.
    The late-ratio effects also give the season's own features: this due month's effect, and the
    amplitude (largest minus smallest effect over the twelve months). A customer's season is read
    off a few invoices a year, so for most customers a season share is noise; the amplitude tells
    the model whose season is real, so that it can trust the effect where it is.
    """
    n_m, late_m, days_m = per_month

    def window(table: np.ndarray) -> np.ndarray:  # months m-1, m, m+1 (circular)
        wrapped = np.concatenate([table[:, -1:], table, table[:, :1]], axis=1)
        return wrapped[:, :-2] + wrapped[:, 1:-1] + wrapped[:, 2:]

    n_w = window(n_m)
    overall_late = np.nan_to_num(out["hist_late_ratio"])[:, None]
    overall_days = np.nan_to_num(out["hist_avg_days_late"])[:, None]
    effect_late = (window(late_m) + SEASON_PRIOR * overall_late) / (n_w + SEASON_PRIOR) \
        - overall_late
    effect_days = (window(days_m) + SEASON_PRIOR * overall_days) / (n_w + SEASON_PRIOR) \
        - overall_days
    rows = np.arange(len(month))
    paid = n_paid > 0
    out["hist_season_effect"] = np.where(has_due & paid, effect_late[rows, month], np.nan)
    out["hist_season_amplitude"] = np.where(paid, effect_late.max(axis=1)
                                            - effect_late.min(axis=1), np.nan)
    recent_month = _recent_matrix(g, "due_month", n_paid)
    have = ~np.isnan(recent_month)
    idx = np.where(have, recent_month, 1).astype(np.int64) - 1
    flags = np.where(np.isnan(late_days), np.nan, (late_days > config.grace_days).astype(float))
    for name, values, effect in (("late_ratio", flags, effect_late),
                                 ("days_late", late_days, effect_days)):
        then = np.where(have, np.take_along_axis(effect, idx, axis=1), np.nan)
        now = np.where(has_due, effect[rows, month], 0.0)
        adjusted = _ewm(values - then) + now
        # The additive season shift can push a share past 0 or 1; a share stays a share.
        out[f"hist_ewm_{name}_season_adj"] = (np.clip(adjusted, 0.0, 1.0)
                                              if name == "late_ratio" else adjusted)


def _drift(g: dict[str, np.ndarray], n_paid: np.ndarray, late_days: np.ndarray,
           due_day: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """Least-squares line of days late over due date through the recent paid invoices (at least
    SLOPE_MIN_PAID of them, due on at least two different days): its slope per 30 days, and its
    value at this invoice's due date - how late the customer will be if its drift goes on."""
    x = _recent_matrix(g, "due_day", n_paid)
    ok = ~np.isnan(x)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(ok, x, 0.0).sum(axis=1) / np.maximum(n, 1)
        my = np.where(ok, late_days, 0.0).sum(axis=1) / np.maximum(n, 1)
        dx = np.where(ok, x - mx[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        sxy = (dx * np.where(ok, late_days - my[:, None], 0.0)).sum(axis=1)
        usable = (n >= SLOPE_MIN_PAID) & (sxx > 0)
        slope = np.where(usable, sxy / np.where(usable, sxx, 1.0), np.nan)
    due = np.where(due_day != NAT, due_day, np.nan).astype(np.float64)
    out["hist_days_late_slope"] = slope * 30.0
    out["hist_days_late_trend_at_due"] = my + slope * (due - mx)


def _recency_season(g: Columns, state: Columns, due_day: np.ndarray,
                    out: dict[str, np.ndarray], config: FeatureConfig) -> None:
    """The recency, season and relative-amount features (module docstring); due_day: each
    row's net due date as a day number (NAT where missing)."""
    n_paid = g["cust_n_cleared"].astype(np.int64)
    out["hist_avg_days_to_settle"] = _ratio(g["cust_sum_days_to_settle"], n_paid)
    out["hist_undisputed_late_ratio"] = _ratio(g["cust_n_cleared_late_undisputed"],
                                               g["cust_n_cleared_undisputed"])
    out["hist_undisputed_avg_days_late"] = _ratio(g["cust_sum_days_late_undisputed"],
                                                  g["cust_n_cleared_undisputed"])
    late_days = _recent_matrix(g, "days_late", n_paid)
    settle = _recent_matrix(g, "days_to_settle", n_paid)
    out["hist_last_days_late"] = late_days[:, 0]
    out["hist_last_days_to_settle"] = settle[:, 0]
    out["hist_ewm_days_late"] = _ewm(late_days)
    out["hist_ewm_days_to_settle"] = _ewm(settle)
    out["hist_ewm_late_ratio"] = _ewm(np.where(np.isnan(late_days), np.nan,
                                               (late_days > config.grace_days).astype(float)))
    # Median of the first k non-missing values (missing ones sort last): the middle one or two.
    head = np.sort(late_days[:, :RECENT_MEDIAN], axis=1)
    k = (~np.isnan(head)).sum(axis=1)
    lo_i = np.maximum((k - 1) // 2, 0)[:, None]
    hi_i = np.maximum(k // 2, 0).clip(max=RECENT_MEDIAN - 1)[:, None]
    med = (np.take_along_axis(head, lo_i, axis=1) + np.take_along_axis(head, hi_i, axis=1)) / 2
    out["hist_recent_median_days_late"] = np.where(k > 0, med[:, 0], np.nan)
    ws = sorted(_windows(config))
    short = out[f"hist_avg_days_late_{ws[0]}d"] if ws else out["hist_avg_days_late"]
    long_ = out[f"hist_avg_days_late_{ws[-1]}d"] if len(ws) > 1 else out["hist_avg_days_late"]
    out["hist_days_late_trend"] = short - long_
    _drift(g, n_paid, late_days, due_day, out)

    has_due = due_day != NAT
    month = np.where(has_due, _month_of_day(np.where(has_due, due_day, 0)), 0)
    rows = np.arange(len(month))

    def per_month(quantity: str) -> np.ndarray:
        return np.column_stack([g[f"cust_{quantity}_due_m{m + 1:02d}"] for m in range(MONTHS)]
                               ).astype(np.float64)

    n_m, late_m, days_m = (per_month(q) for q in ("n_cleared", "n_cleared_late",
                                                  "sum_days_late"))

    def around(table: np.ndarray, width: int) -> np.ndarray:
        total = np.zeros(len(month))
        for d in range(-width, width + 1):  # the due month and its neighbours (circular)
            total += table[rows, (month + d) % MONTHS]
        return np.where(has_due, total, np.nan)

    for label, width in (("month", 0), ("season", 1)):
        n_s = around(n_m, width)
        out[f"hist_{label}_n_cleared"] = np.where(has_due, n_s, 0.0)
        out[f"hist_{label}_late_ratio"] = _ratio(around(late_m, width), n_s)
        out[f"hist_{label}_avg_days_late"] = _ratio(around(days_m, width), n_s)
    out["hist_season_excess_days_late"] = (out["hist_season_avg_days_late"]
                                           - out["hist_avg_days_late"])
    _season_adjusted(g, n_paid, month, has_due, (n_m, late_m, days_m), late_days, out, config)
    n_same = g["cust_n_cleared_same_segment"].astype(np.float64)
    out["hist_same_segment_n_cleared"] = n_same
    out["hist_same_segment_share"] = _ratio(n_same, n_paid)
    out["hist_same_segment_late_ratio"] = _ratio(g["cust_n_cleared_late_same_segment"], n_same)
    out["hist_same_segment_avg_days_late"] = _ratio(g["cust_sum_days_late_same_segment"],
                                                    n_same)

    amount = np.asarray(state["amount"], dtype=np.float64)
    own_cents = _cents(np.nan_to_num(amount))
    n_other = np.maximum(g["cust_n_posted"] - 1, 0)
    other_cents = np.maximum(g["cust_posted_cents"] - own_cents, 0)
    avg_amount = _ratio(other_cents, n_other) / 100.0
    out["hist_avg_invoice_amount"] = avg_amount
    usable = (avg_amount > 0) & ~np.isnan(amount)
    out["amount_vs_customer_avg"] = np.where(
        usable, (own_cents / 100.0) / np.where(usable, avg_amount, 1.0), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def history_features(aggregates: Columns, state: Columns, t: np.ndarray,
                     config: FeatureConfig = FeatureConfig()) -> dict[str, np.ndarray]:
    """History features (history_feature_columns order) of each row from its customer's
    aggregates (aggregate_columns) and its own item state, at its time t (datetime64[us])."""
    n = n_rows(state)
    if len(aggregates["cust_n_posted"]) != n:
        raise ValueError(f"{len(aggregates['cust_n_posted'])} aggregate rows for {n} item states")
    g = aggregates
    tt = us_of(t)
    if len(tt) != n:
        raise ValueError(f"t has {len(tt)} values for {n} item states")
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

    own_cents = _cents(np.asarray(state["open_amount"], dtype=np.float64))
    due_day = day_number(us_of(state["net_due_date"]))
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
    n_prom_o = np.maximum(g["cust_n_promises"] - np.asarray(state["n_promises"], np.int64), 0)
    n_brk_o = np.maximum(
        g["cust_n_promises_broken"] - np.asarray(state["n_promises_broken"], np.int64), 0)
    out["hist_n_promises_other"] = n_prom_o.astype(np.float64)
    out["hist_promise_broken_rate"] = _ratio(n_brk_o, n_prom_o)
    out["hist_n_disputes_other"] = np.maximum(
        g["cust_n_disputes"] - np.asarray(state["n_disputes"], np.int64), 0).astype(np.float64)
    last_disp = us_of(state["last_dispute_time"])
    for w in _windows(config):
        own_in = ((last_disp != NAT) & (last_disp <= tt) & (last_disp > tt - w * DAY_US))
        out[f"hist_n_disputed_invoices_{w}d"] = np.maximum(
            g[f"cust_n_disputed_invoices_{w}d"] - own_in, 0).astype(np.float64)

    def since(col: str) -> np.ndarray:
        v = us_of(g[col])
        return np.where(v != NAT, (tt - np.where(v != NAT, v, 0)) / DAY_US, np.nan)

    out["hist_days_since_last_payment"] = since("cust_last_payment_time")
    out["hist_n_invoices"] = np.maximum(g["cust_n_posted"] - 1, 0).astype(np.float64)
    out["hist_customer_tenure_days"] = since("cust_first_posting_time")
    out["cold_start"] = out["hist_n_cleared"] < config.cold_start_min_cleared
    _recency_season(g, state, due_day, out, config)
    return {k: out[k] for k in history_feature_columns(config)}


def join_history(state: pd.DataFrame, table: pd.DataFrame, t: TimeLike,
                 config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """History + master features of an item-state frame from a `history_table` frame: the
    serving path with a merge instead of the store's gathers (serving.store checks against it).

    Customers missing from the table get empty histories (cold start) and unknown master data.
    """
    if table["customer_id"].duplicated().any():
        raise ValueError("history table has several rows for one customer_id")
    keys = pd.DataFrame({"customer_id": state["customer_id"].astype("str").to_numpy()})
    joined = keys.merge(table, how="left", on="customer_id")
    aggs: dict[str, np.ndarray] = {}
    for col in aggregate_columns(_windows(config)):
        if col.endswith("_time"):
            aggs[col] = joined[col].to_numpy(dtype="datetime64[us]")
        elif col.startswith("cust_max_days_late"):
            aggs[col] = joined[col].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            aggs[col] = joined[col].fillna(0).to_numpy(dtype=np.int64)
    items = columns_of(state)
    hist = history_features(aggs, items, instants(t, len(state)), config)
    attrs = columns_of(joined[list(MASTER_ATTRIBUTES)])
    master = master_features(attrs, aggs["cust_open_cents"] / 100.0)
    return frame_of({**master, **hist}, index=state.index)


__all__ = ["build_customer_tables", "customer_aggregates_at", "history_for_codes",
           "history_table", "history_features", "join_history",
           "aggregate_columns", "history_feature_columns", "segment_codes", "CustomerTables"]
