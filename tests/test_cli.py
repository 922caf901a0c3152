"""`paydelay`: every path default comes from features.paths, and the stages chain end to end.

The end-to-end test runs simulate -> ingest -> features -> train -> evaluate -> models on a small
ledger in tmp_path, with the demo's small config and an MLflow store in tmp_path (nothing under
data/ or models/ is touched).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

import paydelay_cli
from features import paths
from serving.demo import demo_config
from training import registry

runner = CliRunner()


def _commands():
    return [c.callback for c in paydelay_cli.app.registered_commands]


def test_every_path_default_comes_from_features_paths():
    known = {v for v in vars(paths).values() if isinstance(v, Path)}
    seen = 0
    for command in _commands():
        for p in inspect.signature(command).parameters.values():
            if isinstance(p.default, Path):
                seen += 1
                assert p.default in known, f"{command.__name__} --{p.name}: {p.default}"
                assert p.default.is_absolute() and p.default.is_relative_to(paths.DATA)
    assert seen >= 9  # simulate, ingest, ibm, features x2, train, tune, evaluate, rerank, ...


def test_help_lists_every_stage():
    result = runner.invoke(paydelay_cli.app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("simulate", "ingest", "features", "train", "tune", "evaluate", "serve", "rerank",
                 "demo"):
        assert name in result.output


@pytest.fixture
def small(monkeypatch, tmp_path):
    """The demo's small config for every command, and an MLflow store in tmp_path."""
    cfg = demo_config(n_customers=60, n_invoices=1800, months=12, seed=11)
    monkeypatch.setattr(paydelay_cli, "_config", lambda path: cfg)
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    monkeypatch.setattr(registry, "default_tracking_uri", lambda: uri)
    return tmp_path


def _run(*args: str):
    result = runner.invoke(paydelay_cli.app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_stages_chain_end_to_end(small):
    raw, ledger, rows = small / "raw", small / "ledger", small / "rows"
    _run("simulate", "--out", str(raw))
    assert (raw / "events.parquet").exists()
    _run("ingest", str(raw), "--out", str(ledger))
    assert (ledger / "quarantine.csv").exists()
    _run("features", "--ledger", str(ledger), "--out", str(rows))
    assert (rows / "training.parquet").exists() and (rows / "customer_store").is_dir()
    out = _run("train", "--rows", str(rows))
    assert "Registered paydelay version 1 as @champion" in out
    assert "Holdout: model against every baseline" in out
    out = _run("evaluate", "--rows", str(rows), "--model", "1")
    assert "paydelay@1" in out and "risk.roc_auc" in out
    assert "champion" in _run("models")


def test_evaluate_prints_the_flattened_headline_metrics(monkeypatch, small):
    monkeypatch.setattr(paydelay_cli, "_rows_and_truth", lambda rows: (None, None))
    monkeypatch.setattr(paydelay_cli, "evaluate_model",
                        lambda frame, cfg, alias_or_version, truth: {"risk": {"roc_auc": 0.75},
                                                                    "note": "text"})
    out = _run("evaluate", "--model", "champion")
    assert "risk.roc_auc" in out and "0.75" in out and "note" not in out


def test_a_failing_command_exits_non_zero(small):
    result = runner.invoke(paydelay_cli.app, ["ingest", str(small / "missing.csv")])
    assert result.exit_code != 0
