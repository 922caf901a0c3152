"""The model a serving process holds: `ServingModel` (bundle, customer store, its explainer, and
the model's contract: the feature config it was trained with, its delay buckets and rule
strategy) and how it is loaded (registry alias or version, environment overrides).

What a model means comes from the contract stored in its bundle (training.core.contract), never
from the serving process's own config: that config only says which model to serve and the
request limits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from features.config import PaydelayConfig, load_config
from features.config.features import FeatureConfig
from features.config.rules import RuleStrategyConfig
from features.config.serving import ServingConfig
from features.pit.feature_spec import FeatureSpec
from serving.store import CustomerStore, empty_store
from serving.treeshap import FastTreeShap
from training.core.bundle import ModelBundle
from training.core.contract import ModelContract

log = logging.getLogger(__name__)

MODEL_ENV = "PAYDELAY_MODEL"  # alias or version to serve (overrides ServingConfig.model_ref)
# The MLflow store named for paydelay; training.registry.resolve_tracking_uri decides with it,
# then $MLFLOW_TRACKING_URI, then the project's models/mlflow.db.
TRACKING_ENV = "PAYDELAY_TRACKING_URI"
CONFIG_ENV = "PAYDELAY_CONFIG"  # TOML config file
RELEASE_ENV = "PAYDELAY_RELEASE"  # BentoML release model to serve (serving.release), any place


@dataclass
class ServingModel:
    bundle: ModelBundle
    store: CustomerStore
    config: PaydelayConfig  # the serving process's: request limits, reasons, token
    info: dict = field(default_factory=dict)
    # TreeSHAP of bundle.ranking_booster (the very-late model); None: reasons use pred_contrib
    explainer: FastTreeShap | None = None

    @property
    def serving(self) -> ServingConfig:
        return self.config.serving

    @property
    def contract(self) -> ModelContract:
        return self.bundle.contract

    @property
    def feature_config(self) -> FeatureConfig:
        """The feature config the model was trained with (windows, grace days, cold start)."""
        return self.bundle.contract.feature_config

    @property
    def rules(self) -> RuleStrategyConfig:
        """The rule strategy shown beside the model: the one it was trained and judged with."""
        return self.bundle.contract.rule_strategy

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.bundle.contract.feature_names

    def specs(self) -> dict[str, FeatureSpec]:
        """FeatureSpec per feature of the model's feature config (sentences for reasons)."""
        return {s.name: s for s in self.bundle.contract.specs()}


def from_bundle(bundle: ModelBundle, store: CustomerStore | None, config: PaydelayConfig,
                info: dict | None = None, explainer: bool = True) -> ServingModel:
    """A ServingModel over an in-memory bundle (tests, notebooks, the registry loader)."""
    shap = None
    if explainer:
        shap = FastTreeShap(bundle.ranking_booster)  # the model the reasons explain
        if not shap.supported:
            log.warning("ranking model too deep for tabulated TreeSHAP: reasons use "
                        "pred_contrib")
            shap = None
    source = dict(getattr(bundle, "source", {}) or {})
    store = store or empty_store(bundle.feature_set_version)
    base = {
        "registered_model": source.get("registered_model"), "version": source.get("version"),
        "aliases": list(source.get("aliases", [])), "run_id": source.get("run_id"),
        "feature_set_version": bundle.feature_set_version,
        "store_as_of": None if store.as_of is None else store.as_of.to_pydatetime(),
    }
    return ServingModel(bundle=bundle, store=store, config=config,
                        info={**base, **(info or {})}, explainer=shap)


def load_config_from_env() -> PaydelayConfig:
    return load_config(os.environ.get(CONFIG_ENV) or None)
