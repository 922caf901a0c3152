"""Reading a rows file for training: compact, and only the rows the training sample keeps.

The rows file of a million invoices (4.7M snapshots x 105 features) is about 4.5 GB as float64
frames; read whole with pandas it needed 8.7 GiB before any model was fitted. The trainer's
reader instead:

1. reads the few key columns first (invoice id, snapshot kind and time, outcome time, observed
   days) to place the cut-offs (training.splits.resolve_cutoffs, on every row) and to decide the
   training sample (training.sampling.plan, on every row);
2. reads the file in record batches, keeps each batch's sampled rows with their weights and
   casts the model's float features to float32 (LightGBM bins them the same way; labels, times
   and keys keep their types), so the whole table is never held;
3. hands pandas one Arrow table (categoricals from the file's dictionaries, the Arrow buffers
   released as the frame is built).

`read_training_rows(path, config, seed)` returns the frame with `attrs`: the feature set
version (as features.pit.build.read_rows), the cut-offs it was sampled at
("training_cutoffs") and the sample plan ("training_sample"), which training.pipeline.train
uses instead of sampling again.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from features.config import PaydelayConfig
from features.pit.build import VERSION_KEY
from training import sampling
from training.core.contract import ModelContract
from training.splits import resolve_cutoffs

KEY_COLUMNS = ("invoice_id", "snapshot_kind", "snapshot_time", "outcome_time", "observed_days")
BATCH_ROWS = 250_000


def compact_schema(schema: pa.Schema, float32: set[str]) -> pa.Schema:
    """The file's schema with the named double columns as float32 (pandas metadata kept, so
    categoricals stay categoricals)."""
    fields = [f.with_type(pa.float32()) if f.name in float32 and pa.types.is_float64(f.type)
              else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def part_files(path: str | Path) -> list[Path]:
    """The rows file, or the part files of a rows folder in name order (the Dask engine's
    `training.parquet/`), so the rows come in the same order on every read."""
    path = Path(path)
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path} holds no Parquet part file")
    return files


def read_training_rows(path: str | Path, config: PaydelayConfig, seed: int,
                       batch_rows: int = BATCH_ROWS):
    """The training rows of a rows file (or folder of part files), sampled under
    training.sampling and compact (module doc)."""
    files = [pq.ParquetFile(f) for f in part_files(path)]
    keys = pa.concat_tables([pf.read(columns=list(KEY_COLUMNS)) for pf in files]).to_pandas()
    cutoffs = resolve_cutoffs(keys, config)
    plan = sampling.plan(keys, cutoffs.calibration_end, config, seed)
    del keys
    names = set(ModelContract.from_config(config).features.names)
    pf = files[0]
    schema = compact_schema(pf.schema_arrow, names)
    kept = []
    for batch in (b for f in files for b in f.iter_batches(batch_size=batch_rows)):
        table = pa.Table.from_batches([batch]).cast(schema)
        if plan.active:
            part = table.select(["invoice_id", "snapshot_kind", "snapshot_time"]).to_pandas()
            keep, weight = sampling.keep_mask(part, plan, config)
            table = table.filter(pa.array(keep)).append_column(
                sampling.WEIGHT, pa.array(weight, type=pa.float64()))
        kept.append(table)
    table = pa.concat_tables(kept)
    del kept
    # one block per dtype (not per column): the splits and folds subset rows many times, and a
    # frame of 130 one-column blocks is slower to subset and warns on every insert
    frame = table.to_pandas(self_destruct=True)
    del table
    meta = pf.schema_arrow.metadata or {}
    frame.attrs["feature_set_version"] = meta.get(VERSION_KEY, b"").decode() or None
    frame.attrs["training_cutoffs"] = cutoffs
    frame.attrs["training_sample"] = plan.as_dict()
    return frame


__all__ = ["KEY_COLUMNS", "compact_schema", "part_files", "read_training_rows"]
