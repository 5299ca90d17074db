"""The map: a Points layer beside the tile stack, one point per tile, with a features table."""

from __future__ import annotations

import numpy as np
import pandas as pd

MAP_SIDE_IN_TILES = 2.0
"""The map is drawn as a square this many tile widths wide."""
OUTLIER_FRACTION, OUTLIER_K_MIN, OUTLIER_K_MAX = 0.02, 10, 50


def map_layer_name(tiles_name: str) -> str:
    """The name of the map of a tile layer.

    Parameters
    ----------
    tiles_name : str
        The tile layer's name.

    Returns
    -------
    str
        ``"<tiles_name> map"``.
    """
    return f"{tiles_name} map"


def tile_size(tiles_layer) -> tuple[int, int]:
    """(height, width) of one tile of an (N, H, W[, C]) image layer.

    Parameters
    ----------
    tiles_layer : napari.layers.Image
        The tile stack.

    Returns
    -------
    tuple of int
        (H, W).
    """
    return int(tiles_layer.data.shape[1]), int(tiles_layer.data.shape[2])


def map_geometry(tile_hw: tuple[int, int]) -> tuple[float, tuple[float, float]]:
    """Side length and (row, col) offset of the map square, to the right of the tile.

    (In a viewer, ``add_map_layer`` places the map right of everything already on the canvas.)

    Parameters
    ----------
    tile_hw : tuple of int
        (height, width) of one tile.

    Returns
    -------
    tuple
        (side, (row, col)): the square's side and its top-left corner.
    """
    h, w = tile_hw
    side = MAP_SIDE_IN_TILES * max(h, w)
    return side, (0.0, 1.25 * w)


AXES = ("x", "y", "z")
"""Features columns of a map's coordinates (``z`` only in a 3D map)."""


def embedding_columns(features) -> list[str]:
    """The features columns that hold the map's coordinates: x, y (and z in 3D).

    Parameters
    ----------
    features : pandas.DataFrame
        A map's features.

    Returns
    -------
    list of str
        ``["x", "y"]`` or ``["x", "y", "z"]``.
    """
    return [a for a in AXES if a in features]


def map_coordinates(embedding: np.ndarray, side: float) -> np.ndarray:
    """Scale an (N, 2) or (N, 3) embedding into a [0, side] square or cube, centred, keeping its aspect ratio.

    Parameters
    ----------
    embedding : numpy.ndarray
        Shape (N, 2) or (N, 3) (further columns are ignored).
    side : float
        The side of the square (cube).

    Returns
    -------
    numpy.ndarray
        (row, col) = (-y, x) positions in 2D, so that y points up as in a plot, and (plane, row, col) =
        (z, -y, x) in 3D.

    Raises
    ------
    ValueError
        If the embedding has fewer than 2 columns.
    """
    emb = np.asarray(embedding, dtype=float)
    if emb.ndim != 2 or emb.shape[1] < 2:
        raise ValueError(f"Expected an embedding of shape (N, 2) or (N, 3), got {emb.shape}.")
    emb = emb[:, :3]
    if len(emb) == 0:
        return np.zeros((0, emb.shape[1]))
    lo, hi = emb.min(0), emb.max(0)
    span = float(np.max(hi - lo)) or 1.0
    unit = (emb - lo) / span + (1.0 - (hi - lo) / span) / 2
    rows_cols = [(1.0 - unit[:, 1]) * side, unit[:, 0] * side]
    if emb.shape[1] == 3:
        rows_cols.insert(0, unit[:, 2] * side)
    return np.column_stack(rows_cols)


def is_3d(layer_or_embedding) -> bool:
    """Whether a map layer (or an embedding) has three dimensions.

    Parameters
    ----------
    layer_or_embedding : napari.layers.Points or numpy.ndarray
        A map layer or its (N, D) data.

    Returns
    -------
    bool
        True for (N, 3).
    """
    data = getattr(layer_or_embedding, "data", layer_or_embedding)
    return int(np.shape(data)[1]) == 3 if np.ndim(data) == 2 else False


def matches(layer, embedding: np.ndarray) -> bool:
    """Whether ``embedding`` can replace the points of map ``layer`` (same tiles, same dimensions).

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    embedding : numpy.ndarray
        A new embedding, shape (N, 2) or (N, 3).

    Returns
    -------
    bool
        True when it has as many points as the layer, in as many dimensions.
    """
    emb = np.asarray(embedding)
    return len(layer.data) == len(emb) and np.shape(layer.data)[1] == min(emb.shape[1], 3)


def show_in_3d(viewer, layer) -> None:
    """A new 3D map: switch the viewer to 3D display and frame the map (not the tiles).

    The camera centres on the map and zooms until all of it is on the canvas; the tile stack, which
    napari would draw as a block beside it, is hidden in the 3D view (shown again in the 2D view, where
    all the map's points are drawn too). See ``.crosslink.show_3d_map``.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    layer : napari.layers.Points
        The map layer; a 2D map changes nothing.
    """
    from .crosslink import show_3d_map

    show_3d_map(viewer, layer, new=True)


def outlier_neighbours(n_tiles: int) -> int:
    """The k of ``outlier_scores``: 2 % of the tiles, at least 10 and at most 50.

    Parameters
    ----------
    n_tiles : int
        The number of tiles of the map.

    Returns
    -------
    int
        k.
    """
    return int(np.clip(round(OUTLIER_FRACTION * n_tiles), OUTLIER_K_MIN, OUTLIER_K_MAX))


def outlier_scores(embedding: np.ndarray, k: int | None = None) -> np.ndarray:
    """Distance to the k-th nearest neighbour in the map (2D or 3D), divided by its median (1 = typical).

    k grows with the map (``outlier_neighbours``), so that a small island scores high too: artefacts
    (blank or noisy tiles) often gather in a tight island of their own, where a small k finds close
    neighbours and calls them typical. See benchmarks/bench_outliers.py.

    Parameters
    ----------
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3).
    k : int, optional
        The neighbour whose distance counts; ``outlier_neighbours`` when None.

    Returns
    -------
    numpy.ndarray
        One score per tile (zeros for fewer than 2 tiles).
    """
    emb = np.asarray(embedding, dtype=float)[:, :3]
    if len(emb) < 2:
        return np.zeros(len(emb))
    from sklearn.neighbors import NearestNeighbors

    k = min(outlier_neighbours(len(emb)) if k is None else k, len(emb) - 1)
    dist = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb)[0][:, k]
    med = float(np.median(dist)) or 1.0
    return dist / med


def initial_features(
    embedding: np.ndarray, metadata: dict | None = None, outlier: np.ndarray | None = None
) -> pd.DataFrame:
    """The features table of a fresh map: tile_index, x, y, (z,) annotation, cluster, outlier (label if known).

    Parameters
    ----------
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3).
    metadata : dict, optional
        The tile layer's metadata: ``labels`` (one per tile) give a ``label`` column, shown by their
        ``class_names`` when the labels index them (``names_fit``).
    outlier : numpy.ndarray, optional
        The embedding's ``outlier_scores``, if already computed.

    Returns
    -------
    pandas.DataFrame
        One row per tile; no names ("") and no clusters (-1) yet.
    """
    n = len(embedding)
    embedding = np.asarray(embedding, dtype=float)
    coords = {a: embedding[:, i] for i, a in enumerate(AXES[: min(embedding.shape[1], 3)])}
    feats = pd.DataFrame(
        {
            "tile_index": np.arange(n),
            **coords,
            "annotation": [""] * n,
            "cluster": np.full(n, -1, dtype=int),
            "outlier": outlier_scores(embedding)
            if outlier is None
            else np.asarray(outlier, dtype=float),
        }
    )
    metadata = metadata or {}
    labels, names = metadata.get("labels"), metadata.get("class_names")
    if labels is not None and len(labels) == n:
        labels = np.asarray(labels)
        if names_fit(labels, names):
            feats["label"] = [str(names[i]) for i in labels]
        else:
            feats["label"] = labels.astype(str)
    return feats


def names_fit(labels: np.ndarray, class_names) -> bool:
    """Whether ``labels`` are class numbers that index ``class_names`` (so each tile can show its class name).

    Parameters
    ----------
    labels : numpy.ndarray
        One label per tile.
    class_names : sequence of str or None
        The names of the classes 0, 1, ...

    Returns
    -------
    bool
        True for integer labels in 0..len(class_names)-1.
    """
    labels = np.asarray(labels)
    return bool(
        class_names
        and np.issubdtype(labels.dtype, np.integer)
        and (labels.size == 0 or (labels.min() >= 0 and labels.max() < len(class_names)))
    )


def point_size(side: float, n: int) -> float:
    """A point size that keeps a map of ``n`` points readable.

    Parameters
    ----------
    side : float
        The map's side.
    n : int
        The number of points.

    Returns
    -------
    float
        Between ``side / 250`` and ``side / 25``.
    """
    return float(np.clip(side / np.sqrt(max(n, 1)) * 0.6, side / 250, side / 25))


def default_color_by(features: pd.DataFrame) -> str:
    """The column a new map is coloured by: annotations if any, else known labels, else the outlier score.

    Parameters
    ----------
    features : pandas.DataFrame
        The map's features (see ``initial_features``).

    Returns
    -------
    str
        ``"annotation"``, ``"label"`` or ``"outlier"``.
    """
    if "annotation" in features and (features["annotation"].astype(str) != "").any():
        return "annotation"
    return "label" if "label" in features else "outlier"


def map_layer_data(
    embedding: np.ndarray,
    tile_hw: tuple[int, int],
    tiles_name: str,
    *,
    metadata: dict | None = None,
    features: pd.DataFrame | None = None,
    outlier: np.ndarray | None = None,
    color_by: str | None = None,
    offset: tuple[float, float] | None = None,
    extra_metadata: dict | None = None,
) -> tuple[np.ndarray, dict, str]:
    """The map of a tile stack as napari layer data ``(points, kwargs, "points")``: placed, sized, featured, coloured.

    The reader returns this tuple as it is; ``add_map_layer`` adds a layer from it. Every map is made here.

    Parameters
    ----------
    embedding : numpy.ndarray
        The map, shape (N, 2), or (N, 3) for a 3D map (then the points are (plane, row, col)).
    tile_hw : tuple of int
        (height, width) of one tile: the map is a square ``MAP_SIDE_IN_TILES`` tiles wide.
    tiles_name : str
        The name of the tile layer; the map is called ``"<tiles_name> map"``.
    metadata : dict, optional
        The tile layer's metadata: ``labels`` and ``class_names`` give a ``label`` column.
    features : pandas.DataFrame, optional
        The features table (e.g. with annotations read from a file); ``initial_features`` when None.
    outlier : numpy.ndarray, optional
        The embedding's ``outlier_scores``, if already computed (ignored with ``features``).
    color_by : str, optional
        The features column that colours the points; ``default_color_by`` when None or not a column.
    offset : tuple of float, optional
        (row, col) of the map's top-left corner; right of one tile (``map_geometry``) when None.
    extra_metadata : dict, optional
        More layer metadata (e.g. the reader's token and output folder).

    Returns
    -------
    tuple
        ``(coordinates (N, 2 or 3), keyword arguments of a Points layer, "points")``.

    Raises
    ------
    ValueError
        If the embedding is not (N, 2) or (N, 3), or ``features`` has another number of rows.
    """
    side, default_offset = map_geometry(tile_hw)
    coords = map_coordinates(embedding, side)
    feats = initial_features(embedding, metadata, outlier=outlier) if features is None else features
    if len(feats) != len(coords):
        raise ValueError(f"The map has {len(coords)} points but {len(feats)} rows of features.")
    if color_by is None or color_by not in feats:
        color_by = default_color_by(feats)
    layer_metadata = {
        "tsimcne_tiles_layer": tiles_name,
        "tsimcne_side": side,
        "tsimcne_color_by": color_by,
        **(extra_metadata or {}),
    }
    offset = default_offset if offset is None else offset
    kwargs = {
        "name": map_layer_name(tiles_name),
        "features": feats,
        "size": point_size(side, len(coords)),
        "face_color": face_colors(feats[color_by], color_by, layer_metadata),
        "border_width": 0,
        "translate": (0.0,) * (coords.shape[1] - 2) + tuple(offset),  # 3D maps: (plane, row, col)
        "metadata": layer_metadata,
    }
    return coords, kwargs, "points"


def add_map_layer(
    viewer,
    tiles_layer,
    embedding: np.ndarray,
    color_by: str | None = None,
    outlier: np.ndarray | None = None,
):
    """Add (or replace the data of) the map layer of ``tiles_layer`` and return it.

    The layer is made by ``map_layer_data`` (as the reader makes it), placed right of everything on the
    canvas (never over the images), and protected against moving, deleting or adding points
    (``.map_guard.protect_map``). A 3D ``embedding`` (N, 3) gives a 3D points layer, and the viewer
    switches to 3D display; a 2D map fills the canvas.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    tiles_layer : napari.layers.Image
        The tile stack (N, H, W[, C]); its metadata may hold ``labels`` and ``class_names``.
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3).
    color_by : str, optional
        The features column that colours the points; ``default_color_by`` when None.
    outlier : numpy.ndarray, optional
        The embedding's ``outlier_scores``, if already computed (e.g. off the main thread).

    Returns
    -------
    napari.layers.Points
        The map layer. An existing map of the same tiles and dimensions keeps its annotations and gets
        the new points (``update_map_layer``); another one is replaced.
    """
    from .layout import fit_camera, free_column_origin
    from .map_guard import protect_map

    name = map_layer_name(tiles_layer.name)
    if name in viewer.layers:
        layer = viewer.layers[name]
        if matches(layer, embedding):
            update_map_layer(layer, embedding, outlier=outlier)
            return layer
        viewer.layers.remove(layer)
    tile_hw = tile_size(tiles_layer)
    side, _ = map_geometry(tile_hw)
    data, kwargs, _kind = map_layer_data(
        embedding,
        tile_hw,
        tiles_layer.name,
        metadata=tiles_layer.metadata,
        outlier=outlier,
        color_by=color_by,
        offset=free_column_origin(viewer.layers, side),
    )
    layer = viewer.add_points(data, **kwargs)
    protect_map(layer)
    if is_3d(layer):
        show_in_3d(viewer, layer)
    else:
        fit_camera(viewer, [layer])  # a new map is where the user looks
    return layer


def update_map_layer(layer, embedding: np.ndarray, outlier: np.ndarray | None = None) -> None:
    """Move the points to a new embedding of the same tiles, keeping annotations and clusters.

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    embedding : numpy.ndarray
        The new embedding of the same tiles, in the same dimensions.
    outlier : numpy.ndarray, optional
        The embedding's ``outlier_scores`` if already computed (e.g. off the main thread).

    Raises
    ------
    ValueError
        For an embedding of other tiles or other dimensions (make a new map instead).
    """
    if not matches(layer, embedding):
        raise ValueError(
            f"The map {layer.name!r} has {len(layer.data)} points in {np.shape(layer.data)[1]}D; "
            f"an embedding of shape {np.shape(embedding)} needs a new map."
        )
    side = layer.metadata.get("tsimcne_side", 1.0)
    feats = layer.features.copy()
    for i, axis in enumerate(embedding_columns(feats)):
        feats[axis] = np.asarray(embedding[:, i], dtype=float)
    feats["outlier"] = (
        outlier_scores(embedding) if outlier is None else np.asarray(outlier, dtype=float)
    )
    selected = set(layer.selected_data)
    layer.features = feats
    recolor(layer)
    layer.data = map_coordinates(embedding, side)
    layer.selected_data = selected


COLORS_KEY = "tsimcne_category_colors"
"""Layer metadata: {column: {name: "#rrggbb"}}, the colour each name got when it first appeared."""


def recolor(layer, column: str | None = None) -> None:
    """Colour the points by a features column (the current one when ``column`` is None).

    Numeric columns (except ``cluster``) use the viridis colormap (for ``outlier`` up to its 99th
    percentile); names and cluster numbers get one colour each, with grey for "" and -1 (not assigned).
    A name keeps its colour when other names are added (see ``categorical_colors``).
    The colours are set in one go (one redraw of the points, which matters for 100,000 of them).

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    column : str, optional
        The features column; the layer's current one (else ``outlier``) when None. Unknown columns
        change nothing.
    """
    column = column or layer.metadata.get("tsimcne_color_by") or "outlier"
    if column not in layer.features:
        return
    layer.metadata["tsimcne_color_by"] = column
    layer.face_color = face_colors(layer.features[column], column, layer.metadata)


def face_colors(values: pd.Series, column: str, metadata: dict) -> np.ndarray:
    """(N, 4) RGBA colours of the points coloured by ``column`` (see ``recolor``).

    Parameters
    ----------
    values : pandas.Series
        The features column.
    column : str
        Its name (``cluster`` and ``tile_index`` are categories even though they are numbers).
    metadata : dict
        The layer's metadata: names keep the colours stored in it, and new names are stored there.

    Returns
    -------
    numpy.ndarray
        One RGBA row per point.
    """
    if is_continuous(values, column):
        return continuous_colors(
            values.to_numpy(dtype=float), upper_percentile=upper_percentile(column)
        )
    return categorical_colors(values.to_numpy(), category_colors(metadata, column))


def is_continuous(values, column: str) -> bool:
    """Numbers on a scale (outlier score) rather than names or cluster numbers.

    Parameters
    ----------
    values : pandas.Series
        A features column.
    column : str
        Its name.

    Returns
    -------
    bool
        True for numbers other than ``cluster`` and ``tile_index``.
    """
    return bool(pd.api.types.is_numeric_dtype(values) and column not in ("cluster", "tile_index"))


def upper_percentile(column: str) -> float:
    """The outlier score's colour scale ends at its 99th percentile (a few extreme tiles would flatten it).

    Parameters
    ----------
    column : str
        A features column.

    Returns
    -------
    float
        99 for ``outlier``, else 100.
    """
    return 99 if column == "outlier" else 100


def category_colors(metadata: dict, column: str) -> dict:
    """The layer's stored {name: colour} of ``column`` (created empty, kept in its metadata).

    Parameters
    ----------
    metadata : dict
        The layer's metadata (changed in place).
    column : str
        A features column.

    Returns
    -------
    dict
        {name: "#rrggbb"}, the dict in the metadata itself.
    """
    return metadata.setdefault(COLORS_KEY, {}).setdefault(column, {})


def continuous_range(values: np.ndarray, upper_percentile: float = 100) -> tuple[float, float]:
    """(low, high) ends of the colour scale of ``values``: their minimum and their ``upper_percentile``.

    Parameters
    ----------
    values : numpy.ndarray
        Numbers; values that are not finite are ignored.
    upper_percentile : float, default 100
        The percentile at the top of the scale.

    Returns
    -------
    tuple of float
        (low, high); (0, 1) when no value is finite.
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return 0.0, 1.0
    return float(values[finite].min()), float(np.percentile(values[finite], upper_percentile))


def continuous_colors(
    values: np.ndarray, upper_percentile: float = 100, colormap: str = "viridis"
) -> np.ndarray:
    """(N, 4) RGBA colours of numbers, from their minimum to their ``upper_percentile``.

    Parameters
    ----------
    values : numpy.ndarray
        Numbers (NaN takes the lowest colour).
    upper_percentile : float, default 100
        The percentile at the top of the scale (higher values take the top colour).
    colormap : str, default "viridis"
        A napari colormap name.

    Returns
    -------
    numpy.ndarray
        Shape (N, 4).
    """
    from napari.utils.colormaps import ensure_colormap

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.zeros((0, 4))
    lo, hi = continuous_range(values, upper_percentile)
    unit = np.clip((np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return np.asarray(ensure_colormap(colormap).map(unit), dtype=float)


UNASSIGNED = "#808080"
PALETTE = [
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
]
"""Category colours: matplotlib's tab20 without its greys (grey means "not assigned") and without its
blues and cyans, which napari draws around selected points: a selected point reads as selected, never as
another category."""


def is_unassigned(value) -> bool:
    """Whether a category means "not assigned": the empty name or cluster -1.

    Parameters
    ----------
    value : object
        A name or cluster number.

    Returns
    -------
    bool
        True for "" and -1.
    """
    return value == "" or (isinstance(value, (int, np.integer)) and value == -1)


def name_color(value, taken: dict | None = None) -> str:
    """The colour of one category: a function of its name only.

    Cluster numbers take palette entry ``n``; names start at a fixed hash of the name and, when ``taken``
    (the colours already given to other names of this column) holds that colour, the next free one. A name
    therefore keeps its colour when other names are added, and reopening a map gives the same colours.

    Parameters
    ----------
    value : object
        A name or cluster number.
    taken : dict, optional
        {name: colour} already given in this column; the new colour is added to it.

    Returns
    -------
    str
        "#rrggbb" (grey for "not assigned").
    """
    import zlib

    if is_unassigned(value):
        return UNASSIGNED
    if taken is not None and str(value) in taken:
        return taken[str(value)]
    if isinstance(value, (int, np.integer)):
        color = PALETTE[int(value) % len(PALETTE)]
    else:
        start = zlib.crc32(str(value).encode("utf-8")) % len(PALETTE)
        used = set((taken or {}).values())
        free = [
            PALETTE[(start + i) % len(PALETTE)]
            for i in range(len(PALETTE))
            if PALETTE[(start + i) % len(PALETTE)] not in used
        ]
        color = free[0] if free else PALETTE[start]
    if taken is not None:
        taken[str(value)] = color
    return color


def categorical_colors(values: np.ndarray, taken: dict | None = None) -> np.ndarray:
    """(N, 4) RGBA colours: one per distinct value (``name_color``), grey for "" and -1.

    Parameters
    ----------
    values : numpy.ndarray
        Names or cluster numbers, one per point.
    taken : dict, optional
        The {name: colour} already given in this column; new names are added to it.

    Returns
    -------
    numpy.ndarray
        Shape (N, 4).
    """
    from matplotlib.colors import to_rgba

    values = np.asarray(values)
    taken = {} if taken is None else taken
    out = np.tile(np.array(to_rgba(UNASSIGNED), dtype=float), (len(values), 1))
    distinct = [v for v in pd.unique(values) if not is_unassigned(v)]
    # in a fixed order (not the order of the points), so that the same names get the same colours
    for v in sorted(distinct, key=lambda v: (str(v) not in taken, str(v))):
        out[values == v] = to_rgba(name_color(v, taken))
    return out


def legend(layer) -> dict:
    """What the map's colours mean, for a legend: categorical or continuous, from the layer's colouring.

    ``{"column", "kind": "categories", "entries": [(name, "#rrggbb", count), ...]}`` (unassigned last) or
    ``{"column", "kind": "scale", "low", "high", "colormap": "viridis"}``.

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.

    Returns
    -------
    dict
        As above; ``{"column": None, "kind": "none"}`` when the layer is not coloured by a column.
    """
    column = layer.metadata.get("tsimcne_color_by")
    if column is None or column not in layer.features:
        return {"column": None, "kind": "none"}
    values = layer.features[column]
    if is_continuous(values, column):
        lo, hi = continuous_range(values.to_numpy(dtype=float), upper_percentile(column))
        return {"column": column, "kind": "scale", "low": lo, "high": hi, "colormap": "viridis"}
    taken = category_colors(layer.metadata, column)
    names, counts = np.unique(values.to_numpy(), return_counts=True)
    entries = [
        (str(n), name_color(n, taken), int(c))
        for n, c in zip(names, counts)
        if not is_unassigned(n)
    ]
    unassigned = int(sum(c for n, c in zip(names, counts) if is_unassigned(n)))
    if unassigned:
        entries.append(
            ("not assigned" if column != "cluster" else "no cluster (-1)", UNASSIGNED, unassigned)
        )
    return {"column": column, "kind": "categories", "entries": entries}
