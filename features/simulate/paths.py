"""Payment paths of simulated invoices: the business calendar, the latent timing model, the oracle.

Days are int64 counts since 1970-01-01 (a Thursday) so that every step is integer numpy arithmetic.
An invoice's path is fixed by latent parameters known at posting (`InvoiceLatents`) and a handful
of random draws (`draw_paths`): a discount taker pays within the discount window; otherwise the
customer means to pay on `due + round(D)` with D Gumbel(loc, scale) (right-skewed, as real delays
are); a dispute holds the payment until it is resolved (or a full credit memo clears the invoice
at resolution); a collector contact on an overdue invoice pulls the payment earlier by
`contact_effect_days * responsiveness`; a defaulting customer never pays and is written off, as is
a troubled customer's invoice still unpaid long after its due date. Payments and resolutions fall
on business days; clearing follows a payment after a short cash-application lag.

Lateness (clearing or write-off after the net due date) is decided before any overdue-only action
can act, so its probability has a closed form (`oracle_p_late`); the expected delay, which the
contacts and write-offs do change, is estimated by a seeded Monte Carlo over the same path model
(`oracle_monte_carlo`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEVER = np.int64(1) << 40  # a day far beyond any log window ("does not happen")

# Cash application: business days between an incoming payment and the clearing run.
CLEARING_LAGS = np.array([0, 1, 2, 3], dtype=np.int64)
CLEARING_LAG_P = np.array([0.65, 0.20, 0.10, 0.05])
# Dispute resolution, in days after posting: max(MIN, ceil(Weibull)), moved to a business day.
DISPUTE_SHAPE = 1.3
DISPUTE_SCALE_DAYS = 30.0
DISPUTE_MIN_DAYS = 3
FULL_CREDIT_SHARE = 0.3  # disputes settled by crediting the whole invoice
SETTLE_LAG_MAX_DAYS = 7  # a customer pays 1..7 days after its dispute is resolved
CONTACT_DAYS_OVERDUE = (3, 20)  # first collector contact, days after the due date (inclusive)
WRITE_OFF_DAYS_OVERDUE = (120, 300)  # when a hopeless item is written off (inclusive)
DISCOUNT_MIN_DAYS = 2  # a discount taker pays 2..discount_days days after posting


# --- business calendar ----------------------------------------------------------------------------
def weekday(day: np.ndarray) -> np.ndarray:
    """Monday = 0 ... Sunday = 6."""
    return (day + 3) % 7


def next_business_day(day: np.ndarray) -> np.ndarray:
    """The day itself on Monday-Friday, else the following Monday."""
    wd = weekday(day)
    return day + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))


def previous_business_day(day: np.ndarray) -> np.ndarray:
    """The day itself on Monday-Friday, else the preceding Friday."""
    wd = weekday(day)
    return day - np.where(wd == 5, 1, np.where(wd == 6, 2, 0))


def add_business_days(day: np.ndarray, n: np.ndarray, n_max: int = 3) -> np.ndarray:
    """`day` (a business day) plus n business days, n in 0..n_max."""
    for j in range(1, n_max + 1):
        day = np.where(n >= j, next_business_day(day + 1), day)
    return day


def first_weekday_on_or_after(day: np.ndarray, wd: int) -> np.ndarray:
    return day + (wd - weekday(day)) % 7


def _last_raw_day_before(x: np.ndarray) -> np.ndarray:
    """x' such that next_business_day(r) < x  <=>  r < x' (Monday loses the weekend before it)."""
    wd = weekday(x)
    return x - np.where(wd == 6, 1, np.where(wd == 0, 2, 0))


# --- latent parameters and paths ------------------------------------------------------------------
@dataclass(frozen=True)
class InvoiceLatents:
    """Everything the path model needs about each invoice, all known when it is posted."""

    post_day: np.ndarray  # int64
    due_day: np.ndarray  # int64
    loc: np.ndarray  # Gumbel location of the intended payment day, in days after the due date
    scale: np.ndarray  # Gumbel scale (days)
    p_discount: np.ndarray  # probability of paying within the cash-discount window
    discount_days: np.ndarray  # int64, discount window of the terms (0 when none)
    p_default: np.ndarray  # probability the customer never pays this invoice
    p_dispute: np.ndarray
    p_write_off: np.ndarray  # probability a very late item is written off rather than paid
    p_contact: np.ndarray  # probability a collector calls once it is overdue
    responsiveness: np.ndarray  # 0..1, share of the contact effect the customer delivers

    def __len__(self) -> int:
        return len(self.post_day)


# Terminal kinds of a path.
PAID, CREDITED, WRITTEN_OFF = 0, 1, 2


@dataclass(frozen=True)
class Paths:
    """One draw of every invoice's path (days are int64 day numbers; NEVER when not applicable)."""

    discount_taker: np.ndarray
    defaulted: np.ndarray
    disputed: np.ndarray
    full_credit: np.ndarray  # dispute settled by a credit memo for the whole invoice
    resolve_day: np.ndarray  # dispute resolution day (NEVER without dispute)
    contact_selected: np.ndarray  # the collector would call if the item were open then
    contact_day: np.ndarray  # first contact day (NEVER when no contact happened)
    intended_pay_day: np.ndarray  # payment day without the contact (NEVER for a default)
    pay_day: np.ndarray  # final incoming payment day (NEVER when the item is not paid)
    clear_day: np.ndarray  # clearing day after payment (NEVER when not paid)
    write_off_day: np.ndarray  # day a hopeless item is (or would be) written off
    kind: np.ndarray  # int8: PAID / CREDITED / WRITTEN_OFF
    terminal_day: np.ndarray  # day of the clearing or write-off


def _gumbel_cdf(x: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.exp(-np.exp(-(x - loc) / scale))


def _weibull_cdf(days: np.ndarray) -> np.ndarray:
    return -np.expm1(-np.power(np.maximum(days, 0.0) / DISPUTE_SCALE_DAYS, DISPUTE_SHAPE))


def _clearing_day(raw_pay_day: np.ndarray, post_day: np.ndarray, lag: np.ndarray) -> np.ndarray:
    return add_business_days(next_business_day(np.maximum(raw_pay_day, post_day)), lag)


def draw_paths(lat: InvoiceLatents, contact_effect_days: float, rng: np.random.Generator) -> Paths:
    """One random path per invoice. The draws are the same whatever the parameters' values, so two
    runs differing only in `contact_effect_days` share their randomness (a clean causal
    contrast)."""
    n = len(lat)
    post, due = lat.post_day, lat.due_day
    u_discount = rng.random(n)
    gumbel = rng.gumbel(0.0, 1.0, n)
    u_default = rng.random(n)
    u_dispute = rng.random(n)
    weibull = rng.weibull(DISPUTE_SHAPE, n) * DISPUTE_SCALE_DAYS
    u_full = rng.random(n)
    settle_lag = rng.integers(1, SETTLE_LAG_MAX_DAYS + 1, n)
    discount_offset = rng.integers(DISCOUNT_MIN_DAYS,
                                   np.maximum(lat.discount_days, DISCOUNT_MIN_DAYS) + 1)
    lag = CLEARING_LAGS[np.searchsorted(np.cumsum(CLEARING_LAG_P), rng.random(n), side="right")
                        .clip(max=len(CLEARING_LAGS) - 1)]
    u_contact = rng.random(n)
    contact_offset = rng.integers(CONTACT_DAYS_OVERDUE[0], CONTACT_DAYS_OVERDUE[1] + 1, n)
    write_off_offset = rng.integers(WRITE_OFF_DAYS_OVERDUE[0], WRITE_OFF_DAYS_OVERDUE[1] + 1, n)
    u_write_off = rng.random(n)

    discount = u_discount < lat.p_discount
    defaulted = (u_default < lat.p_default) & ~discount
    disputed = (u_dispute < lat.p_dispute) & ~discount
    full = disputed & (u_full < FULL_CREDIT_SHARE)
    held = disputed & ~full  # payment waits for the resolution
    resolve = np.where(disputed, next_business_day(
        post + np.maximum(DISPUTE_MIN_DAYS, np.ceil(weibull).astype(np.int64))), NEVER)
    settle = resolve + settle_lag  # earliest payment after a resolution

    base = due + np.floor(lat.loc + lat.scale * gumbel + 0.5).astype(np.int64)
    raw0 = np.where(held, np.maximum(base, settle), base)
    pay0 = np.where(discount, next_business_day(post + discount_offset),
                    next_business_day(np.maximum(raw0, post)))
    pay0 = np.where(defaulted & ~full, NEVER, pay0)
    # The day the item would leave the ledger without a contact: a contact needs it still open.
    write_off_day = next_business_day(np.maximum(due + write_off_offset,
                                                 np.where(held, settle, 0)))
    action0 = np.where(full, resolve, np.where(defaulted, write_off_day, pay0))
    first_contact = next_business_day(due + contact_offset)
    selected = u_contact < lat.p_contact
    contacted = selected & (action0 > first_contact)

    effect = np.rint(contact_effect_days * lat.responsiveness).astype(np.int64)
    base1 = np.where(contacted, np.maximum(base - effect, first_contact + 1), base)
    raw1 = np.where(held, np.maximum(base1, settle), base1)
    pay1 = np.where(discount, pay0, next_business_day(np.maximum(raw1, post)))
    clear = add_business_days(pay1, lag)

    hopeless = ~full & (defaulted | ((u_write_off < lat.p_write_off) & (pay1 > write_off_day)))
    kind = np.where(full, CREDITED, np.where(hopeless, WRITTEN_OFF, PAID)).astype(np.int8)
    paid = kind == PAID
    pay_day = np.where(paid, pay1, NEVER)
    clear_day = np.where(paid, clear, NEVER)
    terminal = np.where(paid, clear, np.where(kind == CREDITED, resolve, write_off_day))
    return Paths(
        discount_taker=discount, defaulted=defaulted, disputed=disputed, full_credit=full,
        resolve_day=resolve, contact_selected=selected,
        contact_day=np.where(contacted, first_contact, NEVER),
        intended_pay_day=pay0, pay_day=pay_day, clear_day=clear_day, write_off_day=write_off_day,
        kind=kind, terminal_day=terminal,
    )


# --- oracle ---------------------------------------------------------------------------------------
def _p_resolved_before(x: np.ndarray, post: np.ndarray) -> np.ndarray:
    """P(resolution day < x): the resolution is next_business_day(post + max(MIN, ceil(W)))."""
    y = (_last_raw_day_before(x) - post - 1).astype(np.float64)
    return np.where(y >= DISPUTE_MIN_DAYS, _weibull_cdf(y), 0.0)


def oracle_p_late(lat: InvoiceLatents) -> np.ndarray:
    """Exact probability, under the path model, that the invoice is cleared or written off after
    its net due date.

    Contacts and write-offs only touch items already overdue, so lateness depends on the intended
    payment day, the dispute and the clearing lag alone. For each lag, k* is the smallest delay
    (payment day - due date, before weekend and posting adjustments) whose clearing falls after
    the due date; the payment is on time iff round(D) < k*, i.e. D < k* - 0.5. Days before the
    posting day are clipped to it, so k* only has to be searched in a short range.
    """
    post, due = lat.post_day, lat.due_day
    on_time_plain = np.zeros(len(lat))
    on_time_held = np.zeros(len(lat))
    for lag_days, p_lag in zip(CLEARING_LAGS, CLEARING_LAG_P):
        lag = np.full(len(lat), lag_days)
        k_star = np.ones(len(lat), dtype=np.int64)  # due + 1 is always late
        for k in range(0, -9, -1):  # clearing day is non-decreasing in k: keep the smallest late k
            late_k = _clearing_day(due + k, post, lag) > due
            k_star = np.where(late_k, k, k_star)
        # Paying on the posting day (any earlier wish is clipped to it) and still clearing after
        # the due date, as "payable immediately" with a clearing lag does: never on time.
        always_late = _clearing_day(post, post, lag) > due
        p_pay_on_time = np.where(always_late, 0.0, _gumbel_cdf(k_star - 0.5, lat.loc, lat.scale))
        p_settled_on_time = np.mean(
            [_p_resolved_before(due + k_star - s, post) for s in range(1, SETTLE_LAG_MAX_DAYS + 1)],
            axis=0)
        on_time_plain += p_lag * p_pay_on_time
        on_time_held += p_lag * p_pay_on_time * p_settled_on_time
    late_plain = lat.p_default + (1 - lat.p_default) * (1 - on_time_plain)
    late_held = lat.p_default + (1 - lat.p_default) * (1 - on_time_held)
    late_full = 1 - _p_resolved_before(due + 1, post)
    late_disputed = FULL_CREDIT_SHARE * late_full + (1 - FULL_CREDIT_SHARE) * late_held
    late = (1 - lat.p_dispute) * late_plain + lat.p_dispute * late_disputed
    return (1 - lat.p_discount) * late


def oracle_monte_carlo(lat: InvoiceLatents, contact_effect_days: float, n_draws: int,
                       seed: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """(share late, mean days from due date to clearing or write-off) over `n_draws` fresh paths
    of every invoice; the realised path is not one of them."""
    late = np.zeros(len(lat))
    delay = np.zeros(len(lat))
    for child in seed.spawn(n_draws):
        paths = draw_paths(lat, contact_effect_days, np.random.default_rng(child))
        days = paths.terminal_day - lat.due_day
        late += days > 0
        delay += days
    return late / n_draws, delay / n_draws
