"""Which model a serving process serves, and loading it: a release the Bento carries (or one
named by $PAYDELAY_RELEASE), else the MLflow registry (alias or version).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from features.config import PaydelayConfig
from serving.model import (MODEL_ENV, RELEASE_ENV, TRACKING_ENV, ServingModel, from_bundle,
                           load_config_from_env)
from serving.release import bento_release_tag, load_release
from serving.store import CustomerStore, load_store_for_run, store_override_path

log = logging.getLogger(__name__)


def load_serving_model(config: PaydelayConfig | None = None, model_ref: str | None = None,
                       tracking_uri: str | None = None) -> ServingModel:
    """The model to serve, from one of two sources:

    - a release (serving.release): inside a Bento, the BentoML model the Bento carries (its
      bentofile `models:` entry aliased paydelay-release), or any exported release named by
      $PAYDELAY_RELEASE. Bundle and customer store come from the BentoML model store; MLflow
      is never imported (a Bento does not install it) and PAYDELAY_MODEL and the tracking
      variables are ignored.
    - otherwise the MLflow registry (local use, `paydelay serve`): the registered bundle
      (alias / version from the argument, $PAYDELAY_MODEL or config) and the customer store
      logged with its training run, from the store training.registry.resolve_tracking_uri /
      resolve_registry_uri decide (the argument, $PAYDELAY_TRACKING_URI, $MLFLOW_TRACKING_URI /
      $MLFLOW_REGISTRY_URI, else the SQLite store under models/): a service started by
      serving.launcher gets it through those variables. Passing model_ref or tracking_uri
      always means the registry.

    $PAYDELAY_STORE_PATH overrides the customer store in both cases."""
    config = config or load_config_from_env()
    if model_ref is None and tracking_uri is None:
        release = os.environ.get(RELEASE_ENV) or bento_release_tag()
        if release:
            ignored = [k for k in (MODEL_ENV, TRACKING_ENV, "MLFLOW_TRACKING_URI",
                                   "MLFLOW_REGISTRY_URI") if os.environ.get(k)]
            if ignored:
                log.info("serving release %s: %s ignored", release, ", ".join(ignored))
            return load_release(release, config)
    # The registry path. mlflow is an optional, heavy dependency needed only here: it is not
    # installed in a Bento (requirements-serving.txt), so the registry's loader (which imports
    # it) is imported here and never at the top of a serving module.
    from training.registry import (load_bundle, resolve_registry_uri,  # noqa: PLC0415
                                   resolve_tracking_uri)

    ref = model_ref or os.environ.get(MODEL_ENV) or config.serving.model_ref
    uri = tracking_uri or None  # None: resolved from the environment by training.registry
    for store_uri in dict.fromkeys((resolve_registry_uri(uri), resolve_tracking_uri(uri))):
        check_registry_store(store_uri)
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


class StoreUnavailable(FileNotFoundError):
    """The model registry the service was pointed at is missing or unreadable."""


def check_registry_store(uri: str) -> None:
    """Refuse a SQLite MLflow store that does not exist or is not an MLflow database, naming the
    file and what is missing, before MLflow would silently create an empty one there."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file():
        raise StoreUnavailable(f"MLflow store {path} does not exist (--tracking-uri, "
                               f"{TRACKING_ENV}, MLFLOW_TRACKING_URI or the default): nothing "
                               "was created; train and register a model first or point it at "
                               "an existing store")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            con.execute("SELECT name FROM registered_models LIMIT 1").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"MLflow store {path} is not a readable MLflow database (no "
                               f"registered_models table: {type(exc).__name__})") from None
