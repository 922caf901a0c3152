"""Turning simulated payment paths into the fourteen activities' events, as numpy array blocks.

Each activity is one vectorised block (invoice index, time in seconds, and the columns it fills);
the calculated activities (due date passed, promise to pay broken) are derived from the explicit
ones by exactly the rule of the event-log conventions. Times of day follow the office: invoices are
billed in the morning, dunning runs at 05:00 on Mondays, collectors call during office hours,
bank statements are imported late morning, the clearing job runs in the evening, and calculated
events sit at 00:00 of the day after the date they test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.schema import Activity
from features.simulate.paths import (CREDITED, NEVER, PAID, WRITTEN_OFF, Paths, next_business_day,
                                     previous_business_day)
from features.simulate.world import Customers, Invoices, first_run_on_or_after

DAY = 86_400
HOUR = 3_600
ACTIVITY_ORDER: tuple[Activity, ...] = tuple(Activity)  # tie-break of events at the same instant
ACT = {a: np.int8(i) for i, a in enumerate(ACTIVITY_ORDER)}

# user_name codes: >= 0 index SYSTEM_USERS, COLLECTOR means the customer's collector.
SYSTEM_USERS: tuple[str, ...] = ("BILLING", "BATCH", "BANK_IMPORT", "CREDIT_MGMT")
BILLING, BATCH, BANK_IMPORT, CREDIT_MGMT = range(4)
COLLECTOR = -1
BLOCK_NONE, BLOCK_SET, BLOCK_LIFT = 0, 1, 2
PAYMENT_BLOCK_KEYS = (None, "D", "")  # "D": disputed item; blank lifts the block

PARTIAL_CREDIT_SHARE = 0.5  # of disputes not fully credited, those settled by a partial credit
SECOND_CONTACT_SHARE = 0.55
PROMISE_CAP_DAYS = 90


@dataclass(frozen=True)
class EventArrays:
    """Event columns as parallel arrays, filtered to the log window and in canonical order."""

    invoice: np.ndarray  # int64 invoice index
    second: np.ndarray  # int64 seconds since epoch
    activity: np.ndarray  # int8 index into ACTIVITY_ORDER
    amount: np.ndarray  # float64, NaN where the activity has none
    dunning_level: np.ndarray  # int8, 0 = none
    promised_day: np.ndarray  # int64 day, NEVER = none
    dispute: np.ndarray  # int64 dispute number, -1 = none
    clearing: np.ndarray  # bool, the event carries a clearing document
    payment_block: np.ndarray  # int8 index into PAYMENT_BLOCK_KEYS
    user: np.ndarray  # int8, see SYSTEM_USERS / COLLECTOR
    written_off: np.ndarray  # bool


class _Blocks:
    """Collects one block per activity and concatenates them column by column."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, activity: Activity, mask: np.ndarray, second: np.ndarray, user: int, *,
            amount=np.nan, dunning_level=0, promised_day=NEVER, dispute=None, clearing=False,
            payment_block=BLOCK_NONE, written_off=False) -> None:
        idx = np.flatnonzero(mask)
        m = len(idx)

        def pick(value, dtype):
            if np.ndim(value) == 0:
                return np.full(m, value, dtype=dtype)
            return np.asarray(value)[idx].astype(dtype, copy=False)

        self.parts.append({
            "invoice": idx.astype(np.int64),
            "second": pick(second, np.int64),
            "activity": np.full(m, ACT[activity], dtype=np.int8),
            "amount": pick(amount, np.float64),
            "dunning_level": pick(dunning_level, np.int8),
            "promised_day": pick(promised_day, np.int64),
            "dispute": pick(-1 if dispute is None else dispute, np.int64),
            "clearing": pick(clearing, bool),
            "payment_block": pick(payment_block, np.int8),
            "user": pick(user, np.int8),
            "written_off": pick(written_off, bool),
        })

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def build_events(inv: Invoices, cust: Customers, paths: Paths, dunning_days: tuple[int, ...],
                 end_second: int, rng: np.random.Generator) -> EventArrays:
    """All events of all invoices before `end_second`, sorted by (customer, time, invoice,
    activity order). The draws here only shape the record (times of day, amounts, promises), never
    the payment path, which `paths` already fixed."""
    n = len(inv)
    lat = inv.latents
    c = inv.customer
    post, due, amount = inv.post_day, inv.due_day, inv.amount
    res, kind = paths.resolve_day, paths.kind
    paid, credited, lost = kind == PAID, kind == CREDITED, kind == WRITTEN_OFF

    # Draws, always whole arrays in a fixed order so the stream does not depend on the data.
    create_u = rng.random(n)
    create_sec = 13 * HOUR + rng.integers(0, 4 * HOUR, n)
    block_delay = rng.integers(60, 1800, n)
    resolve_sec = 9 * HOUR + rng.integers(0, 6 * HOUR, n)
    disputed_share = rng.uniform(0.3, 1.0, n)
    credit_u = rng.random(n)
    credit_share = rng.uniform(0.3, 0.95, n)
    partial_u = rng.random(n)
    partial_pos = rng.random(n)
    partial_share = rng.uniform(0.2, 0.8, n)
    partial_sec = 10 * HOUR + rng.integers(0, 5 * HOUR, n)
    pay_sec = 10 * HOUR + rng.integers(0, 5 * HOUR, n)
    clear_sec = 19 * HOUR + rng.integers(0, HOUR, n)
    write_off_sec = 16 * HOUR + rng.integers(0, HOUR, n)
    second_u = rng.random(n)
    second_gap = rng.integers(10, 26, n)
    contact_sec = 9 * HOUR + rng.integers(0, 8 * HOUR, (2, n))
    promise_delay = rng.integers(120, 1200, (2, n))
    promise_u = rng.random((2, n))
    promise_ratio = rng.random((2, n))
    promise_fallback = rng.integers(5, 22, (2, n))

    post_t = post * DAY + inv.post_second
    resolve_t = res * DAY + resolve_sec
    pay_t = np.maximum(paths.pay_day * DAY + pay_sec, post_t + 1800)  # same-day payers: after
    clear_t = paths.clear_day * DAY + clear_sec
    write_off_t = paths.write_off_day * DAY + write_off_sec
    credit_clear_t = resolve_t + 360
    terminal_t = np.where(paid, clear_t, np.where(credited, credit_clear_t, write_off_t))
    # Until when collectors and dunning chase the item: its payment, resolution or write-off.
    exit_t = np.where(paid, pay_t, np.where(credited, resolve_t, write_off_t))
    exit_day = np.where(paid, paths.pay_day, np.where(credited, res, paths.write_off_day))

    # Disputes: created between posting and resolution, the payment blocked meanwhile.
    disputed = paths.disputed
    create_day = previous_business_day(post + 1 + np.floor(create_u * (res - post - 1))
                                       .astype(np.int64))
    create_t = create_day * DAY + create_sec
    disputed_amount = np.round(amount * disputed_share, 2)
    partial_credit = disputed & ~paths.full_credit & (credit_u < PARTIAL_CREDIT_SHARE)
    credit_amount = np.where(paths.full_credit, amount,
                             np.where(partial_credit, np.round(disputed_amount * credit_share, 2),
                                      0.0))
    credit_t = resolve_t + 300
    dispute_no = np.full(n, -1, dtype=np.int64)
    order = np.argsort(np.where(disputed, create_t, np.iinfo(np.int64).max), kind="stable")
    dispute_no[order[: disputed.sum()]] = np.arange(disputed.sum())

    # Partial payments on undisputed items paid (or lost) in the end; defaulters pay part more
    # often.
    end_day = np.where(paid, paths.pay_day, paths.write_off_day)
    partial_day = next_business_day(post + 1 + np.floor(partial_pos * (end_day - post - 1))
                                    .astype(np.int64))
    partial = ((paid | lost) & ~disputed & ~paths.discount_taker
               & (partial_u < cust.p_partial[c] * np.where(paths.defaulted, 2.0, 1.0))
               & (end_day - post >= 2) & (partial_day < end_day))
    partial_t = partial_day * DAY + partial_sec
    partial_amount = np.where(partial, np.round(amount * partial_share, 2), 0.0)
    remaining = np.round(amount - partial_amount - credit_amount, 2)

    def open_amount_at(t: np.ndarray) -> np.ndarray:
        return np.round(amount - partial_amount * (partial & (partial_t <= t))
                        - credit_amount * (disputed & (credit_t <= t)), 2)

    # Contacts and promises: the first contact is part of the path; a second call follows for
    # some items still unpaid two to four weeks later.
    c1 = paths.contact_day
    has_c1 = c1 != NEVER
    c2 = next_business_day(c1 + second_gap)
    has_c2 = has_c1 & (second_u < SECOND_CONTACT_SHARE) & (c2 < exit_day)
    contact_days = (c1, c2)
    has_contact = (has_c1, has_c2)
    target_day = np.where(paid, paths.clear_day, np.where(credited, res, NEVER))
    honest_floor = 0.45 + 0.5 * lat.responsiveness  # responsive customers promise realistically
    promises = []
    for j in range(2):
        day = contact_days[j]
        has_p = has_contact[j] & (promise_u[j] < cust.p_promise[c])
        ratio = honest_floor + (1.25 - honest_floor) * promise_ratio[j]
        ahead = np.where(target_day != NEVER,
                         np.maximum(1, np.rint((target_day - day) * ratio)).astype(np.int64),
                         promise_fallback[j])
        promised = day + np.minimum(ahead, PROMISE_CAP_DAYS)
        contact_t = day * DAY + contact_sec[j]
        promises.append((has_p, promised, contact_t, contact_t + promise_delay[j]))

    b = _Blocks()
    b.add(Activity.INVOICE_POSTED, np.ones(n, bool), post_t, BILLING, amount=amount)
    due_passed_t = (due + 1) * DAY
    b.add(Activity.DUE_DATE_PASSED, terminal_t >= due_passed_t, due_passed_t, BATCH)

    run = np.full(n, NEVER)
    dunned = np.ones(n, bool)
    for level, days in enumerate(dunning_days, start=1):
        run = first_run_on_or_after(due + days) if level == 1 else np.maximum(
            first_run_on_or_after(due + days), run + 7)
        # No dunning while a dispute is open: the run after the resolution picks the item up.
        in_dispute = disputed & (create_day < run) & (run <= res)
        run = np.where(in_dispute, first_run_on_or_after(res + 1), run)
        run_t = run * DAY + 5 * HOUR
        dunned &= run_t < exit_t
        b.add(Activity.DUNNING_RUN, dunned, run_t, BATCH, dunning_level=level)

    for j, (has_p, promised, contact_t, created_t) in enumerate(promises):
        b.add(Activity.COLLECTION_CONTACT, has_contact[j], contact_t, COLLECTOR)
        b.add(Activity.PROMISE_TO_PAY_CREATED, has_p, created_t, COLLECTOR,
              amount=open_amount_at(created_t), promised_day=promised)
    (has_p1, promised1, _, _), (has_p2, promised2, _, created2) = promises
    broken1_t, broken2_t = (promised1 + 1) * DAY, (promised2 + 1) * DAY
    superseded = has_p2 & (created2 < broken1_t)
    b.add(Activity.PROMISE_TO_PAY_BROKEN, has_p1 & (terminal_t >= broken1_t) & ~superseded,
          broken1_t, BATCH, promised_day=promised1)
    b.add(Activity.PROMISE_TO_PAY_BROKEN, has_p2 & (terminal_t >= broken2_t), broken2_t, BATCH,
          promised_day=promised2)

    b.add(Activity.DISPUTE_CASE_CREATED, disputed, create_t, COLLECTOR, amount=disputed_amount,
          dispute=dispute_no)
    b.add(Activity.PAYMENT_BLOCK_SET, disputed, create_t + block_delay, COLLECTOR,
          dispute=dispute_no, payment_block=BLOCK_SET)
    b.add(Activity.DISPUTE_CASE_RESOLVED, disputed, resolve_t, COLLECTOR, dispute=dispute_no)
    b.add(Activity.PAYMENT_BLOCK_SET, disputed, resolve_t + 120, COLLECTOR, dispute=dispute_no,
          payment_block=BLOCK_LIFT)
    b.add(Activity.CREDIT_MEMO_POSTED, paths.full_credit | partial_credit, credit_t, BILLING,
          amount=credit_amount, dispute=dispute_no)

    b.add(Activity.INCOMING_PAYMENT_POSTED, partial, partial_t, BANK_IMPORT, amount=partial_amount)
    b.add(Activity.RESIDUAL_ITEM_CREATED, partial, partial_t, BANK_IMPORT,
          amount=np.round(amount - partial_amount, 2))
    b.add(Activity.INCOMING_PAYMENT_POSTED, paid, pay_t, BANK_IMPORT, amount=remaining)
    b.add(Activity.INVOICE_CLEARED, paid, clear_t, BATCH, amount=remaining, clearing=True)
    b.add(Activity.INVOICE_CLEARED, credited, credit_clear_t, BATCH, amount=amount, clearing=True)
    b.add(Activity.INVOICE_WRITTEN_OFF, lost, write_off_t, CREDIT_MGMT, amount=remaining,
          clearing=True, written_off=True)

    cols = b.concat()
    keep = cols["second"] < end_second
    cols = {k: v[keep] for k, v in cols.items()}
    order = np.lexsort((cols["activity"], cols["invoice"], cols["second"], c[cols["invoice"]]))
    return EventArrays(**{k: v[order] for k, v in cols.items()})
