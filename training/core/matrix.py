"""The model matrix: the one float matrix every booster reads, for training and serving alike.

Categoricals become the codes of the categories seen in training (`learn_categories`; an
unseen or missing value becomes NaN on purpose, and unseen ones are counted), booleans 0/1,
everything else float64, columns in the contract's feature order. LightGBM turns a pandas frame
with categorical columns into exactly these values, so boosters fitted on this matrix (with the
categorical columns named) have the same trees as boosters fitted on the frame; fitting and
scoring on the matrix means one builder, and no per-column pandas conversion at request time.

Rows are a DataFrame (training, batch scoring) or a mapping of column arrays (the service's
request path). A column's categories are mapped once per distinct category set and the mapping
is cached on the builder (requests repeat the same few sets).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.pit.columns import n_rows
from training.core.contract import FeatureSet

log = logging.getLogger(__name__)
_LOOKUP_CACHE_SIZE = 512


def learn_categories(rows: pd.DataFrame, features: FeatureSet) -> dict[str, list[str]]:
    """Sorted category values per categorical feature, as seen in the training rows."""
    return {name: sorted(rows[name].dropna().astype(str).unique().tolist())
            for name in features.categorical}


class MatrixBuilder:
    """Builds the model matrix of one feature set and its training categories."""

    def __init__(self, features: FeatureSet, categories: dict[str, list[str]]):
        self.features = features
        self.names = list(features.names)
        missing = [n for n in features.categorical if n not in categories]
        if missing:
            raise ValueError(f"no training categories for categorical feature(s) {missing}")
        self.indexes = {n: pd.Index(categories[n], dtype=object) for n in features.categorical}
        self.categorical_positions = [self.names.index(n) for n in features.categorical]
        self._lookups: dict = {}

    def build(self, rows) -> tuple[np.ndarray, dict[str, int]]:
        """(n, n_features) float64 matrix and the count of unseen category values per feature
        (features without any are left out)."""
        names, indexes = self.names, self.indexes
        columns = rows.columns if isinstance(rows, pd.DataFrame) else rows
        missing = [n for n in names if n not in columns]
        if missing:
            raise ValueError(f"rows lack feature column(s) {missing} (feature set "
                             f"{self.features.version})")
        out = np.empty((len(names), n_rows(rows)), dtype=np.float64)  # transposed: rows last
        if isinstance(rows, pd.DataFrame):
            plain = [j for j, n in enumerate(names) if n not in indexes]
            # numbers and booleans in one conversion (bool -> 0/1, missing -> NaN)
            out[plain] = rows[[names[j] for j in plain]].to_numpy(dtype=np.float64,
                                                                  na_value=np.nan).T
        unseen: dict[str, int] = {}
        for j, name in enumerate(names):
            col = rows[name]
            if name not in indexes:
                if not isinstance(rows, pd.DataFrame):
                    out[j] = col
                continue
            if isinstance(col, (pd.Categorical, pd.Series)) and isinstance(
                    col.dtype, pd.CategoricalDtype):
                cat = col.array if isinstance(col, pd.Series) else col
                # map the column's (few) categories, then its codes: no per-row string work
                codes = self._lookup(name, cat.categories)[cat.codes]
                present = cat.codes >= 0
            else:
                values = pd.Series(col).astype("str").to_numpy(dtype=object, na_value=None)
                codes = indexes[name].get_indexer(values)
                present = pd.notna(values)
            n_unseen = int(np.count_nonzero(present & (codes < 0)))
            if n_unseen:
                unseen[name] = n_unseen
            codes = codes.astype(np.float64)
            codes[codes < 0] = np.nan
            out[j] = codes
        return out.T.copy(), unseen

    def _lookup(self, name: str, categories: pd.Index) -> np.ndarray:
        """Training code of each of a column's categories, then -1 (for code -1: missing)."""
        key = (name, tuple(categories))
        lookup = self._lookups.get(key)
        if lookup is None:
            if len(self._lookups) >= _LOOKUP_CACHE_SIZE:
                self._lookups.clear()
            lookup = np.append(self.indexes[name].get_indexer(
                categories.astype("str").to_numpy(dtype=object)), -1)
            self._lookups[key] = lookup
        return lookup


def feature_matrix(rows, features: FeatureSet, categories: dict[str, list[str]]
                   ) -> tuple[np.ndarray, dict[str, int]]:
    """The model matrix of rows and the unseen category counts (logged when any)."""
    X, unseen = MatrixBuilder(features, categories).build(rows)
    if unseen:
        log.warning("unseen category values mapped to missing: %s", unseen)
    return X, unseen


def matrix_frame(X: np.ndarray, features: FeatureSet, index=None) -> pd.DataFrame:
    """The matrix with its feature names as columns (MLflow input examples, plots)."""
    return pd.DataFrame(X, columns=list(features.names), index=index)


__all__ = ["MatrixBuilder", "feature_matrix", "learn_categories", "matrix_frame"]
