"""A release: one registered model version, taken out of the MLflow registry into BentoML.

`export_release` reads a registered bundle (alias or version) and the customer store logged with
its training run, and saves both as ONE BentoML model (`paydelay-model`) in the BentoML model
store ($BENTOML_HOME/models). bentofile.yaml lists that model under the alias
`paydelay-release`, so `bentoml build` packages it into the Bento, and a Bento then serves
without MLflow, the registry or its artifact store beside it (serving.loading
loads the Bento's release and never imports mlflow). `build_bento` does both steps and returns
the Bento tag; `paydelay bento` / `make bento` call it.

The BentoML model folder holds text, JSON and Parquet only (nothing is pickled, so loading it
cannot execute code):
  bundle/           training.core.bundle.ModelBundle.save: LightGBM model text + bundle.json
  customer_store/   serving.store.CustomerStore.save (absent when the version has none)
  release.json      where it came from: registered model, version, aliases, run id, feature set
The same facts are the BentoML model's labels and metadata (`bentoml models list / get`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import bentoml
import yaml
from bentoml.exceptions import NotFound

from features.config import PaydelayConfig
from serving.model import MODEL_ENV, ServingModel, from_bundle, load_config_from_env
from serving.store import CustomerStore, load_store_for_run, store_override_path
from training.core.bundle import ModelBundle

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BENTOFILE = ROOT / "bentofile.yaml"
MODEL_NAME = "paydelay-model"  # the BentoML model a release is saved as
RELEASE_ALIAS = "paydelay-release"  # its alias in bentofile.yaml `models:` (and the Bento)
BUNDLE_DIR = "bundle"
STORE_DIR = "customer_store"
RELEASE_FILE = "release.json"


def export_release(model_ref: str | int | None = None, tracking_uri: str | None = None,
                   config: PaydelayConfig | None = None) -> str:
    """Copy a registered version (alias or number; default $PAYDELAY_MODEL, else the config's
    model_ref, @champion) and its customer store from the MLflow registry (tracking_uri, else
    the one training.registry.resolve_registry_uri reads from the environment) into the BentoML
    model store; returns the new BentoML model's tag ("paydelay-model:<generated version>")."""
    # mlflow is heavy and absent from a Bento (requirements-serving.txt): only exporting, which
    # runs in the development environment, reads the registry.
    from training.registry import load_bundle

    config = config or load_config_from_env()
    ref = str(model_ref or os.environ.get(MODEL_ENV) or config.serving.model_ref)
    name = config.training.registered_model_name
    bundle = load_bundle(ref, name=name, tracking_uri=tracking_uri)
    source = dict(bundle.source or {})
    run_id = source.get("run_id")
    store = load_store_for_run(run_id, tracking_uri) if run_id else None
    if store is None:
        log.warning("model version %s has no customer store: the release scores every customer "
                    "cold-start", source.get("version"))
    release = {
        "registered_model": name, "version": source.get("version"),
        "aliases": list(source.get("aliases", [])), "run_id": run_id, "model_ref": ref,
        "feature_set_version": bundle.feature_set_version,
        "store_as_of": None if store is None or store.as_of is None else store.as_of.isoformat(),
        "store_customers": 0 if store is None else int(store.n_customers),
        "training_window": bundle.training_window,
    }
    labels = {"registered_model": name, "version": str(source.get("version")),
              "aliases": "-".join(release["aliases"]) or "none", "run_id": str(run_id),
              "feature_set_version": str(bundle.feature_set_version)}
    with bentoml.models.create(MODEL_NAME, labels=labels,
                               metadata=bentoml_metadata(release)) as bento_model:
        folder = Path(bento_model.path)
        bundle.save(folder / BUNDLE_DIR)
        if store is not None:
            store.save(folder / STORE_DIR)
        (folder / RELEASE_FILE).write_text(json.dumps(release, indent=1, sort_keys=True,
                                                      default=str))
    log.info("exported %s v%s (%s) as BentoML model %s", name, source.get("version"), ref,
             bento_model.tag)
    return str(bento_model.tag)


def bentoml_metadata(value):
    """The release facts as BentoML model metadata, which refuses None (an unset budget, a
    model without a customer store): unset entries are left out there; release.json keeps
    them."""
    if isinstance(value, dict):
        return {k: bentoml_metadata(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [bentoml_metadata(v) for v in value if v is not None]
    return value


def load_release(tag: str, config: PaydelayConfig | None = None,
                 explainer: bool = True) -> ServingModel:
    """The ServingModel of a BentoML release model (tag, or the Bento's alias). MLflow is not
    involved; $PAYDELAY_STORE_PATH still overrides the customer store."""
    config = config or load_config_from_env()
    bento_model = bentoml.models.get(tag)
    folder = Path(bento_model.path)
    release = json.loads((folder / RELEASE_FILE).read_text())
    bundle = ModelBundle.load(folder / BUNDLE_DIR)
    bundle.source = {k: release.get(k) for k in ("registered_model", "version", "aliases",
                                                 "run_id")}
    override = store_override_path()
    if override is not None:
        store = CustomerStore.load(override)
    elif (folder / STORE_DIR).is_dir():
        store = CustomerStore.load(folder / STORE_DIR)
    else:
        store = None
        log.warning("release %s has no customer store: every customer is cold-start",
                    bento_model.tag)
    return from_bundle(bundle, store, config, explainer=explainer,
                       info={"model_ref": release.get("model_ref"),
                             "release": str(bento_model.tag)})


def bento_release_tag() -> str | None:
    """The release the running Bento carries (its `models:` entry aliased paydelay-release), or
    None when serving from source: BentoML resolves the alias only inside a loaded Bento (or
    `bentoml serve <folder with bentofile.yaml>`)."""
    try:
        return str(bentoml.models.get(RELEASE_ALIAS).tag)
    except NotFound:
        return None


def pinned_bentofile(tag: str, bentofile: Path = BENTOFILE) -> str:
    """bentofile.yaml's text with its release model pinned to `tag` (instead of :latest)."""
    spec = yaml.safe_load(Path(bentofile).read_text())
    spec["models"] = [{"tag": str(tag), "alias": RELEASE_ALIAS}]
    return yaml.safe_dump(spec, sort_keys=False)


def build_bento(model_ref: str | int | None = None, tracking_uri: str | None = None,
                config: PaydelayConfig | None = None, bentofile: Path = BENTOFILE,
                env: dict | None = None, timeout_s: float = 600) -> str:
    """Export the registered version as a release and `bentoml build` a Bento around it (the
    bentofile with its model pinned to that release); returns the Bento tag. BENTOML_HOME (in
    `env` or the environment) says which BentoML store both land in."""
    tag = export_release(model_ref, tracking_uri, config)
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    bentoml_cli = Path(sys.executable).parent / "bentoml"
    with tempfile.TemporaryDirectory() as tmp:
        pinned = Path(tmp) / "bentofile.yaml"
        pinned.write_text(pinned_bentofile(tag, bentofile))
        done = subprocess.run([str(bentoml_cli), "build", "-f", str(pinned), "-o", "tag",
                               str(ROOT)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"bentoml build failed ({done.returncode}):\n"
                           + (done.stdout[-2000:] + done.stderr[-3000:]))
    tags = [line.split("__tag__:", 1)[1].strip() for line in done.stdout.splitlines()
            if "__tag__:" in line]
    if not tags:
        raise RuntimeError("bentoml build printed no tag:\n" + done.stdout[-2000:])
    log.info("built Bento %s with release %s", tags[-1], tag)
    return tags[-1]


__all__ = ["MODEL_NAME", "RELEASE_ALIAS", "export_release", "load_release",
           "bento_release_tag", "build_bento"]
