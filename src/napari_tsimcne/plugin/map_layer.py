"""The map: a Points layer beside the tile stack, one point per tile, with a features table."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import numpy as np
import pandas as pd

MAP_SIDE_IN_TILES = 2.0
"""The map is drawn as a square this many tile widths wide."""
OUTLIER_FRACTION, OUTLIER_K_MIN, OUTLIER_K_MAX = 0.02, 10, 50


def map_layer_name(tiles_name: str) -> str:
    return f"{tiles_name} map"


def tile_size(tiles_layer) -> tuple[int, int]:
    """(height, width) of one tile of an (N, H, W[, C]) image layer."""
    return int(tiles_layer.data.shape[1]), int(tiles_layer.data.shape[2])


def map_geometry(tile_hw: tuple[int, int]) -> tuple[float, tuple[float, float]]:
    """Side length and (row, col) offset of the map square, to the right of the tile."""
    h, w = tile_hw
    side = MAP_SIDE_IN_TILES * max(h, w)
    return side, (0.0, 1.25 * w)


def map_coordinates(embedding: np.ndarray, side: float) -> np.ndarray:
    """Scale a (N, 2) embedding into a [0, side] square, centred, keeping its aspect ratio.

    Returns (row, col) = (-y, x) positions, so that y points up as in a plot.
    """
    emb = np.asarray(embedding, dtype=float)[:, :2]
    lo, hi = emb.min(0), emb.max(0)
    span = float(np.max(hi - lo)) or 1.0
    unit = (emb - lo) / span + (1.0 - (hi - lo) / span) / 2
    return np.column_stack([(1.0 - unit[:, 1]) * side, unit[:, 0] * side])


def outlier_neighbours(n_tiles: int) -> int:
    """The k of :func:`outlier_scores`: 2 % of the tiles, at least 10 and at most 50."""
    return int(np.clip(round(OUTLIER_FRACTION * n_tiles), OUTLIER_K_MIN, OUTLIER_K_MAX))


def outlier_scores(embedding: np.ndarray, k: int | None = None) -> np.ndarray:
    """Distance to the k-th nearest neighbour in the map, divided by its median (1 = typical).

    k grows with the map (:func:`outlier_neighbours`), so that a small island scores high too: artefacts
    (blank or noisy tiles) often gather in a tight island of their own, where a small k finds close
    neighbours and calls them typical. See benchmarks/bench_outliers.py.
    """
    emb = np.asarray(embedding, dtype=float)[:, :2]
    if len(emb) < 2:
        return np.zeros(len(emb))
    from sklearn.neighbors import NearestNeighbors

    k = min(outlier_neighbours(len(emb)) if k is None else k, len(emb) - 1)
    dist = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb)[0][:, k]
    med = float(np.median(dist)) or 1.0
    return dist / med


def initial_features(embedding: np.ndarray, metadata: dict | None = None,
                     outlier: np.ndarray | None = None) -> pd.DataFrame:
    """The features table of a fresh map: tile_index, x, y, annotation, cluster, outlier (and label if known)."""
    n = len(embedding)
    feats = pd.DataFrame({
        "tile_index": np.arange(n),
        "x": np.asarray(embedding[:, 0], dtype=float),
        "y": np.asarray(embedding[:, 1], dtype=float),
        "annotation": [""] * n,
        "cluster": np.full(n, -1, dtype=int),
        "outlier": outlier_scores(embedding) if outlier is None else np.asarray(outlier, dtype=float),
    })
    metadata = metadata or {}
    labels, names = metadata.get("labels"), metadata.get("class_names")
    if labels is not None and len(labels) == n:
        labels = np.asarray(labels)
        feats["label"] = [names[i] for i in labels] if names else labels.astype(str)
    return feats


def point_size(side: float, n: int) -> float:
    """A point size that keeps a map of ``n`` points readable."""
    return float(np.clip(side / np.sqrt(max(n, 1)) * 0.6, side / 250, side / 25))


def create_map_layer(viewer, tiles_layer, embedding: np.ndarray, color_by: str = "outlier",
                     outlier: np.ndarray | None = None):
    """Add (or replace the data of) the map layer of ``tiles_layer`` and return it."""
    name = map_layer_name(tiles_layer.name)
    side, offset = map_geometry(tile_size(tiles_layer))
    coords = map_coordinates(embedding, side)
    if name in viewer.layers:
        layer = viewer.layers[name]
        if len(layer.data) == len(coords):
            update_map_layer(layer, embedding, outlier=outlier)
            return layer
        viewer.layers.remove(layer)
    feats = initial_features(embedding, tiles_layer.metadata, outlier=outlier)
    if color_by not in feats:
        color_by = "outlier"
    layer = viewer.add_points(
        coords, name=name, features=feats, size=point_size(side, len(coords)), face_color=color_by,
        face_colormap="viridis", border_width=0, translate=offset,
        metadata={"tsimcne_tiles_layer": tiles_layer.name, "tsimcne_side": side},
    )
    return layer


def update_map_layer(layer, embedding: np.ndarray, outlier: np.ndarray | None = None) -> None:
    """Move the points to a new embedding of the same tiles, keeping annotations and clusters.

    ``outlier``: the embedding's :func:`outlier_scores` if already computed (e.g. off the main thread).
    """
    side = layer.metadata.get("tsimcne_side", 1.0)
    feats = layer.features.copy()
    feats["x"] = np.asarray(embedding[:, 0], dtype=float)
    feats["y"] = np.asarray(embedding[:, 1], dtype=float)
    feats["outlier"] = outlier_scores(embedding) if outlier is None else np.asarray(outlier, dtype=float)
    selected = set(layer.selected_data)
    # napari redraws all points on every colour event (~0.1 s per redraw at 100,000 points on a CPU):
    # change features and colours quietly, then let the new positions redraw once with both
    with _colour_events_paused(layer):
        layer.features = feats
        recolor(layer)
    layer.data = map_coordinates(embedding, side)
    layer.selected_data = selected


@contextmanager
def _colour_events_paused(layer):
    with ExitStack() as stack:
        emitters = [layer.events.face_color]
        face = getattr(layer, "_face", None)  # napari's colour manager (not public API): skipped if absent
        if face is not None and hasattr(face, "events"):
            emitters += [getattr(face.events, n) for n in ("colors", "color_properties") if hasattr(face.events, n)]
        for emitter in emitters:
            stack.enter_context(emitter.blocker())
        yield


def recolor(layer, column: str | None = None) -> None:
    """Colour the points by a features column (the current one when ``column`` is None).

    Numeric columns (except ``cluster``) use the viridis colormap (for ``outlier`` up to its 99th
    percentile); names and cluster numbers get one colour each, with grey for "" and -1 (not assigned).
    The colours are set in one go (one redraw of the points, which matters for 100,000 of them).
    """
    column = column or layer.metadata.get("tsimcne_color_by") or "outlier"
    if column not in layer.features:
        return
    layer.metadata["tsimcne_color_by"] = column
    values = layer.features[column]
    if pd.api.types.is_numeric_dtype(values) and column not in ("cluster", "tile_index"):
        layer.face_color = continuous_colors(values.to_numpy(dtype=float), upper_percentile=99 if column == "outlier" else 100)
        return
    layer.face_color = categorical_colors(values.to_numpy())


def continuous_colors(values: np.ndarray, upper_percentile: float = 100, colormap: str = "viridis") -> np.ndarray:
    """(N, 4) RGBA colours of numbers, from their minimum to their ``upper_percentile``."""
    from napari.utils.colormaps import ensure_colormap

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.zeros((0, 4))
    finite = np.isfinite(values)
    lo = float(values[finite].min()) if finite.any() else 0.0
    hi = float(np.percentile(values[finite], upper_percentile)) if finite.any() else 1.0
    unit = np.clip((np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return np.asarray(ensure_colormap(colormap).map(unit), dtype=float)


def categorical_colors(values: np.ndarray) -> np.ndarray:
    """(N, 4) RGBA colours: one per distinct value, grey for "" and -1."""
    from matplotlib.colors import to_rgba

    out = np.tile(np.array(to_rgba("#808080"), dtype=float), (len(values), 1))
    distinct = [v for v in pd.unique(values) if not (v == "" or (isinstance(v, (int, np.integer)) and v == -1))]
    for i, v in enumerate(sorted(distinct, key=str)):
        out[values == v] = to_rgba(_CYCLE[i % len(_CYCLE)])
    return out


_CYCLE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94"]
