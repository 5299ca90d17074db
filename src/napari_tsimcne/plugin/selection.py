"""Qt-free helpers of the cross-selection: selected points -> gallery mosaic; tile -> point."""

from __future__ import annotations

import math

import numpy as np

MAX_GALLERY_TILES = 144


def gallery_image(tiles: np.ndarray, indices, max_tiles: int = MAX_GALLERY_TILES, gap: int = 1) -> np.ndarray:
    """A grid mosaic of ``tiles[indices]`` (at most ``max_tiles``), with ``gap`` pixels between tiles.

    ``tiles`` is (N, H, W) or (N, H, W, C); the mosaic is (rows*(H+gap)-gap, cols*(W+gap)-gap[, C]).
    """
    idx = np.asarray(list(indices), dtype=int)[:max_tiles]
    if idx.size == 0:
        raise ValueError("no tiles selected")
    chosen = np.asarray(tiles[idx])
    n, h, w = chosen.shape[:3]
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    shape = (rows * (h + gap) - gap, cols * (w + gap) - gap) + chosen.shape[3:]
    out = np.zeros(shape, dtype=chosen.dtype)
    for i, tile in enumerate(chosen):
        r, c = divmod(i, cols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = tile
    return out


def tile_to_point(tile_indices: np.ndarray, tile: int) -> int | None:
    """Row of the point that shows tile ``tile`` (None when there is none)."""
    hits = np.flatnonzero(np.asarray(tile_indices) == int(tile))
    return int(hits[0]) if hits.size else None


def tile_rectangles(origins: np.ndarray, indices, tile_shape: tuple[int, int]) -> list[np.ndarray]:
    """Corner arrays (4, 2) of the rectangles of tiles ``indices`` in the source image (row, column)."""
    h, w = int(tile_shape[0]), int(tile_shape[1])
    origins = np.asarray(origins)
    rects = []
    for i in indices:
        r, c = (float(v) for v in origins[int(i)])
        rects.append(np.array([[r, c], [r, c + w], [r + h, c + w], [r + h, c]]))
    return rects


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the (N, 2) ``points`` inside the closed ``polygon`` (M, 2) (same coordinate order)."""
    polygon = np.asarray(polygon, dtype=float)
    points = np.asarray(points, dtype=float)
    if len(polygon) < 3 or len(points) == 0:
        return np.zeros(0, dtype=int)
    from matplotlib.path import Path

    lo, hi = polygon.min(0), polygon.max(0)
    candidates = np.flatnonzero(np.all((points >= lo) & (points <= hi), axis=1))  # cheap bounding-box filter
    inside = Path(polygon).contains_points(points[candidates])
    return candidates[inside]
