"""The receivables simulator: event-log conventions, master history, determinism, realism bands,
the oracle's calibration and the causal contact knob.

The calculated activities are re-derived here from the explicit events by a plain reading of the
conventions' rules, independently of the simulator's own code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.config.simulator import SimulatorConfig
from features.schema import Activity
from features.simulate.ledger import ACTIVITY_ORDER, simulate_ledger, write_ledger
from features.simulate.paths import draw_paths, oracle_monte_carlo, oracle_p_late
from features.simulate.world import draw_customers, draw_invoices

DAY = pd.Timedelta(days=1)
SMALL = SimulatorConfig(n_customers=150, n_invoices=3_000)
LARGE = SimulatorConfig(n_customers=600, n_invoices=20_000)


@pytest.fixture(scope="module")
def small():
    return simulate_ledger(SMALL, seed=11)


@pytest.fixture(scope="module")
def large():
    return simulate_ledger(LARGE, seed=5)


def _rows(events: pd.DataFrame, activity: Activity) -> pd.DataFrame:
    return events[events["activity"] == activity.value]


def _terminal_time(events: pd.DataFrame) -> pd.Series:
    ends = events[events["activity"].isin([a.value for a in schema.TERMINAL_ACTIVITIES])]
    return ends.groupby("invoice_id")["event_time"].min()


def _invoice_outcomes(ledger) -> pd.DataFrame:
    """Per invoice: due date, posting, terminal time, realised lateness where it is known."""
    ev = ledger.events
    posted = _rows(ev, Activity.INVOICE_POSTED).set_index("invoice_id")
    out = ledger.truth.set_index("invoice_id").join(
        posted[["event_time", "net_due_date"]].rename(columns={"event_time": "posted_at"}))
    out["terminal_at"] = _terminal_time(ev)
    out["due_known"] = out["net_due_date"] + DAY <= ledger.last_refresh
    out["late"] = out.index.isin(_rows(ev, Activity.DUE_DATE_PASSED)["invoice_id"]).astype(float)
    out["delay_days"] = (out["terminal_at"].dt.normalize() - out["net_due_date"]).dt.days
    return out


# --- shape of the log -----------------------------------------------------------------------------
def test_all_fourteen_activities_and_the_column_contract(small):
    ev = small.events
    assert tuple(ev.columns) == schema.EVENT_COLUMN_NAMES
    assert set(ev["activity"]) == {a.value for a in Activity}
    assert ev["event_time"].dtype == "datetime64[us]"
    assert ev["net_due_date"].dtype == "datetime64[us]"
    assert ev["promised_date"].dtype == "datetime64[us]"
    assert ev["dunning_level"].dtype == "Int8"
    assert ev["is_written_off"].dtype == bool
    assert ev["amount"].dtype == "float64" and ev["credit_limit"].dtype == "float64"
    for col in ("activity", "invoice_id", "customer_id", "company_code", "risk_category",
                "payment_terms", "user_name"):
        assert pd.api.types.is_string_dtype(ev[col]), col
    assert (ev["source_system"] == "SIMULATOR").all()
    assert ev["last_refresh"].nunique() == 1
    assert ev["last_refresh"].iloc[0] == small.last_refresh
    assert (ev["event_time"] <= small.last_refresh).all()
    assert set(ev["payment_terms"]) <= set(schema.PAYMENT_TERMS)
    assert set(ev["risk_category"]) <= set(schema.RISK_CATEGORIES)
    assert set(ev["customer_segment"]) <= set(schema.SEGMENTS)
    assert set(ev["company_code"]) == set(SMALL.company_codes)
    assert ev["collector"].nunique() == SMALL.n_collectors
    contacts = _rows(ev, Activity.COLLECTION_CONTACT)
    assert (contacts["user_name"] == contacts["collector"]).all()
    assert contacts["amount"].isna().all()
    assert set(_rows(ev, Activity.DUNNING_RUN)["user_name"]) == {"BATCH"}


def test_sorted_by_customer_time_invoice_and_activity_order(small):
    ev = small.events
    order = {a.value: i for i, a in enumerate(ACTIVITY_ORDER)}
    key = pd.DataFrame({"c": ev["customer_id"], "t": ev["event_time"], "i": ev["invoice_id"],
                        "a": ev["activity"].map(order)})
    resorted = key.sort_values(["c", "t", "i", "a"], kind="stable")
    assert (resorted.index == key.index).all()
    assert ev.index.equals(pd.RangeIndex(len(ev)))


def test_one_posting_per_invoice_first_and_complete(small):
    ev = small.events
    posted = _rows(ev, Activity.INVOICE_POSTED)
    assert posted["invoice_id"].is_unique
    assert len(posted) == SMALL.n_invoices == len(small.truth)
    by_invoice = ev.sort_values(["invoice_id", "event_time"], kind="stable")
    first = by_invoice.groupby("invoice_id").head(1)
    assert (first["activity"] == Activity.INVOICE_POSTED.value).all()
    assert (posted["document_type"] == "RV").all()
    assert (posted["amount"] > 0).all()
    assert posted[["net_due_date", "payment_terms", "company_code", "risk_category",
                   "credit_limit", "customer_segment", "collector"]].notna().all().all()
    assert (posted["net_due_date"] >= posted["event_time"].dt.normalize()).all()
    assert (posted["event_time"].dt.day_of_week < 5).all()  # billing runs on business days
    # Other events repeat the invoice's keys.
    keys = posted.set_index("invoice_id")[["customer_id", "company_code", "net_due_date"]]
    joined = ev.join(keys, on="invoice_id", suffixes=("", "_posted"))
    for col in ("customer_id", "company_code", "net_due_date"):
        assert (joined[col] == joined[f"{col}_posted"]).all(), col
    # Heavy-tailed amounts: the largest invoices dwarf the median.
    assert posted["amount"].quantile(0.99) > 20 * posted["amount"].median()


def test_nothing_after_a_terminal_event(small):
    ev = small.events
    ends = ev[ev["activity"].isin([a.value for a in schema.TERMINAL_ACTIVITIES])]
    assert ends["invoice_id"].is_unique  # one terminal event at most
    last = ev.groupby("invoice_id", sort=False).tail(1)
    assert set(ends.index) <= set(last.index)  # the terminal event is its invoice's last
    written = _rows(ev, Activity.INVOICE_WRITTEN_OFF)
    assert written["is_written_off"].all() and (written["amount"] > 0).all()
    assert not ev.loc[ev["activity"] != Activity.INVOICE_WRITTEN_OFF.value, "is_written_off"].any()
    cleared = _rows(ev, Activity.INVOICE_CLEARED)
    assert cleared["clearing_document"].notna().all() and cleared["clearing_document"].is_unique
    assert not set(written["invoice_id"]) & set(cleared["invoice_id"])


def _derive_calculated(ev: pd.DataFrame, last_refresh: pd.Timestamp) -> pd.DataFrame:
    """The conventions' two rules, read literally."""
    terminal = _terminal_time(ev)
    posted = _rows(ev, Activity.INVOICE_POSTED).set_index("invoice_id")
    due_at = posted["net_due_date"] + DAY
    end = terminal.reindex(due_at.index)
    still_open = end.isna() | (end >= due_at)
    due = pd.DataFrame({"invoice_id": due_at.index, "event_time": due_at.values,
                        "activity": Activity.DUE_DATE_PASSED.value})[
        (still_open & (due_at <= last_refresh)).values]

    p = _rows(ev, Activity.PROMISE_TO_PAY_CREATED)[["invoice_id", "event_time", "promised_date"]]
    p = p.reset_index(drop=True).assign(pid=lambda d: d.index, broken_at=lambda d:
                                        d["promised_date"] + DAY)
    pairs = p.merge(p[["invoice_id", "event_time"]].rename(columns={"event_time": "later_at"}),
                    on="invoice_id")
    superseded = pairs[(pairs["later_at"] > pairs["event_time"])
                       & (pairs["later_at"] < pairs["broken_at"])]["pid"].unique()
    end = terminal.reindex(p["invoice_id"]).to_numpy()
    kept = pd.notna(end) & (end < p["broken_at"].to_numpy())
    broken = p[~kept & ~p["pid"].isin(superseded) & (p["broken_at"] <= last_refresh)]
    broken = pd.DataFrame({"invoice_id": broken["invoice_id"], "event_time": broken["broken_at"],
                           "activity": Activity.PROMISE_TO_PAY_BROKEN.value})
    return pd.concat([due, broken], ignore_index=True)


@pytest.mark.parametrize("which", ["small", "large"])
def test_calculated_activities_follow_the_rule_exactly(which, request):
    ledger = request.getfixturevalue(which)
    ev = ledger.events
    calculated = [a.value for a in schema.CALCULATED_ACTIVITIES]
    got = ev[ev["activity"].isin(calculated)][["invoice_id", "event_time", "activity"]]
    explicit = ev[~ev["activity"].isin(calculated)]
    want = _derive_calculated(explicit, ledger.last_refresh)
    key = ["activity", "invoice_id", "event_time"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True).astype(got.dtypes.to_dict())
    assert len(got) > 100 and (got["activity"] == Activity.PROMISE_TO_PAY_BROKEN.value).sum() > 5
    pd.testing.assert_frame_equal(got, want)
    assert (got["event_time"] == got["event_time"].dt.normalize()).all()  # at 00:00


def test_dunning_levels_rise_one_step_per_weekly_run(small):
    ev = small.events
    dun = _rows(ev, Activity.DUNNING_RUN)
    assert set(dun["dunning_level"].astype(int)) == {1, 2, 3, 4}
    assert (dun["event_time"].dt.day_of_week == 0).all()  # Monday runs
    levels = dun.groupby("invoice_id")["dunning_level"].agg(list)
    assert levels.map(lambda lv: lv == list(range(1, len(lv) + 1))).all()
    overdue = (dun["event_time"].dt.normalize() - dun["net_due_date"]).dt.days
    threshold = dun["dunning_level"].astype(int).map(dict(enumerate(SMALL.dunning_days, 1)))
    assert (overdue >= threshold).all()
    assert _rows(ev, Activity.DUNNING_RUN)["amount"].isna().all()


def test_amounts_reconcile_partial_payments_leave_residuals(small):
    ev = small.events
    act = ev["activity"]
    sign = np.select([act == Activity.INVOICE_POSTED.value,
                      act.isin([Activity.INCOMING_PAYMENT_POSTED.value,
                                Activity.CREDIT_MEMO_POSTED.value])], [1.0, -1.0], 0.0)
    open_after = pd.Series(sign * ev["amount"].fillna(0.0)).groupby(ev["invoice_id"]).cumsum()
    open_before = open_after - sign * ev["amount"].fillna(0.0)
    pay = act == Activity.INCOMING_PAYMENT_POSTED.value
    partial = pay & (ev["amount"] < open_before - 0.005)
    residual = act == Activity.RESIDUAL_ITEM_CREATED.value
    assert partial.sum() > 20 and partial.sum() == residual.sum()
    # Each partial payment is immediately followed by its residual item for what remains.
    nxt = ev.shift(-1)
    assert (nxt.loc[partial, "activity"] == Activity.RESIDUAL_ITEM_CREATED.value).all()
    assert (nxt.loc[partial, "event_time"] == ev.loc[partial, "event_time"]).all()
    assert np.allclose(ev.loc[residual, "amount"], open_after[residual], atol=0.005)
    # Whatever was paid with a full payment or lost in a write-off closes the item to zero.
    full = pay & ~partial
    assert np.allclose(ev.loc[full, "amount"], open_before[full], atol=0.005)
    cleared = act == Activity.INVOICE_CLEARED.value
    assert np.allclose(open_after[cleared], 0.0, atol=0.01)
    lost = act == Activity.INVOICE_WRITTEN_OFF.value
    assert np.allclose(ev.loc[lost, "amount"], open_before[lost], atol=0.005)
    assert (open_after >= -0.01).all()
    # Final payments are followed by the clearing within a few business days.
    paid_at = ev[full].groupby("invoice_id")["event_time"].max()
    cleared_at = ev[cleared].set_index("invoice_id")["event_time"]
    lag = (cleared_at - paid_at.reindex(cleared_at.index)).dropna()
    assert (lag > pd.Timedelta(0)).all() and (lag <= pd.Timedelta(days=6)).all()


def test_disputes_block_payment_until_resolved(small):
    ev = small.events
    created = _rows(ev, Activity.DISPUTE_CASE_CREATED).set_index("dispute_case_id")
    resolved = _rows(ev, Activity.DISPUTE_CASE_RESOLVED).set_index("dispute_case_id")
    assert len(created) > 30 and created.index.is_unique
    assert set(resolved.index) <= set(created.index)
    both = created[["invoice_id", "event_time", "amount"]].join(
        resolved[["invoice_id", "event_time"]], suffixes=("", "_res"), how="inner")
    assert (both["invoice_id"] == both["invoice_id_res"]).all()
    assert (both["event_time_res"] > both["event_time"]).all()
    blocks = _rows(ev, Activity.PAYMENT_BLOCK_SET)
    set_ = blocks[blocks["payment_block"].str.strip().astype(bool)]
    lifted = blocks[blocks["payment_block"] == ""]
    assert set(set_["dispute_case_id"]) == set(created.index)
    assert set(lifted["dispute_case_id"]) == set(resolved.index)
    # No payment and no dunning while the dispute is open.
    window = both.set_index("invoice_id")[["event_time", "event_time_res"]].set_axis(
        ["opened", "closed"], axis=1)
    chased = ev[ev["activity"].isin([Activity.INCOMING_PAYMENT_POSTED.value,
                                     Activity.DUNNING_RUN.value])].join(window, on="invoice_id",
                                                                        how="inner")
    assert len(chased) > 10
    assert not ((chased["event_time"] > chased["opened"])
                & (chased["event_time"] <= chased["closed"])).any()
    memos = _rows(ev, Activity.CREDIT_MEMO_POSTED)
    assert memos["dispute_case_id"].notna().all() and (memos["amount"] > 0).all()
    assert (memos["document_type"] == "DG").all()


def test_contacts_and_promises_come_before_the_payment(small):
    ev = small.events
    contacts = _rows(ev, Activity.COLLECTION_CONTACT)
    assert (contacts["event_time"] >= contacts["net_due_date"] + DAY).all()  # only overdue items
    payments = _rows(ev, Activity.INCOMING_PAYMENT_POSTED).groupby("invoice_id")["event_time"].max()
    paid_at = payments.reindex(contacts["invoice_id"]).to_numpy()
    has = pd.notna(paid_at)
    assert (contacts["event_time"].to_numpy()[has] < paid_at[has]).all()
    promises = _rows(ev, Activity.PROMISE_TO_PAY_CREATED)
    assert promises["promised_date"].notna().all() and (promises["amount"] > 0).all()
    assert (promises["promised_date"] > promises["event_time"].dt.normalize()).all()
    last_contact = pd.merge_asof(promises.sort_values("event_time"),
                                 contacts.sort_values("event_time")[["invoice_id", "event_time"]]
                                 .rename(columns={"event_time": "contact_at"}),
                                 left_on="event_time", right_on="contact_at", by="invoice_id")
    gap = last_contact["event_time"] - last_contact["contact_at"]
    assert (gap <= pd.Timedelta(hours=1)).all()  # each promise is made on a call
    kept = len(promises) - len(_rows(ev, Activity.PROMISE_TO_PAY_BROKEN))
    assert 0.3 < kept / len(promises) < 0.95


def test_events_carry_the_master_version_in_force(small):
    ev, master = small.events, small.master
    assert tuple(master.columns) == schema.MASTER_COLUMN_NAMES
    assert not master.duplicated(["customer_id", "valid_from"]).any()
    asof = pd.merge_asof(ev.sort_values("event_time"), master.sort_values("valid_from"),
                         left_on="event_time", right_on="valid_from", by="customer_id",
                         suffixes=("", "_m"))
    assert asof["valid_from"].notna().all()
    for col in ("risk_category", "credit_limit", "customer_segment", "collector"):
        assert (asof[col] == asof[f"{col}_m"]).all(), col
    # valid_to is the next version's valid_from, NaT for the current one.
    nxt = master.groupby("customer_id")["valid_from"].shift(-1)
    assert ((master["valid_to"] == nxt) | (master["valid_to"].isna() & nxt.isna())).all()


def test_drifters_are_downgraded_partway(large):
    master, customers = large.master, large.customers
    rank = {r: i for i, r in enumerate(schema.RISK_CATEGORIES)}
    m = master.assign(r=master["risk_category"].map(rank)).join(
        customers.set_index("customer_id")[["archetype", "drift_start"]], on="customer_id")
    drift = m[m["archetype"] == "drifter"]
    first = drift.groupby("customer_id").head(1).set_index("customer_id")
    later = drift.groupby("customer_id").tail(1).set_index("customer_id")
    changed = later["valid_from"] > first["valid_from"]
    assert changed.mean() > 0.5
    raised = later.loc[changed, "r"] - first.loc[changed, "r"]
    assert (raised >= 0).all() and (raised[first.loc[changed, "r"] < 4] > 0).all()
    assert (later.loc[changed, "credit_limit"] < first.loc[changed, "credit_limit"]).all()
    assert (later.loc[changed, "valid_from"] > later.loc[changed, "drift_start"]).all()
    # Risk categories track behaviour, imperfectly: chronic late payers sit higher on average.
    posted = _rows(large.events, Activity.INVOICE_POSTED)
    arche = large.truth.set_index("invoice_id")["archetype"].reindex(posted["invoice_id"]).values
    r = posted["risk_category"].map(rank).to_numpy()
    assert r[arche == "chronic_late"].mean() > r[arche == "on_time"].mean() + 1.0
    assert (r[arche == "chronic_late"] <= 1).any()  # but not perfectly


# --- realism and the oracle -----------------------------------------------------------------------
def test_share_paid_late_is_in_the_target_band(large):
    out = _invoice_outcomes(large)
    known = out[out["due_known"]]
    assert 0.30 <= known["late"].mean() <= 0.45
    by = known.groupby("archetype")["late"].mean()
    assert by["on_time"] < 0.25 < by["seasonal"] < by["drifter"] < by["chronic_late"]


def test_some_invoices_are_still_open_at_the_end(large):
    out = _invoice_outcomes(large)
    open_share = out["terminal_at"].isna().mean()
    assert 0.01 < open_share < 0.15
    # Still open means posted recently or long overdue, never "forgotten".
    still = out[out["terminal_at"].isna()]
    assert (still["posted_at"] > large.last_refresh - pd.Timedelta(days=420)).all()


def test_oracle_p_late_is_calibrated(large):
    out = _invoice_outcomes(large)
    known = out[out["due_known"]]
    bins = pd.cut(known["oracle_p_late"], np.linspace(0, 1, 11), include_lowest=True)
    table = known.groupby(bins, observed=True).agg(n=("late", "size"), late=("late", "mean"),
                                                   oracle=("oracle_p_late", "mean"))
    table = table[table["n"] >= 300]
    assert len(table) >= 7
    tolerance = 0.02 + 3 * np.sqrt(table["oracle"] * (1 - table["oracle"]) / table["n"])
    assert ((table["late"] - table["oracle"]).abs() <= tolerance).all(), table
    assert abs(known["late"].mean() - known["oracle_p_late"].mean()) < 0.015


def test_oracle_p_late_is_the_path_model_exactly():
    """The closed form equals the share late over many fresh paths of the same invoices."""
    rng = np.random.default_rng(3)
    cust = draw_customers(200, 3, 4, 19_000, 19_900, rng)
    inv = draw_invoices(3_000, cust, 3, 0.35, 19_000, 19_900, rng)
    exact = oracle_p_late(inv.latents)
    draws = 400
    mc, _ = oracle_monte_carlo(inv.latents, 8.0, draws, np.random.SeedSequence(9))
    assert exact.min() >= 0 and exact.max() <= 1 and exact.std() > 0.25
    assert abs((mc - exact).mean()) < 0.003
    # Binomial noise alone explains the gap: any bias in the formula would inflate it.
    noise = (exact * (1 - exact) / draws).mean()
    assert 0.85 < ((mc - exact) ** 2).mean() / noise < 1.15


def test_oracle_expected_delay_matches_realised_delays(large):
    out = _invoice_outcomes(large)
    early = out[out["posted_at"] < out["posted_at"].min() + pd.Timedelta(days=365)]
    assert early["terminal_at"].notna().mean() > 0.995  # outcomes of the first year are known
    early = early.dropna(subset=["terminal_at"])
    assert abs(early["delay_days"].mean() - early["oracle_expected_delay_days"].mean()) < 1.0
    by = early.groupby("archetype")[["delay_days", "oracle_expected_delay_days"]].mean()
    assert (by["delay_days"] - by["oracle_expected_delay_days"]).abs().max() < 3.0
    assert np.corrcoef(early["delay_days"], early["oracle_expected_delay_days"])[0, 1] > 0.5


def test_late_payment_is_learnable_from_history(large):
    """A customer's past late share predicts its next invoices (what a model can learn)."""
    out = _invoice_outcomes(large)
    known = out[out["due_known"]].sort_values("posted_at")
    known["prior_late"] = known.groupby("customer_id")["late"].transform(
        lambda s: s.shift().expanding().mean())
    seen = known.dropna(subset=["prior_late"])
    assert np.corrcoef(seen["prior_late"], seen["late"])[0, 1] > 0.4


def test_contact_effect_pulls_payments_earlier():
    base = SimulatorConfig(n_customers=600, n_invoices=20_000, contact_effect_days=0.0)
    strong = base.model_copy(update={"contact_effect_days": 25.0})
    ledger = simulate_ledger(base, seed=2)
    runs = {"none": _invoice_outcomes(ledger),
            "strong": _invoice_outcomes(simulate_ledger(strong, seed=2))}
    contacted = set(_rows(ledger.events, Activity.COLLECTION_CONTACT)["invoice_id"])
    resp = ledger.customers.set_index("customer_id")["responsiveness"]
    out = runs["none"].join(runs["strong"][["delay_days"]], suffixes=("", "_strong"))
    out = out[out.index.isin(contacted)].dropna(subset=["delay_days", "delay_days_strong"])
    out["resp"] = resp.reindex(out["customer_id"]).to_numpy()
    responsive, deaf = out[out["resp"] > 0.6], out[out["resp"] < 0.25]
    assert len(responsive) > 150 and len(deaf) > 30
    gain = (responsive["delay_days"] - responsive["delay_days_strong"]).mean()
    assert gain > 8.0
    assert gain > 2 * (deaf["delay_days"] - deaf["delay_days_strong"]).mean()
    # The knob never delays anybody, and contacts stay before the payments they move.
    assert (out["delay_days_strong"] <= out["delay_days"]).all()
    # Items nobody called about are unaffected.
    others = runs["none"].index.difference(list(contacted))
    assert runs["none"].loc[others, "delay_days"].equals(runs["strong"].loc[others, "delay_days"])


# --- determinism and input errors -----------------------------------------------------------------
def test_same_seed_same_ledger_other_seed_other_ledger(small, tmp_path):
    again = simulate_ledger(SMALL, seed=11)
    for name in ("events", "master", "truth", "customers"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    a, b = write_ledger(small, tmp_path / "a"), write_ledger(again, tmp_path / "b")
    assert a["events"].read_bytes() == b["events"].read_bytes()
    other = simulate_ledger(SMALL, seed=12)
    assert not other.events.equals(small.events)
    assert not np.allclose(other.truth["oracle_p_late"], small.truth["oracle_p_late"])
    back = pd.read_parquet(a["events"])
    pd.testing.assert_frame_equal(back, small.events, check_dtype=False)
    assert back["event_time"].dtype == "datetime64[us]"


def test_paths_share_randomness_across_knob_values():
    rng = np.random.default_rng(1)
    cust = draw_customers(50, 2, 3, 19_000, 19_600, rng)
    inv = draw_invoices(800, cust, 2, 0.5, 19_000, 19_600, rng)
    p0 = draw_paths(inv.latents, 0.0, np.random.default_rng(4))
    p1 = draw_paths(inv.latents, 30.0, np.random.default_rng(4))
    assert np.array_equal(p0.contact_day, p1.contact_day)
    assert np.array_equal(p0.intended_pay_day, p1.intended_pay_day)
    assert (p1.terminal_day <= p0.terminal_day).all()
    assert (p1.terminal_day < p0.terminal_day).any()


@pytest.mark.parametrize("update, field", [
    ({"company_codes": ("1000", "1000")}, "company_codes"),
    ({"company_codes": ()}, "company_codes"),
    ({"start": "first of May"}, "simulator.start"),
    ({"dunning_days": (15, 1, 30, 45)}, "dunning_days"),
])
def test_bad_config_is_refused_naming_the_field(update, field):
    config = SimulatorConfig(n_customers=5, n_invoices=20).model_copy(update=update)
    with pytest.raises(ValueError, match=field):
        simulate_ledger(config, seed=0)
