"""The simulated world behind a ledger: customers with latent payment habits, their master-data
history, and the invoices they receive with each invoice's latent payment parameters.

Customers belong to one of four archetypes (habitual on-time payers, chronic late payers, drifters
who deteriorate from a hidden start date, seasonal payers who are late in some months); segment,
size, amounts, payment terms, company code, collector, risk category and credit limit follow from
the segment and, imperfectly, from the behaviour. Everything is drawn as whole arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features import schema
from features.simulate.paths import (NEVER, InvoiceLatents, first_weekday_on_or_after,
                                     next_business_day, previous_business_day)

ARCHETYPES: tuple[str, ...] = ("on_time", "chronic_late", "drifter", "seasonal")
ON_TIME, CHRONIC, DRIFTER, SEASONAL = range(4)

SEGMENTS = schema.SEGMENTS  # key_account, mid_market, sme, public_sector, intercompany
SEGMENT_SHARE = np.array([0.08, 0.24, 0.46, 0.12, 0.10])
# Archetype mix per segment (rows follow SEGMENTS): public bodies pay slowly and at year-end,
# small firms drift into trouble more often, group companies mostly pay on time.
ARCHETYPE_BY_SEGMENT = np.array([
    [0.56, 0.12, 0.12, 0.20],
    [0.50, 0.18, 0.16, 0.16],
    [0.44, 0.22, 0.20, 0.14],
    [0.32, 0.38, 0.05, 0.25],
    [0.78, 0.14, 0.04, 0.04],
])
SEGMENT_POSTING_RATE = np.array([5.0, 2.0, 1.0, 1.5, 3.0])  # relative invoices per customer
SEGMENT_AMOUNT = np.array([25_000.0, 7_000.0, 1_500.0, 6_000.0, 40_000.0])  # median invoice
SEGMENT_CREDIT_LIMIT = np.array([500_000.0, 120_000.0, 20_000.0, 250_000.0, 1_000_000.0])
RISK_SHARE = np.array([0.22, 0.28, 0.25, 0.15, 0.10])  # A01 .. E05
RISK_LIMIT_FACTOR = np.array([1.3, 1.1, 1.0, 0.7, 0.4])

TERMS: tuple[str, ...] = tuple(schema.PAYMENT_TERMS)  # 0001 NT15 NT30 NT45 NT60 ZD60 Z210 Z315
TERMS_BY_SEGMENT = np.array([
    [0.00, 0.00, 0.15, 0.25, 0.20, 0.15, 0.10, 0.15],
    [0.00, 0.05, 0.40, 0.15, 0.05, 0.05, 0.25, 0.05],
    [0.08, 0.20, 0.45, 0.05, 0.00, 0.00, 0.22, 0.00],
    [0.00, 0.00, 0.40, 0.30, 0.30, 0.00, 0.00, 0.00],
    [0.00, 0.00, 0.50, 0.00, 0.30, 0.20, 0.00, 0.00],
])
# Days added to the intended delay by the terms: "payable immediately" is rarely honoured the
# same day, long terms leave customers fewer excuses.
TERMS_DELAY_SHIFT = {"0001": 5.0, "NT15": 2.0, "NT30": 0.0, "NT45": -1.0, "NT60": -2.0,
                     "ZD60": -3.0, "Z210": 0.0, "Z315": 0.0}
OTHER_TERMS_SHARE = 0.10  # invoices billed on terms other than the customer's default
OTHER_COMPANY_SHARE = 0.15  # invoices booked outside the customer's home company code

# Latent delay per archetype (Gumbel location in days after due, its scale, responsiveness Beta).
MU_LOC = np.array([-6.5, 7.0, -5.0, -5.0])
MU_SD = np.array([2.5, 8.0, 2.5, 2.5])
SIGMA_MEDIAN = np.array([2.0, 9.0, 2.5, 2.5])
RESP_BETA = np.array([[3.0, 2.0], [1.5, 3.0], [2.0, 2.0], [3.0, 2.0]])
DISPUTE_FACTOR = np.array([0.8, 1.5, 1.2, 1.0])
PARTIAL_BASE = np.array([0.02, 0.10, 0.06, 0.03])
DISCOUNT_TAKE = np.array([0.70, 0.10, 0.50, 0.50])
AMOUNT_DELAY_DAYS = 2.0  # extra days per unit of log(amount / the customer's usual amount)
SEASONS = ((10, 11, 0), (6, 7))  # month indices 0..11: year-end (Nov-Jan) or summer (Jul-Aug)
DRIFT_CAP_DAYS = 120.0


@dataclass(frozen=True)
class Customers:
    """Latent and master attributes of every customer, as arrays indexed by customer number."""

    archetype: np.ndarray  # int8 index into ARCHETYPES
    segment: np.ndarray  # int8 index into SEGMENTS
    home_company: np.ndarray  # int index into config.company_codes
    collector: np.ndarray  # int index, 0..n_collectors-1
    terms: np.ndarray  # int index into TERMS (default terms)
    mu: np.ndarray  # latent location of the delay (days after due)
    sigma: np.ndarray  # latent spread (Gumbel scale)
    responsiveness: np.ndarray
    p_dispute: np.ndarray
    p_partial: np.ndarray
    p_discount: np.ndarray
    p_promise: np.ndarray
    drift_start: np.ndarray  # day the deterioration starts (NEVER if none)
    drift_per_month: np.ndarray
    season_mask: np.ndarray  # bool (n, 12): months (of the due date) in which it pays late
    season_bump: np.ndarray
    amount_scale: np.ndarray
    posting_weight: np.ndarray
    since_day: np.ndarray  # first master-data version
    risk: np.ndarray  # initial risk category index
    credit_limit: np.ndarray  # initial credit limit

    def __len__(self) -> int:
        return len(self.archetype)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) probability table."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    return (u >= cum).sum(axis=1).clip(max=probs.shape[1] - 1)


def draw_customers(n: int, n_companies: int, n_collectors: int, start_day: int, end_day: int,
                   rng: np.random.Generator) -> Customers:
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE)
    archetype = _categorical(rng, ARCHETYPE_BY_SEGMENT[segment])
    mu = np.clip(MU_LOC[archetype] + MU_SD[archetype] * rng.standard_normal(n), -15.0, 45.0)
    sigma = SIGMA_MEDIAN[archetype] * rng.lognormal(0.0, 0.3, n)
    a, b = RESP_BETA[archetype].T
    responsiveness = rng.beta(a, b)
    disputatious = rng.random(n) < 0.08
    p_dispute = np.minimum(rng.beta(1.0, 30.0, n) * DISPUTE_FACTOR[archetype]
                           * np.where(disputatious, 4.0, 1.0), 0.5)
    p_partial = PARTIAL_BASE[archetype] * rng.uniform(0.5, 1.5, n)
    p_discount = np.clip(DISCOUNT_TAKE[archetype] * rng.uniform(0.6, 1.2, n), 0.0, 0.9)
    p_promise = 0.35 + 0.5 * responsiveness

    window = end_day - start_day
    drift_start = start_day + rng.integers(90, max(91, int(0.65 * window)), n)
    drift_rate = rng.uniform(1.5, 5.0, n)
    drifter = archetype == DRIFTER
    season_kind = (rng.random(n) < 0.4).astype(int)  # 0 year-end, 1 summer
    season_bump = rng.uniform(12.0, 30.0, n)
    season_mask = np.zeros((n, 12), dtype=bool)
    for kind, months in enumerate(SEASONS):
        for month in months:
            season_mask[:, month] |= (archetype == SEASONAL) & (season_kind == kind)

    posting_weight = SEGMENT_POSTING_RATE[segment] * rng.lognormal(0.0, 0.8, n)
    amount_scale = SEGMENT_AMOUNT[segment] * rng.lognormal(0.0, 0.5, n)
    terms = _categorical(rng, TERMS_BY_SEGMENT[segment])
    company_weights = 1.0 / np.arange(1, n_companies + 1)
    home_company = rng.choice(n_companies, size=n, p=company_weights / company_weights.sum())
    collector = rng.integers(0, n_collectors, n)
    since_day = start_day - rng.integers(30, 3650, n)

    # Risk category: the credit department's view of the customer, a noisy read of its habits.
    expected_delay = mu + 0.58 * sigma + season_mask.sum(axis=1) * season_bump / 12.0
    score = expected_delay + rng.normal(0.0, 6.0, n)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(score, kind="stable")] = np.arange(n)
    risk = np.searchsorted(np.cumsum(RISK_SHARE) * n, rank, side="right").clip(max=4)
    credit_limit = _round_limit(SEGMENT_CREDIT_LIMIT[segment] * np.sqrt(posting_weight
                                / SEGMENT_POSTING_RATE[segment]) * RISK_LIMIT_FACTOR[risk])
    return Customers(
        archetype=archetype.astype(np.int8), segment=segment.astype(np.int8),
        home_company=home_company, collector=collector, terms=terms, mu=mu, sigma=sigma,
        responsiveness=responsiveness, p_dispute=p_dispute, p_partial=p_partial,
        p_discount=p_discount, p_promise=p_promise,
        drift_start=np.where(drifter, drift_start, NEVER),
        drift_per_month=np.where(drifter, drift_rate, 0.0),
        season_mask=season_mask, season_bump=np.where(archetype == SEASONAL, season_bump, 0.0),
        amount_scale=amount_scale, posting_weight=posting_weight, since_day=since_day,
        risk=risk, credit_limit=credit_limit,
    )


def _round_limit(limit: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(limit, -3), 5_000.0)


@dataclass(frozen=True)
class MasterVersions:
    """Customer master history, one entry per version, sorted by (customer, valid_from day)."""

    customer: np.ndarray
    valid_from_day: np.ndarray
    risk: np.ndarray
    credit_limit: np.ndarray


def draw_master(cust: Customers, start_day: int, end_day: int,
                rng: np.random.Generator) -> MasterVersions:
    """Initial versions, then drifters' downgrades (risk raised, limit cut once the deterioration
    shows) and ordinary credit reviews of the others."""
    n = len(cust)
    ids = np.arange(n)
    drifter = cust.archetype == DRIFTER
    first_cut = cust.drift_start + rng.integers(45, 150, n)
    risk1 = np.minimum(cust.risk + 1 + (rng.random(n) < 0.4), 4)
    limit1 = _round_limit(cust.credit_limit * rng.uniform(0.4, 0.7, n))
    second_cut = first_cut + rng.integers(90, 220, n)
    has_second = rng.random(n) < 0.6
    risk2 = np.minimum(risk1 + 1, 4)
    limit2 = _round_limit(limit1 * rng.uniform(0.5, 0.8, n))

    review_day = start_day + rng.integers(30, max(31, end_day - start_day), n)
    reviewed = ~drifter & (rng.random(n) < 0.3)
    u_move = rng.random(n)
    worse = cust.archetype == CHRONIC
    step = np.where(worse, (u_move < 0.3).astype(int), -(u_move < 0.2).astype(int))
    risk_review = np.clip(cust.risk + step, 0, 4)
    limit_review = _round_limit(cust.credit_limit * np.where(worse, rng.uniform(0.7, 1.0, n),
                                                             rng.uniform(1.0, 1.4, n)))

    parts = [
        (np.ones(n, bool), cust.since_day, cust.risk, cust.credit_limit),
        (drifter & (first_cut < end_day), first_cut, risk1, limit1),
        (drifter & has_second & (second_cut < end_day), second_cut, risk2, limit2),
        (reviewed, review_day, risk_review, limit_review),
    ]
    customer = np.concatenate([ids[m] for m, *_ in parts])
    day = np.concatenate([d[m] for m, d, *_ in parts])
    risk = np.concatenate([r[m] for m, _, r, _ in parts])
    limit = np.concatenate([lim[m] for m, *_, lim in parts])
    order = np.lexsort((day, customer))
    return MasterVersions(customer[order], day[order], risk[order].astype(np.int8), limit[order])


@dataclass(frozen=True)
class Invoices:
    """Invoices in posting order (invoice number order), with their latent payment parameters."""

    customer: np.ndarray
    post_day: np.ndarray
    post_second: np.ndarray  # seconds after midnight
    due_day: np.ndarray
    terms: np.ndarray  # index into TERMS
    company: np.ndarray  # index into config.company_codes
    amount: np.ndarray
    latents: InvoiceLatents

    def __len__(self) -> int:
        return len(self.customer)


def _due_days(post_day: np.ndarray, terms: np.ndarray) -> np.ndarray:
    net = np.array([schema.PAYMENT_TERMS[t].net_days for t in TERMS])[terms]
    due = post_day + net
    # "60 days end of month": the last day of the month in which posting + 60 days falls.
    eom = TERMS.index("ZD60")
    month = (post_day + net).astype("datetime64[D]").astype("datetime64[M]")
    month_end = ((month + 1).astype("datetime64[D]") - 1).astype(np.int64)
    return np.where(terms == eom, month_end, due)


def draw_invoices(n: int, cust: Customers, n_companies: int, contact_rate: float,
                  start_day: int, end_day: int, rng: np.random.Generator) -> Invoices:
    weights = np.cumsum(cust.posting_weight)
    customer = np.searchsorted(weights, rng.random(n) * weights[-1], side="right")
    customer = customer.clip(max=len(cust) - 1)
    raw_day = start_day + rng.integers(0, end_day - start_day, n)
    post_day = next_business_day(raw_day)
    post_day = np.where(post_day >= end_day, previous_business_day(raw_day), post_day)
    order = np.argsort(post_day, kind="stable")  # invoice numbers follow posting order
    customer, post_day = customer[order], post_day[order]
    post_second = 8 * 3600 + rng.integers(0, 4 * 3600, n)

    terms = np.where(rng.random(n) < OTHER_TERMS_SHARE, rng.integers(0, len(TERMS), n),
                     cust.terms[customer])
    company = np.where(rng.random(n) < OTHER_COMPANY_SHARE, rng.integers(0, n_companies, n),
                       cust.home_company[customer])
    relative_size = rng.normal(0.0, 1.0, n)  # log(amount / the customer's usual amount)
    amount = np.maximum(np.round(cust.amount_scale[customer] * np.exp(relative_size), 2), 10.0)
    due_day = _due_days(post_day, terms)

    # Latent location of the payment: the customer's habit, drift since its hidden start, the
    # season of the due date, the terms and the size of the bill.
    c = customer
    drift = np.minimum(np.maximum(post_day - cust.drift_start[c], 0) / 30.44
                       * cust.drift_per_month[c], DRIFT_CAP_DAYS)
    due_month = (due_day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)) % 12
    in_season = cust.season_mask[c, due_month]
    terms_shift = np.array([TERMS_DELAY_SHIFT[t] for t in TERMS])[terms]
    loc = (cust.mu[c] + drift + np.where(in_season, cust.season_bump[c], 0.0) + terms_shift
           + AMOUNT_DELAY_DAYS * np.clip(relative_size, -2.0, 3.0))
    scale = cust.sigma[c] * (1.0 + 0.015 * drift) * np.where(in_season, 1.3, 1.0)

    troubled = np.isin(cust.archetype[c], (CHRONIC, DRIFTER))
    p_default = np.where(troubled, np.clip(0.004 + 0.004 * np.maximum(loc - 10.0, 0.0), 0, 0.3),
                         0.001)
    p_write_off = np.clip((loc - 15.0) / 60.0, 0.0, 0.8)
    discount_days = np.array([schema.PAYMENT_TERMS[t].discount_days for t in TERMS])[terms]
    p_discount = np.where(discount_days > 0, cust.p_discount[c], 0.0)
    p_dispute = np.minimum(cust.p_dispute[c] * np.clip(np.exp(0.3 * relative_size), 0.5, 2.0),
                           0.6)
    # Collectors call about large items more often (mean factor 1 keeps the configured rate).
    rank = np.empty(n)
    rank[np.argsort(amount, kind="stable")] = np.arange(n) / max(n - 1, 1)
    p_contact = np.minimum(contact_rate * (0.6 + 0.8 * rank), 1.0)
    latents = InvoiceLatents(
        post_day=post_day, due_day=due_day, loc=loc, scale=scale, p_discount=p_discount,
        discount_days=discount_days, p_default=p_default, p_dispute=p_dispute,
        p_write_off=p_write_off, p_contact=p_contact, responsiveness=cust.responsiveness[c],
    )
    return Invoices(customer=customer, post_day=post_day, post_second=post_second, due_day=due_day,
                    terms=terms, company=company, amount=amount, latents=latents)


DUNNING_WEEKDAY = 0  # the weekly dunning run is on Mondays


def first_run_on_or_after(day: np.ndarray) -> np.ndarray:
    return first_weekday_on_or_after(day, DUNNING_WEEKDAY)
