"""MLflow tracking and model registry: one run per training, one registered bundle model, a
champion gate, rollback, and native loading.

Decision: ONE registered model (`training.registered_model_name`, default "paydelay"). Each version
is the risk booster logged with `mlflow.lightgbm.log_model` (LightGBM model text, signature,
input example) whose `extra_files` carry the rest of the bundle: the bucket and P10/P50/P90
boosters (model text) and bundle.json (calibrator, conformal shifts, categories, feature set).
Risk and payment-date models share the feature set and are trained on the same window, so one
alias moves both: serving can never mix a champion risk model with a challenger date model.

Store: the embedded SQLite store `sqlite:///<repo>/models/mlflow.db`, artifacts in
`models/mlartifacts` (beside whichever database file is used, so tests in tmp_path stay there).

Aliases: a new version takes `@champion` only when `promotion_decision` says it beats the current
champion on the same holdout (the new run's test slice, with the champion re-scored on it); else it
takes `@challenger`. The registered model's tag `champion_history` (JSON list of versions) lets
`rollback()` hand `@champion` back to the previous champion.

Loading (`load_bundle`) is native: the version's artifacts are downloaded and the LightGBM text
models are read with lightgbm.Booster - never the generic pyfunc loader, which turns categoricals
into strings and returns labels.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from features.config.training import PromotionConfig
from features.paths import MODELS
from training.core.bundle import ModelBundle

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
_HISTORY_TAG = "champion_history"
_DEFAULT_NAME = "paydelay"


def default_tracking_uri() -> str:
    return f"sqlite:///{(MODELS / 'mlflow.db').resolve()}"


def _artifact_root(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return (MODELS / "mlartifacts").resolve().as_uri()


def configure(tracking_uri: str | None = None):
    """Point MLflow at the store (offline-safe) and return a client."""
    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client, name: str, tracking_uri: str | None = None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    uri = tracking_uri or default_tracking_uri()
    return client.create_experiment(name, artifact_location=f"{_artifact_root(uri)}/{name}")


@contextmanager
def run(experiment: str, run_name: str, tracking_uri: str | None = None, nested: bool = False):
    """An MLflow run in `experiment` of the configured store."""
    client = configure(tracking_uri)
    exp_id = experiment_id(client, experiment, tracking_uri)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, nested=nested) as active:
        yield active


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists / tuples become JSON strings."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, f"{key}.")
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def log_params(params: dict) -> None:
    mlflow.log_params({k: ("None" if v is None else v) for k, v in flatten(params).items()})


def log_metrics(metrics: dict) -> None:
    """Numeric, finite values only (MLflow rejects the rest)."""
    clean = {}
    for k, v in flatten(metrics).items():
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            continue
        if np.isfinite(v):
            clean[k.replace("@", "_at_")] = float(v)
    mlflow.log_metrics(clean)


def log_bundle(bundle: ModelBundle, X_example: pd.DataFrame, workdir: Path) -> str:
    """Log the bundle as one MLflow LightGBM model; returns its model URI."""
    files = bundle.save(workdir)
    example = X_example.head(5)
    signature = infer_signature(example, bundle.risk.predict(example))
    info = mlflow.lightgbm.log_model(
        bundle.risk, name="paydelay_bundle", signature=signature, input_example=example,
        extra_files=[str(f) for f in files[1:]], pip_requirements=["lightgbm", "mlflow"],
        # Serving-input validation goes through pyfunc, which breaks categoricals (module doc).
        validate_serving_input=False,
    )
    return info.model_uri


def register(model_uri: str, name: str, tags: dict | None = None) -> int:
    mv = mlflow.register_model(model_uri, name, tags=tags)
    return int(mv.version)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    new: dict
    champion: dict | None


def promotion_decision(new: dict, champion: dict | None, cfg: PromotionConfig) -> Decision:
    """Champion gate on the same holdout: ROC-AUC may drop by at most cfg.max_auc_drop and the
    Brier score must fall by more than cfg.min_brier_gain (so an identical model does not win)."""
    if champion is None:
        return Decision(True, "no champion yet", new, None)
    auc_ok = new["roc_auc"] >= champion["roc_auc"] - cfg.max_auc_drop
    brier_ok = new["brier"] < champion["brier"] - cfg.min_brier_gain
    reason = (f"ROC-AUC {new['roc_auc']:.4f} vs champion {champion['roc_auc']:.4f} "
              f"(allowed drop {cfg.max_auc_drop}): {'ok' if auc_ok else 'worse'}; "
              f"Brier {new['brier']:.5f} vs {champion['brier']:.5f} "
              f"(required gain > {cfg.min_brier_gain}): {'ok' if brier_ok else 'not better'}")
    return Decision(bool(auc_ok and brier_ok), reason, new, champion)


def _history(client, name: str) -> list[int]:
    tags = client.get_registered_model(name).tags
    return [int(v) for v in json.loads(tags.get(_HISTORY_TAG, "[]"))]


def apply_decision(client, name: str, version: int, decision: Decision) -> str:
    """Set @champion (recording the history) or @challenger on `version`; returns the alias."""
    client.set_model_version_tag(name, str(version), "gate", decision.reason)
    if decision.promote:
        history = _history(client, name) + [int(version)]
        client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
        client.set_registered_model_alias(name, CHAMPION, str(version))
        return CHAMPION
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    return CHALLENGER


def champion_version(name: str = _DEFAULT_NAME, tracking_uri: str | None = None) -> int | None:
    client = configure(tracking_uri)
    try:
        return int(client.get_model_version_by_alias(name, CHAMPION).version)
    except Exception:  # no such model or alias yet
        return None


def rollback(name: str = _DEFAULT_NAME, tracking_uri: str | None = None) -> int:
    """Give @champion back to the previous champion; returns that version."""
    client = configure(tracking_uri)
    history = _history(client, name)
    if len(history) < 2:
        raise RuntimeError(f"model {name!r} has no previous champion to roll back to "
                           f"(champion history: {history})")
    current, previous = history[-1], history[-2]
    client.set_registered_model_alias(name, CHAMPION, str(previous))
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history[:-1]))
    client.set_model_version_tag(name, str(current), "rolled_back", "true")
    return previous


def _resolve(client, name: str, alias_or_version: str | int):
    ref = str(alias_or_version)
    if ref.isdigit():
        return client.get_model_version(name, ref)
    return client.get_model_version_by_alias(name, ref)


def load_bundle(alias_or_version: str | int = CHAMPION, name: str = _DEFAULT_NAME,
                tracking_uri: str | None = None) -> ModelBundle:
    """The bundle of a registered version (by alias or number), loaded natively."""
    client = configure(tracking_uri)
    mv = _resolve(client, name, alias_or_version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}"))
    bundle = ModelBundle.load(local / "extra_files", risk_model_path=local / "model.lgb")
    bundle.source = {"registered_model": name, "version": int(mv.version),
                     "aliases": list(mv.aliases or []), "run_id": mv.run_id}
    return bundle


def versions(name: str = _DEFAULT_NAME, tracking_uri: str | None = None) -> pd.DataFrame:
    """Registered versions with their aliases and gate notes (for the CLI / service metadata)."""
    client = configure(tracking_uri)
    # search results carry no aliases in MLflow 3: read each version itself.
    mvs = [client.get_model_version(name, m.version)
           for m in client.search_model_versions(f"name = '{name}'")]
    return pd.DataFrame([{"version": int(m.version), "aliases": ",".join(m.aliases or []),
                          "run_id": m.run_id, "gate": (m.tags or {}).get("gate", ""),
                          "rolled_back": (m.tags or {}).get("rolled_back", "")} for m in mvs]
                        ).sort_values("version", ignore_index=True) if mvs else pd.DataFrame()
