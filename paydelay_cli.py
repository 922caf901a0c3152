"""`paydelay`: one thin command per stage (simulate, ingest, features, train, tune, evaluate, bento,
serve, rerank, demo). Every command only parses options, calls library functions and prints; the work
lives in features/, training/ and serving/.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import httpx
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from features import paths
from features.config import load_config
from features.ingest import ledger_summary
from features.ingest.derive import add_calculated_activities, master_from_events
from features.ingest.ibm import load_ibm_ar
from features.ingest.io import read_event_log, read_master, write_event_log, write_table
from features.ingest.ledger_files import EVENTS, MASTER, read_ledger_dir, write_ledger_dir
from features.ingest.validate import summary as quarantine_summary
from features.ingest.validate import validate_event_log, validate_master, write_quarantine
from features.pit.build import build_scoring_set, build_training_set, read_rows, write_rows
from features.pit.build import summary as training_summary
from features.pit.dictionary import write_data_dictionary
from features.pit.feature_spec import feature_set_version
from features.pit.item_state import item_state_at
from features.pit.master_asof import master_asof
from features.pit.snapshots import scoring_snapshots
from features.simulate.ledger import simulate_ledger
from serving.api_models import items_payload
from serving.launcher import command, running_server, server_env
from serving.release import build_bento
from serving.store import STORE_DIR, CustomerStore, build_store, log_store
from training.pipeline import evaluate as evaluate_model
from training.pipeline import train as train_models
from training.registry import flatten, versions
from training.registry import rollback as roll_back_champion

app = typer.Typer(
    help="Payment-delay prediction for accounts-receivable collections.\n\n"
    "Stages: simulate or ingest a ledger -> features -> train (tune, evaluate) -> serve / rerank.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
# Reports are wide tables: give them room when the output is a pipe or a CI log.
console = Console(width=None if os.isatty(1) else int(os.environ.get("COLUMNS", 160)))

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (defaults if omitted).")
]


def _config(path: Path | None):
    return load_config(path)


def _print_counts(title: str, counts: dict) -> None:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in counts.items():
        table.add_row(str(key), f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
                      if isinstance(value, int) else str(value))
    console.print(table)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for events/master/truth Parquet files.")]
    = paths.SIMULATED,
    invoices: Annotated[int | None, typer.Option(help="Override the number of invoices.")] = None,
    customers: Annotated[int | None, typer.Option(help="Override the number of customers.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Simulate a realistic receivables ledger (the default data source) and print its summary."""
    cfg = _config(config)
    sim = cfg.simulator.model_copy(update={k: v for k, v in
                                           {"n_invoices": invoices, "n_customers": customers}.items()
                                           if v is not None})
    with console.status(f"Simulating {sim.n_invoices:,} invoices for {sim.n_customers:,} customers"):
        ledger = simulate_ledger(sim, seed=cfg.seed)
    write_ledger_dir(out, ledger.events, ledger.master, ledger.truth)
    _print_ledger_summary(ledger_summary.summarise(ledger.events))
    console.print(f"Wrote {out}/")


def _print_ledger_summary(summary: dict) -> None:
    per_activity = summary.pop("events_per_activity")
    _print_counts("Ledger", summary)
    table = Table(title="Events per activity")
    table.add_column("activity")
    table.add_column("events", justify="right")
    for activity, n in per_activity.items():
        table.add_row(activity, f"{n:,}")
    console.print(table)


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="Event log (CSV or Parquet), our names, the "
                                           "data model's or SAP's, or a ledger folder written "
                                           "by `simulate`.")],
    master: Annotated[Path | None, typer.Option(help="Customer master file; derived from the "
                                                "events when omitted.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the validated ledger and the quarantine.")]
    = paths.LEDGER,
    date_format: Annotated[str | None, typer.Option(help="strftime format of the dates, if not "
                                                    "ISO 8601 (e.g. %m/%d/%Y).")] = None,
) -> None:
    """Validate an event log: good rows go on, bad rows go to a quarantine file with a reason each."""
    truth = None
    if source.is_dir():
        files = read_ledger_dir(source)
        raw, truth = files.events, files.truth
        master = master or source / MASTER
    else:
        raw = read_event_log(source)
    result = validate_event_log(raw, date_format=date_format)
    counts = quarantine_summary(result)
    console.print(f"{len(result.events):,} rows kept, {len(result.quarantine):,} quarantined")
    if len(counts):
        console.print(counts.to_string(index=False))
    out.mkdir(parents=True, exist_ok=True)
    write_quarantine(result, out / "quarantine.csv")
    events = add_calculated_activities(result.events)
    if master is not None:
        master_frame, master_bad = validate_master(read_master(master), date_format=date_format)
        if len(master_bad):
            console.print(f"[yellow]{len(master_bad):,} master rows quarantined[/yellow]")
            master_bad.to_csv(out / "master_quarantine.csv", index=False)
    else:
        master_frame = master_from_events(events)
    write_ledger_dir(out, events, master_frame, truth)
    _print_ledger_summary(ledger_summary.summarise(events))
    console.print(f"Wrote {out / EVENTS}, {out / MASTER} and {out / 'quarantine.csv'}")


@app.command()
def ibm(
    out: Annotated[Path, typer.Option(help="Folder for the IBM sample as a ledger.")]
    = paths.IBM_LEDGER,
) -> None:
    """Turn the IBM accounts-receivable sample into a validated ledger folder."""
    ledger = load_ibm_ar()
    write_ledger_dir(out, ledger.events, ledger.master)
    _print_ledger_summary(ledger_summary.summarise(ledger.events))
    for caveat in ledger.caveats:
        console.print(f"[yellow]caveat:[/yellow] {caveat}")


@app.command()
def features(
    ledger: Annotated[Path, typer.Option(help="Validated ledger folder (from `ingest` or `ibm`).")]
    = paths.LEDGER,
    out: Annotated[Path, typer.Option(help="Folder for training.parquet, scoring.parquet and "
                                      "the data dictionary.")] = paths.FEATURE_ROWS,
    end_time: Annotated[str | None, typer.Option(help="End of observation (default: the log's "
                                                 "last refresh).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Build point-in-time training rows (with labels) and scoring rows (open items now)."""
    cfg = _config(config)
    files = read_ledger_dir(ledger)
    with console.status("Building training rows"):
        training = build_training_set(files.events, files.master, cfg.features, seed=cfg.seed,
                                      end_time=end_time)
    with console.status("Building scoring rows"):
        scoring = build_scoring_set(files.events, files.master, cfg.features, now=end_time)
    write_rows(training, out / "training.parquet")
    write_rows(scoring, out / "scoring.parquet")
    if files.truth is not None:
        files.truth.to_parquet(out / "truth.parquet", index=False)
    md, _ = write_data_dictionary(out / "data_dictionary", cfg.features)
    # The online store the service reads customer history from; `train` logs it with the model.
    build_store(files.events, files.master, end_time, cfg.features,
                feature_set_version(cfg.features)).save(out / STORE_DIR)
    stats = training_summary(training)
    stats.pop("snapshot_kinds", None)
    _print_counts("Training set", stats)
    _print_counts("Scoring set (open items now)", {"rows": len(scoring)})
    console.print(f"Wrote {out}/training.parquet, scoring.parquet and {md.name}")


def _print_frame(title: str, df, floatfmt: str = "{:,.3f}") -> None:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fiu" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*["" if v is None or v != v else floatfmt.format(v) if isinstance(v, float)
                        else str(v) for v in row])
    console.print(table)


def _rows_and_truth(rows: Path):
    frame = read_rows(rows / "training.parquet" if rows.is_dir() else rows)
    truth_path = (rows if rows.is_dir() else rows.parent) / "truth.parquet"
    return frame, (pd.read_parquet(truth_path) if truth_path.exists() else None)


RowsOpt = Annotated[Path, typer.Option(help="Folder (or file) written by `features`.")]


def _train(rows: Path, config: Path | None, tune_trials: int | None, register: bool,
           caveat: list[str] | None):
    cfg = _config(config)
    if tune_trials is not None:
        tuning = cfg.training.tuning.model_copy(update={"enabled": tune_trials > 0,
                                                         "n_trials": max(tune_trials, 1)})
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
            update={"tuning": tuning})})
    frame, truth = _rows_and_truth(rows)
    with console.status(f"Training on {len(frame):,} rows"
                        + (f" with {tune_trials} Optuna trials per model" if tune_trials else "")):
        result = train_models(frame, cfg, cfg.seed, truth=truth, register=register,
                              caveats=tuple(caveat or ()))
    store_dir = (rows if rows.is_dir() else rows.parent) / STORE_DIR
    if register and result.run_id and store_dir.exists():
        log_store(CustomerStore.load(store_dir), result.run_id)
    if result.report is not None:
        _print_frame("Holdout: model against every baseline (same rows)",
                     result.report.headline_table())
    _print_counts("Headline metrics (test slice)", {
        k: v for k, v in flatten(result.metrics).items() if isinstance(v, (int, float))
        and k.split(".")[-1] in {"roc_auc", "ece", "ece_lo", "ece_hi", "brier",
                                 "auc_ratio_to_oracle", "mae_days", "baseline_mae_days",
                                 "mae_reduction_vs_baseline", "coverage"}})
    if result.model_version is not None:
        console.print(f"Registered [bold]paydelay[/bold] version {result.model_version} as "
                      f"[bold]@{result.alias}[/bold]: {result.decision.reason}")
    return result


CaveatOpt = Annotated[list[str] | None, typer.Option(help="Caveat to state in the report "
                                                     "(repeatable).")]


@app.command()
def train(
    rows: RowsOpt = paths.FEATURE_ROWS,
    register: Annotated[bool, typer.Option(help="Register in MLflow and apply the champion "
                                           "gate.")] = True,
    caveat: CaveatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train the risk and payment-date models, evaluate them against the baselines on a later
    holdout, log everything to MLflow and register the new version (@champion only if it beats
    the current champion on the same holdout, else @challenger)."""
    _train(rows, config, None, register, caveat)


@app.command()
def tune(
    rows: RowsOpt = paths.FEATURE_ROWS,
    trials: Annotated[int, typer.Option(help="Optuna trials per model.")] = 20,
    register: bool = True,
    caveat: CaveatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Like `train`, with an Optuna search first (seeded; each trial a nested MLflow run)."""
    _train(rows, config, trials, register, caveat)


@app.command()
def evaluate(
    rows: RowsOpt = paths.FEATURE_ROWS,
    model: Annotated[str, typer.Option(help="Alias or version of the registered model.")]
    = "champion",
    config: ConfigOpt = None,
) -> None:
    """Re-evaluate a registered model on the holdout of the given rows (its headline metrics)."""
    cfg = _config(config)
    frame, truth = _rows_and_truth(rows)
    version = int(model) if model.isdigit() else model
    metrics = evaluate_model(frame, cfg, alias_or_version=version, truth=truth)
    _print_counts(f"paydelay@{model}", {k: v for k, v in flatten(metrics).items()
                                        if isinstance(v, (int, float))})


@app.command()
def models() -> None:
    """List the registered versions and their aliases."""
    _print_frame("Registered model versions", versions())


@app.command()
def rollback() -> None:
    """Move @champion back to the previous champion."""
    console.print(f"@champion is now version {roll_back_champion()}")


@app.command()
def bento(
    model: Annotated[str | None, typer.Option(help="Alias or version to release (default "
                                              "@champion).")] = None,
) -> None:
    """Build a Bento, a release: the registered model and its customer store copied from the
    MLflow registry into BentoML, the service code and the run-time requirements only.
    $PAYDELAY_TRACKING_URI names the MLflow store, $BENTOML_HOME the BentoML one."""
    tag = build_bento(model)
    console.print(f"Built Bento {tag}: `bentoml serve {tag}` or `bentoml containerize {tag}`")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    model: Annotated[str | None, typer.Option(help="Alias or version (default @champion).")]
    = None,
    workers: int = 1,
) -> None:
    """Serve the registered model with BentoML (foreground; Ctrl-C stops it).

    PAYDELAY_API_TOKEN, if set, guards /score, /rerank and /explain with a bearer token."""
    env = server_env(tracking_uri=os.environ.get("PAYDELAY_TRACKING_URI"),
                     token=os.environ.get("PAYDELAY_API_TOKEN"), model=model, workers=workers)
    cmd = command(port, host)
    console.print(f"Serving on http://{host}:{port} (OpenAPI at /docs): {' '.join(cmd[1:])}")
    raise typer.Exit(subprocess.call(cmd, env=env))


def sample_worklist(events, master=None, max_items: int = 40) -> tuple[str, dict]:
    """The open items of the collector with the most overdue items, as a worklist engine would
    send them: (collector, request body)."""
    snaps = scoring_snapshots(events)
    state = item_state_at(events, snaps).reset_index(drop=True)
    now = snaps["snapshot_time"].max()
    owner = (master_asof(master, state["customer_id"], snaps["snapshot_time"])["collector"]
             if master is not None else None)
    overdue = state["net_due_date"] < now.normalize()
    if owner is not None:
        owner = owner.reset_index(drop=True)
        collector = owner[overdue].value_counts().index[0]
        state = state[(owner == collector).to_numpy()]
    else:
        collector = "all collectors"
    state = state.sort_values(["net_due_date", "invoice_id"]).head(max_items)
    return str(collector), {"as_of": now.isoformat(), "items": items_payload(state)}


def print_reranked(response: dict, collector: str, top: int = 15) -> None:
    summary = response["summary"]
    table = Table(title=f"Worklist of {collector}: {summary['n_items']} open items re-ranked "
                  f"by expected amount at risk (model {response['model'].get('version', '')})",
                  show_lines=True)
    for col, justify in (("#", "right"), ("invoice", "left"), ("open", "right"),
                         ("days over", "right"), ("P(late)", "right"), ("at risk", "right"),
                         ("paid by (P50)", "left"), ("rule prio / rank", "left"),
                         ("why (top 3 reasons)", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for item in response["items"][:top]:
        table.add_row(
            str(item["rank"]), item["invoice_id"], f"{item['open_amount']:,.2f}",
            f"{item['days_overdue']:.0f}", f"{item['p_late']:.2f}",
            f"{item['expected_amount_at_risk']:,.0f}", str(item["pay_date_p50"]),
            f"{item['rule_priority']} / {item['rule_rank']}",
            "\n".join(f"{r['sentence']}" for r in item["reasons"]))
    console.print(table)
    if summary.get("capacity"):
        console.print(
            f"Expected amount at risk in the first {summary['capacity']} calls: "
            f"{summary['amount_at_risk_in_capacity']:,.0f} in the model's order against "
            f"{summary['rule_amount_at_risk_in_capacity']:,.0f} in the rule strategy's.")


@app.command()
def rerank(
    ledger: Annotated[Path, typer.Option(help="Ledger folder whose open items form the worklist.")]
    = paths.LEDGER,
    url: Annotated[str, typer.Option(help="Base URL of a running service.")]
    = "http://127.0.0.1:3000",
    capacity: int = 10,
    top: int = 15,
) -> None:
    """Send one collector's open items to a running service and print them re-ranked with
    reasons (the worklist engine's call)."""
    files = read_ledger_dir(ledger)
    collector, body = sample_worklist(files.events, files.master)
    body["capacity"] = capacity
    token = os.environ.get("PAYDELAY_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, timeout=60, trust_env=False, headers=headers) as client:
        answer = client.post("/rerank", json=body)
    if answer.status_code != 200:
        console.print(f"[red]{answer.status_code}[/red] {answer.text}")
        raise typer.Exit(1)
    print_reranked(answer.json(), collector, top)


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="Folder of the committed sample.")] = paths.SAMPLE,
    invoices: int = 2_000,
    customers: int = 80,
    config: ConfigOpt = None,
) -> None:
    """Regenerate the small committed sample ledger (our column names and the process-mining data
    model's)."""
    cfg = _config(config)
    sim = cfg.simulator.model_copy(update={"n_invoices": invoices, "n_customers": customers,
                                           "months": 24})
    ledger = simulate_ledger(sim, seed=cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_event_log(ledger.events, out / "events.csv", naming="canonical")
    write_event_log(ledger.events, out / "events_seed_names.csv", naming="seed")
    write_table(ledger.master, out / "master.csv")
    write_table(ledger.truth, out / "truth.csv")
    console.print(f"Wrote {len(ledger.events):,} events of {invoices:,} invoices to {out}/")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Scratch folder for the demo's data.")]
    = paths.DEMO,
    config: ConfigOpt = None,
) -> None:
    """The whole product end to end on a simulated ledger."""
    raw, interim = workdir / "raw", workdir / "interim"
    console.rule("1. Simulate a ledger")
    simulate(out=raw, invoices=None, customers=None, config=config)
    console.rule("2. Validate it (quarantine bad rows, derive calculated activities)")
    ingest(source=raw, master=None, out=interim, date_format=None)
    console.rule("3. Build point-in-time features and labels")
    features(ledger=interim, out=workdir / "processed", end_time=None, config=config)
    console.rule("4. Train, evaluate against the baselines, register in MLflow")
    _train(workdir / "processed", config, None, True, None)
    console.rule("5. Serve @champion with BentoML on loopback and re-rank a worklist")
    with running_server(server_env(), workdir / "server.log") as url:
        console.print(f"Service ready at {url} (log: {workdir / 'server.log'})")
        rerank(ledger=interim, url=url, capacity=10, top=12)
    console.print("Service stopped. Start it again with `make serve`; "
                  "browse the runs with `make ui`.")


if __name__ == "__main__":  # pragma: no cover
    app()
