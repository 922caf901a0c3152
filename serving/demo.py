"""A small served model end to end: simulate a ledger, train, register, attach the store.

Used by the end-to-end tests, the serving benchmarks and the demo: everything lands in one work
folder (its own SQLite MLflow store, unless a tracking server is named), nothing global is
touched. The ledger is named "demo" (model and experiment paydelay-demo); `DemoModel.headline`
is the training headline table (training.report.headline_table, through
TrainResult.headline_table: the same table as `paydelay train` and `paydelay evaluate` print).
`demo_config` shrinks the simulator and the boosters so the whole thing takes seconds; pass your
own config for more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from features.config import PaydelayConfig
from features.config.training import LgbParams
from features.pit.build import build_training_set
from features.simulate.ledger import simulate_ledger
from serving.canary import run_canary
from serving.store import build_store, log_store
from training.pipeline import train


DEMO_LEDGER = "demo"


@dataclass
class DemoModel:
    tracking_uri: str
    registered_model: str
    version: int
    alias: str
    run_id: str
    events: pd.DataFrame
    master: pd.DataFrame
    last_refresh: pd.Timestamp
    ledger: str = DEMO_LEDGER
    headline: object = None  # training.report.HeadlineTable of the trained model
    # The holdout's worklist backtest summary (EvaluationReport.backtest: realised at-risk
    # amount captured in the first K per ordering; training.backtest.realised_capture reads it)
    backtest: pd.DataFrame | None = None


def demo_config(n_customers: int = 80, n_invoices: int = 2500, months: int = 14,
                seed: int = 7) -> PaydelayConfig:
    """A config small enough to simulate, train and register in well under a minute."""
    base = PaydelayConfig(seed=seed)
    sim = base.simulator.model_copy(update={"n_customers": n_customers,
                                            "n_invoices": n_invoices, "months": months})
    training = base.training.model_copy(update={
        "risk": LgbParams(n_estimators=80, num_leaves=15, min_child_samples=20),
        "bucket": LgbParams(n_estimators=30, num_leaves=7),
        "payment": LgbParams(n_estimators=40, num_leaves=7),
        "min_cleared_invoices": 50, "min_late_invoices": 10,
    })
    return PaydelayConfig.model_validate({**base.model_dump(), "simulator": sim.model_dump(),
                                          "training": training.model_dump()})


def simulate_and_train(config: PaydelayConfig, seed: int | None = None, with_truth: bool = False,
                       **train_options) -> tuple:
    """Simulate a ledger, build its training rows, train (training.pipeline.train with
    `train_options`, e.g. register=False or tracking_uri) and materialise the customer store
    for the model's feature set: (ledger, rows, TrainResult, store). with_truth passes the
    simulator's latent truth to train, for the oracle metrics. The ledger is "demo" unless
    train_options names another."""
    seed = config.seed if seed is None else seed
    train_options.setdefault("ledger", DEMO_LEDGER)
    # the strict gate's canary: the candidate loaded and scored the way the service does it
    train_options.setdefault("canary", partial(run_canary, config=config))
    ledger = simulate_ledger(config.simulator, seed)
    rows = build_training_set(ledger.events, ledger.master, config.features, seed)
    result = train(rows, config, seed, truth=ledger.truth if with_truth else None,
                   **train_options)
    store = build_store(ledger.events, ledger.master, None, config.features,
                        result.bundle.feature_set_version)
    return ledger, rows, result, store


def train_and_register(workdir: str | Path, config: PaydelayConfig | None = None,
                       seed: int | None = None, ledger: str = DEMO_LEDGER,
                       tracking_uri: str | None = None) -> DemoModel:
    """Simulate, build features, train + register (gate decides the alias), log the store.
    The MLflow store is `tracking_uri` (e.g. a team's tracking server) when given, else a
    SQLite store of its own in `workdir`."""
    config = config or demo_config()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri or f"sqlite:///{(workdir / 'mlflow.db').resolve()}"
    sim, _, result, store = simulate_and_train(config, seed, with_truth=True,
                                               tracking_uri=uri, ledger=ledger)
    log_store(store, result.run_id, uri)
    return DemoModel(tracking_uri=uri, registered_model=str(result.registered_model),
                     version=int(result.model_version), alias=str(result.alias),
                     run_id=str(result.run_id), events=sim.events, master=sim.master,
                     last_refresh=pd.Timestamp(sim.last_refresh), ledger=result.ledger["name"],
                     headline=result.headline_table(),
                     backtest=(result.report.backtest if result.report is not None else None))


__all__ = ["DEMO_LEDGER", "DemoModel", "demo_config", "simulate_and_train", "train_and_register"]
