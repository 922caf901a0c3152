"""The training stage's row budget (training.sampling), the trainer's reader (training.rows) and
what the budget changes in the fits: posting rows always kept, later snapshots kept by whole
invoice with weight 1/p, the test window never sampled, the same sample however the file is
read, and weighted fits that reproduce to the last digit."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd
import pytest
from model_rows import contract, make_rows, small_config

from features.pit.build import write_rows
from training import payment_date, sampling
from training.payment_date import fit_conformal
from training.pipeline import fit_bundle, train
from training.risk import fit_calibrator, fit_threads
from training.rows import read_training_rows
from training.splits import resolve_cutoffs, split_rows


def _budget(cfg, max_rows, payment_max_rows=None):
    s = cfg.training.sampling.model_copy(update={"max_rows": max_rows,
                                                 "payment_max_rows": payment_max_rows})
    return cfg.model_copy(update={"training": cfg.training.model_copy(update={"sampling": s})})


@pytest.fixture(scope="module")
def rows():
    return make_rows(2500, seed=11)[0]


@pytest.fixture(scope="module")
def cfg():
    return small_config()


def _fit_rows(rows, cfg):
    cut = resolve_cutoffs(rows, cfg).calibration_end
    kinds = rows["snapshot_kind"].astype(str)
    fit = (rows["snapshot_time"] <= cut) & kinds.isin(cfg.training.snapshot_kinds)
    return fit, kinds, cut


def test_under_the_budget_nothing_is_sampled(rows, cfg):
    cut = resolve_cutoffs(rows, cfg).calibration_end
    plan = sampling.plan(rows, cut, _budget(cfg, len(rows)), seed=1)
    assert not plan.active and plan.p == 1.0
    out = sampling.apply(rows, plan, cfg)
    assert out is rows and sampling.WEIGHT not in out.columns
    assert sampling.weights(out) is None


def test_posting_rows_and_the_test_window_are_kept_later_snapshots_by_invoice(rows, cfg):
    fit, kinds, cut = _fit_rows(rows, cfg)
    n_posting = int((fit & (kinds == "posting")).sum())
    n_later = int((fit & (kinds != "posting")).sum())
    budget = n_posting + n_later // 4
    c = _budget(cfg, budget)
    plan = sampling.plan(rows, cut, c, seed=5)
    assert plan.active and plan.p == pytest.approx((budget - n_posting) / n_later)
    out = sampling.apply(rows, plan, c)
    # every posting row and every row after the calibration end is kept, weight 1
    kept_ids = set(zip(out["invoice_id"], out["snapshot_time"], strict=True))
    must = rows[(kinds == "posting") | (rows["snapshot_time"] > cut)]
    assert all(k in kept_ids for k in zip(must["invoice_id"], must["snapshot_time"],
                                          strict=True))
    w = out[sampling.WEIGHT].to_numpy()
    out_fit, out_kinds, _ = _fit_rows(out, cfg)
    later = (out_fit & (out_kinds != "posting")).to_numpy()
    assert np.all(w[~later] == 1.0)
    assert np.allclose(w[later], 1 / plan.p)
    # by invoice: an invoice keeps all of its later fit-window snapshots or none
    later_all = rows[(fit & (kinds != "posting")).to_numpy()]
    per_invoice = later_all.groupby("invoice_id").size()
    kept = out[later].groupby("invoice_id").size()
    assert (kept == per_invoice.loc[kept.index]).all()
    # the kept count is the binomial draw behind p, and the plan counted it
    assert int(later.sum()) == plan.kept_sampled_rows
    assert abs(plan.kept_sampled_rows - n_later * plan.p) < 4 * np.sqrt(n_later)
    # weighted, the kept rows estimate the full table's totals
    assert float(w[out_fit.to_numpy()].sum()) == pytest.approx(int(fit.sum()), rel=0.05)


def test_a_ledger_too_large_for_its_posting_rows_samples_invoices_nested(rows, cfg):
    fit, kinds, cut = _fit_rows(rows, cfg)
    n_posting = int((fit & (kinds == "posting")).sum())
    n_later = int((fit & (kinds != "posting")).sum())
    c = _budget(cfg, 1500)  # posting rows alone (2,019) would take more than 0.8 x 1,500
    plan = sampling.plan(rows, cut, c, seed=5)
    assert plan.r == pytest.approx(0.8 * 1500 / n_posting)
    assert plan.p == pytest.approx((1500 - plan.r * n_posting) / n_later) and plan.p <= plan.r
    out = sampling.apply(rows, plan, c)
    out_fit, out_kinds, _ = _fit_rows(out, cfg)
    posting = (out_fit & (out_kinds == "posting")).to_numpy()
    later = (out_fit & (out_kinds != "posting")).to_numpy()
    w = out[sampling.WEIGHT].to_numpy()
    assert np.allclose(w[posting], 1 / plan.r) and np.allclose(w[later], 1 / plan.p)
    assert int(posting.sum()) == plan.drawn_kind_rows
    assert abs(plan.drawn_kind_rows - n_posting * plan.r) < 4 * np.sqrt(n_posting)
    # nested: an invoice whose later snapshots are kept keeps its posting row
    assert set(out.loc[later, "invoice_id"]) <= set(out.loc[posting, "invoice_id"])
    # the weights stay those of the draw (no invoice weighs the whole table), and the
    # weighted count estimates the fit windows' rows
    assert w.max() == pytest.approx(1 / plan.p)
    assert float(w[out_fit.to_numpy()].sum()) == pytest.approx(int(fit.sum()), rel=0.1)
    rec = sampling.reconciliation(plan)
    assert rec.balanced and int(rec.frame()["count"].iloc[-1]) == len(out)
    assert (rec.frame()["reason"].str.startswith("posting row of an invoice outside")).any()


def test_the_sample_is_seeded_and_independent_of_row_order(rows, cfg):
    c = _budget(cfg, 3000)
    cut = resolve_cutoffs(rows, cfg).calibration_end
    a = sampling.apply(rows, sampling.plan(rows, cut, c, seed=5), c)
    shuffled = rows.sample(frac=1.0, random_state=3)
    b = sampling.apply(shuffled, sampling.plan(shuffled, cut, c, seed=5), c)
    key = ["invoice_id", "snapshot_time"]
    assert a[key].sort_values(key).reset_index(drop=True).equals(
        b[key].sort_values(key).reset_index(drop=True))
    other = sampling.apply(rows, sampling.plan(rows, cut, c, seed=6), c)
    assert set(other["invoice_id"] + other["snapshot_time"].astype(str)) != set(
        a["invoice_id"] + a["snapshot_time"].astype(str))


def test_reconciliation_counts_every_row_left_out(rows, cfg):
    c = _budget(cfg, 3000)
    cut = resolve_cutoffs(rows, cfg).calibration_end
    plan = sampling.plan(rows, cut, c, seed=5)
    out = sampling.apply(rows, plan, c)
    rec = sampling.reconciliation(plan)
    assert rec.balanced
    frame = rec.frame()
    assert int(frame["count"].iloc[0]) == len(rows)
    assert int(frame["count"].iloc[-1]) == len(out)
    assert "training.sampling.max_rows = 3000" in frame["reason"].iloc[1]


def test_the_reader_keeps_the_same_sample_in_any_batch_size_with_float32_features(
        rows, cfg, tmp_path):
    c = _budget(cfg, 3000)
    path = write_rows(rows, tmp_path / "training.parquet")
    whole = read_training_rows(path, c, seed=5, batch_rows=100_000)
    parts = read_training_rows(path, c, seed=5, batch_rows=997)
    key = ["invoice_id", "snapshot_time"]
    cut = resolve_cutoffs(rows, cfg).calibration_end
    in_memory = sampling.apply(rows, sampling.plan(rows, cut, c, seed=5), c)
    for got in (whole, parts):
        assert len(got) == len(in_memory)
        a = got.sort_values(key).reset_index(drop=True)
        b = in_memory.sort_values(key).reset_index(drop=True)
        assert a[key].equals(b[key])
        assert np.array_equal(a[sampling.WEIGHT].to_numpy(), b[sampling.WEIGHT].to_numpy())
        # model features float32 (values as float32 casts of the file's), labels untouched
        assert got["amount"].dtype == np.float32
        assert np.array_equal(a["amount"].to_numpy(), b["amount"].to_numpy(dtype=np.float32))
        assert got["label_days_to_clear"].dtype == np.float64
        assert got["risk_category"].dtype == "category"
        assert got.attrs["training_sample"]["kept_sampled_rows"] == \
            in_memory.attrs["training_sample"]["kept_sampled_rows"]
        assert got.attrs["training_cutoffs"] == resolve_cutoffs(rows, cfg)
    # a folder of part files (the Dask engine's training.parquet/) reads as the same rows
    folder = tmp_path / "parts" / "training.parquet"
    half = len(rows) // 2
    write_rows(rows.iloc[:half], folder / "part-00000.parquet")
    write_rows(rows.iloc[half:], folder / "part-00001.parquet")
    from_parts = read_training_rows(folder, c, seed=5, batch_rows=997)
    assert from_parts[key].reset_index(drop=True).equals(whole[key].reset_index(drop=True))
    assert np.array_equal(from_parts[sampling.WEIGHT].to_numpy(),
                          whole[sampling.WEIGHT].to_numpy())


def _model_hashes(bundle) -> list[str]:
    models = [bundle.risk, bundle.very_late, bundle.bucket, *bundle.quantiles.values()]
    return [hashlib.sha256(m.model_to_string().encode()).hexdigest() for m in models
            if m is not None]


def test_a_sampled_training_is_weighted_recorded_and_reproducible(rows, cfg):
    c = _budget(cfg, 6000)  # 2,019 posting rows + about half of the 8,336 later snapshots
    a = train(rows, c, seed=3, register=False, with_report=False, contract=contract(c))
    sample = a.bundle.training_window["sample"]
    assert sample["active"] and sample["max_rows"] == 6000
    assert a.reconciliation.balanced
    assert any("outside the training sample" in r for r in a.reconciliation.frame()["reason"])
    assert sampling.WEIGHT in a.split.train.columns
    # the test window is scored in full: the same rows as an unsampled training's
    full = train(rows, _budget(cfg, None), seed=3, register=False, with_report=False,
                 contract=contract(cfg))
    assert len(a.test_rows) == len(full.test_rows)
    assert _model_hashes(a.bundle) != _model_hashes(full.bundle)
    again = train(rows, c, seed=3, register=False, with_report=False, contract=contract(c))
    assert _model_hashes(again.bundle) == _model_hashes(a.bundle)
    assert a.metrics["risk_posting"]["roc_auc"] == again.metrics["risk_posting"]["roc_auc"]
    # half of the later snapshots, weighted, rank the posting rows as well as all of them
    assert abs(a.metrics["risk_posting"]["roc_auc"]
               - full.metrics["risk_posting"]["roc_auc"]) < 0.005


def test_the_payment_boosters_learn_every_row_of_a_share_of_the_invoices(rows, cfg):
    c = _budget(cfg, 6000, payment_max_rows=2000)
    cut = resolve_cutoffs(rows, cfg).calibration_end
    plan = sampling.plan(rows, cut, c, seed=5)
    kept = sampling.apply(rows, plan, c)
    fit = kept[(kept["snapshot_time"] <= cut).to_numpy()]
    sub, q = sampling.payment_subsample(fit, plan.as_dict(), c, seed=99)  # the plan's seed wins
    assert 0 < q < plan.p
    assert q == pytest.approx(2000 / fit[sampling.WEIGHT].sum())
    assert sampling.WEIGHT not in sub.columns  # a plain sample of invoices: unweighted
    # exactly the invoices drawn below q, with every row they have in the unsampled table
    drawn = set(fit.loc[sampling.invoice_uniform(fit["invoice_id"], 5) < q, "invoice_id"])
    assert set(sub["invoice_id"]) == drawn
    full = rows[(rows["snapshot_time"] <= cut).to_numpy() & rows["invoice_id"].isin(drawn)]
    assert len(sub) == len(full)
    # under the budget nothing changes
    same, one = sampling.payment_subsample(fit, plan.as_dict(), _budget(cfg, 6000, 10**9), 5)
    assert same is fit and one == 1.0
    # the training stage counts the payment rows left out, balanced
    res = train(rows, c, seed=3, register=False, with_report=False, contract=contract(c))
    last = res.bundle.training_window["payment_rows"][-1]
    assert last["q"] < 1.0 and last["rows_out"] < last["rows_in"]
    frame = res.reconciliation.frame()
    assert res.reconciliation.balanced
    assert (frame["what"] == "train+calibration payment rows -> final payment-date models").any()


def test_integer_weights_calibrate_like_repeated_rows():
    rng = np.random.default_rng(4)
    raw = rng.uniform(0.02, 0.98, 3000)
    y = (rng.random(3000) < raw ** 1.3).astype(float)
    w = rng.integers(1, 4, 3000)
    weighted = fit_calibrator(raw, y, "isotonic", weight=w.astype(float))
    repeated = fit_calibrator(np.repeat(raw, w), np.repeat(y, w), "isotonic")
    assert np.allclose(weighted.x, repeated.x) and np.allclose(weighted.y, repeated.y)
    wp = fit_calibrator(raw, y, "platt", weight=w.astype(float))
    rp = fit_calibrator(np.repeat(raw, w), np.repeat(y, w), "platt")
    assert wp.a == pytest.approx(rp.a, rel=1e-4) and wp.b == pytest.approx(rp.b, abs=1e-4)


def test_the_conformal_search_in_blocks_and_weighted(monkeypatch):
    rng = np.random.default_rng(9)
    n = 5000
    p50 = rng.uniform(5, 60, n)
    days = np.column_stack([p50 - 10, p50, p50 + 10])
    truth = p50 + rng.normal(0, 12, n)
    known = np.where(rng.random(n) < 0.9, np.maximum(truth, 0), np.nan)
    window = rng.uniform(20, 200, n)
    whole = fit_conformal(days, known, window)
    monkeypatch.setattr(payment_date, "_BLOCK_CELLS", 7 * n)
    assert fit_conformal(days, known, window) == whole
    w = rng.integers(1, 3, n)
    weighted = fit_conformal(days, known, window, weight=w.astype(float))
    rep = np.repeat(np.arange(n), w)
    repeated = fit_conformal(days[rep], known[rep], window[rep])
    assert (weighted.lo, weighted.hi) == (repeated.lo, repeated.hi)


def test_two_threads_give_the_same_models_to_the_last_digit(rows, cfg):
    two = cfg.model_copy(update={"training": cfg.training.model_copy(update={"num_threads": 2})})
    a = fit_bundle(split_rows(rows, two), contract(two), two, seed=3)
    b = fit_bundle(split_rows(rows, two), contract(two), two, seed=3)
    assert _model_hashes(a) == _model_hashes(b)
    assert a.calibrator == b.calibrator and a.conformal == b.conformal


def test_threads_follow_the_machine_for_large_fits_only():
    assert fit_threads(10, 3, 100) == 3
    assert fit_threads(99, None, 100) == 1
    assert fit_threads(100, None, 100) == len(os.sched_getaffinity(0))
