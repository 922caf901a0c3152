"""`paydelay`: one thin command per stage (simulate, ingest, sap, features, train, tune, evaluate,
models, bento, serve, rerank, score, monitor, demo). Every command only parses options, calls
library functions and prints; the work lives in features/, training/ and serving/.

Each command imports its stage's modules when it runs (the `# noqa: PLC0415` imports): pandas,
LightGBM, MLflow and BentoML take seconds to import, and `paydelay --help` or `paydelay models`
must answer at once whatever stage the other commands belong to. Nothing else is imported
inside a function here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from features import paths
from features.config import load_config

app = typer.Typer(
    help="Payment-delay prediction for accounts-receivable collections.\n\n"
    "Stages: simulate or ingest a ledger -> features -> train (tune, evaluate) -> serve / rerank.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
# Reports are wide tables: give them room when the output is a pipe or a CI log.
console = Console(width=None if os.isatty(1) else int(os.environ.get("COLUMNS", 160)))

LedgerFormat = Literal["ledger", "sap", "sap-parquet"]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (defaults if omitted).")
]


def _config(path: Path | None):
    return load_config(path)


EngineOpt = Annotated[Literal["local", "dask"] | None, typer.Option(
    "--engine", help="Where the stage runs: local (in this process) or dask (a LocalCluster, "
    "or the cluster of --scheduler). Default: the config's engine.kind (local).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786); implies "
    "--engine dask. Every worker must see the data folders.")]


def _engine(cfg, engine: str | None, scheduler: str | None):
    """The config's engine section with --engine / --scheduler applied."""
    update = {k: v for k, v in {"kind": "dask" if scheduler else engine,
                                "scheduler_address": scheduler}.items() if v is not None}
    return cfg.engine.model_copy(update=update)


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
    fmt: Annotated[LedgerFormat, typer.Option(
        "--format", help="ledger: events/master/truth Parquet; sap: SAP table extracts (CSV, as "
        "SE16N exports them; read back with `paydelay sap`); sap-parquet: the same as Parquet.")]
    = "ledger",
    config: ConfigOpt = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Simulate a realistic receivables ledger (the default data source) and print its summary.
    With --engine dask the world is drawn in partitions of customers on the workers and
    written as part files (features.engine.simulate)."""
    from features.ingest import ledger_summary  # noqa: PLC0415
    from features.ingest.ledger_files import write_ledger_dir  # noqa: PLC0415
    from features.simulate.ledger import simulate_ledger  # noqa: PLC0415
    from features.simulate.sap_tables import write_ledger_as_sap  # noqa: PLC0415
    cfg = _config(config)
    sim = cfg.simulator.model_copy(update={k: v for k, v in
                                           {"n_invoices": invoices, "n_customers": customers}.items()
                                           if v is not None})
    eng = _engine(cfg, engine, scheduler)
    if eng.kind == "dask":
        if fmt != "ledger":
            raise _fail(ValueError("--format sap / sap-parquet is written in process only: "
                                   "leave out --engine dask"))
        return _simulate_dask(sim, cfg.seed, out, eng)
    with console.status(f"Simulating {sim.n_invoices:,} invoices for {sim.n_customers:,} customers"):
        ledger = simulate_ledger(sim, seed=cfg.seed)
    if fmt == "ledger":
        write_ledger_dir(out, ledger.events, ledger.master, ledger.truth)
    else:
        write_ledger_as_sap(ledger, out, "csv" if fmt == "sap" else "parquet")
    _print_ledger_summary(ledger_summary.summarise(ledger.events))
    console.print(f"Wrote {out}/")


def _simulate_dask(sim, seed: int, out: Path, eng) -> None:
    from features.engine.cluster import dask_client  # noqa: PLC0415
    from features.engine.partitions import n_partitions_for  # noqa: PLC0415
    from features.engine.simulate import simulate_partitioned  # noqa: PLC0415
    n = n_partitions_for(sim.n_customers, eng.customers_per_partition)
    with dask_client(eng, console.print) as client, console.status(
            f"Simulating {sim.n_invoices:,} invoices for {sim.n_customers:,} customers in {n} "
            "partitions on Dask"):
        summary = simulate_partitioned(client, sim, seed, out, n, say=console.print)
    _print_ledger_summary(summary)
    console.print(f"Wrote {out}/ ({summary['partitions']} partitions of customers)")


def _print_ledger_summary(summary: dict) -> None:
    per_activity = summary.pop("events_per_activity")
    _print_counts("Ledger", summary)
    table = Table(title="Events per activity")
    table.add_column("activity")
    table.add_column("events", justify="right")
    for activity, n in per_activity.items():
        table.add_row(activity, f"{n:,}")
    console.print(table)


def _print_reconciliation(rec: Reconciliation) -> None:
    """The stage's invoices and rows in against out, every difference with its reason."""
    from features.reconcile import IN  # noqa: PLC0415
    from features.reconcile import OUT  # noqa: PLC0415
    from features.reconcile import Reconciliation  # noqa: PLC0415
    table = Table(title="Reconciliation: in, differences (with their reasons), out")
    for col, justify in (("stage", "left"), ("what", "left"), ("count", "right"),
                         ("reason", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for stage, what, count, reason in rec.printable():
        style = "bold" if reason in (IN, OUT) else ("red" if count.startswith("-") else None)
        table.add_row(stage, what, count, reason, style=style)
    console.print(table)
    if not rec.balanced:
        console.print("[red]Some invoices or rows are unexplained: please report it.[/red]")


@app.command()
def sap(
    extracts: Annotated[Path, typer.Option(help="Folder of SAP table extracts, one file per table "
                                           "(BKPF.csv, BSAD.parquet, ...); see "
                                           "docs/sap_extracts.md.")] = paths.SAP_EXTRACTS,
    out: Annotated[Path, typer.Option(help="Folder for the validated ledger, the quarantines, the "
                                      "reconciliation and the summary.")] = paths.LEDGER,
    config: ConfigOpt = None,
) -> None:
    """Convert SAP table extracts (BKPF, BSID/BSAD, MHND, FSCM disputes / promises / contacts,
    CDHDR/CDPOS, KNA1/KNB1/KNKK) to a validated ledger; bad rows are quarantined with the table,
    column and row, and every row of every table is reconciled."""
    from features.ingest import ledger_summary  # noqa: PLC0415
    from features.ingest.sap import SUMMARY as SAP_SUMMARY  # noqa: PLC0415
    from features.ingest.sap import SapExtractError  # noqa: PLC0415
    from features.ingest.sap import run_sap  # noqa: PLC0415
    cfg = _config(config)
    try:
        result = run_sap(extracts, out, cfg.sap)
    except SapExtractError as exc:
        raise _fail(exc) from None
    _print_frame("SAP tables: every row mapped, ignored or quarantined",
                 result.reconciliation.drop(columns=["ignored_reasons"]))
    for table, meaning in result.missing_tables:
        console.print(f"[yellow]not exported:[/yellow] {table}: {meaning}")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    _print_ledger_summary(ledger_summary.summarise(result.events))
    console.print(f"{len(result.quarantine):,} extract rows and {len(result.event_quarantine):,} "
                  f"events quarantined; wrote {out}/ (summary: {out / SAP_SUMMARY})")


def _fail(exc: Exception) -> typer.Exit:
    """A bad input is one line naming the file, column or row, not a traceback."""
    console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    return typer.Exit(2)


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="Event log (CSV or Parquet), our names, the "
                                           "data model's or SAP's, or a ledger folder written "
                                           "by `simulate`.")],
    master: Annotated[Path | None, typer.Option(help="Customer master file; derived from the "
                                                "events when omitted.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the validated ledger and the quarantine.")]
    = paths.LEDGER,
    date_format: Annotated[list[str] | None, typer.Option(
        help="strftime format of the dates: 'FMT' for every date column or 'COLUMN=FMT' for one "
             "(repeatable, e.g. --date-format event_time=%d.%m.%Y --date-format "
             "net_due_date=%Y%m%d). Default: detected per column (ISO 8601 or one unambiguous "
             "format).")] = None,
) -> None:
    """Validate an event log: good rows go on, bad rows (and the invoices they decide) go to a
    quarantine file with a reason each; every row and invoice is reconciled."""
    from features.ingest import ledger_summary  # noqa: PLC0415
    from features.ingest.io import EventLogError  # noqa: PLC0415
    from features.ingest.ledger_in import ingest_ledger  # noqa: PLC0415
    from features.ingest.ledger_in import write_ingest  # noqa: PLC0415
    from features.ingest.validate import summary as quarantine_summary  # noqa: PLC0415
    try:
        result = ingest_ledger(source, master, date_format=date_format)
    except (EventLogError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    written = write_ingest(result, out)
    console.print(f"{len(result.validation.events):,} rows kept, "
                  f"{len(result.validation.quarantine):,} quarantined")
    counts = quarantine_summary(result.validation)
    if len(counts) > 2:  # more than the clean and total lines
        console.print(counts.to_string(index=False))
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    _print_ledger_summary(ledger_summary.summarise(result.events))
    _print_reconciliation(result.reconciliation)
    console.print(f"Wrote {out}/ ({', '.join(p.name for p in written.values() if p != out)})")


@app.command()
def ibm(
    path: Annotated[Path, typer.Argument(help="The IBM sample CSV (default: the repository's "
                                         "copy, checked against its SHA256SUMS).")]
    = paths.IBM_AR_CSV,
    out: Annotated[Path, typer.Option(help="Folder for the IBM sample as a ledger.")]
    = paths.IBM_LEDGER,
) -> None:
    """Turn the IBM accounts-receivable sample into a validated ledger folder."""
    from features.ingest import ledger_summary  # noqa: PLC0415
    from features.ingest.ibm import load_ibm_ar  # noqa: PLC0415
    from features.ingest.ledger_files import write_ledger_dir  # noqa: PLC0415
    from features.reconcile import write_reconciliation  # noqa: PLC0415
    try:
        ledger = load_ibm_ar(path)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    write_ledger_dir(out, ledger.events, ledger.master)
    write_reconciliation(ledger.reconciliation, out)
    _print_ledger_summary(ledger_summary.summarise(ledger.events))
    _print_reconciliation(ledger.reconciliation)
    for caveat in ledger.caveats:
        console.print(f"[yellow]caveat:[/yellow] {caveat}")
    console.print(f"Wrote {out}/")


@app.command()
def features(
    ledger: Annotated[Path, typer.Option(help="Validated ledger folder (from `ingest` or `ibm`).")]
    = paths.LEDGER,
    out: Annotated[Path, typer.Option(help="Folder for training.parquet, scoring.parquet and "
                                      "the data dictionary.")] = paths.FEATURE_ROWS,
    end_time: Annotated[str | None, typer.Option(help="End of observation (default: the log's "
                                                 "last refresh).")] = None,
    ledger_name: Annotated[str | None, typer.Option(
        help="Name of this ledger: names its MLflow experiment and registered model (default: "
        "the ledger folder's name).")] = None,
    config: ConfigOpt = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Build point-in-time training rows (with labels) and scoring rows (open items now). With
    --engine dask each partition of customers is built on a worker and the rows are written
    as part files (training.parquet/part-*.parquet, ...; features.engine.build)."""
    from features.ingest.ledger_files import read_ledger_dir  # noqa: PLC0415
    from features.pit.build import build_feature_sets  # noqa: PLC0415
    from features.pit.build import summary as training_summary  # noqa: PLC0415
    from features.pit.build import write_rows  # noqa: PLC0415
    from features.pit.dictionary import write_data_dictionary  # noqa: PLC0415
    from features.pit.feature_spec import feature_set_version  # noqa: PLC0415
    from features.reconcile import RECONCILIATION_FILE  # noqa: PLC0415
    from features.reconcile import Reconciliation  # noqa: PLC0415
    from features.reconcile import read_reconciliation  # noqa: PLC0415
    from features.reconcile import write_reconciliation  # noqa: PLC0415
    from serving.store import STORE_DIR  # noqa: PLC0415
    from serving.store import build_store  # noqa: PLC0415
    from training.core.ledger import ledger_record  # noqa: PLC0415
    from training.core.ledger import write_ledger_record  # noqa: PLC0415
    cfg = _config(config)
    eng = _engine(cfg, engine, scheduler)
    if eng.kind == "dask":
        return _features_dask(ledger, out, end_time, ledger_name, cfg, eng)
    try:
        files = read_ledger_dir(ledger)
    except FileNotFoundError as exc:
        raise _fail(exc) from None
    with console.status("Building training and scoring rows"):
        sets = build_feature_sets(files.events, files.master, cfg.features, seed=cfg.seed,
                                  end_time=end_time)
    training, scoring = sets.training, sets.scoring
    write_rows(training, out / "training.parquet")
    write_rows(scoring, out / "scoring.parquet")
    record = ledger_record(files.events, ledger_name or ledger.resolve().name)
    write_ledger_record(record, out)
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
    upstream = ledger / RECONCILIATION_FILE  # the ingest / ibm stage's table, carried along
    rec = (read_reconciliation(upstream) if upstream.is_file() else Reconciliation())
    write_reconciliation(rec + sets.reconciliation, out)
    _print_reconciliation(sets.reconciliation)
    console.print(f"Ledger {record['name']!r}. Wrote {out}/training.parquet, scoring.parquet, "
                  f"reconciliation.csv, ledger.json and {md.name}")


def _features_dask(ledger: Path, out: Path, end_time: str | None, ledger_name: str | None,
                   cfg, eng) -> None:
    """`features` on Dask: the rows as part files; the ledger record, truth, data dictionary,
    customer store and reconciliation beside them as in process."""
    from features.engine.build import build_features, read_history_dir  # noqa: PLC0415
    from features.engine.cluster import dask_client  # noqa: PLC0415
    from features.ingest.ledger_files import EVENTS, TRUTH  # noqa: PLC0415
    from features.pit.dictionary import write_data_dictionary  # noqa: PLC0415
    from features.pit.feature_spec import feature_set_version  # noqa: PLC0415
    from features.reconcile import RECONCILIATION_FILE  # noqa: PLC0415
    from features.reconcile import Reconciliation  # noqa: PLC0415
    from features.reconcile import read_reconciliation  # noqa: PLC0415
    from features.reconcile import write_reconciliation  # noqa: PLC0415
    from serving.store import STORE_DIR, STORE_FORMAT, CustomerStore  # noqa: PLC0415
    from training.core.ledger import slugify, write_ledger_record  # noqa: PLC0415
    if not (ledger / EVENTS).exists():
        raise _fail(FileNotFoundError(f"{ledger} is not a ledger folder: missing {EVENTS}"))
    with dask_client(eng, console.print) as client, console.status(
            "Building training and scoring rows on Dask"):
        sets = build_features(client, ledger, out, cfg.features, cfg.seed,
                              eng.customers_per_partition, end_time, say=console.print)
    record = {"name": slugify(ledger_name or ledger.resolve().name), **sets.facts}
    write_ledger_record(record, out)
    if (ledger / TRUTH).is_dir():
        shutil.rmtree(out / TRUTH, ignore_errors=True)
        shutil.copytree(ledger / TRUTH, out / TRUTH)
    elif (ledger / TRUTH).is_file():
        shutil.copy2(ledger / TRUTH, out / TRUTH)
    md, _ = write_data_dictionary(out / "data_dictionary", cfg.features)
    # The store serving reads (serving.store.build_store's table, built part by part).
    table = read_history_dir(sets.history)
    CustomerStore(table=table, as_of=sets.end_time, meta={
        "format": STORE_FORMAT, "as_of": sets.end_time.isoformat(), "n_customers": len(table),
        "feature_set_version": feature_set_version(cfg.features),
        "history_windows_days": list(cfg.features.history_windows_days)}).save(out / STORE_DIR)
    stats = dict(sets.summary)
    stats.pop("snapshot_kinds", None)
    _print_counts(f"Training set ({len(sets.parts)} partitions)", stats)
    _print_counts("Scoring set (open items now)", {"rows": sets.scoring_rows})
    upstream = ledger / RECONCILIATION_FILE
    rec = (read_reconciliation(upstream) if upstream.is_file() else Reconciliation())
    write_reconciliation(rec + sets.reconciliation, out)
    _print_reconciliation(sets.reconciliation)
    console.print(f"Ledger {record['name']!r}. Wrote {out}/training.parquet/, scoring.parquet/ "
                  f"(part files), reconciliation.csv, ledger.json and {md.name}")


def _print_frame(title: str, df, floatfmt: str = "{:,.3f}") -> None:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fiu" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*["" if v is None or v != v else floatfmt.format(v) if isinstance(v, float)
                        else str(v) for v in row])
    console.print(table)


def _rows_and_truth(rows: Path, training=None):
    """The rows file and the simulator's truth beside it. With `training` (the config), the
    trainer's reader: compact dtypes and only the rows of the training sample
    (training.rows)."""
    from features.pit.build import read_rows  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    from training.rows import read_training_rows  # noqa: PLC0415
    path = rows / "training.parquet" if rows.is_dir() else rows
    frame = (read_rows(path) if training is None
             else read_training_rows(path, training, training.seed))
    truth_path = (rows if rows.is_dir() else rows.parent) / "truth.parquet"
    return frame, (pd.read_parquet(truth_path) if truth_path.exists() else None)


RowsOpt = Annotated[Path, typer.Option(help="Folder (or file) written by `features`.")]


def _quiet_tracking() -> None:
    """MLflow's and alembic's INFO lines (database creation, migrations, "Created version")
    would break the tables: only their warnings get through."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _ledger_of_rows(rows: Path, ledger_name: str | None) -> dict:
    """The rows' ledger: --ledger-name, else what training.parquet (or ledger.json beside it)
    records, else the rows' folder name (slugified)."""
    from training.core.ledger import ledger_info_from_file  # noqa: PLC0415
    from training.core.ledger import slugify  # noqa: PLC0415
    info = ledger_info_from_file(rows)
    if ledger_name:
        info = {**info, "name": slugify(ledger_name)}
        info.pop("name_from", None)
    return info


def _print_headline(table) -> None:
    """THE headline table (training.report.headline_table): train, evaluate and the demo."""
    _print_frame(table.title, table.frame)
    for line in table.caption:
        console.print(f"  {line}", soft_wrap=True, highlight=False)


def _train(rows: Path, config: Path | None, tune_trials: int | None, register: bool,
           caveat: list[str] | None, ledger_name: str | None = None,
           tracking_uri: str | None = None):
    from serving.canary import run_canary  # noqa: PLC0415
    from serving.store import CustomerStore  # noqa: PLC0415
    from serving.store import STORE_DIR  # noqa: PLC0415
    from serving.store import log_store  # noqa: PLC0415
    from training.pipeline import train as train_models  # noqa: PLC0415 - heavy (mlflow, ...)

    _quiet_tracking()
    cfg = _config(config)
    if tune_trials is not None:
        tuning = cfg.training.tuning.model_copy(update={"enabled": tune_trials > 0,
                                                         "n_trials": max(tune_trials, 1)})
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
            update={"tuning": tuning})})
    frame, truth = _rows_and_truth(rows, training=cfg)
    ledger = _ledger_of_rows(rows, ledger_name)
    with console.status(f"Training on {len(frame):,} rows of ledger {ledger['name']!r}"
                        + (f" with {tune_trials} Optuna trials per model" if tune_trials
                           else "")) as status:
        def progress(line: str) -> None:
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}", highlight=False)
            status.update(line)

        result = train_models(frame, cfg, cfg.seed, truth=truth, register=register,
                              caveats=tuple(caveat or ()), ledger=ledger, progress=progress,
                              canary=partial(run_canary, config=cfg), tracking_uri=tracking_uri)
    store_dir = (rows if rows.is_dir() else rows.parent) / STORE_DIR
    if register and result.run_id and store_dir.exists():
        log_store(CustomerStore.load(store_dir), result.run_id, tracking_uri)
    if result.reconciliation is not None:
        _print_reconciliation(result.reconciliation)
    if result.report is not None:
        from training.report import holdout_note  # noqa: PLC0415

        _print_frame("Holdout report: model against every baseline (same rows)",
                     result.report.headline_table())
        console.print(f"  {holdout_note(result.report)}", soft_wrap=True, highlight=False)
    _print_headline(result.headline_table())
    if result.model_version is not None:
        console.print(f"Registered [bold]{result.registered_model}[/bold] version "
                      f"{result.model_version} as [bold]@{result.alias}[/bold]: "
                      f"{result.decision.reason}", highlight=False)
    return result


CaveatOpt = Annotated[list[str] | None, typer.Option(help="Caveat to state in the report "
                                                     "(repeatable).")]
LedgerNameOpt = Annotated[str | None, typer.Option(
    "--ledger-name", help="Name of the rows' ledger (default: what the rows record, else their "
    "folder's name). It names the MLflow experiment and the registered model "
    "paydelay-<ledger>, so two ledgers never compete for one @champion.")]
LedgerOpt = Annotated[str | None, typer.Option(
    "--ledger", help="Ledger whose models to use or list (default: the rows' ledger; for "
    "`models`: every ledger).")]
TrackingUriOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow store to read and write models in, tracking and registry "
    "both (e.g. the team's server http://mlflow.example:5000). Default: $PAYDELAY_TRACKING_URI, "
    "else $MLFLOW_TRACKING_URI (and $MLFLOW_REGISTRY_URI), else the SQLite store "
    "models/mlflow.db.")]


@app.command()
def train(
    rows: RowsOpt = paths.FEATURE_ROWS,
    register: Annotated[bool, typer.Option(help="Register in MLflow and apply the champion "
                                           "gate.")] = True,
    caveat: CaveatOpt = None,
    ledger_name: LedgerNameOpt = None,
    tracking_uri: TrackingUriOpt = None,
    config: ConfigOpt = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Train the risk and payment-date models, evaluate them against the baselines on a later
    holdout, log everything to MLflow and register the new version in the ledger's model
    (@champion only if it beats the ledger's champion on the same holdout, else @challenger).
    With --engine dask the rows stay in their part files and LightGBM's Dask learner fits the
    boosters across the workers (training.distributed; headline figures, no report)."""
    eng = _engine(_config(config), engine, scheduler)
    if eng.kind == "dask":
        return _train_dask(rows, config, eng, register, ledger_name, tracking_uri)
    _train(rows, config, None, register, caveat, ledger_name, tracking_uri)


def _train_dask(rows: Path, config: Path | None, eng, register: bool, ledger_name: str | None,
                tracking_uri: str | None) -> None:
    import pandas as pd  # noqa: PLC0415
    from features.engine.cluster import dask_client  # noqa: PLC0415
    from serving.store import STORE_DIR, CustomerStore, log_store  # noqa: PLC0415
    from training.core.ledger import SIDECAR, slugify  # noqa: PLC0415
    from training.distributed import train_dask  # noqa: PLC0415 - heavy (mlflow, ...)
    from training.report import headline_table  # noqa: PLC0415

    _quiet_tracking()
    cfg = _config(config)
    info = (json.loads((rows / SIDECAR).read_text()) if (rows / SIDECAR).is_file()
            else {"name": rows.resolve().name})
    info["name"] = slugify(ledger_name or info.get("name") or rows.resolve().name)
    truth = pd.read_parquet(rows / "truth.parquet") if (rows / "truth.parquet").exists() else None

    def progress(line: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}", highlight=False)

    with dask_client(eng, console.print) as client:
        result = train_dask(client, rows / "training.parquet", cfg, cfg.seed, truth=truth,
                            tracking_uri=tracking_uri, register=register, ledger=info,
                            progress=progress)
    if register and result.run_id and (rows / STORE_DIR).exists():
        log_store(CustomerStore.load(rows / STORE_DIR), result.run_id, tracking_uri)
    _print_reconciliation(result.reconciliation)
    _print_headline(headline_table(result.metrics, result.bundle.training_window,
                                   ledger=result.ledger))
    if result.model_version is not None:
        console.print(f"Registered [bold]{result.registered_model}[/bold] version "
                      f"{result.model_version} as [bold]@{result.alias}[/bold]: "
                      f"{result.decision.reason}", highlight=False)


@app.command()
def tune(
    rows: RowsOpt = paths.FEATURE_ROWS,
    trials: Annotated[int, typer.Option(help="Optuna trials per model.")] = 20,
    register: bool = True,
    caveat: CaveatOpt = None,
    ledger_name: LedgerNameOpt = None,
    tracking_uri: TrackingUriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Like `train`, with an Optuna search first (seeded; each trial a nested MLflow run)."""
    _train(rows, config, trials, register, caveat, ledger_name, tracking_uri)


@app.command()
def evaluate(
    rows: RowsOpt = paths.FEATURE_ROWS,
    model: Annotated[str, typer.Option(help="Alias or version of the registered model.")]
    = "champion",
    ledger: LedgerOpt = None,
    ledger_name: LedgerNameOpt = None,
    force: Annotated[bool, typer.Option(help="Evaluate even when the rows are of another "
                                        "ledger or feature set than the model's.")] = False,
    tracking_uri: TrackingUriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Re-evaluate a registered model on the test window of the given rows: the same headline
    table as `train`. Refuses rows of another ledger or feature set than the model's."""
    from training.pipeline import LedgerMismatchError  # noqa: PLC0415 - heavy (mlflow, ...)
    from training.pipeline import evaluate as evaluate_model  # noqa: PLC0415
    from training.report import headline_table  # noqa: PLC0415

    _quiet_tracking()
    cfg = _config(config)
    frame, truth = _rows_and_truth(rows)
    rows_ledger = _ledger_of_rows(rows, ledger_name)["name"]
    version = int(model) if model.isdigit() else model
    try:
        metrics = evaluate_model(frame, cfg, alias_or_version=version, truth=truth,
                                 ledger=ledger, rows_ledger=rows_ledger, force=force,
                                 tracking_uri=tracking_uri)
    except (LedgerMismatchError, LookupError) as exc:
        raise _fail(exc) from None
    for warning in metrics.get("warnings", []):
        console.print(f"[bold red]WARNING: {warning}; figures below do not describe this "
                      "model's ledger[/bold red]", soft_wrap=True)
    src = metrics.get("model", {})
    console.print(f"{src.get('registered_model')} version {src.get('version')} "
                  f"(aliases: {', '.join(src.get('aliases') or []) or '-'}) on ledger "
                  f"{rows_ledger!r}", highlight=False)
    _print_headline(headline_table(metrics, metrics.get("window"),
                                   ledger=metrics.get("ledger")))


@app.command()
def models(
    ledger: LedgerOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """List every ledger's registered versions: ledger, data window, headline figures at
    posting, aliases (read straight from the store: no MLflow import)."""
    from training.registry import list_models  # noqa: PLC0415
    from training.registry import resolve_registry_uri  # noqa: PLC0415

    uri = resolve_registry_uri(tracking_uri)
    records = list_models(uri, ledger=ledger)
    if not records:
        console.print(f"No registered model{' of ledger ' + repr(ledger) if ledger else ''} "
                      f"in {uri}")
        return
    table = Table(title=f"Registered models by ledger ({uri})")
    first = records[0].row()
    for col in first:
        table.add_column(col, justify="right" if col.startswith(("AUC", "Brier", "ECE",
                                                                 "version", "invoices"))
                         else "left", no_wrap=col in ("ledger", "model"))
    for rec in records:
        table.add_row(*rec.row().values())
    console.print(table)
    sets = sorted({(r.ledger, r.feature_set) for r in records})
    console.print("Feature sets: " + "; ".join(f"{led}: {fs}" for led, fs in sets),
                  highlight=False, soft_wrap=True)


@app.command()
def rollback(
    ledger: LedgerOpt = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Move the ledger's @champion back to its previous champion."""
    from training.registry import rollback as roll_back_champion  # noqa: PLC0415

    _quiet_tracking()
    try:
        version = roll_back_champion(tracking_uri=tracking_uri, ledger=ledger)
    except (LookupError, RuntimeError) as exc:
        raise _fail(exc) from None
    console.print(f"@champion is now version {version}")


@app.command()
def bento(
    model: Annotated[str | None, typer.Option(help="Alias or version to release (default "
                                              "@champion).")] = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Build a Bento, a release: the registered model and its customer store copied from the
    MLflow registry into BentoML, the service code and the run-time requirements only.
    --tracking-uri (or the tracking variables) names the MLflow store, $BENTOML_HOME the
    BentoML one."""
    from serving.release import build_bento  # noqa: PLC0415
    tag = build_bento(model, tracking_uri)
    console.print(f"Built Bento {tag}: `bentoml serve {tag}` or `bentoml containerize {tag}`")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    model: Annotated[str | None, typer.Option(help="Alias or version (default "
                                              "$PAYDELAY_MODEL, else @champion).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default "
                                                "$PAYDELAY_WORKERS, else 1).")] = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Serve the registered model with BentoML (foreground; Ctrl-C or SIGTERM stops it).

    Every PAYDELAY_* variable is passed on (PAYDELAY_MODEL, PAYDELAY_WORKERS,
    PAYDELAY_TRACKING_URI, PAYDELAY_STORE_PATH, PAYDELAY_RELEASE, PAYDELAY_CONFIG), and
    MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI with them; --tracking-uri is passed on as
    PAYDELAY_TRACKING_URI. PAYDELAY_API_TOKEN guards /score, /rerank and /explain with a bearer
    token; without it only a loopback host is served."""
    from serving.launcher import InsecureBind  # noqa: PLC0415
    from serving.launcher import check_bind  # noqa: PLC0415
    from serving.launcher import command  # noqa: PLC0415
    from serving.launcher import serve_foreground  # noqa: PLC0415
    from serving.launcher import server_env  # noqa: PLC0415
    from training.registry import named_tracking_uri  # noqa: PLC0415
    model = model or os.environ.get("PAYDELAY_MODEL") or None
    workers = workers or int(os.environ.get("PAYDELAY_WORKERS") or 1)
    env = server_env(tracking_uri=named_tracking_uri(tracking_uri),
                     token=os.environ.get("PAYDELAY_API_TOKEN"), model=model, workers=workers)
    try:
        warning = check_bind(host, env)
    except InsecureBind as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if warning:
        console.print(f"[yellow]{warning}[/yellow]")
    cmd = command(port, host)
    console.print(f"Serving {model or '@champion'} on http://{host}:{port} (API description at "
                  f"/docs, OpenAPI at /docs.json)")
    raise typer.Exit(serve_foreground(cmd, env))


def sample_worklist(events, master=None, max_items: int = 40) -> tuple[str, dict]:
    """The open items of the collector with the most overdue items, as a worklist engine would
    send them: (collector, request body)."""
    from features.pit.item_state import item_state_at  # noqa: PLC0415
    from features.pit.master_asof import master_asof  # noqa: PLC0415
    from features.pit.snapshots import scoring_snapshots  # noqa: PLC0415
    from serving.api_models import items_payload  # noqa: PLC0415
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


def print_reranked(response: dict, collector: str, top: int = 15,
                   very_late_label: str | None = None) -> None:
    """The re-ranked worklist as a table: P(late), the chance of paying very late (the
    ranking probability, in collector language), the payment window, the rule strategy's rank
    and the top reasons with their weights; says how many of the items it shows."""
    summary = response["summary"]
    items = response["items"]
    shown = min(top, len(items))
    label = very_late_label or "chance of paying more than 30 days late or not at all"
    table = Table(title=f"Worklist of {collector}: the first {shown} of {summary['n_items']} "
                  f"open items, ranked by expected amount at risk = open amount x {label} "
                  f"(model {response['model'].get('version', '')})", show_lines=True)
    for col, justify in (("#", "right"), ("invoice", "left"), ("open", "right"),
                         ("days over", "right"), ("P(late)", "right"),
                         ("P(very late)", "right"), ("at risk", "right"),
                         ("paid between (P10 .. P90)", "left"), ("rule prio / rank", "left"),
                         ("why (top reasons, weight in points)", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for item in items[:top]:
        table.add_row(
            str(item["rank"]), item["invoice_id"], f"{item['open_amount']:,.2f}",
            f"{item['days_overdue']:.0f}", f"{item['p_late']:.0%}",
            f"{item['p_very_late']:.0%}",
            f"{item['expected_amount_at_risk']:,.0f}",
            f"{item['pay_date_p10']} .. {item['pay_date_p90']}",
            f"{item['rule_priority']} / {item['rule_rank']}",
            "\n".join(f"{r['sentence']}" for r in item["reasons"]))
    console.print(table)
    console.print(f"P(very late) = {label}. Showing {shown} of {summary['n_items']} items; "
                  "days overdue is a column, so the reasons name the other facts behind the "
                  "rank.", highlight=False)


def print_realised_backtest(capture) -> None:
    """training.backtest.realised_capture as a table: what each order really captured."""
    table = Table(title="Realised worklist backtest on the holdout: amount that went on to be "
                  "paid more than 30 days late or written off, captured in the first K items "
                  "of each weekly worklist")
    for col in ("K", "model", "rule strategy", "oldest first", "largest first",
                "model / rule"):
        table.add_column(col, justify="right")
    for row in capture.itertuples(index=False):
        table.add_row(str(row.capacity), f"{row.model:,.0f}", f"{row.rule_strategy:,.0f}",
                      f"{row.oldest_first:,.0f}", f"{row.largest_first:,.0f}",
                      f"{row.model_vs_rule:.2f}x")
    console.print(table)


@app.command()
def rerank(
    ledger: Annotated[Path, typer.Option(help="Ledger folder whose open items form the worklist.")]
    = paths.LEDGER,
    url: Annotated[str, typer.Option(help="Base URL of a running service.")]
    = "http://127.0.0.1:3000",
    capacity: int = 10,
    top: int = 15,
    ledger_name: LedgerNameOpt = None,
    force: Annotated[bool, typer.Option(help="Show the ranking even when the service's model "
                                        "learned another ledger.")] = False,
) -> None:
    """Send one collector's open items to a running service and print them re-ranked with
    reasons (the worklist engine's call). Refuses a ranking by a model of another ledger."""
    from features.ingest.ledger_files import read_ledger_dir  # noqa: PLC0415
    from training.core.ledger import ledger_mismatch  # noqa: PLC0415
    from training.core.ledger import slugify  # noqa: PLC0415
    import httpx  # noqa: PLC0415
    name = slugify(ledger_name or ledger.resolve().name)
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
    response = answer.json()
    served = (response.get("model") or {}).get("ledger")
    served = {"name": served} if isinstance(served, str) else (served or {})
    mismatch = ledger_mismatch(served, name)
    if mismatch:
        if not force:
            raise _fail(ValueError(f"the service's model: {mismatch}; serve ledger {name!r}'s "
                                   "model (PAYDELAY_LEDGER) or pass --force"))
        console.print(f"[bold red]WARNING: the service's model: {mismatch}[/bold red]")
    elif not served:
        console.print("[yellow]note:[/yellow] the service does not say which ledger its model "
                      "learned: the ranking could not be checked against ledger "
                      f"{name!r}", highlight=False)
    try:  # the ranking probability's name in collector language (GET /metadata is open)
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            label = client.get("/metadata").json().get("p_very_late_label")
    except (httpx.HTTPError, ValueError):
        label = None
    print_reranked(response, collector, top, label)


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="Folder of the committed sample.")] = paths.SAMPLE,
    invoices: int = 2_000,
    customers: int = 80,
    config: ConfigOpt = None,
) -> None:
    """Regenerate the small committed sample ledger (our column names and the process-mining data
    model's)."""
    from features.ingest.io import write_event_log  # noqa: PLC0415
    from features.ingest.io import write_table  # noqa: PLC0415
    from features.simulate.ledger import simulate_ledger  # noqa: PLC0415
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


DEMO_LEDGER = "demo"  # the demo's ledger name: its experiment and model are paydelay-demo


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Scratch folder for the demo's data.")]
    = paths.DEMO,
    tracking_uri: TrackingUriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The whole product end to end on a simulated ledger."""
    from serving.launcher import running_server  # noqa: PLC0415
    from serving.launcher import server_env  # noqa: PLC0415
    from training.registry import LEDGER_ENV  # noqa: PLC0415
    from training.registry import named_tracking_uri  # noqa: PLC0415
    raw, interim = workdir / "raw", workdir / "interim"
    console.rule("1. Simulate a ledger")
    simulate(out=raw, invoices=None, customers=None, config=config)
    console.rule("2. Validate it (quarantine bad rows, derive calculated activities)")
    ingest(source=raw, master=None, out=interim, date_format=None)
    console.rule("3. Build point-in-time features and labels")
    features(ledger=interim, out=workdir / "processed", end_time=None, config=config)
    console.rule("4. Train, evaluate against the baselines, register in MLflow")
    result = _train(workdir / "processed", config, None, True, None, DEMO_LEDGER, tracking_uri)
    if result.report is not None:
        from training.backtest import realised_capture  # noqa: PLC0415

        print_realised_backtest(realised_capture(result.report.backtest))
    console.rule(f"5. Serve {DEMO_LEDGER!r}'s @champion with BentoML on loopback and re-rank a "
                 "worklist")
    # the demo ledger's model, no other, from the store it was just registered in
    env = server_env(tracking_uri=named_tracking_uri(tracking_uri),
                     extra={LEDGER_ENV: DEMO_LEDGER})
    with running_server(env, workdir / "server.log") as url:
        console.print(f"Service ready at {url} (log: {workdir / 'server.log'})")
        rerank(ledger=interim, url=url, capacity=10, top=12, ledger_name=DEMO_LEDGER,
               force=False)
    console.print("Service stopped. Start it again with `make serve`; "
                  "browse the runs with `make ui`.")
    console.print(f"The collector's worklist page: {url}/worklist (while the service runs; "
                  "`make serve` serves it at http://127.0.0.1:3000/worklist)", highlight=False)


# --- the running loop: weekly scoring and monitoring (training.batch_score, training.monitor) ---
def _date(value: str | None):
    import pandas as pd  # noqa: PLC0415
    return None if value is None else pd.Timestamp(value)


@app.command()
def score(
    ledger: Annotated[Path, typer.Option(help="Ledger folder (events/master Parquet).")]
    = paths.LEDGER,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Score the items open at this "
                                              "date (default: the ledger's last refresh).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Backfill: first date.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Backfill: last date.")] = None,
    every: Annotated[int | None, typer.Option(help="Backfill: days between dates (default "
                                              "monitoring.cadence_days).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default data/processed/"
                                             "<ledger>/scores).")] = None,
    ledger_name: LedgerNameOpt = None,
    model: Annotated[str | None, typer.Option(help="Alias or version (default: the served "
                                              "one, serving.model_ref).")] = None,
    tracking_uri: TrackingUriOpt = None,
    config: ConfigOpt = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Score every open item of the ledger as of a date with the served model: a dated
    prediction table and one worklist per collector, recorded in MLflow (paydelay-scoring).
    With --engine dask each partition of customers is scored on a worker (one date)."""
    from training.batch_score import score_ledger_dir  # noqa: PLC0415 - heavy

    _quiet_tracking()
    eng = _engine(_config(config), engine, scheduler)
    if eng.kind == "dask":
        if start is not None or end is not None:
            raise _fail(ValueError("a backfill (--from/--to) runs in process only"))
        return _score_dask(ledger, as_of, out, ledger_name, model, tracking_uri,
                           _config(config), eng)
    try:
        results = score_ledger_dir(
            ledger, as_of=_date(as_of), start=_date(start), end=_date(end), every_days=every,
            out_dir=out, ledger=ledger_name, config=_config(config),
            model_ref=(int(model) if model and model.isdigit() else model),
            tracking_uri=tracking_uri)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        raise _fail(exc) from None
    table = Table(title="Scoring")
    for col in ("as_of", "items", "model", "mean_p_late", "amount_at_risk", "collectors"):
        table.add_column(col)
    for r in results:
        row = r.summary()
        table.add_row(*[f"{v:,.3f}" if isinstance(v, float) else str(v) for v in row.values()])
    console.print(table)
    for r in results:
        if r.reconciliation is not None:
            _print_reconciliation(r.reconciliation)
    console.print(f"Wrote {len(results)} prediction table(s) and their reconciliation to "
                  f"{results[-1].path.parent}/")


def _score_dask(ledger: Path, as_of: str | None, out: Path | None, ledger_name: str | None,
                model: str | None, tracking_uri: str | None, cfg, eng) -> None:
    from features.engine.cluster import dask_client  # noqa: PLC0415
    from training.distributed import score_ledger_dir_dask  # noqa: PLC0415 - heavy

    cfg = cfg.model_copy(update={"engine": eng})
    try:
        with dask_client(eng, console.print) as client:
            result = score_ledger_dir_dask(
                client, ledger, as_of=_date(as_of), out_dir=out, ledger=ledger_name,
                model_ref=(int(model) if model and model.isdigit() else model), config=cfg,
                tracking_uri=tracking_uri)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        raise _fail(exc) from None
    _print_counts("Scoring on Dask", result.summary())
    _print_reconciliation(result.reconciliation)
    console.print(f"Wrote {result.path}/ (part files), {len(result.worklists)} worklists and "
                  f"the reconciliation to {result.path.parent}/")


@app.command()
def monitor(
    ledger: Annotated[Path, typer.Option(help="Ledger folder as it is now.")] = paths.LEDGER,
    scores: Annotated[Path | None, typer.Option(help="Scoring history folder (default "
                                                "data/processed/<ledger>/scores).")] = None,
    now: Annotated[str | None, typer.Option(help="Read outcomes as of this instant (default: "
                                            "the ledger's newest event).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    ledger_name: LedgerNameOpt = None,
    tracking_uri: TrackingUriOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Realised quality with delayed labels, estimated quality, drift and staleness of the
    served model; report to MLflow (paydelay-monitoring). Exits 1 with the reason when a
    threshold is crossed (for a scheduler to alert on)."""
    from training.monitor import monitor_ledger_dir  # noqa: PLC0415 - heavy

    _quiet_tracking()
    try:
        report, folder = monitor_ledger_dir(
            ledger, scores=scores, now=_date(now), ledger=ledger_name, out_dir=out,
            config=_config(config), tracking_uri=tracking_uri)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        raise _fail(exc) from None
    _print_counts("Monitor", {k: v for k, v in report.figures().items()
                              if isinstance(v, (int, float))})
    for alarm in report.alarms:
        console.print(f"[red]ALARM[/red] {alarm.line()}", highlight=False)
    console.print(f"Report: {folder / 'report.html'}")
    print(report.exit_reason())
    if not report.ok:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
