"""`bentoml build` packages the service offline into a Bento with the four API routes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_bentoml_build_produces_a_bento(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PYTHONPATH": str(ROOT),
           "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true", "BENTOML_DO_NOT_TRACK": "true"}
    bentoml = Path(sys.executable).parent / "bentoml"
    done = subprocess.run([str(bentoml), "build", str(ROOT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    bentos = list((tmp_path / "bentoml" / "bentos" / "paydelay").glob("*/bento.yaml"))
    assert len(bentos) == 1
    spec = yaml.safe_load(bentos[0].read_text())
    assert spec["service"] == "serving.service:PaydelayService"
    routes = {r["route"] for r in spec["schema"]["routes"]}
    assert {"/score", "/rerank", "/explain"} <= routes
    src = bentos[0].parent / "src"
    for module in ("serving/service.py", "serving/treeshap.py", "training/scoring.py",
                   "features/history.py", "features/schema.py"):
        assert (src / module).is_file(), module
    assert not (src / "tests").exists() and not (src / "data").exists()
