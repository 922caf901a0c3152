"""Optuna tuning of the risk and payment-date boosters, each trial a nested MLflow run.

Validation never touches the calibration or test slices: the train slice is cut once more in time.
A row's target depends only on events up to its maturity instant (the late threshold for risk,
t + horizon for payment date; see training.splits), so the inner training rows are those mature
by the inner cut-off and the validation rows are the train slice's rows after it - no label from
the validation period reaches the inner fit.

Risk trials minimise validation log-loss; payment-date trials minimise the P50 booster's quantile
loss on days relative to the offset the final models learn from (the due date plus the
`training.payment_anchor` feature, as in `training.pipeline.fit_bundle`; the P10 / P90 boosters
keep `training.payment_tails`, or share the chosen parameters when it is None). Both
use a seeded TPESampler and a MedianPruner fed every 10 boosting rounds. Storage is Optuna's in-memory one
(SQLite storage with parallel trials hits "database is locked"); trials run one at a time so the
study is reproducible from its seed. Budget: `training.tuning.n_trials` and `timeout_s` per model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import lightgbm as lgb
import mlflow
import numpy as np
import optuna
import pandas as pd

from features.config import PaydelayConfig
from features.config.training import LgbParams
from training.core.contract import ModelContract
from training.core.matrix import feature_matrix
from training.core.payment import payment_offset
from training import sampling
from training.risk import dataset, fit_risk, fit_threads, lgb_params
from training.splits import late_from

log = logging.getLogger(__name__)
_DAY = pd.Timedelta(days=1)
_REPORT_EVERY = 10


def suggest_params(trial: optuna.Trial, base: LgbParams) -> LgbParams:
    # A depth-limited base (the shallow risk model the service explains) caps the leaves a tree
    # can use: leaves beyond 2**depth would only repeat trials.
    max_leaves = min(127, 2 ** base.max_depth) if base.max_depth > 0 else 127
    return base.model_copy(update={
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", min(7, max_leaves), max_leaves, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 800, step=50),
    })


def pruning_callback(trial: optuna.Trial, metric: str):
    """LightGBM callback reporting the validation metric to Optuna and pruning bad trials."""
    def callback(env) -> None:
        if (env.iteration + 1) % _REPORT_EVERY:
            return
        for _, name, value, _ in env.evaluation_result_list:
            if name == metric:
                trial.report(value, env.iteration + 1)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{metric}={value:.5f} at round {env.iteration + 1}")
    return callback


def inner_risk_split(train: pd.DataFrame, config: PaydelayConfig) -> tuple[pd.DataFrame,
                                                                          pd.DataFrame]:
    used = train[train["risk_used"]]
    t = used["snapshot_time"]
    cut = t.min() + (t.max() - t.min()) * (1 - config.training.tuning.validation_fraction)
    mature = late_from(used["net_due_date"], config.features.grace_days) <= cut
    return used[(t <= cut) & mature], used[t > cut]


def inner_payment_split(train: pd.DataFrame, config: PaydelayConfig) -> tuple[pd.DataFrame,
                                                                             pd.DataFrame]:
    used = train[train["payment_used"]]
    t = used["snapshot_time"]
    cut = t.quantile(1 - config.training.tuning.validation_fraction)
    horizon = config.training.payment_horizon_days * _DAY
    return used[t + horizon <= cut], used[t > cut]


def relative_days(rows: pd.DataFrame, contract: ModelContract) -> np.ndarray:
    """Days to clear relative to the offset the final quantile boosters learn from: the due date
    plus the contract's payment anchor (as `training.pipeline.fit_bundle` does), so trials tune
    the problem the product model solves."""
    offset = payment_offset(rows, contract.payment_anchor)
    return rows["target_days_to_clear"].to_numpy(dtype="float64") - offset


def _log_trial(kind: str, trial: optuna.Trial, params: LgbParams, value: float | None,
               state: str) -> None:
    parent = mlflow.active_run()
    if parent is None:
        return
    with mlflow.start_run(run_name=f"{kind}-trial-{trial.number:03d}", nested=True,
                          experiment_id=parent.info.experiment_id):
        mlflow.log_params({f"{kind}.{k}": v for k, v in params.model_dump().items()})
        mlflow.set_tag("trial_state", state)
        if value is not None and np.isfinite(value):
            mlflow.log_metric(f"{kind}_objective", float(value))


def _study(seed: int) -> optuna.Study:
    return optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=50))


def trial_reporter(kind: str, n_trials: int, say: Callable[[str], None]):
    """An Optuna callback saying "risk trial k/n: value (best so far ...), elapsed" per trial."""
    start = time.perf_counter()

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name.lower()
        value = f"{trial.value:.5f}" if trial.value is not None else state
        try:
            best = f"{study.best_value:.5f} (trial {study.best_trial.number + 1})"
        except ValueError:  # no completed trial yet
            best = "-"
        say(f"{kind} tuning: trial {trial.number + 1}/{n_trials} {value}, best so far {best}, "
            f"{time.perf_counter() - start:.0f} s")
    return callback


def _run(kind: str, objective, base: LgbParams, config: PaydelayConfig, seed: int,
         progress: Callable[[str], None] | None = None) -> tuple[LgbParams, optuna.Study]:
    def wrapped(trial: optuna.Trial) -> float:
        params = suggest_params(trial, base)
        try:
            value = objective(trial, params)
        except optuna.TrialPruned:
            _log_trial(kind, trial, params, None, "pruned")
            raise
        _log_trial(kind, trial, params, value, "complete")
        return value

    tc = config.training.tuning
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(seed)
    callbacks = [trial_reporter(kind, tc.n_trials, progress)] if progress else None
    study.optimize(wrapped, n_trials=tc.n_trials, timeout=tc.timeout_s, n_jobs=1,
                   callbacks=callbacks)
    best = base.model_copy(update=study.best_trial.params)
    log.info("%s tuning: best %.5f with %s", kind, study.best_value, study.best_trial.params)
    return best, study


def tune(train: pd.DataFrame, contract: ModelContract, categories: dict[str, list[str]],
         config: PaydelayConfig, seed: int,
         progress: Callable[[str], None] | None = None) -> dict[str, object]:
    """Best LgbParams for "risk" and "payment" (plus the studies' best values / trial counts).
    `progress` receives one line per trial (trial k/n, its value, the best so far).

    `train` is the train slice from training.splits (with target_* / *_used columns).
    """
    tc = config.training
    fs = contract.features
    r_fit, r_val = inner_risk_split(train, config)
    p_fit, p_val = inner_payment_split(train, config)
    for name, frame in (("risk fit", r_fit), ("risk validation", r_val),
                        ("payment fit", p_fit), ("payment validation", p_val)):
        if len(frame) < 50:
            raise ValueError(f"tuning needs at least 50 {name} rows inside the train slice, got "
                             f"{len(frame)}: lower training.tuning.validation_fraction or "
                             "training.payment_horizon_days, or train on a longer window")
    Xr, _ = feature_matrix(r_fit, fs, categories)
    Xrv, _ = feature_matrix(r_val, fs, categories)
    Xp, _ = feature_matrix(p_fit, fs, categories)
    Xpv, _ = feature_matrix(p_val, fs, categories)

    # Rows sampled under the row budget weigh 1/p in the trials as in the final fits.
    w_r, w_rv = sampling.weights(r_fit), sampling.weights(r_val)
    w_p, w_pv = sampling.weights(p_fit), sampling.weights(p_val)
    r_threads = fit_threads(len(r_fit), tc.num_threads, tc.threads_from_rows)
    p_threads = fit_threads(len(p_fit), tc.num_threads, tc.threads_from_rows)

    def risk_objective(trial, params: LgbParams) -> float:
        booster = fit_risk(Xr, r_fit["target_late"], fs, params, seed, r_threads,
                           callbacks=[pruning_callback(trial, "binary_logloss")],
                           valid=(Xrv, r_val["target_late"], w_rv), weight=w_r)
        p = np.clip(booster.predict(Xrv), 1e-15, 1 - 1e-15)
        y = r_val["target_late"].to_numpy(dtype="float64")
        return float(np.average(-(y * np.log(p) + (1 - y) * np.log(1 - p)), weights=w_rv))

    def payment_objective(trial, params: LgbParams) -> float:
        z = relative_days(p_fit, contract)
        zv = relative_days(p_val, contract)
        train_ds = dataset(Xp, z, fs, weight=w_p)
        booster = lgb.train(
            lgb_params(params, "quantile", seed, p_threads, alpha=0.5, metric="quantile"),
            train_ds, num_boost_round=params.n_estimators,
            valid_sets=[dataset(Xpv, zv, fs, reference=train_ds, weight=w_pv)],
            callbacks=[pruning_callback(trial, "quantile")])
        # pinball at q = 0.5
        return float(np.average(np.abs(zv - booster.predict(Xpv)), weights=w_pv) / 2)

    best_risk, rs = _run("risk", risk_objective, tc.risk, config, seed, progress)
    best_pay, ps = _run("payment", payment_objective, tc.payment, config, seed, progress)
    return {"risk": best_risk, "payment": best_pay,
            "summary": {"risk_best_logloss": rs.best_value, "risk_trials": len(rs.trials),
                        "payment_best_pinball_days": ps.best_value,
                        "payment_trials": len(ps.trials)}}
