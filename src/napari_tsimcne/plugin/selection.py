"""Qt-free helpers of the cross-selection: tile -> point, tile outlines, lasso, groups and naming history."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd


def tile_to_point(tile_indices: np.ndarray, tile: int) -> int | None:
    """Row of the point that shows tile ``tile`` (None when there is none).

    Parameters
    ----------
    tile_indices : numpy.ndarray
        The map's ``tile_index`` column.
    tile : int
        The tile's number in its stack.

    Returns
    -------
    int or None
        The first row showing the tile.
    """
    hits = np.flatnonzero(np.asarray(tile_indices) == int(tile))
    return int(hits[0]) if hits.size else None


def tile_description(features: pd.DataFrame, tile: int) -> str:
    """What the map says about tile ``tile``, in lines: its number, its name, cluster and label if any.

    Parameters
    ----------
    features : pandas.DataFrame or None
        The map's features (tile_index, annotation, cluster, label); None when the tile has no map.
    tile : int
        The tile's number in its stack.

    Returns
    -------
    str
        E.g. ``"Tile 3\nannotation: stroma\ncluster: 2"``; just ``"Tile 3"`` when the map has no point for it.
    """
    first = f"Tile {int(tile)}"
    if features is None:
        return first
    row = tile_to_point(features["tile_index"].to_numpy(), tile)
    if row is None:
        return first
    lines = [first]
    annotation = str(features["annotation"].iloc[row]) if "annotation" in features else ""
    lines.append(f"annotation: {annotation or '(none)'}")
    if "cluster" in features and int(features["cluster"].iloc[row]) != -1:
        lines.append(f"cluster: {int(features['cluster'].iloc[row])}")
    if "label" in features:
        lines.append(f"label: {features['label'].iloc[row]}")
    return "\n".join(lines)


def tile_rectangles(
    origins: np.ndarray, indices: Sequence[int], tile_shape: tuple[int, int]
) -> list[np.ndarray]:
    """Corner arrays (4, 2) of the rectangles of tiles ``indices`` in the source image (row, column).

    Parameters
    ----------
    origins : numpy.ndarray
        (row, col) of every tile's top-left pixel, shape (N, 2).
    indices : iterable of int
        The tiles to outline.
    tile_shape : tuple of int
        (height, width) of a tile.

    Returns
    -------
    list of numpy.ndarray
        One (4, 2) array of corners per tile, clockwise from the top left.
    """
    h, w = int(tile_shape[0]), int(tile_shape[1])
    origins = np.asarray(origins)
    rects = []
    for i in indices:
        r, c = (float(v) for v in origins[int(i)])
        rects.append(np.array([[r, c], [r, c + w], [r + h, c + w], [r + h, c]]))
    return rects


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the (N, 2) ``points`` inside the closed ``polygon`` (M, 2) (same coordinate order).

    Parameters
    ----------
    points : numpy.ndarray
        Shape (N, 2).
    polygon : numpy.ndarray
        Its corners, shape (M, 2); fewer than 3 enclose nothing.

    Returns
    -------
    numpy.ndarray
        Sorted integer indices of the points inside.
    """
    polygon = np.asarray(polygon, dtype=float)
    points = np.asarray(points, dtype=float)
    if len(polygon) < 3 or len(points) == 0:
        return np.zeros(0, dtype=int)
    from matplotlib.path import Path

    lo, hi = polygon.min(0), polygon.max(0)
    candidates = np.flatnonzero(
        np.all((points >= lo) & (points <= hi), axis=1)
    )  # cheap bounding-box filter
    inside = Path(polygon).contains_points(points[candidates])
    return candidates[inside]


def rows_where(features: pd.DataFrame, column: str, value: object) -> set[int]:
    """Rows of the map whose ``column`` equals ``value`` (e.g. cluster 3, annotation "stroma").

    Parameters
    ----------
    features : pandas.DataFrame
        The map's features.
    column : str
        ``cluster`` (compared as a number) or another column (compared as text).
    value : object
        The value to find.

    Returns
    -------
    set of int
        The rows.

    Raises
    ------
    ValueError
        If the map has no such column.
    """
    if column not in features:
        raise ValueError(f"The map has no {column!r} column.")
    values = features[column].to_numpy()
    if column == "cluster":
        value = int(value)
    else:
        values, value = values.astype(str), str(value)
    return set(np.flatnonzero(values == value).tolist())


def group_choices(features: pd.DataFrame) -> list[tuple[str, str, object, int]]:
    """(text, column, value, count) of every cluster and every annotation of the map, for "Select".

    Parameters
    ----------
    features : pandas.DataFrame
        The map's features.

    Returns
    -------
    list of tuple
        Names first (sorted), then clusters; unnamed tiles and cluster -1 are left out.
    """
    out = []
    if "annotation" in features:
        names, counts = np.unique(features["annotation"].astype(str).to_numpy(), return_counts=True)
        out += [(f"{n} ({c})", "annotation", n, int(c)) for n, c in zip(names, counts) if n != ""]
    if "cluster" in features:
        numbers, counts = np.unique(features["cluster"].to_numpy().astype(int), return_counts=True)
        out += [
            (f"cluster {n} ({c})", "cluster", int(n), int(c))
            for n, c in zip(numbers, counts)
            if n != -1
        ]
    return out


class AnnotationHistory:
    """The annotation column before each naming, so that the last ones can be undone (at most ``depth``).

    Parameters
    ----------
    depth : int
        How many namings can be undone.
    """

    def __init__(self, depth: int = 20) -> None:
        self.depth = depth
        self._stack: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stack)

    def record(self, features: pd.DataFrame) -> None:
        """Keep the annotation column of ``features`` (call before a naming changes it).

        Parameters
        ----------
        features : pandas.DataFrame
            The map's features.
        """
        self._stack.append(features["annotation"].to_numpy(dtype=object).copy())
        del self._stack[: -self.depth]

    def undo(self, features: pd.DataFrame) -> pd.DataFrame | None:
        """A copy of ``features`` with the annotations as they were before the last naming (None: nothing to undo).

        Parameters
        ----------
        features : pandas.DataFrame
            The map's features now; records of another number of tiles are skipped.

        Returns
        -------
        pandas.DataFrame or None
            The features as before the last naming.
        """
        while self._stack:
            previous = self._stack.pop()
            if len(previous) == len(features):
                out = features.copy()
                out["annotation"] = previous
                return out
        return None
