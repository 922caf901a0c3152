"""Sentinel: whatever happens after t cannot change the features at t.

For several t, every event not yet known at t is mutated (amounts, dates, clearings turned into
write-offs, deletions), new disputes, promises, payments and write-offs are added after t, and
master versions valid after t are changed or added. Features of every invoice open at t must not
move; labels must (otherwise the mutation proved nothing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.pit.build import build_training_set, features_at
from features.config.features import FeatureConfig
from features.config.simulator import SimulatorConfig
from features.pit.feature_spec import FEATURE_NAMES
from features.pit.labels import labels_at
from features.simulate.ledger import simulate_ledger
from reference import adversarial_ledger

A = schema.Activity
CONFIG = FeatureConfig(grace_days=1)


def _known(events: pd.DataFrame) -> pd.Series:
    rec = events["recorded_time"] if "recorded_time" in events else events["event_time"]
    return np.maximum(events["event_time"], rec.fillna(events["event_time"]))


def mutate_after(events: pd.DataFrame, master: pd.DataFrame, t: pd.Timestamp, seed: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A different future: every event known after t changed, deleted or joined by new ones."""
    rng = np.random.default_rng(seed)
    ev = events.copy()
    after = (_known(ev) > t).to_numpy()
    # Whole invoices posted after t may vanish (all their events with them).
    posted_after = ev.loc[after & (ev["activity"] == A.INVOICE_POSTED.value), "invoice_id"]
    gone = set(posted_after[rng.random(len(posted_after)) < 0.3])
    later = after & ~(ev["activity"] == A.INVOICE_POSTED.value).to_numpy()
    drop = later & (rng.random(len(ev)) < 0.2)
    keep = ~ev["invoice_id"].isin(gone).to_numpy() & ~drop
    after = after[keep]
    ev = ev[keep].reset_index(drop=True)
    n_after = int(after.sum())

    amount = ev["amount"].to_numpy(dtype=float, na_value=np.nan).copy()
    amount[after] = np.round(amount[after] * rng.uniform(0.1, 3.0, n_after), 2)
    ev["amount"] = amount
    shift = pd.to_timedelta(rng.integers(0, 40 * 24, n_after), unit="h")
    for col in ("event_time", "recorded_time"):
        if col in ev:
            moved = ev.loc[after, col] + shift
            ev.loc[after, col] = moved.astype(ev[col].dtype)
    clear = after & (ev["activity"] == A.INVOICE_CLEARED.value).to_numpy()
    flip = clear & (rng.random(len(ev)) < 0.5)
    ev.loc[flip, "activity"] = A.INVOICE_WRITTEN_OFF.value
    ev.loc[flip, "is_written_off"] = True
    levels = ev["dunning_level"].copy()
    dun = after & (ev["activity"] == A.DUNNING_RUN.value).to_numpy()
    levels[dun] = 4
    ev["dunning_level"] = levels

    # New events after t on invoices open at t (and on some closed ones).
    template = ev.drop_duplicates("invoice_id").set_index("invoice_id")
    targets = rng.choice(template.index.to_numpy(), min(60, len(template)), replace=False)
    new = []
    for i, inv in enumerate(targets):
        base = template.loc[inv]
        when = t + pd.Timedelta(minutes=int(rng.integers(1, 60 * 24 * 60)))
        act = [A.DISPUTE_CASE_CREATED, A.PROMISE_TO_PAY_CREATED, A.INCOMING_PAYMENT_POSTED,
               A.INVOICE_WRITTEN_OFF, A.PAYMENT_BLOCK_SET, A.DUNNING_RUN][i % 6].value
        new.append({"event_time": when, "activity": act, "invoice_id": inv,
                    "customer_id": base["customer_id"], "company_code": base["company_code"],
                    "net_due_date": base["net_due_date"], "amount": 123.45,
                    "dispute_case_id": f"NEW{i}", "promised_date": when.normalize(),
                    "payment_block": "A", "dunning_level": 3, "recorded_time": when,
                    "is_written_off": act == A.INVOICE_WRITTEN_OFF.value,
                    "last_refresh": ev["last_refresh"].iloc[0]})
    # One event recorded after t although its business time is before t.
    backdated = dict(new[0], event_time=t - pd.Timedelta(days=3),
                     recorded_time=t + pd.Timedelta(hours=1),
                     activity=A.INCOMING_PAYMENT_POSTED.value, amount=999.0)
    new.append(backdated)
    extra = pd.DataFrame(new)
    for col in extra.columns:
        extra[col] = extra[col].astype(ev[col].dtype) if col in ev else extra[col]
    ev = pd.concat([ev, extra[[c for c in extra.columns if c in ev.columns]]],
                   ignore_index=True)

    m = master.copy()
    future = m["valid_from"] > t
    m.loc[future, "risk_category"] = "E05"
    m.loc[future, "credit_limit"] = 1.0
    m.loc[future, "customer_segment"] = "sme"
    added = m.drop_duplicates("customer_id").copy()
    added["valid_from"] = t + pd.Timedelta(seconds=1)
    added["risk_category"] = "A01"
    added["credit_limit"] = 7.0
    m = pd.concat([m, added], ignore_index=True)
    return ev, m


def _open_at(events: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    known = _known(events)
    posted = events.loc[(events["activity"] == A.INVOICE_POSTED.value) & (known <= t),
                        "invoice_id"]
    ended = events.loc[events["activity"].isin([A.INVOICE_CLEARED.value,
                                                A.INVOICE_WRITTEN_OFF.value]) & (known <= t),
                       "invoice_id"]
    ids = sorted(set(posted) - set(ended))
    return pd.DataFrame({"invoice_id": ids, "snapshot_time": [t] * len(ids)}).astype(
        {"snapshot_time": "datetime64[us]"})


def _check(events, master, t, seed) -> int:
    snaps = _open_at(events, t)
    assert len(snaps) > 10
    before = features_at(events, master, CONFIG, snaps)
    ev2, m2 = mutate_after(events, master, t, seed)
    after = features_at(ev2, m2, CONFIG, snaps)
    pd.testing.assert_frame_equal(before[list(FEATURE_NAMES)], after[list(FEATURE_NAMES)])
    # The future did change: the labels of these rows move.
    l1 = labels_at(events, snaps, CONFIG)
    l2 = labels_at(ev2, snaps, CONFIG)
    assert not l1.equals(l2)
    return len(snaps)


@pytest.fixture(scope="module")
def simulated():
    ledger = simulate_ledger(SimulatorConfig(n_customers=40, n_invoices=2500, months=20), seed=3)
    return ledger.events, ledger.master


@pytest.mark.parametrize("when", ["2023-06-15 00:00", "2023-11-02 13:37:11", "2024-05-20 09:00"])
def test_future_cannot_change_features_simulated(simulated, when):
    events, master = simulated
    assert _check(events, master, pd.Timestamp(when), seed=1) > 50


def test_future_cannot_change_features_at_an_event_instant(simulated):
    """t exactly on an event's instant: that event is known, everything after is mutated."""
    events, master = simulated
    t = pd.Timestamp(events["event_time"].sort_values().iloc[len(events) // 2])
    _check(events, master, t, seed=2)


@pytest.mark.parametrize("when", ["2024-03-01 09:00", "2024-08-15 17:00"])
def test_future_cannot_change_features_adversarial(when):
    events, master = adversarial_ledger(seed=21)
    _check(events, master, pd.Timestamp(when), seed=3)


def test_truncated_log_gives_the_same_rows(simulated):
    """Rows built from the log cut at T equal the full build's rows at the same (invoice, t)."""
    events, master = simulated
    cut = pd.Timestamp("2024-01-10 12:00")
    full = build_training_set(events, master, CONFIG, seed=4)
    past = events[_known(events) <= cut]
    short = build_training_set(past, master[master["valid_from"] <= cut], CONFIG, seed=4,
                               end_time=cut)
    keys = ["invoice_id", "snapshot_time"]
    both = short[keys + list(FEATURE_NAMES)].merge(
        full[keys + list(FEATURE_NAMES)], on=keys, suffixes=("", "_full"))
    assert len(both) > 0.5 * len(short)
    for name in FEATURE_NAMES:
        pd.testing.assert_series_equal(both[name].astype(object) if str(both[name].dtype)
                                       == "category" else both[name],
                                       both[f"{name}_full"].astype(object)
                                       if str(both[name].dtype) == "category"
                                       else both[f"{name}_full"], check_names=False)
