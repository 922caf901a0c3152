"""Small simulated worlds for the running-loop tests: one model trained on a calm world up to a
cut-off, then any world (calm, another seed, or with a drift injected) scored weekly after it.

A model learns the simulator's generative process, not its customers (customer ids are no
feature), so the one model can score worlds of other seeds: each world is its own calm ledger.
Everything is seeded and tiny (a few thousand invoices) so ten worlds take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.config import PaydelayConfig
from features.config.training import LgbParams
from features.pit.build import build_training_set
from features.simulate.shifts import Shift, simulate_shifted
from training.batch_score import score_frame
from training.pipeline import train

CUTOFF = pd.Timestamp("2024-03-01")  # training data ends; weekly scoring starts here
MONTHS = 20  # worlds run 2023-01 .. 2024-09: six months of outcomes after the cut-off
SCORING_WEEKS = 13


def world_config(seed: int = 7, n_customers: int = 120, n_invoices: int = 3600) -> PaydelayConfig:
    base = PaydelayConfig(seed=seed)
    sim = base.simulator.model_copy(update={"n_customers": n_customers,
                                            "n_invoices": n_invoices, "months": MONTHS,
                                            "oracle_mc_draws": 4})
    training = base.training.model_copy(update={
        "risk": LgbParams(n_estimators=80, num_leaves=15, min_child_samples=20),
        "bucket": LgbParams(n_estimators=30, num_leaves=7),
        "payment": LgbParams(n_estimators=40, num_leaves=7),
        "payment_tails": LgbParams(n_estimators=30, num_leaves=7),
        "min_cleared_invoices": 50, "min_late_invoices": 10,
    })
    return PaydelayConfig.model_validate({**base.model_dump(), "simulator": sim.model_dump(),
                                          "training": training.model_dump()})


def world(config: PaydelayConfig, seed: int, shift: Shift | None = None):
    return simulate_shifted(config.simulator, seed, shift)


def trained_model(config: PaydelayConfig, seed: int = 7):
    """(ledger, TrainResult) of a model trained on `seed`'s world up to CUTOFF (unregistered)."""
    led = world(config, seed)
    rows = build_training_set(led.events, led.master, config.features, seed, CUTOFF)
    return led, train(rows, config, seed, register=False, with_report=False)


def weekly_history(bundle, led, weeks: int = SCORING_WEEKS, start: pd.Timestamp = CUTOFF,
                   every_days: int = 7) -> pd.DataFrame:
    """What `paydelay score` would have written every week from `start` (in memory)."""
    frames = []
    for k in range(weeks):
        as_of = start + pd.Timedelta(days=every_days * k)
        frames.append(score_frame(led.events, led.master, bundle, as_of).assign(as_of=as_of))
    return pd.concat(frames, ignore_index=True)


@dataclass
class Worlds:
    config: PaydelayConfig
    ledger: object
    result: object


STALENESS_RULES = ("model_age", "store_age", "event_age", "scoring_age")


def weekly_alarms(bundle, led, checks=(2, 4, 6, 8, 10, 13), weeks: int = SCORING_WEEKS,
                  config=None) -> dict[int, list]:
    """Run the monitor as the weekly job would after each of `checks` weeks (history up to then,
    outcomes known then); the quality and drift alarms of each run (staleness left out: the
    tests judge it on its own)."""
    from training.monitor import reference_rows, run_monitor  # noqa: PLC0415

    history = weekly_history(bundle, led, weeks)
    ref = reference_rows(led.events, led.master, bundle)
    out = {}
    for week in checks:
        now = CUTOFF + pd.Timedelta(days=7 * week - 3)
        rep = run_monitor(history, led.events, led.master, bundle, now, reference=ref,
                          config=config)
        out[week] = [a for a in rep.alarms if a.rule not in STALENESS_RULES]
    return out
