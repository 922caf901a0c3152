"""`paydelay`: one thin command per stage (simulate, ingest, features, train, tune, evaluate, serve,
rerank, demo). Every command only parses options, calls library functions and prints; the work
lives in features/, training/ and serving/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Payment-delay prediction for accounts-receivable collections.\n\n"
    "Stages: simulate or ingest a ledger -> features -> train (tune, evaluate) -> serve / rerank.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (defaults if omitted).")
]


def _config(path: Path | None):
    from features.config import load_config

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
    out: Annotated[Path, typer.Option(help="Folder for events/master/truth Parquet files.")] = Path(
        "data/raw/simulated"),
    invoices: Annotated[int | None, typer.Option(help="Override the number of invoices.")] = None,
    customers: Annotated[int | None, typer.Option(help="Override the number of customers.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Simulate a realistic receivables ledger (the default data source) and print its summary."""
    from features import ledger_summary
    from features.ledger_files import write_ledger_dir
    from features.simulate import simulate_ledger

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
    source: Annotated[Path, typer.Argument(help="Event log (CSV or Parquet), our names, the seed's "
                                           "or SAP's, or a ledger folder written by `simulate`.")],
    master: Annotated[Path | None, typer.Option(help="Customer master file; derived from the "
                                                "events when omitted.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the validated ledger and the quarantine.")]
    = Path("data/interim/ledger"),
    date_format: Annotated[str | None, typer.Option(help="strftime format of the dates, if not "
                                                    "ISO 8601 (e.g. %m/%d/%Y).")] = None,
) -> None:
    """Validate an event log: good rows go on, bad rows go to a quarantine file with a reason each."""
    from features import ledger_summary
    from features.derive import add_calculated_activities, master_from_events
    from features.io import read_event_log, read_master
    from features.ledger_files import EVENTS, MASTER, read_ledger_dir, write_ledger_dir
    from features.validate import summary, validate_event_log, validate_master, write_quarantine

    truth = None
    if source.is_dir():
        files = read_ledger_dir(source)
        raw, truth = files.events, files.truth
        master = master or source / MASTER
    else:
        raw = read_event_log(source)
    result = validate_event_log(raw, date_format=date_format)
    counts = summary(result)
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
    = Path("data/interim/ibm"),
) -> None:
    """Turn the IBM accounts-receivable sample into a validated ledger folder."""
    from features import ledger_summary
    from features.ledger_files import write_ledger_dir
    from features.sources.ibm import load_ibm_ar

    ledger = load_ibm_ar()
    write_ledger_dir(out, ledger.events, ledger.master)
    _print_ledger_summary(ledger_summary.summarise(ledger.events))
    for caveat in ledger.caveats:
        console.print(f"[yellow]caveat:[/yellow] {caveat}")


@app.command()
def features(
    ledger: Annotated[Path, typer.Option(help="Validated ledger folder (from `ingest` or `ibm`).")]
    = Path("data/interim/ledger"),
    out: Annotated[Path, typer.Option(help="Folder for training.parquet, scoring.parquet and "
                                      "the data dictionary.")] = Path("data/processed/ledger"),
    end_time: Annotated[str | None, typer.Option(help="End of observation (default: the log's "
                                                 "last refresh).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Build point-in-time training rows (with labels) and scoring rows (open items now)."""
    from features.build import build_scoring_set, build_training_set, summary, write_rows
    from features.dictionary import write_data_dictionary
    from features.ledger_files import read_ledger_dir

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
    stats = summary(training)
    stats.pop("snapshot_kinds", None)
    _print_counts("Training set", stats)
    _print_counts("Scoring set (open items now)", {"rows": len(scoring)})
    console.print(f"Wrote {out}/training.parquet, scoring.parquet and {md.name}")


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="Folder of the committed sample.")] = Path("data/sample"),
    invoices: int = 2_000,
    customers: int = 80,
    config: ConfigOpt = None,
) -> None:
    """Regenerate the small committed sample ledger (our column names and the seed's)."""
    from features.io import write_event_log, write_table
    from features.simulate import simulate_ledger

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
    = Path("data/processed/demo"),
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


if __name__ == "__main__":  # pragma: no cover
    app()
