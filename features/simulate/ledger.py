"""Seeded, vectorised receivables simulator: a canonical event log, its customer master history and
the latent truth behind it (the oracle every model can be judged against).

`simulate_ledger(config, seed)` draws a world of customers with latent payment habits
(`simulate_world`), one payment path per invoice (`simulate_paths`), turns the paths into the
fourteen activities' events (`simulate_events`), and returns a `Ledger`:

- `events`: the event log (schema.EVENT_COLUMN_NAMES), sorted by customer, time, invoice and
  `ACTIVITY_ORDER`; `last_refresh` (02:00 on the day `config.months` after `config.start`) ends
  the window on every row, and invoices whose outcome falls after it are still open (censored).
- `master`: customer master versions (schema.MASTER_COLUMN_NAMES) with validity intervals;
  every event carries the risk category and credit limit of the version in force at its time.
- `truth`: per invoice, `oracle_p_late` (exact probability, under the latent model at posting, of
  clearing or write-off after the net due date) and `oracle_expected_delay_days` (expected days
  from the net due date to clearing or write-off, negative when early, by a seeded Monte Carlo of
  `config.oracle_mc_draws` fresh paths), with the customer's archetype.
- `customers`: the latent customer table (archetype, habits, drift, season, responsiveness...).

Record details beyond the shared conventions: `invoice_cleared.amount` is the amount the clearing
document settled (the final payment, or the credit memo of a fully credited dispute); a payment
block is set with key "D" and lifted with ""; `promise_to_pay_broken` repeats the promised date;
`recorded_time` equals `event_time`; a collector contact is made only on an overdue item and
before its payment; `contact_rate` is the chance an overdue item is picked for a call (larger
items more often), the call happening 3-20 days after the due date if the item is still open.

Same config and seed give identical frames; every draw comes from generators spawned from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features import schema
from features.config.simulator import SimulatorConfig
from features.ingest.ledger_files import write_ledger_dir
from features.simulate.events import (ACTIVITY_ORDER, COLLECTOR, DAY, PAYMENT_BLOCK_KEYS,
                                      SYSTEM_USERS, EventArrays, build_events)
from features.simulate.paths import NEVER, draw_paths, oracle_monte_carlo, oracle_p_late
from features.simulate.world import (ARCHETYPES, SEGMENTS, TERMS, Customers, Invoices,
                                     MasterVersions, draw_customers, draw_invoices, draw_master)

SOURCE_SYSTEM = "SIMULATOR"
INVOICE_NUMBER_BASE = 1_900_000_000  # BELNR-like 10-digit invoice numbers
CUSTOMER_NUMBER_BASE = 100_000  # KUNNR, zero-padded to 10 digits
DISPUTE_NUMBER_BASE = 4_000_000_000
CLEARING_NUMBER_BASE = 1_400_000_000
# The extract runs at 02:00 on the day after the window: after the midnight calculated events and
# before any business event, so "before" and "at or before" last_refresh select the same events.
EXTRACT_SECOND = 2 * 3600
__all__ = ["ACTIVITY_ORDER", "Ledger", "simulate_ledger", "write_ledger", "read_ledger"]


@dataclass(frozen=True, eq=False)
class Ledger:
    events: pd.DataFrame
    master: pd.DataFrame
    truth: pd.DataFrame
    customers: pd.DataFrame
    last_refresh: pd.Timestamp = field(default=pd.NaT)


def _window(config: SimulatorConfig) -> tuple[int, int]:
    try:
        start = np.datetime64(pd.Timestamp(config.start).date(), "D")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"simulator.start: {config.start!r} is not a date (YYYY-MM-DD)") from exc
    end = (start.astype("datetime64[M]") + config.months).astype("datetime64[D]") + (
        start - start.astype("datetime64[M]").astype("datetime64[D]"))
    return int(start.astype(np.int64)), int(end.astype(np.int64))


def _check(config: SimulatorConfig) -> None:
    if not config.company_codes:
        raise ValueError("simulator.company_codes: at least one company code is needed")
    if len(set(config.company_codes)) != len(config.company_codes):
        raise ValueError(f"simulator.company_codes: duplicates in {config.company_codes}")
    days = tuple(config.dunning_days)
    if len(days) != 4 or any(d < 1 for d in days) or list(days) != sorted(set(days)):
        raise ValueError(
            f"simulator.dunning_days: need 4 increasing positive day counts, got {days}")


def simulate_ledger(config: SimulatorConfig, seed: int) -> Ledger:
    """Simulate `config.n_invoices` invoices of `config.n_customers` customers over
    `config.months` months from `config.start`, reproducibly from `seed`."""
    _check(config)
    start_day, end_day = _window(config)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    oracle_seed = np.random.SeedSequence([seed, 0x0AC1E])
    n_companies = len(config.company_codes)

    cust = draw_customers(config.n_customers, n_companies, config.n_collectors, start_day,
                          end_day, streams[0])
    versions = draw_master(cust, start_day, end_day, streams[1])
    inv = draw_invoices(config.n_invoices, cust, n_companies, config.contact_rate, start_day,
                        end_day, streams[2])
    paths = draw_paths(inv.latents, config.contact_effect_days, streams[3])
    end_second = end_day * DAY + EXTRACT_SECOND
    ev = build_events(inv, cust, paths, tuple(config.dunning_days), end_second, streams[4])

    p_late = oracle_p_late(inv.latents)
    _, expected_delay = oracle_monte_carlo(inv.latents, config.contact_effect_days,
                                           config.oracle_mc_draws, oracle_seed)
    last_refresh = pd.Timestamp(np.datetime64(end_second, "s")).as_unit("us")
    customer_ids = _ids(np.arange(len(cust)) + CUSTOMER_NUMBER_BASE, 10)
    invoice_ids = _ids(np.arange(len(inv)) + INVOICE_NUMBER_BASE, 10)
    return Ledger(
        events=_event_frame(ev, inv, cust, versions, config, customer_ids, invoice_ids,
                            last_refresh),
        master=_master_frame(versions, cust, config, customer_ids),
        truth=pd.DataFrame({
            "invoice_id": _str(invoice_ids),
            "customer_id": _str(customer_ids.take(pa.array(inv.customer))),
            "archetype": _str(pa.array(ARCHETYPES).take(pa.array(cust.archetype[inv.customer]))),
            "oracle_p_late": p_late,
            "oracle_expected_delay_days": expected_delay,
        }),
        customers=_customer_frame(cust, config, customer_ids),
        last_refresh=last_refresh,
    )


# --- frames ---------------------------------------------------------------------------------------
def _ids(numbers: np.ndarray, width: int) -> pa.Array:
    if len(numbers) == 0:
        return pa.array([], type=pa.string())
    return pa.array(np.char.zfill(numbers.astype(str), width))


def _str(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(values, dtype="str")


def _take(table: list | tuple | pa.Array, index: np.ndarray) -> pd.Series:
    """Strings by index into a small table; -1 gives a missing value."""
    table = table if isinstance(table, pa.Array) else pa.array(list(table), type=pa.string())
    table = pa.concat_arrays([table, pa.nulls(1, pa.string())])
    index = np.where(index < 0, len(table) - 1, index)
    return _str(table.take(pa.array(index)))


def _datetime(seconds: np.ndarray) -> pd.Series:
    micros = np.where(seconds >= NEVER * DAY, np.iinfo(np.int64).min, seconds * 1_000_000)
    return pd.Series(micros.view("datetime64[us]"))


def _as_of(versions: MasterVersions, customer: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Index of the master version in force for each (customer, time)."""
    base = int(versions.valid_from_day.min()) * DAY
    keys = (versions.customer.astype(np.int64) << 34) + versions.valid_from_day * DAY - base
    probe = (customer.astype(np.int64) << 34) + second - base
    return np.searchsorted(keys, probe, side="right") - 1


def _event_frame(ev: EventArrays, inv: Invoices, cust: Customers, versions: MasterVersions,
                 config: SimulatorConfig, customer_ids: pa.Array, invoice_ids: pa.Array,
                 last_refresh: pd.Timestamp) -> pd.DataFrame:
    i = ev.invoice
    c = inv.customer[i]
    n = len(i)
    version = _as_of(versions, c, ev.second)
    risk_names = pa.array(schema.RISK_CATEGORIES)
    user = np.where(ev.user == COLLECTOR, len(SYSTEM_USERS) + cust.collector[c], ev.user)
    collectors = _collector_names(config.n_collectors)
    clearing = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(ev.clearing)
    clearing[rows[np.argsort(ev.second[rows], kind="stable")]] = np.arange(len(rows))
    doc_types = [schema.ACTIVITY_SPECS[a].document_type for a in ACTIVITY_ORDER]
    due_seconds = inv.due_day[i] * DAY
    event_time = _datetime(ev.second)
    frame = {
        "event_time": event_time,
        "activity": _take([a.value for a in ACTIVITY_ORDER], ev.activity.astype(np.int64)),
        "invoice_id": _str(invoice_ids.take(pa.array(i))),
        "customer_id": _str(customer_ids.take(pa.array(c))),
        "company_code": _take(config.company_codes, inv.company[i]),
        "collector": _take(collectors, cust.collector[c]),
        "net_due_date": _datetime(due_seconds),
        "amount": pd.Series(ev.amount),
        "dunning_level": pd.Series(pd.arrays.IntegerArray(ev.dunning_level, ev.dunning_level == 0)),
        "risk_category": _str(risk_names.take(pa.array(versions.risk[version]))),
        "credit_limit": pd.Series(versions.credit_limit[version]),
        "payment_terms": _take(TERMS, inv.terms[i]),
        "document_type": _take(doc_types, ev.activity.astype(np.int64)),
        "clearing_document": _take(_ids(np.arange(len(rows)) + CLEARING_NUMBER_BASE, 10),
                                   clearing),
        "dispute_case_id": _take(_ids(np.arange(max(ev.dispute.max(initial=-1) + 1, 0))
                                      + DISPUTE_NUMBER_BASE, 10), ev.dispute),
        "is_written_off": pd.Series(ev.written_off),
        "promised_date": _datetime(ev.promised_day * DAY),
        "payment_block": _take(PAYMENT_BLOCK_KEYS[1:], ev.payment_block.astype(np.int64) - 1),
        "customer_segment": _take(SEGMENTS, cust.segment[c]),
        "user_name": _take(list(SYSTEM_USERS) + collectors, user.astype(np.int64)),
        "source_system": _take([SOURCE_SYSTEM], np.zeros(n, dtype=np.int64)),
        "recorded_time": event_time.copy(),
        "last_refresh": pd.Series(np.full(n, last_refresh.to_datetime64(), dtype="datetime64[us]")),
    }
    assert tuple(frame) == schema.EVENT_COLUMN_NAMES
    return pd.DataFrame(frame)


def _collector_names(n: int) -> list[str]:
    return [f"COLL{j + 1:02d}" for j in range(n)]


def _master_frame(versions: MasterVersions, cust: Customers, config: SimulatorConfig,
                  customer_ids: pa.Array) -> pd.DataFrame:
    c = versions.customer
    start = versions.valid_from_day * DAY
    same_next = np.append(c[1:] == c[:-1], False)
    nxt = np.append(start[1:], 0)
    return pd.DataFrame({
        "customer_id": _str(customer_ids.take(pa.array(c))),
        "valid_from": _datetime(start),
        "valid_to": _datetime(np.where(same_next, nxt, NEVER * DAY)),
        "risk_category": _take(schema.RISK_CATEGORIES, versions.risk.astype(np.int64)),
        "credit_limit": versions.credit_limit,
        "customer_segment": _take(SEGMENTS, cust.segment[c].astype(np.int64)),
        "collector": _take(_collector_names(config.n_collectors), cust.collector[c]),
        "payment_terms": _take(TERMS, cust.terms[c]),
    })


def _customer_frame(cust: Customers, config: SimulatorConfig,
                    customer_ids: pa.Array) -> pd.DataFrame:
    # Few distinct season patterns exist: format each once, then index.
    patterns, which = np.unique(cust.season_mask, axis=0, return_inverse=True)
    labels = [",".join(str(m + 1) for m in np.flatnonzero(row)) for row in patterns]
    return pd.DataFrame({
        "customer_id": _str(customer_ids),
        "archetype": _take(ARCHETYPES, cust.archetype.astype(np.int64)),
        "customer_segment": _take(SEGMENTS, cust.segment.astype(np.int64)),
        "home_company_code": _take(config.company_codes, cust.home_company),
        "collector": _take(_collector_names(config.n_collectors), cust.collector),
        "payment_terms": _take(TERMS, cust.terms),
        "latent_mean_delay_days": cust.mu,
        "latent_spread_days": cust.sigma,
        "responsiveness": cust.responsiveness,
        "dispute_propensity": cust.p_dispute,
        "partial_payment_propensity": cust.p_partial,
        "discount_take_propensity": cust.p_discount,
        "promise_propensity": cust.p_promise,
        "drift_start": _datetime(cust.drift_start * DAY),
        "drift_days_per_month": cust.drift_per_month,
        "season_months": _take(labels, which.reshape(-1)),
        "season_extra_delay_days": cust.season_bump,
        "amount_scale": cust.amount_scale,
        "posting_weight": cust.posting_weight,
        "customer_since": _datetime(cust.since_day * DAY),
    })


# --- files ----------------------------------------------------------------------------------------
LEDGER_FILES = ("events", "master", "truth", "customers")


def write_ledger(ledger: Ledger, out_dir: str | Path) -> dict[str, Path]:
    """Write the four frames as `<name>.parquet` in `out_dir`; returns their paths.

    A ledger folder (features.ingest.ledger_files) plus the latent customers, which only a simulated
    ledger has."""
    out = write_ledger_dir(out_dir, ledger.events, ledger.master, ledger.truth)
    ledger.customers.to_parquet(out / "customers.parquet", index=False)
    return {name: out / f"{name}.parquet" for name in LEDGER_FILES}


def read_ledger(out_dir: str | Path) -> Ledger:
    """Read back what `write_ledger` wrote."""
    out = Path(out_dir)
    frames = {name: pd.read_parquet(out / f"{name}.parquet") for name in LEDGER_FILES}
    refresh = frames["events"]["last_refresh"]
    return Ledger(**frames, last_refresh=pd.Timestamp(refresh.iloc[0]) if len(refresh) else pd.NaT)
