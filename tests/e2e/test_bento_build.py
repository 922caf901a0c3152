"""A Bento is a release: `python -m serving.release` (what `paydelay bento` runs) copies the
registered @champion and its customer store into a BentoML model and `bentoml build`s a Bento
around it, with the run-time requirements only; the Bento then loads and serves that model with
no MLflow store anywhere (PAYDELAY_TRACKING_URI points at nothing, mlflow is never imported).

Everything BentoML writes lands in a BENTOML_HOME under tmp; the registered model is the e2e
session's (tests/e2e/conftest.py), whose own store is left alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from serving.launcher import running_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NEVER = ("mlflow", "optuna", "matplotlib", "shap", "pytest")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _bento_env(home: Path, tracking_uri: str | None = None) -> dict:
    """A Bento's environment: its BENTOML_HOME, the repository NOT on PYTHONPATH (the Bento runs
    its own copy of the code) and, when given, an MLflow store that does not exist."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("PYTHONPATH", None)
    env.pop("PAYDELAY_STORE_PATH", None)
    if tracking_uri:
        env |= {"PAYDELAY_TRACKING_URI": tracking_uri, "PAYDELAY_MODEL": "no-such-alias"}
    return env


@pytest.fixture(scope="module")
def bento(registered, tmp_path_factory):
    """(Bento tag, its folder, BENTOML_HOME, a tracking URI that points at nothing)."""
    work = tmp_path_factory.mktemp("bento")
    home = work / "bentoml"
    env = {**os.environ, "BENTOML_HOME": str(home), "PYTHONPATH": str(ROOT),
           "BENTOML_DO_NOT_TRACK": "true", "PAYDELAY_TRACKING_URI": registered.tracking_uri,
           "COLUMNS": "200"}
    # what a user runs: `paydelay bento` (make bento)
    done = subprocess.run([str(Path(sys.executable).parent / "paydelay"), "bento", "--model",
                           "champion"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    built = re.search(r"Built Bento (\S+):", done.stdout)
    assert built, done.stdout[-2000:]
    tag = built.group(1)
    name, version = tag.split(":")
    folder = home / "bentos" / name / version
    assert (folder / "bento.yaml").is_file(), tag
    return tag, folder, home, f"sqlite:///{work / 'no-registry' / 'mlflow.db'}"


def test_the_bento_carries_the_release_and_only_runtime_requirements(bento, registered):
    _, folder, home, _ = bento
    spec = yaml.safe_load((folder / "bento.yaml").read_text())
    assert spec["service"] == "serving.service:PaydelayService"
    routes = {r["route"] for r in spec["schema"]["routes"]}
    assert {"/score", "/rerank", "/explain"} <= routes
    # the model: one BentoML model under the alias the service looks for
    (model,) = spec["models"]
    assert model["alias"] == "paydelay-release" and model["tag"].startswith("paydelay-model:")
    stored = home / "models" / Path(model["tag"].replace(":", "/"))
    info = yaml.safe_load((stored / "model.yaml").read_text())
    assert info["labels"]["version"] == str(registered.version)
    assert info["labels"]["run_id"] == registered.run_id
    assert info["metadata"]["aliases"] == ["champion"]
    assert (stored / "bundle" / "bundle.json").is_file()
    assert (stored / "customer_store" / "customer_history.parquet").is_file()
    assert not list(stored.rglob("*.pkl")), "a release holds text, JSON and Parquet only"
    # the code
    src = folder / "src"
    for module in ("serving/service.py", "serving/release.py", "serving/treeshap.py",
                   "training/core/scoring.py", "features/pit/history.py", "features/schema.py"):
        assert (src / module).is_file(), module
    assert not (src / "tests").exists() and not (src / "data").exists()
    assert not (src / "models").exists()
    # the requirements: the serving closure of the lock, nothing for training or tests
    reqs = {_norm(line.split("==")[0]) for line in
            (folder / "env" / "python" / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert {"bentoml", "lightgbm", "numpy", "pandas", "pyarrow", "pydantic"} <= reqs
    assert not reqs & {"mlflow", "mlflow-skinny", "optuna", "matplotlib", "shap", "pytest",
                       "ipykernel", "nbclient"}


def test_requirements_serving_is_generated_from_the_lock():
    done = subprocess.run([sys.executable, str(ROOT / "serving" / "runtime_requirements.py"),
                           "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# Loads the Bento as `bentoml serve` does (bentoml.load: its own code, its model aliases) and
# its model, in this environment cut down to the Bento's: a top-level import of any installed
# distribution the Bento's requirements.txt does not list fails, as it would there (optional
# imports such as lightgbm's of scikit-learn take their fallback).
_PROBE = """
import json, re, sys
from importlib.metadata import packages_distributions

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

reqs = {norm(line.split("==")[0]) for line in open(sys.argv[2]).read().splitlines()
        if "==" in line and not line.startswith("#")}
owners = packages_distributions()
blocked = set()

class NotInTheBento:
    def find_spec(self, name, path=None, target=None):
        dists = {norm(d) for d in owners.get(name.split(".")[0], ())} - {"paydelay"}
        if "." not in name and dists and not dists & reqs:
            blocked.add(name)
            raise ModuleNotFoundError(f"No module named {name!r} (not in the Bento)", name=name)
        return None

sys.meta_path.insert(0, NotInTheBento())
import bentoml
svc = bentoml.load(sys.argv[1])
import serving
from serving.api_models import ApiModels
from serving.handlers import handle_score
from serving.loading import load_serving_model
model = load_serving_model()
request = ApiModels(model.serving).ScoreRequest.model_validate_json(open(sys.argv[3]).read())
scored = handle_score(model, request.as_of, request.items)
print(json.dumps({"serving": serving.__file__, "info": {k: str(v) for k, v in model.info.items()},
                  "p_late": [item["p_late"] for item in scored["items"]],
                  "modules": sorted({m.split(".")[0] for m in sys.modules}),
                  "blocked": sorted(blocked)}))
"""


def test_the_bento_loads_its_release_without_mlflow(bento, registered, worklist, tmp_path):
    """Loaded as `bentoml serve` loads it, with only the Bento's requirements importable, the
    Bento runs its own code and its release's model, scores, and imports no MLflow module."""
    tag, folder, home, nowhere = bento
    body = tmp_path / "score.json"
    body.write_text(json.dumps({"as_of": worklist["as_of"], "items": worklist["items"][:20]}))
    done = subprocess.run([sys.executable, "-c", _PROBE, tag,
                           str(folder / "env" / "python" / "requirements.txt"), str(body)],
                          cwd=tmp_path,
                          env=_bento_env(home, nowhere), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["serving"].startswith(str(folder / "src")), "the Bento runs its own code"
    assert probe["info"]["version"] == str(registered.version)
    assert probe["info"]["release"].startswith("paydelay-model:")
    assert len(probe["p_late"]) == 20 and all(0 <= p <= 1 for p in probe["p_late"])
    assert not [m for m in probe["modules"] if m in NEVER]
    assert not Path(nowhere.removeprefix("sqlite:///")).parent.exists()


def test_the_bento_serves_with_no_mlflow_store(bento, registered, worklist, tmp_path):
    tag, _, home, nowhere = bento
    env = _bento_env(home, nowhere) | {"PAYDELAY_API_TOKEN": "bento-token",
                                       "PAYDELAY_WORKERS": "1"}
    with running_server(env, tmp_path / "server.log", target=tag, cwd=tmp_path,
                        ready_timeout_s=90) as url:
        with httpx.Client(base_url=url, timeout=60, trust_env=False,
                          headers={"Authorization": "Bearer bento-token"}) as client:
            r = client.post("/score", json={"as_of": worklist["as_of"],
                                            "items": worklist["items"][:20]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"]["version"] == registered.version
    assert len(body["items"]) == 20
    assert all(0 <= item["p_late"] <= 1 for item in body["items"])
    assert not Path(nowhere.removeprefix("sqlite:///")).parent.exists()
