"""Simulated worlds with an injected change: the drift the monitor must catch.

`simulate_shifted(config, seed, shift)` is `simulate_ledger` with one change applied to the
invoices posted from `shift.start` on, before their payment paths are drawn, so everything after
it (payments, dunning, disputes, the oracle) follows the changed world consistently:

- `Shift("segment_late", segment, start, days)`: the segment's customers pay `days` later than
  their habit (the Gumbel location of the intended payment day moves; write-offs follow it).
- `Shift("terms_change", segment, start, terms="0001")`: the segment is billed on other payment
  terms (due date, cash discount and the terms' own delay shift all change).

The simulator itself is untouched: this module composes its steps (world, master, invoices,
paths, events) and edits the drawn invoices in between. With `shift=None` (or a start after the
window) the ledger is identical to `simulate_ledger(config, seed)`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from features.config.simulator import SimulatorConfig
from features.simulate import ledger as _sim
from features.simulate.events import DAY, build_events
from features.simulate.paths import draw_paths, oracle_monte_carlo, oracle_p_late
from features.simulate.world import (ARCHETYPES, SEGMENTS, TERMS, TERMS_DELAY_SHIFT, Invoices,
                                     _due_days, draw_customers, draw_invoices, draw_master)
from features import schema


@dataclass(frozen=True)
class Shift:
    kind: Literal["segment_late", "terms_change"]
    segment: str
    start: str  # first posting date of the changed world (YYYY-MM-DD)
    days: float = 20.0  # segment_late: extra days of delay
    terms: str = "0001"  # terms_change: the new payment terms key

    def describe(self) -> str:
        if self.kind == "segment_late":
            return f"segment {self.segment} pays {self.days:g} days later from {self.start}"
        return f"segment {self.segment} billed on terms {self.terms} from {self.start}"


def apply_shift(inv: Invoices, segment_of_customer: np.ndarray, shift: Shift) -> Invoices:
    """The invoices with `shift` applied to those of its segment posted on or after its start."""
    if shift.segment not in SEGMENTS:
        raise ValueError(f"unknown segment {shift.segment!r}; one of {SEGMENTS}")
    start = int(np.datetime64(pd.Timestamp(shift.start).date(), "D").astype(np.int64))
    hit = (segment_of_customer[inv.customer] == SEGMENTS.index(shift.segment)) & (
        inv.post_day >= start)
    lat = inv.latents
    if shift.kind == "segment_late":
        loc = np.where(hit, lat.loc + shift.days, lat.loc)
        p_write_off = np.where(hit, np.clip((loc - 15.0) / 60.0, 0.0, 0.8), lat.p_write_off)
        return replace(inv, latents=replace(lat, loc=loc, p_write_off=p_write_off))
    if shift.kind == "terms_change":
        if shift.terms not in TERMS:
            raise ValueError(f"unknown payment terms {shift.terms!r}; one of {TERMS}")
        new = TERMS.index(shift.terms)
        terms = np.where(hit, new, inv.terms)
        due = _due_days(inv.post_day, terms)
        delay = np.array([TERMS_DELAY_SHIFT[t] for t in TERMS])
        loc = lat.loc + np.where(hit, delay[new] - delay[inv.terms], 0.0)
        disc_of = np.array([schema.PAYMENT_TERMS[t].discount_days for t in TERMS])
        discount_days = disc_of[terms]
        p_discount = np.where(hit & (discount_days == 0), 0.0, lat.p_discount)
        return replace(inv, terms=terms, due_day=due, latents=replace(
            lat, due_day=due, loc=loc, discount_days=discount_days, p_discount=p_discount))
    raise ValueError(f"unknown shift kind {shift.kind!r}")


def simulate_shifted(config: SimulatorConfig, seed: int, shift: Shift | None) -> _sim.Ledger:
    """`simulate_ledger(config, seed)` with `shift` injected (module doc)."""
    _sim._check(config)
    start_day, end_day = _sim._window(config)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    oracle_seed = np.random.SeedSequence([seed, 0x0AC1E])
    cust = draw_customers(config.n_customers, len(config.company_codes), config.n_collectors,
                          start_day, end_day, streams[0])
    versions = draw_master(cust, start_day, end_day, streams[1])
    inv = draw_invoices(config.n_invoices, cust, len(config.company_codes), config.contact_rate,
                        start_day, end_day, streams[2])
    if shift is not None:
        inv = apply_shift(inv, cust.segment, shift)
    paths = draw_paths(inv.latents, config.contact_effect_days, streams[3])
    end_second = end_day * DAY + _sim.EXTRACT_SECOND
    ev = build_events(inv, cust, paths, tuple(config.dunning_days), end_second, streams[4])
    p_late = oracle_p_late(inv.latents)
    _, expected_delay = oracle_monte_carlo(inv.latents, config.contact_effect_days,
                                           config.oracle_mc_draws, oracle_seed)
    last_refresh = pd.Timestamp(np.datetime64(end_second, "s")).as_unit("us")
    customer_ids = _sim._ids(np.arange(len(cust)) + _sim.CUSTOMER_NUMBER_BASE, 10)
    invoice_ids = _sim._ids(np.arange(len(inv)) + _sim.INVOICE_NUMBER_BASE, 10)
    return _sim.Ledger(
        events=_sim._event_frame(ev, inv, cust, versions, config, customer_ids, invoice_ids,
                                 last_refresh),
        master=_sim._master_frame(versions, cust, config, customer_ids),
        truth=pd.DataFrame({
            "invoice_id": _sim._str(invoice_ids),
            "customer_id": _sim._str(customer_ids.take(pa.array(inv.customer))),
            "archetype": _sim._str(pa.array(ARCHETYPES).take(
                pa.array(cust.archetype[inv.customer]))),
            "oracle_p_late": p_late,
            "oracle_expected_delay_days": expected_delay,
        }),
        customers=_sim._customer_frame(cust, config, customer_ids),
        last_refresh=last_refresh,
    )


__all__ = ["Shift", "apply_shift", "simulate_shifted"]
