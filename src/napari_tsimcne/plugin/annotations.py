"""Qt-free annotation helpers: class names, cluster proposals, CSV export and import."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from napari_tsimcne.core.persistence import atomic_write

CSV_COLUMNS = (
    "tile_index",
    "x",
    "y",
    "z",
    "origin_row",
    "origin_col",
    "label",
    "annotation",
    "cluster",
    "outlier",
)
"""Columns :func:`export_csv` may write, in order (z, origins, label and outlier only when known)."""


class AnnotationFileError(ValueError):
    """A CSV file that does not belong to these tiles."""


def assign_annotation(features: pd.DataFrame, indices, name: str) -> pd.DataFrame:
    """Return a copy of ``features`` with ``annotation`` set to ``name`` on the rows ``indices``."""
    out = features.copy()
    idx = np.asarray(sorted(indices), dtype=int)
    if idx.size and (idx.min() < 0 or idx.max() >= len(out)):
        raise IndexError(
            f"point indices must lie in [0, {len(out)}), got {idx.min()}..{idx.max()}."
        )
    out.loc[out.index[idx], "annotation"] = str(name).strip()
    return out


def propose_clusters(coords: np.ndarray, k: int, random_state: int = 0) -> np.ndarray:
    """k-means on the 2D map; returns one cluster number (0..k-1) per point."""
    coords = np.asarray(coords, dtype=float)
    if k < 1 or k > len(coords):
        raise ValueError(f"k must lie between 1 and the number of points ({len(coords)}), got {k}.")
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(coords).astype(int)


def check_min_cluster_size(min_cluster_size: int, n_points: int) -> None:
    """HDBSCAN's smallest cluster must lie between 2 and the number of points; else a ValueError says so."""
    if min_cluster_size < 2 or min_cluster_size > n_points:
        raise ValueError(
            f"The minimum cluster size must lie between 2 and the number of points ({n_points}), "
            f"got {min_cluster_size}."
        )


FAST_HDBSCAN_MIN_POINTS = 20_000
"""From this many points on, ``implementation="auto"`` uses fast-hdbscan when it is installed.

Below it scikit-learn's HDBSCAN takes a few seconds at most, less than importing fast-hdbscan's
numba (and, the first time ever, compiling it); above it scikit-learn's slows down steeply
(``benchmarks/bench_hdbscan.py``).
"""


def propose_hdbscan(
    coords: np.ndarray,
    min_cluster_size: int = 20,
    min_samples: int | None = None,
    implementation: str = "auto",
) -> np.ndarray:
    """HDBSCAN on the 2D map: one cluster number (0, 1, ...) per point, -1 for noise.

    Unlike k-means it finds the number of clusters itself and leaves sparse points between islands
    unassigned (Campello, Moulavi and Sander 2013, "Density-based clustering based on hierarchical
    density estimates", PAKDD).

    Parameters
    ----------
    coords : numpy.ndarray
        The map, shape (n_points, 2).
    min_cluster_size : int, default 20
        The smallest group of points that counts as a cluster; between 2 and ``n_points``.
    min_samples : int or None, default None
        Neighbours that make a point a core point; None uses ``min_cluster_size``.
    implementation : {"auto", "fast_hdbscan", "sklearn"}, default "auto"
        ``"fast_hdbscan"``: the multi-core fast-hdbscan package; ``"sklearn"``: scikit-learn's.
        ``"auto"`` takes fast-hdbscan for maps of at least :data:`FAST_HDBSCAN_MIN_POINTS` points
        when it can be imported, and scikit-learn's otherwise.

    Returns
    -------
    numpy.ndarray
        Integer labels, shape (n_points,); -1 marks noise.

    Raises
    ------
    ValueError
        If ``min_cluster_size`` is out of range or ``implementation`` is unknown.
    ImportError
        If ``implementation="fast_hdbscan"`` and fast-hdbscan cannot be imported.
    """
    coords = np.asarray(coords, dtype=float)
    check_min_cluster_size(min_cluster_size, len(coords))
    if implementation not in ("auto", "fast_hdbscan", "sklearn"):
        raise ValueError(
            f"implementation must be 'auto', 'fast_hdbscan' or 'sklearn', got {implementation!r}."
        )
    model = None
    large = len(coords) >= FAST_HDBSCAN_MIN_POINTS
    if implementation == "fast_hdbscan" or (implementation == "auto" and large):
        try:
            from fast_hdbscan import HDBSCAN as FastHDBSCAN
        except ImportError as exc:
            if implementation == "fast_hdbscan":
                raise ImportError(
                    f"fast-hdbscan cannot be imported ({exc}); install it with "
                    "'pip install fast-hdbscan' or use implementation='sklearn'."
                ) from exc
        else:
            model = FastHDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=min_samples)
    if model is None:
        from sklearn.cluster import HDBSCAN

        model = HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=min_samples, copy=True)
    return np.asarray(model.fit_predict(coords)).astype(int)


FINGERPRINT_COLUMN = "stack_fingerprint"
"""Column of an annotation file naming the tile stack it belongs to (see :func:`napari_tsimcne.core.fingerprint.stack_digest`)."""


def export_csv(
    features: pd.DataFrame,
    path: str | os.PathLike,
    origins: np.ndarray | None = None,
    fingerprint: str | None = None,
) -> None:
    """Write one row per tile to ``path`` atomically.

    Columns: tile_index, x, y (z in a 3D map), origin_row and origin_col (tiles cut from an image), label
    (when known), annotation, cluster, outlier (when the features have it). With ``fingerprint`` (the digest
    of the map's tile stack) a ``stack_fingerprint`` column ties the file to those tiles, so
    :func:`import_csv` can refuse it for other tiles of the same count.
    """
    table = pd.DataFrame({"tile_index": features["tile_index"].astype(int).to_numpy()})
    for axis in ("x", "y", "z"):
        if axis in features:
            table[axis] = features[axis].to_numpy()
    if origins is not None and len(origins) == len(features):
        origins = np.asarray(origins)
        table["origin_row"] = origins[:, 0].astype(int)
        table["origin_col"] = origins[:, 1].astype(int)
    if "label" in features:
        table["label"] = features["label"].astype(str).to_numpy()
    table["annotation"] = features["annotation"].astype(str).to_numpy()
    table["cluster"] = features["cluster"].astype(int).to_numpy()
    if "outlier" in features:
        table["outlier"] = features["outlier"].astype(float).to_numpy()
    if fingerprint is not None:
        table[FINGERPRINT_COLUMN] = fingerprint
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def _check_fingerprint(table: pd.DataFrame, path, fingerprint: str | None) -> None:
    """Refuse a file whose ``stack_fingerprint`` column names another stack than ``fingerprint``."""
    if fingerprint is None or FINGERPRINT_COLUMN not in table.columns or not len(table):
        return
    saved = set(table[FINGERPRINT_COLUMN].astype(str))
    if saved != {fingerprint}:
        raise AnnotationFileError(
            f"{path} was saved for another tile stack (fingerprint {sorted(saved)[0]}); these tiles have "
            f"fingerprint {fingerprint}: same count, other pixels or order. Not loaded."
        )


def import_csv(
    path: str | os.PathLike, n_tiles: int, fingerprint: str | None = None
) -> pd.DataFrame:
    """Read a CSV written by :func:`export_csv`; refuse it unless it has exactly tiles 0..n_tiles-1.

    With ``fingerprint``, a file whose ``stack_fingerprint`` column names another tile stack is refused too
    (files without the column are checked by their tile count only).

    Returns a table indexed 0..n_tiles-1 with columns ``annotation`` and ``cluster``.
    """
    try:
        table = pd.read_csv(
            path, keep_default_na=False, dtype={"annotation": str, FINGERPRINT_COLUMN: str}
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnnotationFileError(f"Cannot read {path}: {exc}") from None
    if "tile_index" not in table.columns or "annotation" not in table.columns:
        raise AnnotationFileError(
            f"{path} has no 'tile_index' and 'annotation' columns; is it an annotation export?"
        )
    if len(table) != n_tiles:
        raise AnnotationFileError(
            f"{path} annotates {len(table)} tiles, but the map has {n_tiles}. It belongs to another tile stack."
        )
    _check_fingerprint(table, path, fingerprint)
    try:
        index = table["tile_index"].astype(int).to_numpy()
    except (TypeError, ValueError):
        raise AnnotationFileError(f"{path}: tile_index must hold whole numbers.") from None
    if not np.array_equal(np.sort(index), np.arange(n_tiles)):
        raise AnnotationFileError(
            f"{path}: tile_index must list every tile 0..{n_tiles - 1} exactly once."
        )
    out = pd.DataFrame(index=pd.RangeIndex(n_tiles))
    out["annotation"] = ""
    out["cluster"] = -1
    out.loc[index, "annotation"] = table["annotation"].astype(str).to_numpy()
    if "cluster" in table.columns:
        out.loc[index, "cluster"] = (
            pd.to_numeric(table["cluster"], errors="coerce").fillna(-1).astype(int).to_numpy()
        )
    return out
