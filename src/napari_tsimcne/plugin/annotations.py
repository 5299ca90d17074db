"""Qt-free annotation helpers: class names, cluster proposals, CSV export and import."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from napari_tsimcne.core.table import (
    AXES,
    COLUMNS,
    FINGERPRINT_COLUMN,
    AnnotationFileError,
    map_table,
    read_annotations,
    write_table,
)

__all__ = [
    "CSV_COLUMNS",
    "FAST_HDBSCAN_MIN_POINTS",
    "FINGERPRINT_COLUMN",
    "AnnotationFileError",
    "assign_annotation",
    "check_min_cluster_size",
    "export_csv",
    "import_csv",
    "propose_clusters",
    "propose_hdbscan",
]

CSV_COLUMNS = tuple(c for c in COLUMNS if c != FINGERPRINT_COLUMN)
"""Columns ``export_csv`` may write, in order (z, origins, label and outlier only when known)."""


def assign_annotation(features: pd.DataFrame, indices, name: str) -> pd.DataFrame:
    """Return a copy of ``features`` with ``annotation`` set to ``name`` on the rows ``indices``.

    Parameters
    ----------
    features : pandas.DataFrame
        A map's features, with an ``annotation`` column.
    indices : iterable of int
        Rows (points) to name.
    name : str
        The name; surrounding spaces are removed ("" removes the name).

    Returns
    -------
    pandas.DataFrame
        The new features (``features`` is unchanged).

    Raises
    ------
    IndexError
        If a row lies outside the table.
    """
    out = features.copy()
    idx = np.asarray(sorted(indices), dtype=int)
    if idx.size and (idx.min() < 0 or idx.max() >= len(out)):
        raise IndexError(
            f"point indices must lie in [0, {len(out)}), got {idx.min()}..{idx.max()}."
        )
    out.loc[out.index[idx], "annotation"] = str(name).strip()
    return out


def propose_clusters(coords: np.ndarray, k: int, random_state: int = 0) -> np.ndarray:
    """k-means on the map (2D or 3D); one cluster number (0..k-1) per point.

    Parameters
    ----------
    coords : numpy.ndarray
        The map, shape (n_points, 2) or (n_points, 3).
    k : int
        The number of clusters, between 1 and ``n_points``.
    random_state : int, default 0
        Seed of k-means' starting points (the same map gives the same clusters).

    Returns
    -------
    numpy.ndarray
        Integer cluster numbers, shape (n_points,).

    Raises
    ------
    ValueError
        If ``k`` is out of range.
    """
    coords = np.asarray(coords, dtype=float)
    if k < 1 or k > len(coords):
        raise ValueError(f"k must lie between 1 and the number of points ({len(coords)}), got {k}.")
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(coords).astype(int)


def check_min_cluster_size(min_cluster_size: int, n_points: int) -> None:
    """HDBSCAN's smallest cluster must lie between 2 and the number of points; else a ValueError says so.

    Parameters
    ----------
    min_cluster_size : int
        The smallest group of points that counts as a cluster.
    n_points : int
        The number of points of the map.

    Raises
    ------
    ValueError
        If ``min_cluster_size`` is out of range.
    """
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
        ``"auto"`` takes fast-hdbscan for maps of at least ``FAST_HDBSCAN_MIN_POINTS`` points
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


def export_csv(
    features: pd.DataFrame,
    path: str | os.PathLike,
    origins: np.ndarray | None = None,
    fingerprint: str | None = None,
) -> None:
    """Write one row per tile to ``path`` atomically (the schema of ``napari_tsimcne.core.table``).

    Parameters
    ----------
    features : pandas.DataFrame
        A map layer's features: tile_index, x, y (z in a 3D map), annotation, cluster; label and outlier
        are written when present.
    path : str or os.PathLike
        The file to write; an existing file is replaced (the Annotate widget asks first).
    origins : numpy.ndarray, optional
        (row, col) of tiles cut from one large image, shape (N, 2); ignored unless one per row.
    fingerprint : str, optional
        The digest of the map's tile stack: a ``stack_fingerprint`` column ties the file to those tiles, so
        ``import_csv`` can refuse it for other tiles of the same count.

    Raises
    ------
    napari_tsimcne.core.persistence.OutputFileError
        When the file cannot be written.
    """
    axes = [a for a in AXES if a in features]
    table = map_table(
        features[axes].to_numpy(),
        tile_index=features["tile_index"].to_numpy(),
        origins=origins if origins is not None and len(origins) == len(features) else None,
        labels=features["label"].to_numpy() if "label" in features else None,
        annotation=features["annotation"].to_numpy(),
        cluster=features["cluster"].to_numpy(),
        outlier=features["outlier"].to_numpy() if "outlier" in features else None,
        fingerprint=fingerprint,
    )
    write_table(path, table)


def import_csv(
    path: str | os.PathLike, n_tiles: int, fingerprint: str | None = None
) -> pd.DataFrame:
    """Read a CSV written by ``export_csv`` (or an autosave); refuse it unless it has tiles 0..n_tiles-1.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    n_tiles : int
        The number of tiles of the map.
    fingerprint : str, optional
        The digest of the map's tiles: a file whose ``stack_fingerprint`` column names another tile stack
        is refused too (files without the column are checked by their tile count only).

    Returns
    -------
    pandas.DataFrame
        Indexed 0..n_tiles-1, with columns ``annotation`` and ``cluster``.

    Raises
    ------
    AnnotationFileError
        With a one-line reason (see ``napari_tsimcne.core.table.read_annotations``).
    """
    return read_annotations(path, n_tiles, fingerprint)
