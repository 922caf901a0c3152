"""Training and batch scoring on Dask: the in-process models, fitted across the workers by
LightGBM's Dask learner from training rows that stay where they were built.

Input: the training rows in parts (features.engine.build: `training.parquet/part-*.parquet`), a
folder every worker reads. The steps are those of the in-process trainer (training.pipeline:
time splits with label maturity, out-of-time folds, calibrator and conformal shift on pooled
out-of-time predictions, refit on train + calibration), each run part by part on the workers:

1. Cut-offs: `training.splits.resolve_cutoffs` of the whole table, from each part's first
   snapshot and data end (all it reads).
2. Row budget (training.sampling, the in-process policy, `training.sampling.max_rows`): the
   plan is made from the parts' counts (rows of the fit windows, posting rows, later snapshots),
   then each worker keeps its part's sample - every posting row, the later snapshots of a seeded
   share p of the invoices (a hash of the invoice id: the same rows whichever part they are
   read with), weighted 1/p - and holds it in memory. The test window is never sampled and
   never held: it is read part by part when it is scored.
3. Windows on the workers (training.splits.relabel per part): the train and calibration slices,
   the out-of-time folds (training.splits.fold_windows), the refit rows.
4. Boosters by `lightgbm.dask` (DaskLGBMClassifier / DaskLGBMRegressor: data-parallel trees,
   histograms summed across the workers), with the in-process parameters (training.risk
   lgb_params, monotone constraints) and the sample weights: per fold a risk and a very-late
   booster with the fold's slice as evaluation set (boosting rounds = the argmin of the summed
   out-of-time log loss, as in-process) and P10/P50/P90 quantile boosters; the fold models'
   predictions are made on the workers and only predictions, targets and weights come back, to
   fit the calibrators (training.risk.fit_calibrator) and the conformal shift
   (training.payment_date.fit_conformal) on the client; then the final risk, very-late,
   quantile and delay-bucket boosters on train + calibration.
5. Evaluation: each test part is scored on a worker by training.core.scoring.score (the
   service's code); only the columns the headline needs come back
   (training.pipeline.headline_metrics).
6. MLflow, like any run: the ledger's experiment, params (the sample plan among them), metrics,
   the bundle, registration, and the champion rule on the same holdout (the champion scored
   the same way).

Limits, by design: no Optuna tuning (`training.tuning` is refused on Dask: tune in process on a
sample); no evaluation report (baselines, slices, backtest, plots) and no canary: the headline
figures only, so the champion rule decides the alias, not the strict gate. A distributed
learner bins each feature on one worker's rows and sums histograms across workers, so the
boosters differ from in-process ones in the last digits, and with them the figures (the
at-posting ROC-AUC on the same holdout is within 0.005: tests/training/test_dask_training.py);
which worker holds which part is the scheduler's choice, so two runs may differ in the same way.
Memory: the workers hold the sample (at most max_rows rows, about 1 KiB each) plus one fit's
matrices; the client holds the pooled out-of-time predictions and the test slice's headline
columns (about 100 bytes a row).

`score_partitions` is batch scoring across partitions: each worker builds the scoring rows of
its ledger part as of a date and scores them (training.batch_score.score_frame, the in-process
function), writes its part of `predictions_<date>.parquet/` and returns the worklist columns.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import dask.dataframe as dd
import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from distributed import Client, Future
from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

from features.config import PaydelayConfig
from features.config.training import LgbParams
from features.engine.build import add_reconciliations, ledger_end, part_end, partitioned_ledger
from features.reconcile import Reconciliation, write_reconciliation
from training import dask_parts, min_data, registry, sampling
from training.batch_score import predictions_path, scores_dir, worklists
from training.core.bundle import ModelBundle
from training.core.contract import ModelContract
from training.core.ledger import (DEFAULT_LEDGER, fingerprint, ledger_mismatch, ledger_tags,
                                  slugify)
from training.core.matrix import MatrixBuilder, matrix_frame
from training.core.payment import QUANTILE_KEYS, QUANTILES, ConformalShift
from training.core.scoring import check_version
from training.metrics import risk_metrics
from training.min_data import InsufficientDataError
from training.payment_date import fit_conformal
from training.pipeline import Progress, headline_metrics
from training.risk import fit_calibrator, lgb_params
from training.splits import Cutoffs, SplitResult, fold_windows, resolve_cutoffs

# --- 1. cut-offs --------------------------------------------------------------------------------
def part_files(rows: str | Path) -> list[str]:
    """The part files of a rows folder (features.engine.build), in partition order."""
    parts = sorted(Path(rows).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{rows} holds no part files (build it with `paydelay features "
                                "--engine dask`)")
    return [str(p) for p in parts]


def table_cutoffs(client: Client, parts: list[str], config: PaydelayConfig) -> Cutoffs:
    """training.splits.resolve_cutoffs of the whole table: its first snapshot and data end are
    the extremes of the parts' (a two-row stand-in with those facts is what it reads)."""
    extents = client.gather(client.map(dask_parts.extent, parts, pure=False))
    start, end = min(s for s, _ in extents), max(e for _, e in extents)
    return resolve_cutoffs(pd.DataFrame({"snapshot_time": [start, end],
                                         "outcome_time": [start, end],
                                         "observed_days": [0.0, 0.0]}), config)


def pinned(config: PaydelayConfig, cut: Cutoffs) -> PaydelayConfig:
    """The config with the table's cut-offs as dates: the bundle and the run record the windows
    the models were fitted on."""
    tc = config.training.model_copy(update={"train_end": str(cut.train_end),
                                            "calibration_end": str(cut.calibration_end),
                                            "test_end": str(cut.test_end)})
    return config.model_copy(update={"training": tc})


# --- 2. the sample on the workers ---------------------------------------------------------------
def table_plan(counts: list[sampling.SamplePlan], calibration_end: pd.Timestamp,
               config: PaydelayConfig, seed: int) -> sampling.SamplePlan:
    """training.sampling's plan of the whole table from its parts' counts (the same budget
    rule, training.sampling.plan_from_counts); the drawn counts are set once sampled."""
    return sampling.plan_from_counts(
        sum(c.fit_rows for c in counts), sum(c.kept_kind_rows for c in counts),
        sum(c.sampled_rows for c in counts), sum(c.rows_in for c in counts), calibration_end,
        config, seed)


# --- 3. windows on the workers ------------------------------------------------------------------
def windowed(client: Client, parts: list[Future], lo, hi, label_end,
             config: PaydelayConfig) -> list[Future]:
    """Rows lo < t <= hi labelled at label_end (training.splits.relabel), part by part."""
    return client.map(dask_parts.window, parts, lo=lo, hi=hi, label_end=label_end,
                      config=config, pure=False)


def total_counts(client: Client, parts: list[Future]) -> dict:
    found = client.gather(client.map(min_data.fit_counts, parts, pure=False))
    out: dict = {"risk_classes": set(), "very_late_classes": set()}
    for c in found:
        for key, value in c.items():
            out[key] = out[key] | value if isinstance(value, set) else out.get(key, 0) + value
    return out


# --- 4. boosters across the workers -------------------------------------------------------------
@dataclass
class Designed:
    """A booster's rows on the workers: X, target, weight (dask collections of the same parts)."""

    X: dd.DataFrame
    y: dd.Series
    w: dd.Series
    n_rows: int
    weight_sum: float


def designed(client: Client, frames: list[Future], design: dask_parts.Design,
             builder: MatrixBuilder, anchor: str | None) -> Designed:
    """The rows a booster learns from, part by part on the workers (dask_parts.design_part)."""
    made = client.map(dask_parts.design_part, frames, design=design, builder=builder,
                      anchor=anchor, pure=False)
    sizes = client.gather(client.map(dask_parts.design_size, made, pure=False))
    # LightGBM's Dask learner builds one Dataset per worker from its parts: empty parts out
    keep = [p for p, (n, _) in zip(made, sizes, strict=True) if n]
    if not keep:
        raise InsufficientDataError(f"no rows with {design.used} to fit on")
    meta = matrix_frame(np.empty((0, len(builder.names))), builder.features).assign(
        **{dask_parts.TARGET: np.empty(0), dask_parts.WEIGHT_COLUMN: np.empty(0)})
    ddf = dd.from_delayed(keep, meta=meta, verify_meta=False)
    return Designed(ddf[list(builder.names)], ddf[dask_parts.TARGET],
                    ddf[dask_parts.WEIGHT_COLUMN], sum(n for n, _ in sizes),
                    sum(w for _, w in sizes))


def dask_params(params: LgbParams, objective: str, seed: int, **extra) -> dict:
    """training.risk.lgb_params for the Dask learner: the same booster parameters; the thread
    count is each worker's own."""
    p = lgb_params(params, objective, seed, 1, **extra)
    p.pop("num_threads")
    return {**p, "n_estimators": params.n_estimators}


def fit_dask(client: Client, data: Designed, params: dict, features, classifier: bool,
             valid: Designed | None = None) -> tuple[lgb.Booster, list[float] | None]:
    """One booster fitted by lightgbm.dask on the designed rows (weighted); with `valid`, the
    evaluation curve (the weighted metric per round on those rows)."""
    model = (DaskLGBMClassifier if classifier else DaskLGBMRegressor)(client=client, **params)
    extra = {}
    if valid is not None:
        extra = {"eval_X": (valid.X,), "eval_y": (valid.y,), "eval_sample_weight": [valid.w]}
    model.fit(data.X, data.y, sample_weight=data.w,
              categorical_feature=list(features.categorical) or "auto", **extra)
    curve = None
    if valid is not None:
        metrics = model.evals_result_["valid_0"]
        curve = list(next(iter(metrics.values())))
    return model.booster_, curve


def pooled(client: Client, frames: list[Future], design: dask_parts.Design,
           builder: MatrixBuilder, booster: lgb.Booster, n_rounds: int) -> pd.DataFrame:
    """A fold model's predictions on its slice, made on the workers: raw, target, weight."""
    return pd.concat(client.gather(client.map(
        dask_parts.predicted, frames, design=design, builder=builder, booster=booster,
        n_rounds=n_rounds, pure=False)), ignore_index=True)


def learn_categories(client: Client, frames: list[Future], features) -> dict[str, list[str]]:
    """training.core.matrix.learn_categories of the train rows, from the parts' values."""
    found = client.gather(client.map(dask_parts.categories_seen, frames,
                                     names=tuple(features.categorical), pure=False))
    return {n: sorted(set().union(*(f[n] for f in found))) for n in features.categorical}


@dataclass
class DaskFit:
    """What `fit_bundle_dask` produced, with the facts the run records."""

    bundle: ModelBundle
    cutoffs: Cutoffs
    plan: sampling.SamplePlan
    gate: dict
    folds: list[tuple[str, str]] = field(default_factory=list)


def _rounds(curves: list[np.ndarray]) -> int:
    return int(np.argmin(np.sum(curves, axis=0))) + 1


def fit_bundle_dask(client: Client, rows: str | Path, config: PaydelayConfig, seed: int,
                    contract: ModelContract | None = None,
                    progress: Progress | Callable[[str], None] | None = None) -> DaskFit:
    """Steps 1-4 of the module docstring: the bundle fitted across the client's workers."""
    if config.training.tuning.enabled:
        raise ValueError("training.tuning is not run on Dask: tune in process on a sample, "
                         "then train on Dask with the tuned parameters")
    prog = progress if isinstance(progress, Progress) else Progress(progress)
    contract = contract or ModelContract.from_config(config)
    fs, tc, anchor = contract.features, config.training, contract.payment_anchor
    parts = part_files(rows)
    with prog.stage(f"cut-offs and row budget over {len(parts)} parts"):
        cut = table_cutoffs(client, parts, config)
        config = pinned(config, cut)
        counts = client.gather(client.map(dask_parts.part_plan, parts,
                                          calibration_end=cut.calibration_end, config=config,
                                          seed=seed, pure=False))
        plan = table_plan(counts, cut.calibration_end, config, seed)
        sample = client.map(dask_parts.sample_part, parts, plan=plan, config=config, pure=False)
        drawn = client.gather(client.map(sampling.kept_counts, sample, sample=plan,
                                         config=config, pure=False))
        plan = replace(plan, drawn_kind_rows=sum(d[0] for d in drawn),
                       kept_sampled_rows=sum(d[1] for d in drawn))
        kept = plan.drawn_kind_rows + plan.kept_sampled_rows
    prog.say(f"training sample: {kept:,} of {plan.fit_rows:,} fit-window rows (posting rows "
             f"of a seeded {plan.r:.4f} of the invoices, later snapshots of {plan.p:.4f}); "
             f"test window {cut.calibration_end:%Y-%m-%d} .. {cut.test_end:%Y-%m-%d} read when "
             "scored")
    train = windowed(client, sample, None, cut.train_end, cut.train_end, config)
    calibration = windowed(client, sample, cut.train_end, cut.calibration_end,
                           cut.calibration_end, config)
    gate = min_data.check(total_counts(client, train), total_counts(client, calibration),
                          None, cut, config)
    categories = learn_categories(client, train, fs)
    builder = MatrixBuilder(fs, categories)
    rp, vp, pp = tc.risk, tc.risk, tc.payment
    shim = SplitResult(None, None, None, cut, None)  # fold_windows reads the cut-offs only
    n_folds = tc.calibration_folds if tc.refit_on_calibration else 1
    windows = fold_windows(shim, n_folds)
    folds = []
    for k, (start, end) in enumerate(windows):
        if (start, end) == (cut.train_end, cut.calibration_end):
            fit, pred = train, calibration
        else:
            fit = windowed(client, sample, None, start, start, config)
            pred = windowed(client, sample, start, end, cut.calibration_end, config)
        last = k == len(windows) - 1
        if last or min_data.fold_usable(total_counts(client, fit), total_counts(client, pred),
                                            config):
            folds.append((start, end, fit, pred))

    def binary_folds(design: dask_parts.Design, params: LgbParams, label: str):
        """Per usable fold: the booster, its out-of-time curve and its slice."""
        out = []
        for k, (start, end, fit, pred) in enumerate(folds, 1):
            fc, pc = total_counts(client, fit), total_counts(client, pred)
            classes = "risk_classes" if design is dask_parts.RISK else "very_late_classes"
            if len(fc[classes]) < 2 or len(pc[classes]) < 2:
                continue
            data = designed(client, fit, design, builder, anchor)
            valid = designed(client, pred, design, builder, anchor)
            with prog.stage(f"{label}, out-of-time fold {k}/{len(folds)} ({data.n_rows:,} rows "
                            f"on the workers, predicting {start:%Y-%m-%d}..{end:%Y-%m-%d})"):
                booster, curve = fit_dask(client, data, dask_params(
                    params, "binary", seed, monotone_constraints=fs.monotone_vector(),
                    monotone_constraints_method="intermediate"), fs, True, valid)
            out.append((booster, valid.weight_sum * np.asarray(curve), pred))
        return out

    def calibrated(design: dask_parts.Design, fitted) -> tuple[int, object]:
        n_rounds = _rounds([c for _, c, _ in fitted])
        oot = pd.concat([pooled(client, pred, design, builder, b, n_rounds)
                         for b, _, pred in fitted], ignore_index=True)
        return n_rounds, fit_calibrator(oot["raw"].to_numpy(), oot["y"].to_numpy(),
                                        tc.calibration_method, weight=oot["w"].to_numpy())

    risk_rounds, calibrator = calibrated(dask_parts.RISK,
                                         binary_folds(dask_parts.RISK, rp, "risk model"))
    vl_fitted = binary_folds(dask_parts.VERY_LATE, vp, "very-late model")
    vl_rounds, vl_calibrator = (calibrated(dask_parts.VERY_LATE, vl_fitted) if vl_fitted
                                else (None, None))

    def quantiles_on(frames: list[Future], label: str) -> dict[str, lgb.Booster]:
        data = designed(client, frames, dask_parts.PAYMENT, builder, anchor)
        per_key = {"p10": tc.payment_tails or pp, "p50": pp, "p90": tc.payment_tails or pp}
        out = {}
        with prog.stage(f"{label} ({data.n_rows:,} rows)"):
            for q, key in zip(QUANTILES, QUANTILE_KEYS, strict=True):
                out[key] = fit_dask(client, data, dask_params(per_key[key], "quantile", seed,
                                                              alpha=q), fs, False)[0]
        return out

    shift = ConformalShift()
    if tc.conformal:
        days = []
        for k, (_, _, fit, pred) in enumerate(folds, 1):
            q = quantiles_on(fit, f"payment-date models, out-of-time fold {k}/{len(folds)}")
            days.append(pd.concat(client.gather(client.map(
                dask_parts.predicted_days, pred, builder=builder, quantiles=q, anchor=anchor,
                kinds=tuple(tc.snapshot_kinds), cal_end=cut.calibration_end, pure=False)),
                ignore_index=True))
        d = pd.concat(days, ignore_index=True)
        shift = fit_conformal(d[["d10", "d50", "d90"]].to_numpy(), d["known"].to_numpy(),
                              d["window"].to_numpy(), weight=d["w"].to_numpy())

    final = (windowed(client, sample, None, cut.calibration_end, cut.calibration_end, config)
             if tc.refit_on_calibration else train)
    def final_binary(design, params: LgbParams, rounds: int, what: str):
        """A final binary booster (risk or very late) on the refit rows, its rounds chosen
        out of time, with the contract's monotone constraints."""
        data = designed(client, final, design, builder, anchor)
        with prog.stage(f"final {what} model ({rounds} rounds, {data.n_rows:,} rows)"):
            return fit_dask(client, data, dask_params(
                params.model_copy(update={"n_estimators": rounds}), "binary", seed,
                monotone_constraints=fs.monotone_vector(),
                monotone_constraints_method="intermediate"), fs, True)[0]

    risk = final_binary(dask_parts.RISK, rp, risk_rounds, "risk")
    very_late = (final_binary(dask_parts.VERY_LATE, vp, vl_rounds, "very-late")
                 if vl_rounds is not None else None)
    quantiles = quantiles_on(final, "final payment-date models")
    bucket, prior = fit_buckets_dask(client, final, builder, contract, tc.bucket, seed, prog)
    window_info = {**cut.as_dict(),
                   "fit_end": str(cut.calibration_end if tc.refit_on_calibration
                                  else cut.train_end),
                   "calibration_folds": [[str(s), str(e)] for s, e, _, _ in folds],
                   "engine": "dask", "training_sample": plan.as_dict()}
    bundle = ModelBundle(
        contract=contract, categories=categories, risk=risk, calibrator=calibrator,
        bucket=bucket, bucket_prior=prior, quantiles=quantiles, conformal=shift, seed=seed,
        risk_rounds=risk_rounds, config=config.model_dump(mode="json"),
        training_window=window_info, very_late=very_late,
        very_late_calibrator=vl_calibrator, very_late_rounds=vl_rounds)
    return DaskFit(bundle, cut, plan, gate, [(str(s), str(e)) for s, e, _, _ in folds])


def fit_buckets_dask(client: Client, frames: list[Future], builder: MatrixBuilder,
                     contract: ModelContract, params: LgbParams, seed: int, prog: Progress
                     ) -> tuple[lgb.Booster | None, list[float]]:
    """training.risk.fit_buckets across the workers: the Laplace prior from the weighted bucket
    counts; a multiclass booster when there are at least 20 late rows per bucket."""
    n = contract.n_late_buckets
    counts = np.sum(client.gather(client.map(dask_parts.bucket_counts, frames, n=n,
                                             pure=False)), axis=0)
    prior = ((counts + 1) / (counts.sum() + n)).tolist()
    try:
        data = designed(client, frames, dask_parts.BUCKET, builder, contract.payment_anchor)
    except InsufficientDataError:  # no late row whose bucket is known: the prior alone
        return None, prior
    if data.n_rows < 20 * n:
        return None, prior
    with prog.stage(f"delay-bucket model ({data.n_rows:,} rows)"):
        # the regressor's wrapper: it keeps the bucket numbers as the class indices (the
        # classifier's would renumber them when a bucket has no row)
        booster = fit_dask(client, data, dask_params(params, "multiclass", seed, num_class=n),
                           builder.features, False)[0]
    return booster, prior


# --- 5. the test window, scored part by part ----------------------------------------------------
def scored_test(client: Client, parts: list[str], cut: Cutoffs, config: PaydelayConfig,
                bundle: ModelBundle) -> pd.DataFrame:
    """The test slice's headline columns and scores, every part scored on a worker (in
    (snapshot_time, invoice_id) order, as the in-process test slice)."""
    remote = client.scatter(bundle, broadcast=True)
    frames = client.gather(client.map(dask_parts.score_test_part, parts, cut=cut,
                                      config=config, bundle=remote, pure=False))
    unseen: dict[str, int] = {}
    for f in frames:
        for name, n in f.attrs.get("unseen_categories", {}).items():
            unseen[name] = unseen.get(name, 0) + n
    out = pd.concat(frames, ignore_index=True).sort_values(
        ["snapshot_time", "invoice_id"], kind="stable").reset_index(drop=True)
    out.attrs["unseen_categories"] = unseen
    return out


# --- 6. the run ---------------------------------------------------------------------------------
@dataclass
class DaskTrainResult:
    """What `train_dask` did: the bundle, its headline figures and its registration."""

    bundle: ModelBundle
    metrics: dict
    cutoffs: Cutoffs
    plan: sampling.SamplePlan
    ledger: dict
    test: pd.DataFrame  # the test slice's headline columns and scores
    run_id: str | None = None
    model_version: int | None = None
    alias: str | None = None
    decision: registry.Decision | None = None
    registered_model: str | None = None

    @property
    def reconciliation(self) -> Reconciliation:
        return sampling.reconciliation(self.plan, stage="train")


def train_dask(client: Client, rows: str | Path, config: PaydelayConfig, seed: int,
               truth: pd.DataFrame | None = None, tracking_uri: str | None = None, *,
               register: bool = True, ledger: str | dict | None = None,
               contract: ModelContract | None = None,
               progress: Callable[[str], None] | None = None) -> DaskTrainResult:
    """Fit (fit_bundle_dask), score the test window part by part, and log + register the run in
    MLflow like the in-process trainer (module docstring, steps 5 and 6). `rows` is the
    training rows' part folder; `ledger` the ledger's name or the dict the features stage
    recorded (ledger.json)."""
    prog = Progress(progress)
    contract = contract or ModelContract.from_config(config)
    parts = part_files(rows)
    check_version(contract, pd.read_parquet(parts[0], columns=["feature_set_version"]))
    fitted = fit_bundle_dask(client, rows, config, seed, contract, prog)
    bundle, cut = fitted.bundle, fitted.cutoffs
    run_config = pinned(config, cut)
    with prog.stage("scoring the test window on the workers"):
        test = scored_test(client, parts, cut, run_config, bundle)
        metrics = headline_metrics(test, test, run_config, cut.test_end, truth)
    metrics["gate_counts"] = fitted.gate
    metrics["unseen_categories_test"] = test.attrs.get("unseen_categories", {})
    metrics["training_sample"] = fitted.plan.as_dict()
    bundle.metrics = metrics
    known = dict(ledger) if isinstance(ledger, dict) else {"name": ledger or DEFAULT_LEDGER}
    name = known.pop("name", None) or DEFAULT_LEDGER
    known.pop("name_from", None)
    ids = np.concatenate(client.gather(client.map(dask_parts.invoice_ids, parts, pure=False)))
    bundle.ledger = led = fingerprint(pd.DataFrame({"invoice_id": ids}), name,
                                      contract.feature_set_version, known)
    result = DaskTrainResult(bundle, metrics, cut, fitted.plan, led, test)
    if not register:
        return result
    model = registry.model_name(config.training.registered_model_name, led["name"])
    with registry.run(model, "train-dask", tracking_uri) as active:
        mlflow.set_tags({**ledger_tags(led), "engine": "dask"})
        registry.log_params({"seed": seed, "feature_set_version": bundle.feature_set_version,
                             "engine": "dask", "window": cut.as_dict(),
                             "training_sample": fitted.plan.as_dict(),
                             "config": run_config.model_dump(mode="json"), "ledger": led})
        registry.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "reconciliation.csv").write_text(
                result.reconciliation.frame().to_csv(index=False))
            mlflow.log_artifact(str(Path(tmp) / "reconciliation.csv"),
                                artifact_path="evaluation")
            example = pd.read_parquet(parts[0]).head(5)
            uri = registry.log_bundle(bundle, matrix_frame(bundle.matrix.build(example)[0],
                                                           contract.features), Path(tmp) / "b")
        result.run_id, result.registered_model = active.info.run_id, model
        champion = _champion_on_holdout(client, parts, cut, run_config, model, led,
                                        bundle.feature_set_version, test, tracking_uri)
        result.model_version = registry.register(uri, model, tags={
            "feature_set_version": bundle.feature_set_version, "seed": str(seed),
            "engine": "dask", **ledger_tags(led), **headline_tags(metrics, cut)})
        new = {"roc_auc": metrics["risk"]["roc_auc"], "brier": metrics["risk"]["brier"]}
        decision = registry.promotion_decision(new, champion, config.training.promotion)
        result.alias = registry.apply_decision(registry.configure(tracking_uri), model,
                                               result.model_version, decision)
        result.decision = decision
        mlflow.set_tags({"alias": result.alias, "gate": decision.reason,
                         "registered_model": model})
    return result


def headline_tags(metrics: dict, cut: Cutoffs) -> dict[str, str]:
    """The version tags `paydelay models` lists (test window, headline figures), as the
    in-process trainer sets them."""
    tags = {registry.TEST_WINDOW_TAG: f"{cut.calibration_end} .. {cut.test_end}"}
    for scope, suffix in (("risk_posting", "_posting"), ("risk", "")):
        for m in ("roc_auc", "brier", "ece"):
            v = metrics.get(scope, {}).get(m)
            if v is not None and np.isfinite(v):
                tags[f"{registry.METRIC_TAG_PREFIX}{m}{suffix}"] = f"{float(v):.6g}"
    return tags


def _champion_on_holdout(client: Client, parts: list[str], cut: Cutoffs, config: PaydelayConfig,
                         model: str, led: dict, version: str, test: pd.DataFrame,
                         tracking_uri: str | None) -> dict | None:
    """The champion's ROC-AUC / Brier on this run's test window, scored the same way; None
    when there is none, or it is of another ledger or feature set (never compared)."""
    if registry.champion_version(model, tracking_uri) is None:
        return None
    champ = registry.load_bundle("champion", model, tracking_uri)
    if ledger_mismatch(champ, led.get("name"), version):
        return None
    theirs = scored_test(client, parts, cut, config, champ)
    used = theirs["risk_used"].to_numpy(dtype=bool)
    m = risk_metrics(theirs["target_late"].to_numpy(dtype="float64")[used],
                     theirs["p_late"].to_numpy(dtype="float64")[used])
    return {"roc_auc": m["roc_auc"], "brier": m["brier"],
            "version": champ.source.get("version")}


# --- batch scoring across partitions ------------------------------------------------------------
def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text) or "unassigned"


@dataclass
class DaskScoring:
    as_of: pd.Timestamp
    path: Path  # predictions_<date>.parquet/ (part files)
    items: pd.DataFrame  # every scored item's worklist columns
    worklists: dict[str, Path]
    reconciliation: Reconciliation
    fingerprint: dict

    def summary(self) -> dict:
        p = self.items
        return {"as_of": f"{self.as_of:%Y-%m-%d}", "items": int(len(p)),
                "mean_p_late": float(p["p_late"].mean()) if len(p) else float("nan"),
                "amount_at_risk": float(p["expected_amount_at_risk"].sum()) if len(p) else 0.0,
                "collectors": len(self.worklists)}


def score_partitions(client: Client, ledger: str | Path, n_partitions: int, bundle: ModelBundle,
                     as_of, out_dir: str | Path, *, name: str = DEFAULT_LEDGER,
                     top: int | None = None) -> DaskScoring:
    """Every item open at `as_of` in a partitioned ledger folder scored part by part on the
    workers (module docstring); the worklists per collector and the reconciliation are put
    together on the client. The ledger fingerprint's hash is that of the parts' hashes."""
    as_of = pd.Timestamp(as_of)
    out = Path(out_dir)
    path = predictions_path(out, as_of)
    remote = client.scatter(bundle, broadcast=True)
    src = bundle.source or {}
    meta = {"as_of": as_of.isoformat(), "scored_at": pd.Timestamp.now("UTC").isoformat(),
            "engine": "dask", "ledger": {"name": name},
            "model_name": src.get("registered_model") or "unregistered",
            "model_version": src.get("version"), "feature_set_version":
            bundle.feature_set_version}
    done = [r for r in client.gather(client.map(
        dask_parts.score_ledger_part, [str(ledger)] * n_partitions, range(n_partitions),
        bundle=remote, as_of=as_of, out=str(path), meta=meta, pure=False)) if r is not None]
    items = pd.concat([r["items"] for r in done], ignore_index=True).sort_values(
        "invoice_id", kind="stable").reset_index(drop=True)
    lasts = [r["last_event"] for r in done if r["last_event"] is not None]
    fp = {"name": name, "n_events": sum(r["n_events"] for r in done),
          "n_invoices": sum(r["n_invoices"] for r in done),
          "last_event": pd.Timestamp(max(lasts)).isoformat() if lasts else None,
          "hash": hashlib.sha256("".join(r["hash"] for r in done).encode()).hexdigest()[:16]}
    lists = {}
    folder = out / f"worklists_{as_of:%Y-%m-%d}"
    for collector, rows in worklists(items, top).items():
        folder.mkdir(parents=True, exist_ok=True)
        lists[collector] = folder / f"{_file_name(collector)}.csv"
        rows.to_csv(lists[collector], index=False)
    recon = add_reconciliations([r["reconciliation"] for r in done])
    (out / f"scoring_{as_of:%Y-%m-%d}.json").write_text(json.dumps(
        {"as_of": as_of.isoformat(), "ledger": fp, "model": bundle.source,
         "n_items": int(len(items)), "parts": len(done)}, indent=1, default=str))
    return DaskScoring(as_of, path, items, lists, recon, fp)


def score_ledger_dir_dask(client: Client, ledger_dir: str | Path, *, as_of=None,
                          out_dir: str | Path | None = None, ledger: str | None = None,
                          model_ref: str | int | None = None,
                          config: PaydelayConfig | None = None,
                          tracking_uri: str | None = None, log: bool = True) -> DaskScoring:
    """What `paydelay score --engine dask` does: the ledger folder as partitions (cut by
    customer first when it is a single-file one), the served model of its ledger, every item
    open at `as_of` (default: the ledger's end of observation) scored on the workers, the
    worklists and the reconciliation written, the run recorded in MLflow (paydelay-scoring)."""
    cfg = config or PaydelayConfig()
    name = slugify(ledger or Path(ledger_dir).resolve().name)
    out = Path(out_dir) if out_dir else scores_dir(name)
    parts, n = partitioned_ledger(client, ledger_dir, out, cfg.engine.customers_per_partition)
    ref = model_ref if model_ref is not None else cfg.serving.model_ref
    bundle = registry.load_bundle(ref, cfg.training.registered_model_name, tracking_uri,
                                  ledger=name)
    if as_of is None:
        ends = client.gather([client.submit(part_end, str(parts), k, pure=False)
                              for k in range(n)])
        as_of = pd.Timestamp(np.datetime64(ledger_end(ends), "us"))
    result = score_partitions(client, parts, n, bundle, as_of, out, name=name,
                              top=cfg.monitoring.worklist_top)
    write_reconciliation(result.reconciliation,
                         out / f"reconciliation_{result.as_of:%Y-%m-%d}.csv")
    if log:
        _log_scoring(result, bundle, cfg, tracking_uri)
    return result


def _log_scoring(result: DaskScoring, bundle: ModelBundle, config: PaydelayConfig,
                 tracking_uri: str | None) -> str:
    """The scoring run in the scoring experiment, as the in-process batch scoring records it
    (params, items, mean P(late), amount at risk, risk-class shares, the worklists)."""
    p, src = result.items, bundle.source or {}
    with registry.run(config.monitoring.scoring_experiment,
                      f"score-{result.as_of:%Y-%m-%d}-dask", tracking_uri) as active:
        registry.log_params({"as_of": result.as_of.isoformat(), "engine": "dask",
                             "model_name": src.get("registered_model"),
                             "model_version": src.get("version"),
                             "feature_set_version": bundle.feature_set_version,
                             "ledger": result.fingerprint})
        mlflow.set_tags({"ledger": result.fingerprint["name"], "engine": "dask",
                         "as_of": f"{result.as_of:%Y-%m-%d}"})
        shares = p["risk_class"].value_counts(normalize=True).to_dict() if len(p) else {}
        registry.log_metrics({"items": len(p),
                              "mean_p_late": float(p["p_late"].mean()) if len(p) else np.nan,
                              "amount_at_risk": float(p["expected_amount_at_risk"].sum()),
                              "open_amount": float(p["open_amount"].sum()),
                              **{f"share_{k}": v for k, v in shares.items()}})
        if result.worklists:
            folder = next(iter(result.worklists.values())).parent
            mlflow.log_artifacts(str(folder), artifact_path=f"scores/{folder.name}")
        return active.info.run_id


__all__ = ["train_dask", "score_ledger_dir_dask", "fit_bundle_dask", "score_partitions",
           "table_cutoffs", "table_plan", "part_files", "scored_test", "DaskTrainResult",
           "DaskScoring", "DaskFit", "pinned"]
