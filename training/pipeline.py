"""Training pipeline: split -> min-data gate -> (tune) -> fit -> calibrate -> score the test slice
-> evaluate (against the baselines, with the report and plots) -> log to MLflow -> register + gate.

Fit and calibrate (`fit_bundle`): out-of-time folds (the calibration slice and the equally long
slices before it) are each predicted by models fitted on the rows before them; those predictions
choose the risk booster's number of rounds (summed out-of-time log-loss) and fit the calibrator
and the conformal shift. The final boosters are then refitted on train + calibration with labels
as known at the calibration end (`training.refit_on_calibration`), so the model that meets the
test slice has seen the latest six months - which matters for customers whose habits drift.
Nothing is fitted, chosen or calibrated on the test slice.

`train(rows, config, seed, truth=None, tracking_uri=None, ledger=...)` is the one entry point;
`evaluate(...)` re-scores a registered model on the test slice of new rows of the same ledger.

Ledgers: the rows' ledger (a name, or the fingerprint's known facts; training.core.ledger) names
the MLflow experiment and the registered model (`<training.registered_model_name>-<ledger>`), and
its fingerprint is kept in the bundle and as version tags. The champion gate compares only models
of the same ledger and feature set; `evaluate` refuses rows of another ledger or feature set
(LedgerMismatchError) unless forced, and then says so in the result's `warnings`.

Progress: `train(progress=...)` receives one line per stage (each fit with its elapsed time, each
tuning trial with the best value so far); the CLI prints them. `reconciliation(split, config)` is
the training-stage count of rows in, used per split and left out with the reason, logged beside
the run (evaluation/reconciliation.csv). Deterministic: one seed drives every
booster (deterministic=True, force_row_wise, a thread count fixed by the fit's size and the
machine: training.risk.fit_threads) and the tuner, so the same rows, config and seed give the
same metrics to the last digit on one machine.

Scale: above the row budget (training.sampling) the later snapshots of the fit windows are
sampled by invoice and weighted (training.sampling); rows read by the CLI come compact and
sampled already (training.rows). Folds are built one at a time, and splits share the rows'
feature columns (copy-on-write), so a million invoices train in a few GiB.

Headline metrics are maturity-aware (see training.splits): risk metrics on the test rows whose
late flag is decided by the test end (including invoices still open past due, which are late),
payment-date MAE on rows watched for the full horizon (targets and predictions clipped at it),
interval coverage on rows where it is decidable (t + P90 <= test end). The evaluation report scores
the known-outcome rows of the same test slice, side by side with the baselines and the rule
strategy.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from features.config.training import LgbParams
from features.reconcile import Reconciliation, combine, reconcile_counts, reconcile_ids
from training import min_data, plots, registry, sampling
from training.baselines import baseline_predictions
from training.core.bundle import ModelBundle, json_safe
from training.core.contract import ModelContract
from training.core.ledger import DEFAULT_LEDGER, fingerprint, ledger_mismatch, ledger_tags
from training.core.matrix import feature_matrix, learn_categories, matrix_frame
from training.core.payment import ConformalShift, payment_offset, predict_relative, to_days
from training.core.scoring import check_version, score
from training.gate import strict_gate
from training.min_data import InsufficientDataError
from training.metrics import ece_interval, ranking_metrics, risk_metrics
from training.payment_date import censored_coverage, fit_conformal, fit_quantiles
from training.report import EvaluationReport, HeadlineTable, model_card
from training.report import headline_table as report_headline_table
from training.report import evaluate as report_evaluate
from training.risk import fit_buckets, fit_calibrator, fit_risk, fit_threads
from training.splits import (SPLIT_NAMES, Cutoffs, SplitResult, fold_at, fold_windows,
                             refit_frame, resolve_cutoffs, split_rows)
from training.tune import tune

log = logging.getLogger(__name__)
_DAY = pd.Timedelta(days=1)


class LedgerMismatchError(ValueError):
    """Rows of another ledger or feature set than the model's (evaluate refuses them)."""


class Progress:
    """Stage lines for a progress display: `stage(what)` times a block and reports its elapsed
    seconds (and the total so far) to the callback and the module log."""

    def __init__(self, callback: Callable[[str], None] | None = None) -> None:
        self.callback = callback
        self.start = time.perf_counter()

    def say(self, message: str) -> None:
        log.info(message)
        if self.callback is not None:
            self.callback(message)

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        now = time.perf_counter()
        self.say(f"{what}: {now - t0:.1f} s (elapsed {now - self.start:.0f} s)")


def _progress(progress) -> Progress:
    return progress if isinstance(progress, Progress) else Progress(progress)


@dataclass
class TrainResult:
    bundle: ModelBundle
    split: SplitResult
    test_rows: pd.DataFrame  # test-slice rows of the training snapshot kinds
    predictions: pd.DataFrame  # score(bundle, test_rows), same index
    metrics: dict  # maturity-aware headline metrics (module doc)
    report: EvaluationReport | None = None  # None when trained with with_report=False
    run_id: str | None = None
    model_version: int | None = None
    alias: str | None = None
    decision: registry.Decision | None = None
    ledger: dict = field(default_factory=dict)  # the ledger fingerprint (bundle.ledger)
    registered_model: str | None = None  # "<prefix>-<ledger>" when registered
    reconciliation: Reconciliation | None = None  # training-stage reconciliation

    def headline_table(self, with_report_note: bool = False) -> HeadlineTable:
        """The headline table (training.report.headline_table) of this result: the same as
        `evaluate` gives for these rows; with_report_note adds why the report's holdout table
        differs (training.report.holdout_note)."""
        return report_headline_table(self.metrics, self.bundle.training_window,
                                     self.report if with_report_note else None,
                                     ledger=self.ledger)


# --- gate -----------------------------------------------------------------------------------------
def min_data_counts(split: SplitResult) -> dict[str, int]:
    counts = min_data.fit_counts(split.train)
    return {"cleared_invoices": counts["cleared_invoices"],
            "late_invoices": counts["late_invoices"]}


def check_min_data(split: SplitResult, config: PaydelayConfig) -> dict[str, int]:
    """Refuse to train on too little history, naming the counts and thresholds
    (training.min_data, the rule the Dask trainer applies too)."""
    return min_data.check(min_data.fit_counts(split.train),
                          min_data.fit_counts(split.calibration),
                          min_data.fit_counts(split.test), split.cutoffs, config)


# --- fit ------------------------------------------------------------------------------------------
def _fold_usable(fit: pd.DataFrame, predict: pd.DataFrame, config: PaydelayConfig) -> bool:
    """A fold model is worth fitting with the gate's minimum data and both classes on each side."""
    return min_data.fold_usable(min_data.fit_counts(fit), min_data.fit_counts(predict), config)


def fit_bundle(split: SplitResult, contract: ModelContract, config: PaydelayConfig, seed: int,
               categories: dict[str, list[str]] | None = None,
               risk_params: LgbParams | None = None,
               payment_params: LgbParams | None = None,
               progress: Progress | Callable[[str], None] | None = None) -> ModelBundle:
    """Fit the risk, bucket and payment-date models, their calibrator and conformal shift.

    Out-of-time step: on each fold of `training.splits.fold_windows` (the calibration slice and,
    with calibration_folds > 1, the equally long slices before it), a risk model, a very-late
    model and payment quantile models fitted on the rows before the slice predict the slice;
    the calibrators and the conformal shift are fitted on those pooled predictions, so they
    never see a prediction of a model that learned the row, and with a year of folds every
    season weighs the same (a single Jul-Dec slice taught the calibrator year-end lateness that
    a Jan-Jun holdout does not have). Folds are built one at a time and let go once their
    models have predicted (a million-invoice ledger holds one fold's frames, not all of them).
    Final models: with `training.refit_on_calibration` they are refitted on train + calibration
    (labels as known at calibration_end), otherwise the last fold's models are kept (fitted on
    train only, as before). Payment quantiles learn days relative to the due date + the
    contract's payment anchor (`training.payment_anchor` when the features have it).
    Rows sampled under the row budget (training.sampling) carry their weights into every fit,
    calibrator, choice of rounds and conformal shift; unsampled rows fit unweighted.
    The contract (ModelContract.from_config(config) unless a test gives its own) decides the
    features, the delay buckets and the anchor; config the training settings.
    """
    tc = config.training
    fs = contract.features
    prog = _progress(progress)
    categories = categories or learn_categories(split.train, fs)
    fit = _Fitter(fs, categories, config, seed, contract, prog,
                  sample=(split.rows.attrs.get("training_sample") if split.rows is not None
                          else None))
    rp, pp = risk_params or tc.risk, payment_params or tc.payment
    cal_end = split.cutoffs.calibration_end

    n_folds = tc.calibration_folds if tc.refit_on_calibration else 1
    windows = fold_windows(split, n_folds)
    risk_oot, vl_oot, pay_oot, used_folds = [], [], [], []
    last_quantiles = None
    for k, (start, end) in enumerate(windows, 1):
        fold = fold_at(split, config, start, end)
        # The last fold is (train, calibration), which the gate has checked.
        if k < len(windows) and not _fold_usable(fold.fit, fold.predict, config):
            continue
        used_folds.append([str(fold.start), str(fold.end)])
        what = f"fold {k}/{len(windows)} (predicting {start:%Y-%m-%d}..{end:%Y-%m-%d})"
        risk_oot.append(fit.out_of_time(fold, "risk_used", "target_late", rp,
                                        f"risk model, out-of-time {what}"))
        if _both_outcomes(fold, "very_late_used", "target_very_late"):
            vl_oot.append(fit.out_of_time(fold, "very_late_used", "target_very_late",
                                          risk_params or tc.risk,
                                          f"very-late model, out-of-time {what}"))
        if tc.conformal:
            with prog.stage(f"payment-date models (P10/P50/P90), out-of-time {what}"):
                last_quantiles, days, known, window, w = fit.payment_out_of_time(fold, pp,
                                                                                  cal_end)
            pay_oot.append((days, known, window, w))
        del fold
    # Boosting rounds: the out-of-time log-loss summed over the folds decides (an out-of-time
    # choice; the default rounds over-fit enough to make P(late) over-confident next season).
    n_rounds, calibrator = _rounds_and_calibrator(risk_oot, tc.calibration_method)
    risk = risk_oot[-1].booster if not tc.refit_on_calibration else None
    vl_rounds, vl_calibrator = (_rounds_and_calibrator(vl_oot, tc.calibration_method)
                                if vl_oot else (None, None))
    shift = (fit_conformal(*(np.concatenate(part) for part in zip(*[p[:3] for p in pay_oot],
                                                                  strict=True)),
                           weight=_concat_weights([p[3] for p in pay_oot]))
             if tc.conformal else ConformalShift())
    del risk_oot, vl_oot, pay_oot

    final = refit_frame(split, config) if tc.refit_on_calibration else split.train
    if risk is None or risk.current_iteration() != n_rounds:
        risk = fit.final(final, "risk_used", "target_late",
                         rp.model_copy(update={"n_estimators": n_rounds}),
                         f"final risk model ({n_rounds} rounds")
    very_late = None
    if vl_rounds is not None:
        very_late = fit.final(final, "very_late_used", "target_very_late",
                              (risk_params or tc.risk).model_copy(
                                  update={"n_estimators": vl_rounds}),
                              f"final very-late model ({vl_rounds} rounds")
    quantiles = last_quantiles
    if tc.refit_on_calibration or quantiles is None:
        p = final[final["payment_used"]]
        with prog.stage(f"final payment-date models ({len(p):,} rows)"):
            quantiles = fit.quantiles(p, pp)
    b = final[final["bucket_used"]]
    with prog.stage(f"delay-bucket model ({len(b):,} rows)"):
        bucket, prior = fit_buckets(fit.X(b), b["target_bucket"].to_numpy(), fs, tc.bucket,
                                    seed, fit.threads(len(b)),
                                    n_late_buckets=contract.n_late_buckets,
                                    weight=sampling.weights(b))
    window_info = {**split.cutoffs.as_dict(),
                   "fit_end": str(cal_end if tc.refit_on_calibration
                                  else split.cutoffs.train_end),
                   "calibration_folds": used_folds,
                   "payment_rows": fit.payment_rows}
    return ModelBundle(
        contract=contract, categories=categories, risk=risk, calibrator=calibrator,
        bucket=bucket, bucket_prior=prior, quantiles=quantiles, conformal=shift, seed=seed,
        risk_rounds=n_rounds, config=config.model_dump(mode="json"),
        training_window=window_info, very_late=very_late,
        very_late_calibrator=vl_calibrator, very_late_rounds=vl_rounds)


@dataclass
class _OutOfTime:
    """One fold's binary model and what choosing its rounds and calibrating it needs: the
    predicted slice's matrix, outcomes and weights, and the weighted log-loss curve."""

    booster: lgb.Booster
    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None
    curve: np.ndarray  # summed (weighted) out-of-time log-loss after each round


def _both_outcomes(fold, used: str, target: str) -> bool:
    """The very-late model is fitted on a fold only with both outcomes on both sides."""
    return (fold.fit.loc[fold.fit[used], target].nunique() == 2
            and fold.predict.loc[fold.predict[used], target].nunique() == 2)


def _concat_weights(parts: list) -> np.ndarray | None:
    return None if any(w is None for w in parts) else np.concatenate(parts)


def _rounds_and_calibrator(oot: list[_OutOfTime], method: str):
    """Rounds minimising the summed out-of-time log-loss, and the calibrator fitted on the
    pooled out-of-time predictions at those rounds."""
    n_rounds = int(np.argmin(np.sum([o.curve for o in oot], axis=0))) + 1
    raw = np.concatenate([o.booster.predict(o.X, num_iteration=n_rounds) for o in oot])
    y = np.concatenate([o.y for o in oot])
    return n_rounds, fit_calibrator(raw, y, method, weight=_concat_weights([o.weight
                                                                            for o in oot]))


class _Fitter:
    """The fits of one training run: the model matrix of a frame, LightGBM threads for a fit's
    size (training.risk.fit_threads) and the sample weights (training.sampling) passed to every
    booster."""

    def __init__(self, fs, categories, config: PaydelayConfig, seed: int,
                 contract: ModelContract, prog: Progress, sample: dict | None = None):
        self.fs, self.categories, self.seed = fs, categories, seed
        self.config, self.tc, self.sample = config, config.training, sample
        self.anchor, self.prog = contract.payment_anchor, prog
        self.payment_rows: list[dict] = []  # each quantile fit's rows in / out and q

    def X(self, frame: pd.DataFrame) -> np.ndarray:
        return feature_matrix(frame, self.fs, self.categories)[0]

    def threads(self, n_rows: int) -> int:
        return fit_threads(n_rows, self.tc.num_threads, self.tc.threads_from_rows)

    def out_of_time(self, fold, used: str, target: str, params: LgbParams,
                    what: str) -> _OutOfTime:
        r, c = fold.fit[fold.fit[used]], fold.predict[fold.predict[used]]
        w_c = sampling.weights(c)
        curve: dict = {}
        Xc, yc = self.X(c), c[target].to_numpy(dtype="float64")
        with self.prog.stage(f"{what}, {len(r):,} rows"):
            booster = fit_risk(self.X(r), r[target], self.fs, params, self.seed,
                               self.threads(len(r)), callbacks=[lgb.record_evaluation(curve)],
                               valid=(Xc, yc, w_c), weight=sampling.weights(r))
        total = len(c) if w_c is None else float(w_c.sum())
        return _OutOfTime(booster, Xc, yc, w_c,
                          total * np.asarray(curve["valid_0"]["binary_logloss"]))

    def final(self, frame: pd.DataFrame, used: str, target: str, params: LgbParams,
              what: str) -> lgb.Booster:
        r = frame[frame[used]]
        with self.prog.stage(f"{what}, {len(r):,} rows)"):
            return fit_risk(self.X(r), r[target], self.fs, params, self.seed,
                            self.threads(len(r)), weight=sampling.weights(r))

    def quantiles(self, p: pd.DataFrame, params: LgbParams) -> dict:
        """P10/P50/P90 boosters on the payment rows, under the payment rows' own budget
        (training.sampling.payment_subsample)."""
        n = len(p)
        p, q = sampling.payment_subsample(p, self.sample, self.config, self.seed)
        self.payment_rows.append({"rows_in": n, "rows_out": len(p), "q": q})
        if q < 1.0:
            self.prog.say(f"payment-date rows: every row of a seeded {q:.4f} of invoices "
                          f"({len(p):,} of {n:,} rows; training.sampling.payment_max_rows = "
                          f"{self.tc.sampling.payment_max_rows:,})")
        return fit_quantiles(self.X(p), p["target_days_to_clear"].to_numpy(),
                             payment_offset(p, self.anchor), self.fs, params, self.seed,
                             self.threads(len(p)), tail_params=self.tc.payment_tails,
                             weight=sampling.weights(p))

    def payment_out_of_time(self, fold, params: LgbParams, cal_end: pd.Timestamp):
        """The fold's quantile boosters and their unshifted days on the slice's rows of the
        training kinds, with what the conformal shift needs (outcome known, window, weight)."""
        quantiles = self.quantiles(fold.fit[fold.fit["payment_used"]], params)
        cc = fold.predict[fold.predict["snapshot_kind"].astype(str).isin(
            self.tc.snapshot_kinds)]
        days = to_days(predict_relative(quantiles, self.X(cc)), payment_offset(cc, self.anchor))
        known = cc["label_days_to_clear"].where(~cc["label_written_off"]).to_numpy(
            dtype="float64")
        window = ((cal_end - cc["snapshot_time"]) / _DAY).to_numpy(dtype="float64")
        return quantiles, days, known, window, sampling.weights(cc)


# --- evaluate -------------------------------------------------------------------------------------
def _oracle(rows: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    lookup = truth.drop_duplicates("invoice_id").set_index("invoice_id")["oracle_p_late"]
    return rows["invoice_id"].astype(str).map(lookup).to_numpy(dtype="float64")


def headline_metrics(test: pd.DataFrame, pred: pd.DataFrame, config: PaydelayConfig,
                     test_end: pd.Timestamp, truth: pd.DataFrame | None = None,
                     baseline: pd.DataFrame | None = None) -> dict:
    """Maturity-aware metrics of one prediction frame on the test rows (module doc)."""
    n_bins = config.evaluation.ece_bins
    horizon = float(config.training.payment_horizon_days)
    out: dict = {}
    used = test["risk_used"].to_numpy(dtype=bool)
    posting = used & (test["snapshot_kind"].astype(str) == "posting").to_numpy()
    y = test["target_late"].to_numpy(dtype="float64")
    p = pred["p_late"].to_numpy(dtype="float64")
    out["risk"] = risk_metrics(y[used], p[used], n_bins)
    # How far the ECE could move on another draw of the same number of invoices: a calibration
    # target or a champion comparison within this interval is noise.
    out["risk"]["ece_lo"], out["risk"]["ece_hi"] = ece_interval(
        y[used], p[used], test["invoice_id"].to_numpy()[used], n_bins, seed=config.seed)
    out["risk_posting"] = risk_metrics(y[posting], p[posting], n_bins)
    if "very_late_used" in test and "p_very_late" in pred:
        # the ranking model (P(more than very_late_days late or written off)), same maturity rule
        vl = test["very_late_used"].to_numpy(dtype=bool)
        if np.unique(test["target_very_late"].to_numpy(dtype="float64")[vl]).size == 2:
            out["very_late"] = risk_metrics(
                test["target_very_late"].to_numpy(dtype="float64")[vl],
                pred["p_very_late"].to_numpy(dtype="float64")[vl], n_bins)
    if truth is not None and posting.any():
        oracle = _oracle(test.loc[posting], truth)
        ok = ~np.isnan(oracle)
        orc = ranking_metrics(y[posting][ok], oracle[ok])
        out["oracle_posting"] = {**orc, "n": int(ok.sum()),
                                 "brier": float(np.mean((oracle[ok] - y[posting][ok]) ** 2))}
        out["risk_posting"]["auc_ratio_to_oracle"] = (out["risk_posting"]["roc_auc"]
                                                      / orc["roc_auc"])

    pay = test["payment_used"].to_numpy(dtype=bool)
    target = test["target_days_to_clear"].to_numpy(dtype="float64")
    p50 = np.minimum(pred["days_to_clear_p50"].to_numpy(dtype="float64"), horizon)
    kinds = test["snapshot_kind"].astype(str).to_numpy()
    for scope, mask in (("payment", pay), ("payment_posting", pay & (kinds == "posting"))):
        rec = {"n": int(mask.sum()), "horizon_days": horizon,
               "mae_days": float(np.mean(np.abs(p50[mask] - target[mask])))
               if mask.any() else float("nan")}
        if baseline is not None and mask.any():
            b50 = np.minimum(baseline["days_to_clear_p50"].to_numpy(dtype="float64"), horizon)
            rec["baseline_mae_days"] = float(np.mean(np.abs(b50[mask] - target[mask])))
            rec["mae_reduction_vs_baseline"] = 1 - rec["mae_days"] / rec["baseline_mae_days"]
        out[scope] = rec
    window = ((test_end - test["snapshot_time"]) / _DAY).to_numpy(dtype="float64")
    cleared = test["label_days_to_clear"].where(~test["label_written_off"])
    out["interval"] = censored_coverage(pred["days_to_clear_p10"].to_numpy(),
                                        pred["days_to_clear_p90"].to_numpy(),
                                        cleared.to_numpy(dtype="float64"), window)
    return out


def _training_rows(frame: pd.DataFrame, config: PaydelayConfig) -> pd.DataFrame:
    return frame[frame["snapshot_kind"].astype(str).isin(config.training.snapshot_kinds)]


def _baselines(split: SplitResult, test: pd.DataFrame,
               config: PaydelayConfig) -> dict[str, pd.DataFrame]:
    return baseline_predictions(_training_rows(split.train, config), test, config)


def _report(test: pd.DataFrame, preds: dict[str, pd.DataFrame], config: PaydelayConfig,
            truth: pd.DataFrame | None, seed: int,
            caveats: tuple[str, ...]) -> EvaluationReport:
    return report_evaluate(test, preds, config, truth, model_name="model", seed=seed, caveats=[
        *caveats,
        "Report metrics use the test rows whose outcome is known by the test end; the "
        "training headline metrics (risk.*, payment.*, interval.*) are maturity-aware instead."])


# --- reconciliation -------------------------------------------------------------------------------
RECON_STAGE = "train"


def reconciliation(split: SplitResult, config: PaydelayConfig) -> Reconciliation:
    """Training-stage reconciliation (features.reconcile): the input rows against the rows in
    the three windows, and per window the rows each model uses, every row left out counted
    under its reason (other snapshot kinds, an immature label, a horizon not reached)."""
    tc, fc = config.training, config.features
    kinds = set(tc.snapshot_kinds)
    rows = split.rows
    after = int(split.counts.loc["after_test_end", "rows"])
    parts = [reconcile_counts(RECON_STAGE, "rows -> train/calibration/test windows", len(rows),
                              len(rows) - after,
                              {"snapshot after the test end (outside every window)": -after})]
    windowed = pd.concat([split.frame(n)["invoice_id"] for n in SPLIT_NAMES])
    parts.append(reconcile_ids(RECON_STAGE, "invoices -> windows", rows["invoice_id"], windowed,
                               {"every snapshot after the test end": rows["invoice_id"]}))
    ends = {"train": split.cutoffs.train_end, "calibration": split.cutoffs.calibration_end,
            "test": split.cutoffs.test_end}
    for name in SPLIT_NAMES:
        f = split.frame(name)
        end = f"{ends[name]:%Y-%m-%d}"
        kind_ok = f["snapshot_kind"].astype(str).isin(kinds).to_numpy()
        other = f"snapshot kind not in training.snapshot_kinds {sorted(kinds)}"
        risk = f["risk_used"].to_numpy(dtype=bool)
        parts.append(reconcile_counts(
            RECON_STAGE, f"{name} rows -> risk model", len(f), int(risk.sum()),
            {other: -int((~kind_ok).sum()),
             f"late flag not decided by {end} (due date + {fc.grace_days} grace days later; "
             "immature label)": -int((kind_ok & ~risk).sum())}))
        pay = f["payment_used"].to_numpy(dtype=bool)
        parts.append(reconcile_counts(
            RECON_STAGE, f"{name} rows -> payment-date model", len(f), int(pay.sum()),
            {other: -int((~kind_ok).sum()),
             f"not watched for the {tc.payment_horizon_days}-day horizon by {end} (censored "
             "payment date)": -int((kind_ok & ~pay).sum())}))
        if name == "test":
            posting = risk & (f["snapshot_kind"].astype(str) == "posting").to_numpy()
            parts.append(reconcile_counts(
                RECON_STAGE, "test risk rows -> headline at posting", int(risk.sum()),
                int(posting.sum()),
                {"later snapshot (the 'all snapshot rows' line)": -int((risk & ~posting).sum())}))
    return combine(*parts)


# --- train ----------------------------------------------------------------------------------------
def _fit_and_evaluate(split: SplitResult, gate: dict, config: PaydelayConfig, seed: int,
                      truth: pd.DataFrame | None, contract: ModelContract,
                      with_report: bool = True, caveats: tuple[str, ...] = (),
                      progress: Progress | None = None) -> TrainResult:
    tc = config.training
    prog = _progress(progress)
    categories = learn_categories(split.train, contract.features)
    risk_params, pay_params, tuning = tc.risk, tc.payment, None
    if tc.tuning.enabled:
        with prog.stage("tuning (Optuna)"):
            tuning = tune(split.train, contract, categories, config, seed, progress=prog.say)
        risk_params, pay_params = tuning["risk"], tuning["payment"]
    bundle = fit_bundle(split, contract, config, seed, categories, risk_params, pay_params,
                        progress=prog)
    test = _training_rows(split.test, config)
    with prog.stage(f"scoring the test slice ({len(test):,} rows) and the baselines"):
        preds = score(bundle, test)
        baselines = _baselines(split, test, config)
        metrics = headline_metrics(test, preds, config, split.cutoffs.test_end, truth,
                                   baselines.get("hist_avg_delay"))
    metrics["gate_counts"] = gate
    metrics["unseen_categories_test"] = preds.attrs.get("unseen_categories", {})
    if tuning:
        metrics["tuning"] = tuning["summary"]
        bundle.config["training"]["risk"] = risk_params.model_dump(mode="json")
        bundle.config["training"]["payment"] = pay_params.model_dump(mode="json")
    bundle.metrics = metrics
    report = None
    if with_report:
        with prog.stage("evaluation report (baselines, rule strategy, slices, backtest)"):
            report = _report(test, {"model": preds, **baselines}, config, truth, seed, caveats)
    return TrainResult(bundle, split, test, preds, metrics, report)


def ledger_record(rows: pd.DataFrame, ledger: str | dict | None,
                  contract: ModelContract) -> dict:
    """The fingerprint of `rows` for `ledger` (a name, or what the rows' file says: a dict with
    "name"); no ledger: rows.attrs["ledger"] / ["ledger_name"], else "default"."""
    if ledger is None:
        ledger = rows.attrs.get("ledger") or rows.attrs.get("ledger_name") or DEFAULT_LEDGER
    known = dict(ledger) if isinstance(ledger, dict) else {"name": ledger}
    name = known.pop("name", None) or DEFAULT_LEDGER
    return fingerprint(rows, name, contract.feature_set_version, known)


def training_sample(rows: pd.DataFrame, config: PaydelayConfig, seed: int
                    ) -> tuple[pd.DataFrame, Cutoffs, dict]:
    """The rows the models learn from under the row budget (training.sampling), the cut-offs
    (placed on every row, before sampling) and the plan. Rows read by training.rows are sampled
    already and say so in their attrs; rows given in memory are sampled here, the same way."""
    cutoffs = rows.attrs.get("training_cutoffs") or resolve_cutoffs(rows, config)
    sample = rows.attrs.get("training_sample")
    if sample is None:
        plan = sampling.plan(rows, cutoffs.calibration_end, config, seed)
        rows, sample = sampling.apply(rows, plan, config), plan.as_dict()
    return rows, cutoffs, sample


def train(rows: pd.DataFrame, config: PaydelayConfig, seed: int,
          truth: pd.DataFrame | None = None, tracking_uri: str | None = None, *,
          register: bool = True, contract: ModelContract | None = None,
          run_name: str = "train", with_report: bool = True,
          caveats: tuple[str, ...] = (), ledger: str | dict | None = None,
          progress: Callable[[str], None] | None = None,
          canary: Callable[[ModelBundle, pd.DataFrame], dict] | None = None) -> TrainResult:
    """Train, evaluate and (unless register=False) log + register one model bundle.

    rows: output of features.pit.build.build_training_set; truth: the simulator's truth frame
    (oracle line); tracking_uri: MLflow store (None: training.registry.resolve_tracking_uri
    decides - $PAYDELAY_TRACKING_URI, $MLFLOW_TRACKING_URI, else models/mlflow.db).
    contract defaults to ModelContract.from_config(config) (the catalogue's features for
    config.features; the rows must carry its feature_set_version); with_report=False skips the
    evaluation report and plots (faster, e.g. in tests); caveats (e.g. SourceLedger.caveats of an
    external data set) go into the report and the run's tags. ledger: the ledger's name (or a
    dict with "name" and what the feature builder recorded); it names the experiment and the
    registered model "<training.registered_model_name>-<ledger>". progress: called with one line
    per stage. canary: loads the candidate the way the service does and scores a sample
    (serving.canary.run_canary, passed in by the callers above training); with it and the
    evaluation report, the strict gate decides the alias (training.gate: champion, best simple
    baseline, slice floors, canary), without it only the champion rule does. Raises InsufficientDataError (min-data gate) before fitting anything.
    """
    contract = contract or ModelContract.from_config(config)
    check_version(contract, rows)  # rows built with other feature settings: refuse before fitting
    prog = Progress(progress)
    led = ledger_record(rows, ledger, contract)
    rows, cutoffs, sample = training_sample(rows, config, seed)
    split = split_rows(rows, config, cutoffs)
    recon = combine(sampling.reconciliation(sample), reconciliation(split, config))
    if sample.get("active"):
        drawn = sample.get("drawn_kind_rows")
        prog.say(f"row budget training.sampling.max_rows = {sample['max_rows']:,}: posting "
                 f"rows of a seeded {sample.get('r', 1.0):.4f} of invoices "
                 f"({sample['kept_kind_rows'] if drawn is None else drawn:,} of "
                 f"{sample['kept_kind_rows']:,}), later snapshots of {sample['p']:.4f} "
                 f"({sample['kept_sampled_rows']:,} of {sample['sampled_rows']:,} rows, weight "
                 f"{1 / sample['p']:.3f}); test window rows all kept")
    c = split.cutoffs
    prog.say(f"ledger {led['name']!r}: {led['n_invoices']:,} invoices, "
             f"{len(rows):,} rows, data {str(led['first_event'])[:10]} .. "
             f"{str(led['last_event'])[:10]}")
    prog.say(f"splits: train {c.start:%Y-%m-%d} .. {c.train_end:%Y-%m-%d}, calibration .. "
             f"{c.calibration_end:%Y-%m-%d}, test window {c.calibration_end:%Y-%m-%d} .. "
             f"{c.test_end:%Y-%m-%d}")
    gate = check_min_data(split, config)  # before any MLflow run: a refusal leaves no trace
    if not register:
        result = _fit_and_evaluate(split, gate, config, seed, truth, contract, with_report,
                                   caveats, prog)
        result.bundle.ledger = result.ledger = led
        result.bundle.training_window["sample"] = sample
        result.reconciliation = combine(recon, sampling.payment_reconciliation(
            result.bundle.training_window, config))
        return result
    name = registry.model_name(config.training.registered_model_name, led["name"])
    with registry.run(name, run_name, tracking_uri) as active:
        mlflow.set_tags(ledger_tags(led))
        result = _fit_and_evaluate(split, gate, config, seed, truth, contract, with_report,
                                   caveats, prog)
        result.bundle.ledger = result.ledger = led
        result.bundle.training_window["sample"] = sample
        result.reconciliation = combine(recon, sampling.payment_reconciliation(
            result.bundle.training_window, config))
        result.registered_model = name
        if caveats:
            mlflow.set_tag("caveats", " | ".join(caveats))
        result.run_id = active.info.run_id
        with prog.stage("logging to MLflow and registering"):
            _log_and_register(result, config, seed, tracking_uri, with_report, canary)
    return result


def _headline_tags(metrics: dict, split: SplitResult) -> dict[str, str]:
    """The version tags `paydelay models` lists: test window and headline figures."""
    p = registry.METRIC_TAG_PREFIX
    tags = {registry.TEST_WINDOW_TAG: f"{split.cutoffs.calibration_end} .. "
                                      f"{split.cutoffs.test_end}"}
    for scope, suffix in (("risk_posting", "_posting"), ("risk", "")):
        for m in ("roc_auc", "brier", "ece"):
            v = metrics.get(scope, {}).get(m)
            if v is not None and np.isfinite(v):
                tags[f"{p}{m}{suffix}"] = f"{float(v):.6g}"
    return tags


def _log_and_register(result: TrainResult, config: PaydelayConfig, seed: int,
                      tracking_uri: str | None, with_report: bool,
                      canary: Callable[[ModelBundle, pd.DataFrame], dict] | None = None) -> None:
    b, split = result.bundle, result.split
    registry.log_params({
        "seed": seed, "feature_set_version": b.feature_set_version,
        "grace_days": config.features.grace_days, "window": split.cutoffs.as_dict(),
        "rows": split.counts["rows"].to_dict(), "config": config.model_dump(mode="json"),
        "ledger": {k: v for k, v in result.ledger.items()},
        "training_sample": b.training_window.get("sample", {}),
    })
    registry.log_metrics(result.metrics)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        split.counts.to_csv(tmp / "split_counts.csv")
        if result.reconciliation is not None:
            result.reconciliation.frame().to_csv(tmp / "reconciliation.csv", index=False)
        (tmp / "headline_metrics.json").write_text(json.dumps(json_safe(result.metrics),
                                                              indent=1))
        (tmp / "headline.md").write_text(result.headline_table(True).to_markdown())
        if with_report:
            _log_report_and_plots(result, tmp)
        mlflow.log_artifacts(str(tmp), artifact_path="evaluation")
        X_example = matrix_frame(b.matrix.build(result.test_rows.head(5))[0],
                                 b.contract.features)
        model_uri = registry.log_bundle(b, X_example, tmp / "bundle")

    name = result.registered_model or registry.model_name(
        config.training.registered_model_name, result.ledger.get("name", DEFAULT_LEDGER))
    champion_metrics, champion_note = None, ""
    if registry.champion_version(name, tracking_uri) is not None:
        champion_metrics, champion_note = _champion_on_holdout(result, name, tracking_uri)
    result.model_version = registry.register(model_uri, name, tags={
        "feature_set_version": b.feature_set_version, "seed": str(seed),
        **ledger_tags(result.ledger), **_headline_tags(result.metrics, split)})
    new = {"roc_auc": result.metrics["risk"]["roc_auc"], "brier": result.metrics["risk"]["brier"]}
    if canary is not None and result.report is not None:
        # The strict gate: every rule judged on this run's holdout, each refusal named.
        gate = strict_gate(result.report.scorers, result.report.slices, champion_metrics,
                           config.training.promotion, config.monitoring,
                           canary(b, result.test_rows))
        reason = gate.reason + (f"; {champion_note}" if champion_note else "")
        decision = registry.Decision(gate.promote, reason, new, champion_metrics)
    else:
        decision = registry.promotion_decision(new, champion_metrics, config.training.promotion)
        if champion_metrics is None and champion_note:  # a champion exists, not compared
            decision = registry.Decision(True, champion_note, new, None)
        elif champion_note:
            decision = registry.Decision(decision.promote, f"{decision.reason}; {champion_note}",
                                         decision.new, decision.champion)
    client = registry.configure(tracking_uri)
    result.alias = registry.apply_decision(client, name, result.model_version, decision)
    result.decision = decision
    if champion_metrics:
        registry.log_metrics({"gate.champion_roc_auc": champion_metrics["roc_auc"],
                              "gate.champion_brier": champion_metrics["brier"]})
    mlflow.set_tags({"alias": result.alias, "gate": decision.reason,
                     "registered_model": name})
    log.info("model %s v%s -> @%s (%s)", name, result.model_version, result.alias,
             decision.reason)


def _champion_on_holdout(result: TrainResult, name: str,
                         tracking_uri: str | None) -> tuple[dict | None, str]:
    """The current champion's ROC-AUC / Brier on the new run's holdout rows, and a note on what
    the comparison means; (None, why) when the champion is not comparable: another ledger or
    feature set is never compared."""
    champ = registry.load_bundle("champion", name, tracking_uri)
    version = champ.source.get("version")
    led = result.ledger
    mismatch = ledger_mismatch(champ, led.get("name"), result.bundle.feature_set_version)
    if mismatch:
        return None, (f"champion v{version} not compared: {mismatch.split(' (')[0]}; this model "
                      f"is promoted on its own holdout figures (`paydelay rollback` restores "
                      f"v{version})")
    try:
        pred = score(champ, result.test_rows)
    except (ValueError, KeyError) as exc:  # e.g. columns the rows no longer carry
        return None, (f"champion v{version} could not score this holdout ({exc}); this model "
                      "is promoted on its own holdout figures")
    used = result.test_rows["risk_used"].to_numpy(dtype=bool)
    m = risk_metrics(result.test_rows["target_late"].to_numpy(dtype="float64")[used],
                     pred["p_late"].to_numpy(dtype="float64")[used])
    c = result.split.cutoffs
    notes = [f"both scored on this run's test window {c.calibration_end:%Y-%m-%d} .. "
             f"{c.test_end:%Y-%m-%d}"]
    fit_end = champ.training_window.get("fit_end") or champ.training_window.get(
        "calibration_end")
    if fit_end and pd.Timestamp(fit_end) > c.calibration_end:
        notes.append(f"the champion was fitted on data up to {pd.Timestamp(fit_end):%Y-%m-%d}, "
                     "inside this test window: the comparison favours the champion")
    champ_led = champ.ledger or {}
    if champ_led.get("hash") and champ_led.get("hash") != led.get("hash"):
        notes.append(f"the champion learned another extract of this ledger "
                     f"({champ_led.get('n_invoices')} invoices up to "
                     f"{str(champ_led.get('last_event'))[:10]}; now {led.get('n_invoices')} "
                     f"up to {str(led.get('last_event'))[:10]})")
    return {"roc_auc": m["roc_auc"], "brier": m["brier"], "version": version}, "; ".join(notes)


def _log_report_and_plots(result: TrainResult, out: Path) -> None:
    """The evaluation report (Markdown + JSON + model card) and the plots, into `out`."""
    if result.report is not None:
        (out / "report.md").write_text(result.report.to_markdown())
        (out / "report.json").write_text(result.report.to_json())
        (out / "model_card.md").write_text(model_card(
            result.report, training_window=(
                result.bundle.training_window["start"],
                result.bundle.training_window.get(
                    "fit_end", result.bundle.training_window["train_end"]))))
    b, test = result.bundle, result.test_rows
    used = test["risk_used"].to_numpy(dtype=bool)
    plots.reliability_diagram(test["target_late"].to_numpy(dtype="float64")[used],
                              {"model": result.predictions["p_late"].to_numpy()[used]},
                              out / "reliability.png")
    plots.feature_importance_plot(b.risk, out / "feature_importance.png")
    X = matrix_frame(b.matrix.build(test)[0], b.contract.features, index=test.index)
    plots.shap_beeswarm(b.risk, X, out / "shap_beeswarm.png", max_rows=1000, seed=b.seed)


# --- re-evaluate ----------------------------------------------------------------------------------
def evaluate(rows: pd.DataFrame, config: PaydelayConfig, alias_or_version: str | int = "champion",
             tracking_uri: str | None = None, truth: pd.DataFrame | None = None,
             which: str = "test", *, ledger: str | None = None, rows_ledger: str | None = None,
             force: bool = False) -> dict:
    """Headline metrics of a registered model on the `which` slice of `rows` (cut by `config`).

    The model is `<training.registered_model_name>-<ledger>` at `alias_or_version`; `ledger`
    defaults to the rows' ledger (`rows_ledger`, else rows.attrs["ledger"]["name"] /
    ["ledger_name"]). Rows of another ledger or feature set than the model's raise
    LedgerMismatchError; with force=True they are scored and the result's "warnings" says so.
    The result also carries the model's source, its ledger and the slice's window (for
    training.report.headline_table)."""
    attrs_ledger = rows.attrs.get("ledger")
    rows_ledger = rows_ledger or (attrs_ledger.get("name") if isinstance(attrs_ledger, dict)
                                  else attrs_ledger) or rows.attrs.get("ledger_name")
    bundle = registry.load_bundle(alias_or_version, config.training.registered_model_name,
                                  tracking_uri, ledger=ledger or rows_ledger)
    version = (str(rows["feature_set_version"].iloc[0])
               if "feature_set_version" in rows and len(rows) else None)
    warnings = []
    mismatch = ledger_mismatch(bundle, rows_ledger, version)
    if mismatch:
        src = bundle.source
        msg = f"{src.get('registered_model')} v{src.get('version')}: {mismatch}"
        if not force:
            raise LedgerMismatchError(msg + "; pass --force to evaluate anyway")
        warnings.append(msg)
    split = split_rows(rows, config)
    frame = _training_rows(split.frame(which), config)
    end = {"train": split.cutoffs.train_end, "calibration": split.cutoffs.calibration_end,
           "test": split.cutoffs.test_end}[which]
    pred = score(bundle, frame)
    baseline = _baselines(split, frame, config).get("hist_avg_delay")
    out = headline_metrics(frame, pred, config, end, truth, baseline)
    out["model"] = bundle.source
    out["ledger"] = bundle.ledger
    out["window"] = {**split.cutoffs.as_dict(),
                     "fit_end": bundle.training_window.get("fit_end"), "slice": which}
    out["warnings"] = warnings
    return out
