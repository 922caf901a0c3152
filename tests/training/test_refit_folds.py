"""Out-of-time folds, the refit on train + calibration, the payment-date anchor: no label crosses
a fold's cut-off, and what training fitted is what scoring applies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from model_rows import contract, make_rows, small_config

from training.core.payment import due_offset, payment_offset, predict_relative, to_days
from training.pipeline import fit_bundle
from training.core.scoring import score
from training.splits import refit_frame, rolling_folds, split_rows


@pytest.fixture(scope="module")
def data():
    rows, _ = make_rows(2500, seed=17)
    return rows


def _no_label_after(frame: pd.DataFrame, cutoff: pd.Timestamp) -> None:
    known = ~frame["censored"].to_numpy(dtype=bool)
    assert (frame.loc[known, "outcome_time"] <= cutoff).all()
    assert frame["label_late"].notna().sum() == known.sum()


def test_folds_step_back_by_the_calibration_length_and_never_leak(data):
    cfg = small_config(calibration_folds=3)
    split = split_rows(data, cfg)
    c = split.cutoffs
    folds = rolling_folds(split, cfg, 3)
    length = c.calibration_end - c.train_end
    assert [f.end for f in folds] == [c.train_end - length, c.train_end, c.calibration_end]
    # The last fold is the split's own (train, calibration), not a copy.
    assert folds[-1].fit is split.train and folds[-1].predict is split.calibration
    for fold in folds[:-1]:
        assert fold.end - fold.start == length
        assert (fold.fit["snapshot_time"] <= fold.start).all()
        _no_label_after(fold.fit, fold.start)  # the fold model learns what was known then
        t = fold.predict["snapshot_time"]
        assert ((t > fold.start) & (t <= fold.end)).all() and len(fold.predict)
        _no_label_after(fold.predict, c.calibration_end)  # calibration may know up to its end
        # Invoices posted inside the slice are new to the fold model.
        assert not fold.fit["invoice_id"].isin(
            fold.predict.loc[fold.predict["snapshot_kind"] == "posting", "invoice_id"]).any()
    # Slices that would start before the first snapshot are left out.
    many = rolling_folds(split, cfg, 50)
    assert len(many) < 50 and many[0].start > c.start


def test_refit_frame_is_train_and_calibration_labelled_at_its_end(data):
    cfg = small_config()
    split = split_rows(data, cfg)
    full = refit_frame(split, cfg)
    assert len(full) == len(split.train) + len(split.calibration)
    assert full["snapshot_time"].max() <= split.cutoffs.calibration_end
    _no_label_after(full, split.cutoffs.calibration_end)
    # Later knowledge: more train rows have a decided late flag than at the train end.
    early = full["snapshot_time"] <= split.cutoffs.train_end
    assert full.loc[early, "risk_used"].sum() > split.train["risk_used"].sum()


def test_payment_offset_reads_the_anchor_the_contract_names(data):
    rows = data.head(50).copy()
    rows.loc[rows.index[:10], "hist_avg_days_late"] = np.nan
    plain = due_offset(rows)
    np.testing.assert_array_equal(payment_offset(rows, None), plain)
    anchored = payment_offset(rows, "hist_avg_days_late")
    expected = plain + rows["hist_avg_days_late"].fillna(0.0).to_numpy()
    np.testing.assert_allclose(anchored, expected)
    with pytest.raises(ValueError, match="anchor column 'nope'"):
        payment_offset(rows, "nope")


@pytest.mark.parametrize("refit", [True, False])
def test_bundle_scores_with_what_it_learned(data, refit):
    cfg = small_config(refit_on_calibration=refit, payment_anchor="hist_avg_days_late",
                       calibration_folds=2)
    split = split_rows(data, cfg)
    bundle = fit_bundle(split, contract(cfg), cfg, seed=3)
    window = bundle.training_window
    assert window["fit_end"] == str(split.cutoffs.calibration_end if refit
                                    else split.cutoffs.train_end)
    assert len(window["calibration_folds"]) == (2 if refit else 1)
    assert bundle.contract.payment_anchor == "hist_avg_days_late"
    n_rounds = bundle.risk_rounds
    assert 1 <= n_rounds <= cfg.training.risk.n_estimators
    assert bundle.risk.current_iteration() == n_rounds  # the final booster has the chosen rounds
    test = split.test[split.test["snapshot_kind"] != "now"]
    out = score(bundle, test)
    X, _ = bundle.matrix.build(test)
    days = to_days(predict_relative(bundle.quantiles, X),
                   due_offset(test) + test["hist_avg_days_late"].fillna(0).to_numpy(),
                   bundle.conformal)
    np.testing.assert_allclose(out[["days_to_clear_p10", "days_to_clear_p50",
                                    "days_to_clear_p90"]].to_numpy(), days)


def test_a_feature_set_without_the_anchor_falls_back_to_the_due_date(data):
    cfg = small_config(payment_anchor="hist_ewm_days_late")  # not in the test feature set
    bundle = fit_bundle(split_rows(data, cfg), contract(cfg), cfg, seed=3)
    assert bundle.contract.payment_anchor is None
