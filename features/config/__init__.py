"""One typed configuration, split by stage, loaded explicitly from TOML (no import-time reads).

`PaydelayConfig` is the root: the seed at its top (passed down explicitly, so a run is reproduced
by its config file alone) and one section per stage, each in its own module beside this one:
simulator, features (point in time), training, evaluation, rules (the SAP-style strategy),
serving and sap (reading SAP table extracts). Each stage takes its own section as an argument.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from features.config.base import Section
from features.config.engine import EngineConfig
from features.config.evaluation import EvaluationConfig
from features.config.features import FeatureConfig
from features.config.monitoring import MonitoringConfig
from features.config.rules import RuleStrategyConfig
from features.config.sap import SapConfig
from features.config.serving import ServingConfig
from features.config.simulator import SimulatorConfig
from features.config.training import TrainingConfig


class PaydelayConfig(Section):
    seed: int = 42
    simulator: SimulatorConfig = SimulatorConfig()
    features: FeatureConfig = FeatureConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    rule_strategy: RuleStrategyConfig = RuleStrategyConfig()
    training: TrainingConfig = TrainingConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    sap: SapConfig = SapConfig()
    engine: EngineConfig = EngineConfig()  # where the stages run: here, or on Dask


def load_config(path: str | Path | None = None) -> PaydelayConfig:
    """Read a TOML file into the typed config; None gives the defaults."""
    if path is None:
        return PaydelayConfig()
    with open(path, "rb") as fh:
        return PaydelayConfig.model_validate(tomllib.load(fh))
