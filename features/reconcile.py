"""Reconciliation: every invoice and row of a stage accounted for, in against out, with reasons.

Each stage (ingest, ibm, features, train) states what came in, every difference with its reason
and what went out, as lines of one small table:

    stage     what      count   reason
    ingest    rows      10,412  in
    ingest    rows         -37  quarantined: before_posting (event before its invoice was posted)
    ingest    rows      +2,051  derived: due_date_passed
    ingest    rows      12,426  out
    ingest    invoices   2,000  in
    ingest    invoices      -3  invoice quarantined: before_posting
    ingest    invoices   1,997  out

A difference is signed: negative for what the stage leaves out, positive for what it adds. The
lines of a (stage, what) add up: in + differences = out. Where they do not, the builders add an
UNEXPLAINED line (a bug to report, never a silent loss) and `balanced` turns False. The stage
prints the table and writes it beside its output as RECONCILIATION_FILE (CSV, the columns below).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

RECONCILIATION_FILE = "reconciliation.csv"
COLUMNS: tuple[str, ...] = ("stage", "what", "count", "reason")
IN, OUT = "in", "out"  # reasons of the two end lines of a (stage, what)
UNEXPLAINED = "unexplained: in + differences != out (a bug: please report it)"
ADDED = "not in the input (added by the stage)"


@dataclass(frozen=True)
class Line:
    """One line: `count` invoices or rows of `what` at `stage` (signed for a difference)."""

    stage: str
    what: str
    count: int
    reason: str


@dataclass(frozen=True)
class Reconciliation:
    """The reconciliation table of one or more stages (lines in order)."""

    lines: tuple[Line, ...] = ()

    def __add__(self, other: Reconciliation) -> Reconciliation:
        return Reconciliation(self.lines + other.lines)

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def balanced(self) -> bool:
        """Every (stage, what) adds up: no unexplained line."""
        return all(line.reason != UNEXPLAINED for line in self.lines)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([(ln.stage, ln.what, ln.count, ln.reason) for ln in self.lines],
                            columns=list(COLUMNS)).astype({"count": "int64"})

    def count(self, stage: str, what: str, reason: str) -> int:
        """The count of one line (0 when absent: no invoice or row had that reason)."""
        return sum(ln.count for ln in self.lines
                   if (ln.stage, ln.what, ln.reason) == (stage, what, reason))

    def differences(self) -> Reconciliation:
        """The lines that are neither in nor out."""
        return Reconciliation(tuple(ln for ln in self.lines if ln.reason not in (IN, OUT)))

    def printable(self) -> list[tuple[str, str, str, str]]:
        """(stage, what, count, reason) as text: thousands separators, differences signed."""
        return [(ln.stage, ln.what,
                 f"{ln.count:,}" if ln.reason in (IN, OUT) else f"{ln.count:+,}", ln.reason)
                for ln in self.lines]


def reconcile_counts(stage: str, what: str, n_in: int, n_out: int,
                     differences: Mapping[str, int]) -> Reconciliation:
    """in, the signed differences (zero ones left out) and out; an UNEXPLAINED line when
    in + differences != out."""
    diffs = [Line(stage, what, int(n), reason) for reason, n in differences.items() if int(n)]
    gap = int(n_out) - int(n_in) - sum(d.count for d in diffs)
    if gap:
        diffs.append(Line(stage, what, gap, UNEXPLAINED))
    return Reconciliation((Line(stage, what, int(n_in), IN), *diffs,
                           Line(stage, what, int(n_out), OUT)))


def _distinct(ids: Iterable) -> pd.Index:
    """Distinct ids as strings, missing ones left out."""
    if not isinstance(ids, (pd.Series, pd.Index, np.ndarray, list, tuple)):
        ids = list(ids)
    return pd.Index(pd.Series(np.asarray(ids, dtype=object)).dropna().astype(str).unique())


def reconcile_ids(stage: str, what: str, ids_in: Iterable, ids_out: Iterable,
                  reasons: Mapping[str, Iterable] | None = None) -> Reconciliation:
    """Distinct ids in against out. An id that went missing counts (negatively) under the first
    reason whose ids hold it; one held by none is UNEXPLAINED; an id out that was not in counts
    under ADDED. Reasons are listed in the order given."""
    ids_in, ids_out = _distinct(ids_in), _distinct(ids_out)
    missing = ids_in.difference(ids_out, sort=False)
    left = pd.Series(True, index=missing)
    differences: dict[str, int] = {}
    for reason, ids in (reasons or {}).items():
        hit = left.index.isin(_distinct(ids)) & left.to_numpy()
        differences[reason] = -int(hit.sum())
        left[hit] = False
    differences[ADDED] = len(ids_out.difference(ids_in, sort=False))
    return reconcile_counts(stage, what, len(ids_in), len(ids_out), differences)


def combine(*parts: Reconciliation) -> Reconciliation:
    """One table of several parts, in order."""
    return Reconciliation(tuple(line for part in parts for line in part.lines))


def write_reconciliation(rec: Reconciliation, path: str | Path) -> Path:
    """Write the table as CSV (a folder gets RECONCILIATION_FILE inside it)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / RECONCILIATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    rec.frame().to_csv(path, index=False)
    return path


def read_reconciliation(path: str | Path) -> Reconciliation:
    """A table written by write_reconciliation (a file or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RECONCILIATION_FILE
    df = pd.read_csv(path, dtype={"stage": str, "what": str, "reason": str},
                     keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a reconciliation table (missing {missing})")
    return Reconciliation(tuple(Line(str(s), str(w), int(c), str(r)) for s, w, c, r in
                                df[list(COLUMNS)].itertuples(index=False)))


__all__ = ["Line", "Reconciliation", "reconcile_counts", "reconcile_ids", "combine",
           "write_reconciliation", "read_reconciliation", "RECONCILIATION_FILE", "COLUMNS",
           "IN", "OUT", "UNEXPLAINED", "ADDED"]
