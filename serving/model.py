"""The model a serving process holds: `ServingModel` (bundle, customer store, the feature config
the model was trained with, its explainer) and how it is loaded (registry alias or version,
environment overrides).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from features.config import PaydelayConfig, load_config
from features.config.features import FeatureConfig
from features.config.rules import RuleStrategyConfig
from features.config.serving import ServingConfig
from features.pit.feature_spec import feature_specs
from serving.store import CustomerStore, empty_store, load_store_for_run, store_override_path
from serving.treeshap import FastTreeShap
from training.registry import load_bundle

log = logging.getLogger(__name__)

MODEL_ENV = "PAYDELAY_MODEL"  # alias or version to serve (overrides ServingConfig.model_ref)
TRACKING_ENV = "PAYDELAY_TRACKING_URI"  # MLflow store (default: the project's models/mlflow.db)
CONFIG_ENV = "PAYDELAY_CONFIG"  # TOML config file


@dataclass
class ServingModel:
    bundle: object  # training.core.bundle.ModelBundle
    store: CustomerStore
    config: PaydelayConfig
    feature_config: FeatureConfig
    info: dict = field(default_factory=dict)
    explainer: object | None = None  # serving.treeshap.FastTreeShap (None: use pred_contrib)

    @property
    def serving(self) -> ServingConfig:
        return self.config.serving

    @property
    def rules(self) -> RuleStrategyConfig:
        return self.config.rule_strategy

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.bundle.feature_set.names)

    def specs(self) -> dict:
        """FeatureSpec per feature of the model's feature config (sentences for reasons)."""
        return {s.name: s for s in feature_specs(self.feature_config)}


def model_feature_config(bundle, fallback: FeatureConfig) -> FeatureConfig:
    """The feature config the bundle was trained with (falls back to the serving config's)."""
    stored = (getattr(bundle, "config", None) or {}).get("features")
    return FeatureConfig.model_validate(stored) if stored else fallback


def from_bundle(bundle, store: CustomerStore | None, config: PaydelayConfig,
                info: dict | None = None, explainer: bool = True) -> ServingModel:
    """A ServingModel over an in-memory bundle (tests, notebooks, the registry loader)."""
    fcfg = model_feature_config(bundle, config.features)
    shap = None
    if explainer:
        shap = FastTreeShap(bundle.risk)
        if not shap.supported:
            log.warning("risk model too deep for tabulated TreeSHAP: reasons use pred_contrib")
            shap = None
    source = dict(getattr(bundle, "source", {}) or {})
    store = store or empty_store(bundle.feature_set_version)
    base = {
        "registered_model": source.get("registered_model"), "version": source.get("version"),
        "aliases": list(source.get("aliases", [])), "run_id": source.get("run_id"),
        "feature_set_version": bundle.feature_set_version,
        "store_as_of": None if store.as_of is None else store.as_of.to_pydatetime(),
    }
    return ServingModel(bundle=bundle, store=store, config=config, feature_config=fcfg,
                        info={**base, **(info or {})}, explainer=shap)


def load_config_from_env() -> PaydelayConfig:
    return load_config(os.environ.get(CONFIG_ENV) or None)


def load_serving_model(config: PaydelayConfig | None = None, model_ref: str | None = None,
                       tracking_uri: str | None = None) -> ServingModel:
    """The registered bundle (alias / version from the argument, $PAYDELAY_MODEL or config) and
    the customer store logged with its training run ($PAYDELAY_STORE_PATH overrides)."""
    config = config or load_config_from_env()
    ref = model_ref or os.environ.get(MODEL_ENV) or config.serving.model_ref
    uri = tracking_uri or os.environ.get(TRACKING_ENV) or None
    bundle = load_bundle(ref, name=config.training.registered_model_name, tracking_uri=uri)
    override = store_override_path()
    if override is not None:
        store = CustomerStore.load(override)
    else:
        run_id = (getattr(bundle, "source", {}) or {}).get("run_id")
        store = load_store_for_run(run_id, uri) if run_id else None
        if store is None:
            log.warning("model version has no customer store: every customer is cold-start")
    return from_bundle(bundle, store, config, info={"model_ref": str(ref)})
