"""Which ledger a model learned from: its name and fingerprint, and the check that rows (or a
request) come from the same ledger as the model.

A ledger is one company's receivables history (a simulated one, the IBM sample, an SAP extract).
Its *name* is chosen by the user (`--ledger-name`) or derived from the folder the rows come from
(`slugify`); it names the MLflow experiment and the registered model (training.registry), so two
ledgers never compete for one @champion. Its *fingerprint* describes the data the model saw: the
name, the data window (first / last event), the number of invoices, the contract's feature-set
version and a hash of the invoice ids and the window. The bundle keeps it (`ModelBundle.ledger`),
the registered version carries it as tags.

Where the rows say which ledger they are: the Parquet metadata of training.parquet (key
`paydelay.ledger`, a JSON object with at least "name"; or `ledger_name`, plain text), else a
`ledger.json` beside it, else the rows' folder name. `ledger_info_from_file` reads all three.

`ledger_mismatch(bundle, name)` is the check for callers (evaluation, the service): None when the
rows / request may be scored by the model, else one sentence saying why not.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LEDGER_META_KEY = b"paydelay.ledger"  # Parquet metadata: JSON {"name": ..., "first_event": ...}
LEDGER_NAME_KEY = b"ledger_name"  # Parquet metadata: the name alone
SIDECAR = "ledger.json"  # beside training.parquet
DEFAULT_LEDGER = "default"
FINGERPRINT_KEYS = ("name", "first_event", "last_event", "n_invoices", "feature_set_version",
                    "hash")


def slugify(text: str) -> str:
    """A ledger name safe for MLflow names and URLs: lower-case ascii, digits and '-'."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug or DEFAULT_LEDGER


def _ts(value) -> str | None:
    import pandas as pd  # noqa: PLC0415 - the registry's fast listing imports this module

    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()


def fingerprint(rows: pd.DataFrame, name: str, feature_set_version: str | None = None,
                known: dict | None = None) -> dict:
    """The ledger fingerprint of training rows (see the module doc).

    `known` (what the feature builder recorded about the event log, e.g. first_event /
    last_event / n_invoices) wins over what the rows alone can tell: the rows start at the first
    posting and end at the last snapshot or outcome."""
    known = dict(known or {})
    ids = rows["invoice_id"].astype(str).unique() if len(rows) else []
    first = rows["posting_time"].min() if "posting_time" in rows and len(rows) else None
    last_cols = [c for c in ("snapshot_time", "outcome_time") if c in rows]
    last = max((rows[c].max() for c in last_cols if rows[c].notna().any()), default=None)
    if feature_set_version is None and "feature_set_version" in rows and len(rows):
        feature_set_version = str(rows["feature_set_version"].iloc[0])
    out = {
        "name": slugify(name),
        "first_event": known.get("first_event") or _ts(first),
        "last_event": known.get("last_event") or _ts(last),
        "n_invoices": int(known.get("n_invoices") or len(ids)),
        "feature_set_version": feature_set_version,
    }
    h = hashlib.sha256()
    h.update(json.dumps({k: out[k] for k in ("first_event", "last_event")}).encode())
    h.update("\n".join(sorted(ids)).encode())
    out["hash"] = known.get("hash") or h.hexdigest()[:16]
    return out


def ledger_record(events: pd.DataFrame, name: str) -> dict:
    """What the feature stage writes as ledger.json beside the rows: the ledger's name and what
    only the event log knows (its first and last event, its number of invoices)."""
    times = events["event_time"] if len(events) else None
    return {"name": slugify(name),
            "first_event": None if times is None else _ts(times.min()),
            "last_event": None if times is None else _ts(times.max()),
            "n_invoices": int(events["invoice_id"].nunique()) if len(events) else 0}


def write_ledger_record(record: dict, folder: str | Path) -> Path:
    path = Path(folder) / SIDECAR
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))
    return path


def ledger_info_from_file(path: str | Path) -> dict:
    """What a training.parquet (or its folder) says about its ledger: {"name", ...}; the name is
    the folder's (slugified) when neither the Parquet metadata nor ledger.json names it."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = folder / "training.parquet" if path.is_dir() else path
    info: dict = {}
    if file.is_file():  # a folder of part files (the Dask engine's) names its ledger in SIDECAR
        import pyarrow.parquet as pq  # noqa: PLC0415 - only when a file is read

        meta = pq.read_schema(file).metadata or {}
        if LEDGER_META_KEY in meta:
            info = dict(json.loads(meta[LEDGER_META_KEY].decode()))
        elif LEDGER_NAME_KEY in meta:
            info = {"name": meta[LEDGER_NAME_KEY].decode()}
    if not info.get("name") and (folder / SIDECAR).exists():
        info = {**json.loads((folder / SIDECAR).read_text()), **info}
    if not info.get("name"):
        info["name"] = folder.resolve().name
        info["name_from"] = "folder"
    info["name"] = slugify(info["name"])
    return info


def ledger_of(bundle_or_ledger) -> dict:
    """The ledger record of a ModelBundle (its `ledger` field) or a ledger dict itself."""
    if isinstance(bundle_or_ledger, dict):
        return bundle_or_ledger
    return dict(getattr(bundle_or_ledger, "ledger", None) or {})


def ledger_mismatch(bundle, name: str | None, feature_set_version: str | None = None
                    ) -> str | None:
    """Why rows or a request of ledger `name` (and feature set) must not be scored by `bundle`'s
    model, or None when they may. A model that records no ledger, or a caller that names none,
    is not refused on the name (nothing to compare)."""
    led = ledger_of(bundle)
    problems = []
    mine = led.get("name")
    if name is not None and mine and slugify(name) != mine:
        problems.append(f"the rows are of ledger {slugify(name)!r}, the model learned ledger "
                        f"{mine!r}")
    version = led.get("feature_set_version") or getattr(bundle, "feature_set_version", None)
    if feature_set_version is not None and version and feature_set_version != version:
        problems.append(f"the rows have feature set {feature_set_version}, the model "
                        f"{version}")
    if not problems:
        return None
    return "; ".join(problems) + " (its metrics and scores would not describe these rows)"


def ledger_tags(led: dict) -> dict[str, str]:
    """The fingerprint as MLflow tags (ledger, ledger.first_event, ...)."""
    tags = {"ledger": str(led.get("name", ""))}
    tags |= {f"ledger.{k}": str(led[k]) for k in FINGERPRINT_KEYS
             if k != "name" and led.get(k) is not None}
    return tags


__all__ = ["slugify", "fingerprint", "ledger_info_from_file", "ledger_mismatch", "ledger_of",
           "ledger_tags", "DEFAULT_LEDGER", "LEDGER_META_KEY", "LEDGER_NAME_KEY", "SIDECAR"]
