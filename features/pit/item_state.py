"""Open item state of invoices at snapshot times, replayed from each invoice's own events.

This module also holds the replayed log that every point-in-time step reads, so the rules live in
one place:

- An event is *known* at t when ``known_time <= t``, with ``known_time = max(event_time,
  recorded_time)`` (recorded_time only where present and non-null). Features at t read known
  events only; labels read events after t.
- Replay order: (known_time, event_time, lifecycle rank of the activity in schema.ACTIVITIES,
  position in the input). Ties at one instant therefore replay "payment, then residual item,
  then clearing" whatever the input order.
- Business attributes of an invoice (posting_time, net_due_date, promised_date, amounts, and
  the days late of past invoices) keep their business dates. Activity clocks (last_dunning_time,
  last_contact_time, dispute_open_since, last_dispute_time, last_customer_reaction_time) are the
  instants the system knew the event; without recorded_time both are the event time.
- Amounts are counted in integer cents, so sums and differences are exact.
- Open amount: the invoice amount, reset to the amount of each residual item, less the incoming
  payments and credit memos known since that anchor, floored at 0; 0 before the posting is known
  and after a terminal event.
- Disputes: the k-th creation of a case id on an invoice pairs with its k-th resolution (a missing
  case id is one id of its own); dispute_open_since is where the current run of open cases began.
- Promises: a promise is open while the last promise event is a creation (a broken event closes
  it); its promised date and amount are those of that creation.

The item state is exactly what a serving request carries for one open item (ITEM_STATE_COLUMNS),
so serving builds the same columns from a request without any events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features import schema
from features.pit.columns import DAY_US, NAT, Column, Columns, column_array, n_rows, to_us

A = schema.Activity
ACTIVITY_CODES: tuple[str, ...] = tuple(spec.activity.value for spec in schema.ACTIVITIES)
ACT: dict[schema.Activity, int] = {spec.activity: i for i, spec in enumerate(schema.ACTIVITIES)}

_DT = "datetime64[us]"
# What a serving request carries for one open item, with dtypes ("str" is pandas' string dtype).
ITEM_STATE_COLUMNS: dict[str, str] = {
    "invoice_id": "str",
    "customer_id": "str",
    "company_code": "str",
    "document_type": "str",
    "amount": "float64",  # invoice amount at posting
    "open_amount": "float64",
    "paid_amount": "float64",  # incoming payments known so far
    "posting_time": _DT,  # business posting time of the invoice
    "net_due_date": _DT,
    "payment_terms": "str",
    "dunning_level": "int64",  # level of the last dunning run, 0 before any
    "max_dunning_level": "int64",
    "n_dunning_runs": "int64",
    "last_dunning_time": _DT,
    "n_contacts": "int64",
    "last_contact_time": _DT,
    "promise_open": "bool",  # the last promise event is a creation (not broken yet)
    "promised_date": _DT,  # of the open promise, NaT when none is open
    "promise_amount": "float64",  # of the open promise, NaN when none is open
    "n_promises": "int64",
    "n_promises_broken": "int64",
    "dispute_open": "bool",
    "dispute_open_since": _DT,  # start of the current run of open dispute cases
    "disputed_amount": "float64",  # sum over open dispute cases
    "n_disputes": "int64",
    "last_dispute_time": _DT,  # last dispute case created on this invoice
    "payment_block_active": "bool",
    "n_partial_payments": "int64",  # incoming payments known while the item is still open
    "n_residual_items": "int64",
    "n_credit_memos": "int64",
    "credit_memo_amount": "float64",
    "last_customer_reaction_time": _DT,  # last payment, promise or dispute by the customer
}
STATE_STRING_COLUMNS = tuple(k for k, v in ITEM_STATE_COLUMNS.items() if v == "str")


# --------------------------------------------------------------------------- step index ------
class Queries:
    """As-of questions (group code, t), with their (code, t) sort order computed once.

    numpy's searchsorted is an order of magnitude faster on sorted needles, so every table is
    read in this order and the answers are put back in the callers' order.
    """

    def __init__(self, codes: np.ndarray, times: np.ndarray):
        self.codes = np.asarray(codes, dtype=np.int64)
        self.times = np.asarray(times, dtype=np.int64)
        self.order = np.lexsort((self.times, self.codes))
        self.sorted_codes = self.codes[self.order]
        self.sorted_times = self.times[self.order]

    def __len__(self) -> int:
        return len(self.codes)

    def unsort(self, values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        out[self.order] = values
        return out


def _time_unit(offsets: np.ndarray) -> int:
    for unit in (DAY_US, 1_000_000, 1_000):
        if not np.any(offsets % unit):
            return unit
    return 1


class StepIndex:
    """Rows keyed by (group code, time), sorted; answers "how many rows of group g have time <= t".

    (code, time) packs into one int64 key: time as whole units (day, second, ms or us, the
    coarsest that holds every row time exactly) since the table's first time, or, when that
    overflows, as the rank among the table's distinct times. A query time t maps to the last
    unit <= t, which keeps "row time <= t" exact.
    """

    def __init__(self, codes: np.ndarray, times: np.ndarray, presorted: bool = False):
        codes = np.asarray(codes, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        self.code_bound = np.int64((codes.max() if len(codes) else 0) + 2)
        self.base = np.int64(times.min() if len(times) else 0)
        offsets = times - self.base
        self.unit = np.int64(_time_unit(offsets) if len(times) else 1)
        self.span = np.int64((offsets.max() // self.unit + 1) if len(times) else 1)
        self.vocab = None
        if int(self.code_bound) * (int(self.span) + 2) >= 2**62:  # Python ints: no wrap
            self.vocab = np.unique(times)
            self.span = np.int64(len(self.vocab))
            ranks = np.searchsorted(self.vocab, times, side="left") + 1
        else:
            ranks = offsets // self.unit + 1
        self.width = np.int64(self.span + 1)
        keys = codes * self.width + ranks
        if presorted:
            if len(keys) > 1 and np.any(keys[1:] < keys[:-1]):
                raise AssertionError("StepIndex: rows are not sorted by (code, time)")
            self.order = None
        else:
            self.order = np.argsort(keys, kind="stable")
            keys = keys[self.order]
        self.keys = keys

    def take(self, values: np.ndarray) -> np.ndarray:
        """Values of the table's rows in the index's sorted order."""
        return values if self.order is None else values[self.order]

    def _rank(self, times: np.ndarray) -> np.ndarray:
        if self.vocab is not None:
            return np.searchsorted(self.vocab, times, side="right")
        return np.clip((times - self.base) // self.unit + 1, 0, self.span)

    def _codes(self, codes: np.ndarray) -> np.ndarray:
        return np.where((codes >= 0) & (codes < self.code_bound), codes, self.code_bound)

    def right(self, q: Queries, shift: int = 0) -> np.ndarray:
        """Per query, the position just after the last row of its code with time <= t - shift."""
        needles = self._codes(q.sorted_codes) * self.width + self._rank(q.sorted_times - shift)
        return q.unsort(np.searchsorted(self.keys, needles, side="right"))

    def first(self, q: Queries) -> np.ndarray:
        """Per query, the position of its code's first row (where it would be if it has none)."""
        needles = self._codes(q.sorted_codes) * self.width
        return q.unsort(np.searchsorted(self.keys, needles, side="left"))


class CumTable:
    """Per-group running sums of integer columns, read as of any (group, t)."""

    def __init__(self, codes: np.ndarray, times: np.ndarray, columns: dict[str, np.ndarray]):
        self.index = StepIndex(codes, times)
        self.times = self.index.take(np.asarray(times, dtype=np.int64))
        self.cum = {}
        for name, col in columns.items():
            col = self.index.take(np.asarray(col, dtype=np.int64))
            self.cum[name] = np.concatenate([np.zeros(1, np.int64), np.cumsum(col)])

    def between(self, lo: np.ndarray, hi: np.ndarray) -> dict[str, np.ndarray]:
        """Sums over sorted rows [lo, hi) (positions from the index)."""
        return {name: c[hi] - c[lo] for name, c in self.cum.items()}


class RangeMax:
    """Sparse table for max over any contiguous range of a fixed int array, vectorised."""

    def __init__(self, values: np.ndarray):
        values = np.asarray(values, dtype=np.int64)
        levels = [values]
        width = 1
        while 2 * width <= len(values):  # level k holds max(values[i : i + 2**k])
            prev = levels[-1]
            levels.append(np.maximum(prev[:-width], prev[width:]))
            width *= 2
        self.offsets = np.cumsum([0] + [len(v) for v in levels])[:-1]
        self.flat = np.concatenate(levels)

    def query(self, lo: np.ndarray, hi: np.ndarray, empty: int) -> np.ndarray:
        """max(values[lo:hi]) per pair; `empty` where hi <= lo."""
        n = hi - lo
        ok = n > 0
        size = np.where(ok, n, 1)
        # floor(log2(size)) exactly, without float rounding at powers of two.
        k = np.zeros(len(size), dtype=np.int64)
        for bit in (32, 16, 8, 4, 2, 1):
            up = (size >> (k + bit)) > 0
            k += np.where(up, bit, 0)
        base = self.offsets[k] if len(self.offsets) else np.zeros(len(k), np.int64)
        lo_ok = np.where(ok, lo, 0)
        first = self.flat[base + lo_ok] if len(self.flat) else np.zeros(len(k), np.int64)
        second = (self.flat[base + np.where(ok, hi - (np.int64(1) << k), 0)]
                  if len(self.flat) else first)
        return np.where(ok, np.maximum(first, second), empty)


# ------------------------------------------------------------------------- replayed log ------
@dataclass
class ReplayLog:
    """The event log in replay order with integer codes, ready for vectorised as-of reads.

    Event arrays are sorted by (invoice code, replay order). Invoice-level arrays are indexed by
    invoice code, customer-level by customer code. Codes follow the sorted ids.
    """

    inv: np.ndarray  # invoice code per event
    act: np.ndarray  # index into ACTIVITY_CODES
    known: np.ndarray  # int64 us
    etime: np.ndarray  # int64 us
    cents: np.ndarray  # amount in cents, 0 where null
    amount_null: np.ndarray
    level: np.ndarray  # dunning level, 0 where null
    promised: np.ndarray  # int64 us, NAT where null
    block_on: np.ndarray  # payment_block_set with a non-blank key
    case: np.ndarray  # dispute case code (null case id -> its own code), -1 elsewhere
    invoice_ids: np.ndarray  # object array, index = invoice code
    customer_ids: np.ndarray  # object array, index = customer code
    invoice_ids_pa: pa.Array  # the same as Arrow strings (fast gathers into str columns)
    customer_ids_pa: pa.Array
    inv_start: np.ndarray  # first event position per invoice
    inv_cust: np.ndarray  # customer code per invoice
    post_idx: np.ndarray  # event position of the invoice_posted per invoice
    term_idx: np.ndarray  # event position of the first terminal event, -1 while open
    due: np.ndarray  # net due date per invoice, int64 us
    company: pd.Categorical  # per invoice
    doc_type: pd.Categorical
    terms: pd.Categorical
    end_time: int  # last_refresh (or last known time): the default end of observation
    index: StepIndex  # over (invoice, known)

    @property
    def n_invoices(self) -> int:
        return len(self.invoice_ids)

    def group_start(self) -> np.ndarray:
        """Per event, the position of its invoice's first event."""
        return self.inv_start[self.inv]


def _times(frame: pd.DataFrame, column: str, required: bool) -> np.ndarray:
    if column not in frame.columns:
        if required:
            raise ValueError(f"event log has no column {column!r}")
        return np.full(len(frame), NAT, dtype=np.int64)
    col = frame[column]
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"column {column!r} must be naive datetimes (no timezone)")
    if not pd.api.types.is_datetime64_dtype(col.dtype):
        if col.isna().all():
            return np.full(len(frame), NAT, dtype=np.int64)
        raise ValueError(f"column {column!r} must be datetime64, got {col.dtype}")
    out = col.to_numpy(dtype="datetime64[us]").view(np.int64)
    if required and (out == NAT).any():
        row = int(np.flatnonzero(out == NAT)[0])
        raise ValueError(f"column {column!r} is missing at row {frame.index[row]!r}")
    return out


def _strings(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="str")
    return frame[column].astype("str")


def prepare_log(events: pd.DataFrame | ReplayLog) -> ReplayLog:
    """Check the columns the features need and build the replayed log (idempotent)."""
    if isinstance(events, ReplayLog):
        return events
    for col in ("event_time", "activity", "invoice_id", "customer_id"):
        if col not in events.columns:
            raise ValueError(f"event log has no column {col!r}")
    n = len(events)
    if n == 0:
        raise ValueError("event log is empty")
    raw_codes, raw_acts = pd.factorize(events["activity"])
    lookup = np.array([ACTIVITY_CODES.index(a) if a in ACTIVITY_CODES else -1
                       for a in map(str, raw_acts)] + [-1], dtype=np.int8)
    act = lookup[raw_codes]  # missing activity (code -1) reads the trailing -1
    if (act < 0).any():
        row = int(np.flatnonzero(act < 0)[0])
        raise ValueError(f"unknown activity {events['activity'].iloc[row]!r} at row "
                         f"{events.index[row]!r}; expected one of schema.Activity")
    etime = _times(events, "event_time", required=True)
    recorded = _times(events, "recorded_time", required=False)
    known = np.where(recorded != NAT, np.maximum(etime, recorded), etime)
    inv_ids = events["invoice_id"].astype("str")
    if inv_ids.isna().any():
        row = int(np.flatnonzero(inv_ids.isna().to_numpy())[0])
        raise ValueError(f"invoice_id is missing at row {events.index[row]!r}")
    inv_code, invoice_ids = pd.factorize(inv_ids, sort=True)
    inv_code = inv_code.astype(np.int64)
    order = np.lexsort((np.arange(n), act, etime, known, inv_code))

    inv = inv_code[order]
    act = act[order]
    known = known[order]
    etime = etime[order]
    n_inv = len(invoice_ids)
    inv_start = np.searchsorted(inv, np.arange(n_inv), side="left")

    amount = (events["amount"].to_numpy(dtype=np.float64, na_value=np.nan)[order]
              if "amount" in events.columns else np.full(n, np.nan))
    amount_null = np.isnan(amount)
    cents = np.where(amount_null, 0, np.rint(np.nan_to_num(amount) * 100)).astype(np.int64)
    if "dunning_level" in events.columns:
        level = events["dunning_level"].to_numpy(dtype=np.float64, na_value=np.nan)[order]
        level = np.nan_to_num(level, nan=0.0).astype(np.int64)
    else:
        level = np.zeros(n, dtype=np.int64)
    promised = _times(events, "promised_date", required=False)[order]

    is_block = act == ACT[A.PAYMENT_BLOCK_SET]
    block_on = np.zeros(n, dtype=bool)
    if is_block.any() and "payment_block" in events.columns:
        rows = order[is_block]
        pb = events["payment_block"].iloc[rows].to_numpy(dtype=object, na_value=None)
        block_on[is_block] = [bool(v is not None and str(v).strip()) for v in pb]

    is_disp = (act == ACT[A.DISPUTE_CASE_CREATED]) | (act == ACT[A.DISPUTE_CASE_RESOLVED])
    case = np.full(n, -1, dtype=np.int64)
    if is_disp.any():
        ids = _strings(events.iloc[order[is_disp]], "dispute_case_id")
        case[is_disp] = pd.factorize(ids.fillna("\x00missing"))[0]

    # Invoice attributes from the (first) posting event.
    is_post = act == ACT[A.INVOICE_POSTED]
    post_pos = np.flatnonzero(is_post)
    first_post = np.full(n_inv, -1, dtype=np.int64)
    first_post[inv[post_pos[::-1]]] = post_pos[::-1]  # reversed so the first one wins
    if (first_post < 0).any():
        bad = invoice_ids[int(np.flatnonzero(first_post < 0)[0])]
        raise ValueError(f"invoice {bad!r} has events but no {A.INVOICE_POSTED.value!r} event")
    src = order[first_post]  # input rows of the postings
    wanted = ["customer_id", "net_due_date", "company_code", "document_type", "payment_terms"]
    posts = events[[c for c in wanted if c in events.columns]].iloc[src]
    cust_raw = posts["customer_id"].astype("str")
    if cust_raw.isna().any():
        bad = invoice_ids[int(np.flatnonzero(cust_raw.isna().to_numpy())[0])]
        raise ValueError(f"customer_id is missing on the posting of invoice {bad!r}")
    inv_cust, customer_ids = pd.factorize(cust_raw, sort=True)
    due = _times(posts, "net_due_date", required=False)
    if (due == NAT).any():
        bad = invoice_ids[int(np.flatnonzero(due == NAT)[0])]
        raise ValueError(f"net_due_date is missing on the posting of invoice {bad!r}")
    if amount_null[first_post].any():
        bad = invoice_ids[int(np.flatnonzero(amount_null[first_post])[0])]
        raise ValueError(f"amount is missing on the posting of invoice {bad!r}")

    is_term = np.isin(act, [ACT[A.INVOICE_CLEARED], ACT[A.INVOICE_WRITTEN_OFF]])
    term_pos = np.flatnonzero(is_term)
    term_idx = np.full(n_inv, -1, dtype=np.int64)
    term_idx[inv[term_pos[::-1]]] = term_pos[::-1]

    def cat(column: str) -> pd.Categorical:
        values = _strings(posts, column)
        return pd.Categorical(values.to_numpy(dtype=object, na_value=None))

    if "last_refresh" in events.columns and events["last_refresh"].notna().any():
        end_time = int(_times(events, "last_refresh", required=False).max())
    else:
        end_time = int(known.max())

    return ReplayLog(
        inv=inv, act=act, known=known, etime=etime, cents=cents, amount_null=amount_null,
        level=level, promised=promised, block_on=block_on, case=case,
        invoice_ids=np.asarray(invoice_ids, dtype=object),
        customer_ids=np.asarray(customer_ids, dtype=object),
        invoice_ids_pa=pa.array(np.asarray(invoice_ids, dtype=object), type=pa.string()),
        customer_ids_pa=pa.array(np.asarray(customer_ids, dtype=object), type=pa.string()),
        inv_start=inv_start, inv_cust=inv_cust.astype(np.int64), post_idx=first_post,
        term_idx=term_idx, due=due, company=cat("company_code"), doc_type=cat("document_type"),
        terms=cat("payment_terms"), end_time=end_time,
        index=StepIndex(inv, known, presorted=True),
    )


# ----------------------------------------------------------------- per-event running state ---
def _group_cumsum(log: ReplayLog, x: np.ndarray) -> np.ndarray:
    """Running sum of x within each invoice (exact: integers)."""
    c = np.cumsum(x.astype(np.int64))
    start = log.group_start()
    before = np.where(start > 0, c[np.maximum(start - 1, 0)], 0)
    return c - before


def _last_index(log: ReplayLog, mask: np.ndarray) -> np.ndarray:
    """Per event, the position of the last event of its invoice with mask True so far, or -1."""
    idx = np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1))
    return np.where(idx >= log.group_start(), idx, -1)


def _is(log: ReplayLog, *activities: schema.Activity) -> np.ndarray:
    return np.isin(log.act, [ACT[a] for a in activities])


def open_cents_after(log: ReplayLog) -> np.ndarray:
    """Open amount (cents) of the invoice right after each event."""
    anchor = _last_index(log, _is(log, A.INVOICE_POSTED, A.RESIDUAL_ITEM_CREATED))
    reduce = np.where(_is(log, A.INCOMING_PAYMENT_POSTED, A.CREDIT_MEMO_POSTED), log.cents, 0)
    red = _group_cumsum(log, reduce)
    safe = np.maximum(anchor, 0)
    open_ = log.cents[safe] - (red - red[safe])
    closed = _group_cumsum(log, _is(log, A.INVOICE_CLEARED, A.INVOICE_WRITTEN_OFF)) > 0
    unposted = np.arange(len(log.act)) < log.post_idx[log.inv]
    return np.where((anchor < 0) | closed | unposted, 0, np.maximum(open_, 0))


def dispute_deltas(log: ReplayLog) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the change in open dispute cases and in disputed cents.

    The k-th creation of a case id on an invoice pairs with the k-th resolution of that id; a
    resolution closes its case only when the creation replays before it (otherwise it is ignored).
    """
    n = len(log.act)
    d_count = np.zeros(n, dtype=np.int64)
    d_cents = np.zeros(n, dtype=np.int64)
    created = np.flatnonzero(log.act == ACT[A.DISPUTE_CASE_CREATED])
    resolved = np.flatnonzero(log.act == ACT[A.DISPUTE_CASE_RESOLVED])
    d_count[created] = 1
    d_cents[created] = log.cents[created]
    if len(resolved) and len(created):
        width = np.int64(log.case.max() + 2)

        def keyed(pos: np.ndarray) -> pd.DataFrame:
            key = log.inv[pos] * width + log.case[pos]
            frame = pd.DataFrame({"key": key, "pos": pos})
            frame["k"] = frame.groupby("key", sort=False).cumcount()
            return frame

        pairs = keyed(resolved).merge(keyed(created), on=["key", "k"], suffixes=("", "_c"))
        pairs = pairs[pairs["pos_c"] < pairs["pos"]]
        r, c = pairs["pos"].to_numpy(), pairs["pos_c"].to_numpy()
        d_count[r] = -1
        d_cents[r] = -log.cents[c]
    return d_count, d_cents


# ---------------------------------------------------------------------------- item state -----
def event_positions(log: ReplayLog, inv: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Position of the last known event of each (invoice code, t), checking the item is open."""
    pos = log.index.right(Queries(inv, times)) - 1
    posted = (pos >= log.inv_start[inv]) & (log.post_idx[inv] <= pos) & (pos >= 0)
    term = log.term_idx[inv]
    is_open = posted & ((term < 0) | (term > pos))
    if not is_open.all():
        row = int(np.flatnonzero(~is_open)[0])
        when = pd.Timestamp(np.int64(times[row]), unit="us")
        raise ValueError(f"invoice {log.invoice_ids[inv[row]]!r} is not open at {when} "
                         f"(snapshot row {row}): not posted yet or already cleared/written off")
    return pos


def ids_series(ids: pa.Array, codes: np.ndarray) -> pd.Series:
    """pandas str column of ids[codes] (an Arrow gather, no Python objects)."""
    return pd.Series(ids.take(pa.array(np.asarray(codes, dtype=np.int64))), dtype="str")


def _times_out(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int64).view("datetime64[us]")


def state_arrays(log: ReplayLog, inv: np.ndarray, times: np.ndarray) -> dict[str, Column]:
    """Item state columns for invoice codes `inv` at times `times` (int64 us); ids and posting
    attributes as Categoricals of the log's codes."""
    inv = np.asarray(inv, dtype=np.int64)
    times = np.asarray(times, dtype=np.int64)
    pos = event_positions(log, inv, times)
    out: dict[str, Column] = {}

    def count(*activities: schema.Activity) -> np.ndarray:
        return _group_cumsum(log, _is(log, *activities))[pos]

    def last(mask: np.ndarray) -> np.ndarray:
        return _last_index(log, mask)[pos]

    def time_of(idx: np.ndarray) -> np.ndarray:
        return _times_out(np.where(idx >= 0, log.known[np.maximum(idx, 0)], NAT))

    cust = log.inv_cust[inv]
    out["invoice_id"] = pd.Categorical.from_codes(inv, categories=log.invoice_ids)
    out["customer_id"] = pd.Categorical.from_codes(cust, categories=log.customer_ids)
    out["company_code"] = log.company[inv]
    out["document_type"] = log.doc_type[inv]
    post = log.post_idx[inv]
    out["amount"] = log.cents[post] / 100.0
    out["open_amount"] = open_cents_after(log)[pos] / 100.0
    pay = _is(log, A.INCOMING_PAYMENT_POSTED)
    out["paid_amount"] = _group_cumsum(log, np.where(pay, log.cents, 0))[pos] / 100.0
    out["posting_time"] = _times_out(log.etime[post])
    out["net_due_date"] = _times_out(log.due[inv])
    out["payment_terms"] = log.terms[inv]

    dun = _is(log, A.DUNNING_RUN)
    last_dun = last(dun & (log.level > 0))
    out["dunning_level"] = np.where(last_dun >= 0, log.level[np.maximum(last_dun, 0)], 0)
    # Levels are small, so a running max per invoice is a global running max of (code, level).
    packed = log.inv * 16 + np.where(dun, np.clip(log.level, 0, 15), 0)
    out["max_dunning_level"] = (np.maximum.accumulate(packed) - log.inv * 16)[pos]
    out["n_dunning_runs"] = count(A.DUNNING_RUN)
    out["last_dunning_time"] = time_of(last(dun))
    out["n_contacts"] = count(A.COLLECTION_CONTACT)
    out["last_contact_time"] = time_of(last(_is(log, A.COLLECTION_CONTACT)))

    last_p = last(_is(log, A.PROMISE_TO_PAY_CREATED, A.PROMISE_TO_PAY_BROKEN))
    safe = np.maximum(last_p, 0)
    p_open = (last_p >= 0) & (log.act[safe] == ACT[A.PROMISE_TO_PAY_CREATED])
    out["promise_open"] = p_open
    out["promised_date"] = _times_out(np.where(p_open, log.promised[safe], NAT))
    out["promise_amount"] = np.where(p_open & ~log.amount_null[safe], log.cents[safe] / 100.0,
                                     np.nan)
    out["n_promises"] = count(A.PROMISE_TO_PAY_CREATED)
    out["n_promises_broken"] = count(A.PROMISE_TO_PAY_BROKEN)

    d_count, d_cents = dispute_deltas(log)
    n_open_cases = _group_cumsum(log, d_count)
    before = n_open_cases - d_count
    episode = last((n_open_cases > 0) & (before == 0))
    d_open = n_open_cases[pos] > 0
    out["dispute_open"] = d_open
    out["dispute_open_since"] = time_of(np.where(d_open, episode, -1))
    out["disputed_amount"] = _group_cumsum(log, d_cents)[pos] / 100.0
    out["n_disputes"] = count(A.DISPUTE_CASE_CREATED)
    out["last_dispute_time"] = time_of(last(log.act == ACT[A.DISPUTE_CASE_CREATED]))

    last_b = last(_is(log, A.PAYMENT_BLOCK_SET))
    out["payment_block_active"] = (last_b >= 0) & log.block_on[np.maximum(last_b, 0)]
    out["n_partial_payments"] = count(A.INCOMING_PAYMENT_POSTED)
    out["n_residual_items"] = count(A.RESIDUAL_ITEM_CREATED)
    out["n_credit_memos"] = count(A.CREDIT_MEMO_POSTED)
    memo = _is(log, A.CREDIT_MEMO_POSTED)
    out["credit_memo_amount"] = _group_cumsum(log, np.where(memo, log.cents, 0))[pos] / 100.0
    out["last_customer_reaction_time"] = time_of(last(_is(
        log, A.INCOMING_PAYMENT_POSTED, A.PROMISE_TO_PAY_CREATED, A.DISPUTE_CASE_CREATED)))
    return out


def state_frame(arrays: Columns, as_strings: bool = True) -> pd.DataFrame:
    """DataFrame with ITEM_STATE_COLUMNS dtypes (ids as str, or kept categorical when not)."""
    frame = pd.DataFrame({name: arrays[name] for name in ITEM_STATE_COLUMNS}, copy=False)
    if as_strings:
        for name in STATE_STRING_COLUMNS:
            frame[name] = frame[name].astype("str")
    bad = {k: (str(frame[k].dtype), v) for k, v in ITEM_STATE_COLUMNS.items()
           if v != "str" and str(frame[k].dtype) != v}
    if bad:
        raise AssertionError(f"item state dtypes differ from ITEM_STATE_COLUMNS: {bad}")
    return frame


def snapshot_codes(log: ReplayLog, snapshots: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    for col in ("invoice_id", "snapshot_time"):
        if col not in snapshots.columns:
            raise ValueError(f"snapshots have no column {col!r}")
    ids = snapshots["invoice_id"].astype("str").to_numpy(dtype=object, na_value=None)
    codes = pd.Index(log.invoice_ids).get_indexer(ids)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise ValueError(f"snapshot row {row}: invoice {ids[row]!r} is not in the event log")
    times = snapshots["snapshot_time"].to_numpy(dtype="datetime64[us]").view(np.int64)
    return codes.astype(np.int64), times


def item_state_at(events: pd.DataFrame | ReplayLog, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Open item state of each (invoice_id, snapshot_time) from its own known events.

    Returns ITEM_STATE_COLUMNS in the snapshots' row order (RangeIndex). Raises when an
    invoice is not open at its snapshot time.
    """
    log = prepare_log(events)
    inv, times = snapshot_codes(log, snapshots)
    return state_frame(state_arrays(log, inv, times))


__all__ = ["ITEM_STATE_COLUMNS", "column_array", "n_rows", "ReplayLog", "prepare_log",
           "item_state_at", "state_arrays", "state_frame", "snapshot_codes", "StepIndex",
           "Queries", "CumTable", "RangeMax", "open_cents_after", "dispute_deltas",
           "event_positions", "ids_series", "to_us", "DAY_US", "NAT", "ACT"]
