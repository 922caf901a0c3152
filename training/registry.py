"""MLflow tracking and model registry: one run per training, one registered bundle model per
ledger, a champion gate, rollback, native loading, and a fast listing of every ledger's models.

Decision: ONE registered model PER LEDGER, named `<training.registered_model_name>-<ledger>`
(`model_name`, e.g. "paydelay-demo", "paydelay-ibm"), with runs in the experiment of the same
name, so two ledgers never compete for one @champion. Each version is the risk booster logged
with `mlflow.lightgbm.log_model` (LightGBM model text, signature, input example) whose
`extra_files` carry the rest of the bundle: the bucket and P10/P50/P90 boosters (model text) and
bundle.json (calibrator, conformal shifts, categories, feature set, the ledger fingerprint).
Risk and payment-date models share the feature set and are trained on the same window, so one
alias moves both: serving can never mix a champion risk model with a challenger date model.
Each version carries the ledger fingerprint (training.core.ledger.ledger_tags), its test window
and its headline metrics (at posting and over all snapshot rows) as tags, which is all that
`list_models` needs.

Store: which MLflow store is read and written is decided in one place, `resolve_tracking_uri`
and `resolve_registry_uri`, for training, listing, rollback, evaluation, releases, the service,
scoring and monitoring alike. A store named for paydelay itself (the `--tracking-uri` option,
a `tracking_uri` argument, else $PAYDELAY_TRACKING_URI) is both the tracking store and the
registry; else MLflow's own variables ($MLFLOW_TRACKING_URI, and $MLFLOW_REGISTRY_URI when the
registry lives elsewhere) as MLflow reads them; else the embedded SQLite store
`sqlite:///<repo>/models/mlflow.db`. SQLite stores keep their artifacts in `mlartifacts` beside
the database file (so tests in tmp_path stay there); a tracking server (http(s)://) keeps them
where the server says (its --artifacts-destination), so a team's runs never point at one
person's disk.

Aliases: a new version takes `@champion` only when `promotion_decision` says it beats the current
champion of the same ledger and feature set on the same holdout (the new run's test slice, with
the champion re-scored on it); else it takes `@challenger`. A champion of another feature set is
never compared (training.pipeline says so in the gate note). The registered model's tag
`champion_history` (JSON list of versions) lets `rollback()` hand `@champion` back to the
previous champion.

Loading (`load_bundle`) is native: the version's artifacts are downloaded and the LightGBM text
models are read with lightgbm.Booster - never the generic pyfunc loader, which turns categoricals
into strings and returns labels. `load_bundle(name="paydelay")` with no ledger resolves the
ledger from $PAYDELAY_LEDGER, else the only `paydelay-*` model of the store (several: an error
naming them).

Importing this module is cheap (mlflow, pandas and LightGBM are imported where used): `paydelay
models` lists the store with sqlite3 (sqlite: URIs) or MLflow's REST API (http(s): URIs) in well
under a second, where importing mlflow alone takes seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from features.config.training import PromotionConfig
from features.paths import MODELS
from training.core.ledger import slugify

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from training.core.bundle import ModelBundle

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
_HISTORY_TAG = "champion_history"
_DEFAULT_NAME = "paydelay"
LEDGER_ENV = "PAYDELAY_LEDGER"  # which ledger's model load_bundle picks when none is named
# The MLflow store (resolve_tracking_uri): paydelay's own variable, then MLflow's.
TRACKING_ENV = "PAYDELAY_TRACKING_URI"
MLFLOW_TRACKING_ENV, MLFLOW_REGISTRY_ENV = "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"
# Version tags `list_models` shows (set by training.pipeline at registration).
TEST_WINDOW_TAG = "test_window"
METRIC_TAG_PREFIX = "headline."


def model_name(prefix: str, ledger: str) -> str:
    """The registered model (and experiment) of a ledger: "<prefix>-<ledger slug>"."""
    return f"{prefix}-{slugify(ledger)}"


def default_tracking_uri() -> str:
    return f"sqlite:///{(MODELS / 'mlflow.db').resolve()}"


def named_tracking_uri(tracking_uri: str | None = None) -> str | None:
    """The store named for paydelay itself: the argument (--tracking-uri), else
    $PAYDELAY_TRACKING_URI; None when neither names one. It wins over MLflow's own variables so
    that a test, a script or `paydelay serve` that names a store for this project is never
    redirected by a team-wide $MLFLOW_TRACKING_URI in the shell."""
    return tracking_uri or os.environ.get(TRACKING_ENV) or None


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The MLflow tracking store: the named one (`named_tracking_uri`), else
    $MLFLOW_TRACKING_URI, else the embedded SQLite store under models/."""
    return (named_tracking_uri(tracking_uri) or os.environ.get(MLFLOW_TRACKING_ENV)
            or default_tracking_uri())


def resolve_registry_uri(tracking_uri: str | None = None) -> str:
    """The MLflow model registry: a store named for paydelay is the registry too (one option
    points the whole project at one store, never half of it); else $MLFLOW_REGISTRY_URI, else
    the tracking store, as MLflow itself decides."""
    return (named_tracking_uri(tracking_uri) or os.environ.get(MLFLOW_REGISTRY_ENV)
            or resolve_tracking_uri())


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment's artifacts go; None: the tracking server decides."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        # A team's server stores (or proxies) artifacts itself: a local folder here would
        # leave runs on the server whose models nobody else can download.
        return None
    return (MODELS / "mlartifacts").resolve().as_uri()


@contextmanager
def _environment_kept():
    """mlflow.set_tracking_uri / set_registry_uri also write $MLFLOW_TRACKING_URI /
    $MLFLOW_REGISTRY_URI (for MLflow's own subprocesses). Left there, the last store used would
    pass for the user's environment at the next resolve in this process, and in every service
    or CLI process it starts: the variables keep what the user set."""
    saved = {k: os.environ.get(k) for k in (MLFLOW_TRACKING_ENV, MLFLOW_REGISTRY_ENV)}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def configure(tracking_uri: str | None = None):
    """Point MLflow at the resolved tracking store and registry (offline-safe) and return a
    client of both."""
    import mlflow  # noqa: PLC0415 - heavy; this module is imported by the fast listing too

    os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri, registry_uri = resolve_tracking_uri(tracking_uri), resolve_registry_uri(tracking_uri)
    for store in dict.fromkeys((uri, registry_uri)):
        if store.startswith("sqlite:///"):
            Path(store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with _environment_kept():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(registry_uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=registry_uri)


def experiment_id(client, name: str, tracking_uri: str | None = None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = _artifact_root(resolve_tracking_uri(tracking_uri))
    return client.create_experiment(name, artifact_location=None if root is None
                                    else f"{root}/{name}")


@contextmanager
def run(experiment: str, run_name: str, tracking_uri: str | None = None, nested: bool = False):
    """An MLflow run in `experiment` of the configured store."""
    import mlflow  # noqa: PLC0415

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
    import mlflow  # noqa: PLC0415

    mlflow.log_params({k: ("None" if v is None else v) for k, v in flatten(params).items()})


def log_metrics(metrics: dict) -> None:
    """Numeric, finite values only (MLflow rejects the rest)."""
    import mlflow  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    clean = {}
    for k, v in flatten(metrics).items():
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            continue
        if np.isfinite(v):
            clean[k.replace("@", "_at_")] = float(v)
    mlflow.log_metrics(clean)


def log_bundle(bundle: ModelBundle, X_example: pd.DataFrame, workdir: Path) -> str:
    """Log the bundle as one MLflow LightGBM model; returns its model URI."""
    import mlflow  # noqa: PLC0415
    from mlflow.models import infer_signature  # noqa: PLC0415

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
    import mlflow  # noqa: PLC0415

    # MLflow prints "Successfully registered model" / "Created version" to stderr, in the
    # middle of the CLI's tables: the version and the gate's verdict are printed by the caller.
    client = mlflow.MlflowClient()
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    with contextlib.redirect_stderr(io.StringIO()):
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


def rollback(name: str = _DEFAULT_NAME, tracking_uri: str | None = None,
             ledger: str | None = None) -> int:
    """Give @champion back to the previous champion; returns that version. `name` is a
    registered model, or the prefix with `ledger` (or the store's only ledger)."""
    client = configure(tracking_uri)
    name = resolve_name(client, name, ledger)
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


def resolve_name(client, name: str = _DEFAULT_NAME, ledger: str | None = None) -> str:
    """The registered model meant by `name` (a full name, or the prefix) and `ledger`.

    With a ledger (argument, else $PAYDELAY_LEDGER): "<name>-<ledger>". Without: `name` itself
    when it is registered, else the only "<name>-*" model of the store; several are an error
    naming their ledgers (two ledgers' models are never chosen between silently)."""
    ledger = ledger or os.environ.get(LEDGER_ENV) or None
    if ledger:
        return model_name(name, ledger)
    found = [m.name for m in client.search_registered_models(f"name LIKE '{name}%'")]
    if name in found:
        return name
    ledgers = sorted(n for n in found if n.startswith(f"{name}-"))
    if len(ledgers) == 1:
        return ledgers[0]
    if not ledgers:
        raise LookupError(f"no model {name!r} or {name}-<ledger> is registered in this store: "
                          "train one first (paydelay train)")
    raise LookupError(f"this store holds models of several ledgers ({', '.join(ledgers)}): "
                      f"name one (--ledger, or ${LEDGER_ENV})")


def load_bundle(alias_or_version: str | int = CHAMPION, name: str = _DEFAULT_NAME,
                tracking_uri: str | None = None, ledger: str | None = None) -> ModelBundle:
    """The bundle of a registered version (by alias or number), loaded natively. `name` is a
    registered model or the prefix; `ledger` (or $PAYDELAY_LEDGER) picks the ledger's model."""
    import mlflow  # noqa: PLC0415

    from training.core.bundle import ModelBundle  # noqa: PLC0415

    client = configure(tracking_uri)
    name = resolve_name(client, name, ledger)
    mv = _resolve(client, name, alias_or_version)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}"))
    bundle = ModelBundle.load(local / "extra_files", risk_model_path=local / "model.lgb")
    bundle.source = {"registered_model": name, "version": int(mv.version),
                     "aliases": list(mv.aliases or []), "run_id": mv.run_id,
                     "ledger": (bundle.ledger or {}).get("name")}
    return bundle


def versions(name: str = _DEFAULT_NAME, tracking_uri: str | None = None) -> pd.DataFrame:
    """Registered versions of one model with their aliases and gate notes (service metadata)."""
    import pandas as pd  # noqa: PLC0415

    client = configure(tracking_uri)
    # search results carry no aliases in MLflow 3: read each version itself.
    mvs = [client.get_model_version(name, m.version)
           for m in client.search_model_versions(f"name = '{name}'")]
    return pd.DataFrame([{"version": int(m.version), "aliases": ",".join(m.aliases or []),
                          "run_id": m.run_id, "gate": (m.tags or {}).get("gate", ""),
                          "rolled_back": (m.tags or {}).get("rolled_back", "")} for m in mvs]
                        ).sort_values("version", ignore_index=True) if mvs else pd.DataFrame()


# --- the fast listing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRecord:
    """One registered version as `paydelay models` shows it (all strings: tags are strings)."""

    registered_model: str
    version: int
    aliases: tuple[str, ...]
    tags: dict

    @property
    def ledger(self) -> str:
        return self.tags.get("ledger", "")

    def row(self) -> dict[str, str]:
        t = self.tags

        def day(key: str) -> str:
            return (t.get(key) or "")[:10]

        def num(key: str) -> str:
            v = t.get(METRIC_TAG_PREFIX + key)
            try:
                return f"{float(v):.3f}"
            except (TypeError, ValueError):
                return "-"

        window = t.get(TEST_WINDOW_TAG, "")
        return {
            "ledger": self.ledger or "-", "model": self.registered_model,
            "version": str(self.version),
            "aliases": ",".join(self.aliases + (("rolled back",) if t.get("rolled_back")
                                                == "true" else ())) or "-",
            "data window": f"{day('ledger.first_event')} .. {day('ledger.last_event')}",
            "invoices": t.get("ledger.n_invoices", "-"),
            "test window": " .. ".join(w[:10] for w in window.split(" .. ")) if window else "-",
            "AUC at posting": num("roc_auc_posting"), "Brier at posting": num("brier_posting"),
            "ECE at posting": num("ece_posting"), "AUC all snapshots": num("roc_auc"),
        }

    @property
    def feature_set(self) -> str:
        return self.tags.get("ledger.feature_set_version") or self.tags.get(
            "feature_set_version", "-")


def list_models(tracking_uri: str | None = None, ledger: str | None = None,
                prefix: str = _DEFAULT_NAME) -> list[ModelRecord]:
    """Every registered version of every ledger (or of `ledger`), newest last per ledger.

    The registry read is `resolve_registry_uri(tracking_uri)`'s. sqlite: URIs are read with
    sqlite3 (read-only), http(s): URIs with MLflow's REST API; other stores through the MLflow
    client (slow: it imports mlflow)."""
    uri = resolve_registry_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        records = _list_sqlite(Path(uri.removeprefix("sqlite:///")), prefix)
    elif uri.startswith(("http://", "https://")):
        records = _list_rest(uri, prefix)
    else:
        records = _list_client(uri, prefix)
    if ledger:
        records = [r for r in records if r.ledger == slugify(ledger)]
    return sorted(records, key=lambda r: (r.ledger, r.registered_model, r.version))


def _list_sqlite(path: Path, prefix: str) -> list[ModelRecord]:
    if not path.exists():
        return []
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = {r[0] for r in con.execute("SELECT name FROM registered_models")}
        names = {n for n in names if n == prefix or n.startswith(prefix + "-")}
        if not names:
            return []
        marks = ",".join("?" * len(names))
        versions_ = con.execute(f"SELECT name, version FROM model_versions WHERE name IN "
                                f"({marks}) AND current_stage != 'Deleted_Internal'",
                                tuple(names)).fetchall()
        tags: dict = {}
        for name, version, key, value in con.execute(
                f"SELECT name, version, key, value FROM model_version_tags WHERE name IN "
                f"({marks})", tuple(names)):
            tags.setdefault((name, int(version)), {})[key] = value
        aliases: dict = {}
        for name, version, alias in con.execute(
                f"SELECT name, version, alias FROM registered_model_aliases WHERE name IN "
                f"({marks})", tuple(names)):
            aliases.setdefault((name, int(version)), []).append(alias)
    finally:
        con.close()
    return [ModelRecord(n, int(v), tuple(sorted(aliases.get((n, int(v)), []))),
                        tags.get((n, int(v)), {})) for n, v in versions_]


def _list_rest(uri: str, prefix: str) -> list[ModelRecord]:
    import httpx  # noqa: PLC0415

    base = uri.rstrip("/") + "/api/2.0/mlflow"
    out: list[ModelRecord] = []
    with httpx.Client(timeout=30, trust_env=False) as http:
        models = http.get(f"{base}/registered-models/search",
                          params={"filter": f"name LIKE '{prefix}%'", "max_results": 1000})
        models.raise_for_status()
        for model in models.json().get("registered_models", []):
            name = model["name"]
            if name != prefix and not name.startswith(prefix + "-"):
                continue
            aliases: dict = {}
            for a in model.get("aliases", []):
                aliases.setdefault(int(a["version"]), []).append(a["alias"])
            mvs = http.get(f"{base}/model-versions/search",
                           params={"filter": f"name = '{name}'", "max_results": 1000})
            mvs.raise_for_status()
            for mv in mvs.json().get("model_versions", []):
                v = int(mv["version"])
                out.append(ModelRecord(name, v, tuple(sorted(aliases.get(v, []))),
                                       {t["key"]: t["value"] for t in mv.get("tags", [])}))
    return out


def _list_client(uri: str, prefix: str) -> list[ModelRecord]:
    client = configure(uri)
    out = []
    for model in client.search_registered_models(f"name LIKE '{prefix}%'"):
        for m in client.search_model_versions(f"name = '{model.name}'"):
            mv = client.get_model_version(model.name, m.version)
            out.append(ModelRecord(model.name, int(mv.version), tuple(sorted(mv.aliases or [])),
                                   dict(mv.tags or {})))
    return out
