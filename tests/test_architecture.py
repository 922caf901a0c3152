"""The layering as import-linter contracts ([tool.importlinter] in pyproject.toml).

serving > training > features; inside features, pit / ingest / simulate keep to their lanes;
training.core (the inference core) imports nothing else from training and no tuning, plotting,
tracking or SHAP package; serving takes from training only training.core and training.registry.
The first test runs the check on the repository; the others prove, on a copy of the packages with
one bad import added, that the check fails when a contract is broken (so it cannot pass because it
checked nothing) and that the serving contract names every training module it should.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "serving")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the packages under `root`, with the contracts of `root`/pyproject.toml."""
    script = Path(sys.executable).with_name("lint-imports")
    cmd = ([str(script)] if script.exists() else
           [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"])
    # PYTHONPATH first, so a copy under tmp_path shadows the editable install of the repository.
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run([*cmd, "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def _contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


def test_the_repository_keeps_every_import_contract():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_contracts())} kept, 0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory) -> Path:
    """The three packages and pyproject.toml copied to a scratch folder (sources only)."""
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize("module, bad_import, expected", [
    ("features/schema.py", "import serving.api_models", "features.schema -> serving.api_models"),
    ("features/pit/labels.py", "from features.simulate import ledger",
     "features.pit.labels -> features.simulate.ledger"),
    ("features/ingest/io.py", "from features.pit import build",
     "features.ingest.io -> features.pit.build"),
    ("training/core/rules.py", "import mlflow", "training.core.rules -> mlflow"),
    ("training/core/rules.py", "from training import pipeline",
     "training.core.rules -> training.pipeline"),
    ("serving/rerank.py", "from training import tune", "serving.rerank -> training.tune"),
], ids=["layers", "pit-simulate", "ingest-pit", "core-mlflow", "core-training", "serving-tune"])
def test_a_bad_import_breaks_a_contract(copy_root, module, bad_import, expected):
    path = copy_root / module
    clean = path.read_text()
    path.write_text(f"{clean}\n{bad_import}  # added by test_architecture\n")
    try:
        result = _lint_imports(copy_root)
    finally:
        path.write_text(clean)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert expected in result.stdout, result.stdout + result.stderr


def test_serving_contract_names_every_training_module_but_core_and_registry():
    (contract,) = [c for c in _contracts() if c["id"] == "serving-training"]
    modules = {f"training.{p.stem if p.is_file() else p.name}"
               for p in (ROOT / "training").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__")
               or (p.is_dir() and (p / "__init__.py").exists())}
    assert set(contract["forbidden_modules"]) == modules - {"training.core", "training.registry"}
