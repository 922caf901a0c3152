"""`paydelay`: every path default comes from features.paths, and the stages chain end to end.

The end-to-end test runs simulate -> ingest -> features -> train -> evaluate -> models on a small
ledger in tmp_path, with the demo's small config and an MLflow store in tmp_path (nothing under
data/ or models/ is touched).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pandas as pd
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


def _headline(output: str) -> str:
    """The headline table of a command's output: from its title to the end of its caption."""
    start = output.index("Headline: ledger")
    lines = output[start:].splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("  P10-P90"))
    return "\n".join(lines[:end + 1])


def test_stages_chain_end_to_end(small):
    raw, ledger, rows = small / "raw", small / "ledger", small / "rows"
    _run("simulate", "--out", str(raw))
    assert (raw / "events.parquet").exists()
    _run("ingest", str(raw), "--out", str(ledger))
    assert (ledger / "quarantine.csv").exists()
    _run("features", "--ledger", str(ledger), "--out", str(rows))
    assert (rows / "training.parquet").exists() and (rows / "customer_store").is_dir()
    out = _run("train", "--rows", str(rows))
    # the ledger is named after its folder ("ledger", written by `features`): its own model and
    # experiment; the strict gate decides the alias and a refusal names the rule that failed
    verdict = re.search(r"Registered paydelay-ledger version 1 as @(champion|challenger): (\w+)",
                        out)
    assert verdict, out[-3000:]
    assert (verdict.group(1), verdict.group(2)) in {("champion", "promoted"),
                                                    ("challenger", "refused")}
    assert "canary: ok" in out or verdict.group(1) == "challenger"
    assert "Holdout report: model against every baseline" in out
    assert "splits: train " in out and "test window" in out  # progress: the cut-offs
    assert "final risk model" in out and " s (elapsed" in out  # progress: each fit timed
    assert "Reconciliation" in out and "train rows -> risk model" in out
    assert "Successfully registered" not in out and "INFO" not in out  # MLflow kept quiet
    assert "Created version" not in out and "already exists" not in out
    headline = _headline(out)
    assert headline.startswith("Headline: ledger ledger (test window)")
    # the figures at posting lead, the all-snapshot ones follow, labelled
    assert headline.index("at posting") < headline.index("all snapshot rows")
    assert "Test window " in headline
    # evaluate prints the very same table for the same rows and model
    out = _run("evaluate", "--rows", str(rows), "--model", "1")
    assert "paydelay-ledger version 1" in out
    assert _headline(out) == headline

    # a second ledger (the same rows under another name) keeps its own champion
    out = _run("train", "--rows", str(rows), "--ledger-name", "Other Ledger",
               "--no-register")
    out = _run("train", "--rows", str(rows), "--ledger-name", "Other Ledger")
    gate = re.search(r"Registered paydelay-other-ledger version 1 as @(champion|challenger)"
                     r"[^\n]*", out)
    assert gate, out[-3000:]
    assert "vs champion" not in gate.group(0)  # never compared with the other ledger's champion
    listing = _run("models")
    for name in ("ledger", "other-ledger", "paydelay-ledger", "paydelay-other-ledger",
                 "posting", "data window"):
        assert name in listing
    assert "other-ledger" not in _run("models", "--ledger", "ledger")

    # another ledger's model on these rows: one clear line and a non-zero exit
    result = runner.invoke(paydelay_cli.app, ["evaluate", "--rows", str(rows),
                                              "--ledger", "other-ledger", "--model", "1"])
    assert result.exit_code != 0
    assert "ledger 'ledger', the model learned ledger 'other-ledger'" in result.output
    assert "--force" in result.output
    forced = _run("evaluate", "--rows", str(rows), "--ledger", "other-ledger", "--model", "1",
                  "--force")
    assert "WARNING" in forced and "Headline: ledger other-ledger" in forced


def test_a_failing_command_exits_non_zero(small):
    result = runner.invoke(paydelay_cli.app, ["ingest", str(small / "missing.csv")])
    assert result.exit_code != 0


def test_ibm_then_features_print_and_write_the_reconciliation(small):
    ledger, rows = small / "ibm", small / "ibm_rows"
    out = _run("ibm", "--out", str(ledger))
    assert "Reconciliation" in out and "added: due_date_passed" in out
    assert (ledger / "reconciliation.csv").exists()
    out = _run("features", "--ledger", str(ledger), "--out", str(rows))
    assert "cleared at or before it was recorded" in out
    table = pd.read_csv(rows / "reconciliation.csv")
    assert table["stage"].unique().tolist() == ["ibm", "features"]
    never = table[table["reason"].str.startswith("cleared at or before")]
    assert never["count"].tolist() == [-4]


def test_bad_inputs_fail_in_one_line_naming_the_problem(small):
    result = runner.invoke(paydelay_cli.app, ["ibm", str(small / "absent.csv")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("error: IBM AR sample") and "absent.csv" in result.output
    extract = small / "extract.csv"
    extract.write_text("EventTime,ActivityName,InvoiceNumber,Kunnr,Dmbtr,NetDueDate\n"
                       "2024-01-10,invoice_posted,1,C1,10,01/02/2024\n"
                       "2024-01-11,invoice_posted,2,C1,10,03/04/2024\n")
    result = runner.invoke(paydelay_cli.app, ["ingest", str(extract), "--out",
                                              str(small / "ledger")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'net_due_date' is ambiguous" in result.output
    out = _run("ingest", str(extract), "--out", str(small / "ledger"),
               "--date-format", "NetDueDate=%d/%m/%Y")
    assert "Reconciliation" in out and (small / "ledger" / "reconciliation.csv").exists()


def test_sap_tables_in_and_out(small):
    """`simulate --format sap` writes SAP table extracts; `sap` reads them back into a ledger
    folder with every extract row accounted for, and the committed sample reads with nothing
    quarantined."""
    extracts, ledger = small / "sap", small / "ledger"
    _run("simulate", "--out", str(extracts), "--format", "sap", "--invoices", "300",
         "--customers", "20")
    assert (extracts / "BKPF.csv").is_file() and (extracts / "BSAD.csv").is_file()
    out = _run("sap", "--extracts", str(extracts), "--out", str(ledger))
    assert "every row mapped, ignored or quarantined" in out
    assert (ledger / "events.parquet").is_file()
    events = pd.read_parquet(ledger / "events.parquet")
    assert events["invoice_id"].nunique() == 300
    out = _run("sap", "--extracts", str(paths.SAMPLE / "sap"), "--out", str(small / "sample"))
    assert "0 extract rows and 0 events quarantined" in out


def test_a_bad_sap_extract_is_one_line_and_exit_2(small):
    empty = small / "empty"
    empty.mkdir()
    result = runner.invoke(paydelay_cli.app, ["sap", "--extracts", str(empty), "--out",
                                              str(small / "out")])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output


MODEL_COMMANDS = {"train", "tune", "evaluate", "models", "rollback", "bento", "serve", "score",
                  "monitor", "demo"}


def test_every_command_that_reads_or_writes_models_takes_a_tracking_uri():
    taking = {c.callback.__name__ for c in paydelay_cli.app.registered_commands
              if "tracking_uri" in inspect.signature(c.callback).parameters}
    assert taking == MODEL_COMMANDS
    for name in MODEL_COMMANDS:
        result = runner.invoke(paydelay_cli.app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "--tracking-uri" in result.output, name


def test_models_reads_the_option_else_the_environment_else_the_sqlite_default(monkeypatch,
                                                                              tmp_path):
    for key in ("PAYDELAY_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(registry, "MODELS", tmp_path / "models")  # the default's folder

    def store_read(*options: str) -> str:
        out = "".join(_run("models", *options).splitlines())
        return re.search(r"No registered model in (\S+)", out).group(1)

    assert store_read() == f"sqlite:///{(tmp_path / 'models' / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'team.db'}")
    assert store_read() == f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path / 'registry.db'}")
    assert store_read() == f"sqlite:///{tmp_path / 'registry.db'}"  # models lists the registry
    option = f"sqlite:///{tmp_path / 'option.db'}"
    assert store_read("--tracking-uri", option) == option
    # listing reads, never creates: no store appeared anywhere
    assert not list(tmp_path.rglob("*.db"))
