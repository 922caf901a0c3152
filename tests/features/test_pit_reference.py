"""The fast builder equals the slow reference (tests/features/reference.py) on every feature and
label, on a simulated ledger and on an adversarial one (late-recorded events, ties, odd disputes),
including snapshot times placed exactly on event instants, where <= versus < matters."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.config.features import FeatureConfig
from features.config.simulator import SimulatorConfig
from features.pit.build import (AFTER_END, NEVER_OPEN, build_feature_sets, build_scoring_set,
                                build_training_set, features_at, read_rows, write_rows)
from features.pit.columns import columns_of, frame_of, instants
from features.pit.dictionary import data_dictionary, write_data_dictionary
from features.pit.feature_spec import (CATEGORICAL_FEATURES, FEATURE_NAMES, FEATURE_SET_VERSION,
                                       FEATURES, MONOTONE, explain)
from features.pit.history import history_table, join_history
from features.pit.invoice_features import invoice_features
from features.pit.item_state import ITEM_STATE_COLUMNS, Queries, StepIndex, item_state_at
from features.pit.labels import EXTRA_LABEL_COLUMNS
from features.simulate.ledger import simulate_ledger
from features.reconcile import OUT
from reference import DAY, Reference, adversarial_ledger, event_frame, invoice_rows

CONFIG = FeatureConfig(grace_days=2)
LABELS = list(schema.LABEL_COLUMNS) + list(EXTRA_LABEL_COLUMNS)


def _us(ts) -> int:
    return pd.Timestamp(ts).value // 1000


def _same(a, b) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA or a is pd.NaT
    b_missing = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA or b is pd.NaT
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return bool(a) == bool(b) and type(bool(a)) is type(bool(b))
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _fast_value(row: pd.Series, col: str):
    value = row[col]
    if col == "outcome_time":
        return None if pd.isna(value) else _us(value)
    if col == "label_delay_bucket":
        return None if pd.isna(value) else int(value)
    if col in CATEGORICAL_FEATURES:
        return None if pd.isna(value) else str(value)
    return value


def compare(rows: pd.DataFrame, ref: Reference, with_labels: bool) -> int:
    """Assert every feature (and label) of every row equals the reference; returns rows checked."""
    cols = list(FEATURE_NAMES) + (LABELS if with_labels else [])
    mismatches = []
    for _, row in rows.iterrows():
        inv, t = row["invoice_id"], _us(row["snapshot_time"])
        expected = ref.features(inv, t)
        if with_labels:
            expected.update(ref.labels(inv, t))
        assert set(FEATURE_NAMES) <= set(expected), set(FEATURE_NAMES) - set(expected)
        for col in cols:
            got = _fast_value(row, col)
            if not _same(got, expected[col]):
                mismatches.append((inv, row["snapshot_time"], col, got, expected[col]))
        assert _same(row["open_amount"], expected["open_amount"])
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:10]}"
    return len(rows)


@pytest.fixture(scope="module")
def simulated():
    ledger = simulate_ledger(SimulatorConfig(n_customers=24, n_invoices=900, months=20), seed=7)
    return ledger.events, ledger.master


@pytest.fixture(scope="module")
def adversarial():
    return adversarial_ledger(seed=11)


def _interesting_sample(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Every row of an interesting kind, topped up with a seeded sample of the rest."""
    special = (
        (rows["n_disputes"] > 0) | (rows["n_partial_payments"] > 0)
        | (rows["n_promises_broken"] > 0) | (rows["n_credit_memos"] > 0)
        | (rows["hist_n_written_off"] > 0) | rows["label_written_off"].astype(bool)
        | (rows["dunning_level"] > 0) | rows["censored"].astype(bool)
        | rows["payment_block_active"] | rows["promise_open"]
    )
    picked = rows[special]
    picked = picked.sample(min(len(picked), n // 2), random_state=seed)
    rest = rows.drop(picked.index)
    return pd.concat([picked, rest.sample(min(len(rest), n - len(picked)), random_state=seed)])


def _assert_cases_present(rows: pd.DataFrame) -> None:
    assert (rows["dispute_open"]).sum() >= 5, "no open disputes among compared rows"
    assert (rows["n_partial_payments"] > 0).sum() >= 5, "no partial payments"
    assert (rows["n_promises_broken"] > 0).sum() >= 3, "no broken promises"
    assert (rows["n_credit_memos"] > 0).sum() >= 3, "no credit memos"
    assert (rows["hist_n_written_off"] > 0).sum() >= 3, "no customer write-offs in history"
    assert rows["label_written_off"].astype(bool).sum() >= 3, "no written-off labels"
    assert rows["censored"].astype(bool).sum() >= 3, "no censored rows"
    assert (rows["label_late"] == 1).sum() >= 3 and (rows["label_late"] == 0).sum() >= 3


def test_training_rows_equal_reference_simulated(simulated):
    events, master = simulated
    rows = build_training_set(events, master, CONFIG, seed=3)
    sample = _interesting_sample(rows, 2500, seed=1)
    _assert_cases_present(sample)
    assert compare(sample, Reference(events, master, CONFIG), with_labels=True) == 2500


def test_training_rows_equal_reference_with_cutoff(simulated):
    """An earlier end_time ends snapshots and censors outcomes known after it."""
    events, master = simulated
    cutoff = pd.Timestamp("2024-03-10 12:00")
    rows = build_training_set(events, master, CONFIG, seed=3, end_time=cutoff)
    assert rows["snapshot_time"].max() <= cutoff
    assert (rows["outcome_time"].dropna() <= cutoff).all()
    sample = rows.sample(500, random_state=2)
    assert sample["censored"].sum() > 20
    compare(sample, Reference(events, master, CONFIG, end_time=cutoff), with_labels=True)


def test_scoring_rows_equal_reference(simulated):
    events, master = simulated
    rows = build_scoring_set(events, master, CONFIG)
    ref = Reference(events, master, CONFIG)
    now = ref.end
    open_now = sorted(inv for inv in ref.posting if ref.is_open(inv, now))
    assert sorted(rows["invoice_id"]) == open_now
    assert (rows["snapshot_kind"] == "now").all()
    compare(rows, ref, with_labels=False)


def test_adversarial_rows_equal_reference(adversarial):
    events, master = adversarial
    rows = build_training_set(events, master, CONFIG, seed=5)
    ref = Reference(events, master, CONFIG)
    assert (events["recorded_time"] > events["event_time"]).sum() > 50
    assert compare(rows, ref, with_labels=True) > 400


@pytest.mark.parametrize("use_master", [True, False])
def test_adversarial_boundaries_equal_reference(adversarial, use_master):
    """Snapshots exactly at event instants (and 1 us before) of the customer's invoices."""
    events, master = adversarial
    master = master if use_master else None
    ref = Reference(events, master, CONFIG)
    rng = np.random.default_rng(4)
    instants = np.unique(np.concatenate([
        events["event_time"].to_numpy("datetime64[us]").view(np.int64),
        events["recorded_time"].dropna().to_numpy("datetime64[us]").view(np.int64)]))
    picks = []
    for t in rng.choice(instants, 120, replace=False):
        for tt in (int(t), int(t) - 1, int(t) + 40 * DAY):
            open_ = [inv for inv in ref.posting if ref.is_open(inv, tt)]
            for inv in rng.choice(open_, min(4, len(open_)), replace=False):
                picks.append((inv, tt))
    snaps = pd.DataFrame({"invoice_id": [p[0] for p in picks],
                          "snapshot_time": np.array([p[1] for p in picks]).view("datetime64[us]")})
    rows = features_at(events, master, CONFIG, snaps)
    assert list(rows["invoice_id"]) == list(snaps["invoice_id"])
    assert compare(rows, ref, with_labels=False) > 800


def test_snapshot_rules(simulated):
    events, master = simulated
    cfg = FeatureConfig(grid_days=5, max_snapshots_per_invoice=4)
    rows = build_training_set(events, master, cfg, seed=9)
    ref = Reference(events, master, cfg)
    grid = pd.Timedelta(days=5)
    per_inv = rows.groupby("invoice_id")
    assert per_inv.size().max() <= 4
    for inv, g in list(per_inv)[:300]:
        post = ref.posting[inv]
        post_t = pd.Timestamp(post["known"], unit="us")
        kinds = g["snapshot_kind"].tolist()
        assert kinds.count("posting") == 1
        assert g.loc[g["snapshot_kind"] == "posting", "snapshot_time"].iloc[0] == post_t
        offsets = (g["snapshot_time"] - post_t) / grid
        assert (offsets == offsets.round()).all() and offsets.is_unique
        assert all(ref.is_open(inv, _us(t)) for t in g["snapshot_time"])
        # Every eligible grid point is kept when there is room, else exactly max - 1 are.
        eligible = 0
        while ref.is_open(inv, _us(post_t + (eligible + 1) * grid)) and \
                _us(post_t + (eligible + 1) * grid) <= ref.end:
            eligible += 1
        assert (g["snapshot_kind"] == "grid").sum() == min(eligible, 3)
    invoices_open_at_post = [i for i in ref.posting if ref.is_open(i, ref.posting[i]["known"])]
    assert rows["invoice_id"].nunique() == len(invoices_open_at_post)
    again = build_training_set(events, master, cfg, seed=9)
    pd.testing.assert_frame_equal(rows, again)
    other = build_training_set(events, master, cfg, seed=10)
    assert not rows["snapshot_time"].equals(other["snapshot_time"])


def test_sampling_is_independent_of_other_customers(simulated):
    """A customer's rows are the same whether built from the whole log or its own events."""
    events, master = simulated
    cfg = FeatureConfig(max_snapshots_per_invoice=3)
    whole = build_training_set(events, master, cfg, seed=9)
    cust = whole["customer_id"].value_counts().index[0]
    alone = build_training_set(events[events["customer_id"] == cust], master, cfg, seed=9)
    mine = whole[whole["customer_id"] == cust].reset_index(drop=True)
    for col in ["invoice_id", "snapshot_time", *[f.name for f in FEATURES
                                                 if f.kind != "categorical"]]:
        pd.testing.assert_series_equal(mine[col], alone[col], check_names=False)


# --------------------------------------------------------------------------------------------
# The serving path (item state carried by a request + the online history table) computes the
# same features as the batch builder.
def test_serving_path_equals_batch(simulated):
    events, master = simulated
    batch = build_scoring_set(events, master, CONFIG)
    now = batch["snapshot_time"].iloc[0]
    states = item_state_at(events, batch[["invoice_id", "snapshot_time"]])
    assert list(states.columns) == list(ITEM_STATE_COLUMNS)
    assert {c: str(states[c].dtype) for c in states} == dict(ITEM_STATE_COLUMNS)
    table = history_table(events, master, as_of=now, config=CONFIG)
    assert table["customer_id"].is_unique
    items = frame_of(invoice_features(columns_of(states), instants(now, len(states))),
                     index=states.index)
    served = pd.concat([items, join_history(states, table, now, CONFIG)], axis=1)
    assert set(served.columns) == set(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        a, b = served[name], batch[name]
        if name in CATEGORICAL_FEATURES:
            a, b = a.astype(object).where(a.notna(), None), b.astype(object).where(b.notna(), None)
        pd.testing.assert_series_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                       check_names=False, check_dtype=False, rtol=1e-12)


def test_step_index_matches_brute_force():
    rng = np.random.default_rng(0)
    # Units of us, s and days pack (code, time) directly; a huge span falls back to ranks.
    for codes_hi, time_scale in ((5, 1), (5, 1_000_000), (5, 86_400_000_000), (2**30, 2**33 + 1)):
        codes = rng.integers(0, 5, 300) * (codes_hi // 5 or 1)
        times = rng.integers(0, 50, 300) * time_scale + 1_700_000_000_000_000
        index = StepIndex(codes, times)
        assert (index.vocab is not None) == (codes_hi == 2**30)
        q_codes = np.concatenate([codes[:100], [-1, 10**6]])
        q_times = np.concatenate([times[:100] + rng.integers(-2, 3, 100) * time_scale // 2,
                                  times[:2]])
        q = Queries(q_codes, q_times)
        got = index.right(q) - index.first(q)
        want = [int(((codes == c) & (times <= t)).sum()) for c, t in zip(q_codes, q_times)]
        assert got.tolist() == want


def test_bad_input_is_named():
    good = [invoice_rows("I1", "C1", "2024-01-01", "2024-01-31", 10.0)]
    cfg = FeatureConfig()
    with pytest.raises(ValueError, match="unknown activity 'paid_maybe'"):
        build_training_set(event_frame(good + [dict(good[0], activity="paid_maybe")],
                                       "2024-03-01"), None, cfg, seed=0)
    with pytest.raises(ValueError, match="invoice 'I2' has events but no 'invoice_posted'"):
        build_training_set(event_frame(good + [{"event_time": "2024-01-05", "invoice_id": "I2",
                                                "activity": "dunning_run", "customer_id": "C1"}],
                                       "2024-03-01"), None, cfg, seed=0)
    with pytest.raises(ValueError, match="net_due_date is missing on the posting of invoice 'I1'"):
        build_training_set(event_frame([dict(good[0], net_due_date=None)], "2024-03-01"),
                           None, cfg, seed=0)
    with pytest.raises(ValueError, match="no column 'activity'"):
        build_training_set(event_frame(good, "2024-03-01").drop(columns="activity"), None, cfg,
                           seed=0)


def test_rows_file_carries_the_feature_set_version(tmp_path, adversarial):
    events, master = adversarial
    rows = build_training_set(events, master, CONFIG, seed=5)
    path = write_rows(rows, tmp_path / "rows.parquet")
    back = read_rows(path)
    assert back.attrs["feature_set_version"] == rows["feature_set_version"].iloc[0] == FEATURE_SET_VERSION + "+g2"
    pd.testing.assert_frame_equal(back, rows, check_dtype=False)
    assert back["risk_category"].dtype == "category"


def test_catalogue_contract(simulated):
    required = ["amount", "open_amount", "days_overdue", "days_since_posting", "days_to_due",
                "terms_net_days", "dunning_level", "max_dunning_level", "n_contacts",
                "n_promises_broken", "promise_open", "dispute_open", "dispute_days_open",
                "disputed_amount", "payment_block_active", "risk_category", "credit_limit",
                "credit_used_ratio", "customer_segment", "company_code", "hist_n_cleared",
                "hist_n_cleared_late", "hist_late_ratio", "hist_avg_days_late", "cold_start"]
    assert set(required) <= set(FEATURE_NAMES) and FEATURE_SET_VERSION
    assert all(MONOTONE[c] == 0 for c in CATEGORICAL_FEATURES)
    assert MONOTONE["days_overdue"] == 1 and MONOTONE["n_promises_broken"] == 1
    events, master = simulated
    rows = build_training_set(events, master, CONFIG, seed=3)
    for spec in FEATURES:
        assert str(rows[spec.name].dtype) == {"numeric": "float64", "bool": "bool",
                                              "categorical": "category"}[spec.kind], spec.name
        row = rows[rows[spec.name].notna()].iloc[0].to_dict()
        text = explain(spec, row)  # every placeholder names a column of the row
        assert "{" not in text and "_" not in text.replace(str(row.get(spec.name)), ""), text
    assert explain(next(f for f in FEATURES if f.name == "n_promises_broken"),
                   {"n_promises_broken": 2.0}) == "promise to pay broken 2 times"
    dd = data_dictionary()
    assert set(FEATURE_NAMES) | set(schema.LABEL_COLUMNS) <= set(dd["name"])
    md, csv = write_data_dictionary(Path(__file__).parent / "_dd_tmp" / "dictionary")
    try:
        assert "hist_late_ratio" in md.read_text() and len(pd.read_csv(csv)) == len(dd)
    finally:
        md.unlink()
        csv.unlink()
        md.parent.rmdir()


@pytest.mark.parametrize("cutoff", [None, "2024-07-01"])
def test_reconciliation_equals_reference(adversarial, cutoff):
    """Every invoice without a training row is counted under the reason the slow reference
    gives it: posted after the end, or never open at a known instant (cleared at or before its
    posting was known; no row, by decision: see features.pit.snapshots)."""
    events, master = adversarial
    customer = events["customer_id"].iloc[0]
    paid = {"activity": schema.Activity.INCOMING_PAYMENT_POSTED.value, "customer_id": customer,
            "amount": 50.0}
    cleared = {"activity": schema.Activity.INVOICE_CLEARED.value, "customer_id": customer}
    never = event_frame([
        # N1: paid and cleared at its posting instant (a date-only log's same-day payment).
        invoice_rows("N1", customer, "2024-03-04", "2024-04-03", 50.0),
        {**paid, "invoice_id": "N1", "event_time": "2024-03-04"},
        {**cleared, "invoice_id": "N1", "event_time": "2024-03-04"},
        # N2: entered in the system two days after it was cleared.
        invoice_rows("N2", customer, "2024-05-06", "2024-06-05", 50.0,
                     recorded_time="2024-05-12"),
        {**paid, "invoice_id": "N2", "event_time": "2024-05-10"},
        {**cleared, "invoice_id": "N2", "event_time": "2024-05-10"},
    ], events["last_refresh"].max())
    events = pd.concat([events, never.astype(events.dtypes.to_dict())], ignore_index=True)
    cfg = FeatureConfig()
    sets = build_feature_sets(events, master, cfg, seed=4, end_time=cutoff)
    ref = Reference(events, master, cfg, end_time=cutoff)
    after_end = [i for i, p in ref.posting.items() if p["known"] > ref.end]
    never_open = [i for i, p in ref.posting.items()
                  if p["known"] <= ref.end and not ref.is_open(i, p["known"])]
    assert {"N1", "N2"} <= set(never_open)
    rec, what = sets.reconciliation, "invoices -> training rows"
    assert rec.balanced
    assert rec.count("features", what, AFTER_END) == -len(after_end)
    assert rec.count("features", what, NEVER_OPEN) == -len(never_open)
    assert not set(never_open) & set(sets.training["invoice_id"])
    assert not set(never_open) & set(sets.scoring["invoice_id"])
    assert rec.count("features", what, OUT) == sets.training["invoice_id"].nunique()
