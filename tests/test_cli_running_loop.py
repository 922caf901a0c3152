"""`paydelay score` and `paydelay monitor` on a registered model: the dated table, the MLflow
runs, and the monitor's one-line verdict with its exit status (slow: trains a small model)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def test_score_then_monitor(tmp_path, monkeypatch):
    from features.ingest.ledger_files import write_ledger_dir
    from paydelay_cli import app
    from serving.demo import demo_config, train_and_register

    reg = train_and_register(tmp_path / "model", demo_config(n_customers=60, n_invoices=1800,
                                                             months=12, seed=5), ledger="demo")
    ledger = write_ledger_dir(tmp_path / "demo", reg.events, reg.master)
    monkeypatch.setenv("PAYDELAY_TRACKING_URI", reg.tracking_uri)
    runner = CliRunner()
    scores = tmp_path / "scores"
    as_of = (reg.last_refresh - __import__("pandas").Timedelta(days=14)).date().isoformat()
    res = runner.invoke(app, ["score", "--ledger", str(ledger), "--out", str(scores),
                              "--from", as_of, "--to", reg.last_refresh.date().isoformat()])
    assert res.exit_code == 0, res.output
    assert len(list(scores.glob("predictions_*.parquet"))) == 3
    res = runner.invoke(app, ["monitor", "--ledger", str(ledger), "--scores", str(scores),
                              "--out", str(tmp_path / "monitor")])
    last = res.output.strip().splitlines()[-1]
    assert (res.exit_code, last.split()[0]) in ((0, "ok:"), (1, "ALARM")), res.output
    assert (tmp_path / "monitor" / "report.html").is_file()
