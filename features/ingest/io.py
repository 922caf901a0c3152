"""Reading and writing event logs and customer masters (CSV or Parquet).

Readers only resolve column names and keep the values raw: ids stay strings (leading zeros kept)
and CSV values stay text, so that `features.ingest.validate` can parse dates and amounts row by row and
quarantine a bad value instead of failing the whole read. A file is rejected outright only when it
cannot be read at all or lacks a required column.

Column names are matched case- and punctuation-insensitively against three spellings: ours
(`invoice_id`), the event-log data model's (`InvoiceNumber`) and the SAP field (`BELNR`). Columns
that match nothing are kept, listed in `frame.attrs["extra_columns"]` and reported with an
`ExtraColumnsWarning`, never dropped silently.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from features import schema

CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
_SEPARATORS = (",", ";", "\t", "|")


class EventLogError(ValueError):
    """An input file or frame that cannot be used at all (not a per-row problem)."""


class ExtraColumnsWarning(UserWarning):
    """Columns that match no known spelling: kept as they are, reported so nobody loses them."""


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).strip().lower())


def _alias_table(columns: tuple[schema.Column, ...]) -> dict[str, str]:
    """Normalised spelling -> our column name, for one table (events or master)."""
    targets = {c.name for c in columns}
    table: dict[str, str] = {}
    pairs = [(c.name, c.name) for c in columns]
    pairs += [(c.seed_name, c.name) for c in columns if c.seed_name]
    pairs += [(sap, name) for sap, name in schema.SAP_TO_CANONICAL.items() if name in targets]
    for alias, target in pairs:
        key = _key(alias)
        if table.setdefault(key, target) != target:  # a schema edit made two columns ambiguous
            raise RuntimeError(f"spelling {alias!r} maps to both {table[key]} and {target}")
    return table


EVENT_ALIASES: dict[str, str] = _alias_table(schema.EVENT_COLUMNS)
MASTER_ALIASES: dict[str, str] = _alias_table(schema.MASTER_COLUMNS)
REQUIRED_MASTER_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in schema.MASTER_COLUMNS if c.required)


def accepted_spellings(column: str, columns: tuple[schema.Column, ...] = schema.EVENT_COLUMNS
                       ) -> list[str]:
    """Every header a reader accepts for one of our columns (case and punctuation are free)."""
    spec = next(c for c in columns if c.name == column)
    names = [spec.name] + ([spec.seed_name] if spec.seed_name else [])
    names += [sap for sap, target in schema.SAP_TO_CANONICAL.items() if target == column]
    return list(dict.fromkeys(names))


def canonicalise_columns(df: pd.DataFrame, *, table: str = "events", source: object = "frame",
                         warn: bool = True) -> pd.DataFrame:
    """Rename known spellings to our names; keep and report the rest; check required columns.

    `table` is "events" or "master". Raises EventLogError naming the source when a required
    column is missing or when two input columns mean the same thing.
    """
    columns, aliases, required = (
        (schema.EVENT_COLUMNS, EVENT_ALIASES, schema.REQUIRED_EVENT_COLUMNS) if table == "events"
        else (schema.MASTER_COLUMNS, MASTER_ALIASES, REQUIRED_MASTER_COLUMNS))
    rename: dict[str, str] = {}
    seen: dict[str, str] = {}
    extras: list[str] = []
    for col in df.columns:
        target = aliases.get(_key(col))
        if target is None:
            extras.append(str(col))
            continue
        if target in seen:
            raise EventLogError(
                f"{source}: columns {seen[target]!r} and {col!r} both mean {target!r}; keep one")
        seen[target] = str(col)
        rename[col] = target
    clash = [e for e in extras if e in rename.values()]
    if clash:  # an unknown column would be overwritten by a renamed one
        raise EventLogError(f"{source}: column(s) {clash} collide with renamed columns")
    missing = [c for c in required if c not in seen]
    if missing:
        spellings = "; ".join(f"{c}: {', '.join(accepted_spellings(c, columns))}" for c in missing)
        raise EventLogError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            f"(accepted spellings, case-insensitive: {spellings}); "
            f"found {list(map(str, df.columns))}")
    out = df.rename(columns=rename)
    out.attrs = {**df.attrs, "extra_columns": extras, "renamed": rename, "source": str(source)}
    if extras and warn:
        warnings.warn(f"{source}: unknown column(s) kept as they are: {extras}",
                      ExtraColumnsWarning, stacklevel=3)
    return out


def _sniff_separator(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _as_string(series: pd.Series) -> pd.Series:
    """Text with missing kept missing; integral numbers lose their '.0' (ids stored as numbers)."""
    if pd.api.types.is_float_dtype(series) and series.dropna().mod(1).eq(0).all():
        series = series.astype("Int64")
    return series.astype("str")


def _read_table(path: str | Path, what: str) -> tuple[pd.DataFrame, Path]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise EventLogError(f"{what} {path}: unsupported file type {path.suffix!r}; "
                            f"use one of {CSV_SUFFIXES + PARQUET_SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        if suffix in CSV_SUFFIXES:
            # Everything as text; only an empty cell is missing ("NA" can be a customer id).
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                             sep=_sniff_separator(path), encoding="utf-8-sig")
        else:
            df = pd.read_parquet(path)
    except Exception as exc:  # parser, decoding and Arrow errors all mean "cannot read"
        raise EventLogError(f"{what} {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return df, path


def _strings_where_needed(df: pd.DataFrame, columns: Iterable[schema.Column]) -> pd.DataFrame:
    kinds = {c.name: c.kind for c in columns}
    out = df.copy()
    for col in out.columns:
        if kinds.get(col) == "string" and not pd.api.types.is_string_dtype(out[col]):
            out[col] = _as_string(out[col])
    return out


def read_event_log(path: str | Path) -> pd.DataFrame:
    """Read an event log (CSV or Parquet, by suffix) into a raw frame with our column names.

    CSV values stay text; Parquet keeps its types except that id/text columns become strings.
    Parse and check the result with `features.ingest.validate.validate_event_log`.
    """
    df, path = _read_table(path, "event log")
    df = canonicalise_columns(df, table="events", source=path)
    return _strings_where_needed(df, schema.EVENT_COLUMNS)


def read_master(path: str | Path) -> pd.DataFrame:
    """Read a customer master (CSV or Parquet) into a raw frame with our column names."""
    df, path = _read_table(path, "customer master")
    df = canonicalise_columns(df, table="master", source=path)
    return _strings_where_needed(df, schema.MASTER_COLUMNS)


_LABEL_BY_CODE = {spec.activity.value: spec.label for spec in schema.ACTIVITIES}


def write_event_log(df: pd.DataFrame, path: str | Path, naming: str = "canonical") -> Path:
    """Write an event log as CSV or Parquet (by suffix).

    naming="canonical" keeps our names and activity codes; naming="seed" writes the event-log data
    model's column names (EventTime, InvoiceNumber, Kunnr, ...) and the English activity labels.
    """
    if naming not in ("canonical", "seed"):
        raise ValueError(f"naming must be 'canonical' or 'seed', not {naming!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise EventLogError(f"event log {path}: unsupported file type {path.suffix!r}")
    out = df
    if naming == "seed":
        out = df.copy()
        if "activity" in out:
            labels = out["activity"].map(_LABEL_BY_CODE)
            out["activity"] = labels.where(labels.notna(), out["activity"])
        seed_names = {c.name: c.seed_name for c in schema.EVENT_COLUMNS if c.seed_name}
        out = out.rename(columns=seed_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in CSV_SUFFIXES:
        out.to_csv(path, index=False)
    else:
        out.to_parquet(path, index=False)
    return path


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write any frame (quarantine, master) as CSV or Parquet by suffix, creating folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        df.to_parquet(path, index=False)
    elif path.suffix.lower() in CSV_SUFFIXES:
        df.to_csv(path, index=False)
    else:
        raise EventLogError(f"{path}: unsupported file type {path.suffix!r}")
    return path


__all__ = [
    "EventLogError", "ExtraColumnsWarning", "EVENT_ALIASES", "MASTER_ALIASES",
    "accepted_spellings", "canonicalise_columns", "read_event_log", "read_master",
    "write_event_log", "write_table",
]
