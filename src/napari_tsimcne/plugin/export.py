"""What the Annotate widget exports into the viewer (no Qt): tiles as a new stack, a map's classes or clusters
painted onto the image the tiles were cut from, and the check that an export does not overwrite a file.

The ``add_*`` functions put the new layers into a viewer; the rest is their arithmetic, with no viewer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Sequence

    import napari
    from numpy.typing import ArrayLike

DISPLAY_SETTINGS = ("colormap", "contrast_limits", "gamma", "blending", "opacity")
"""Image-layer settings an exported stack takes over from its layer, so it looks the same."""


def stack_subset(data: ArrayLike, tile_indices: Sequence[int]) -> np.ndarray:
    """The tiles ``tile_indices`` (sorted, each once) of a stack (N, H, W[, C]), channels kept.

    Parameters
    ----------
    data : array-like
        The tile stack (a layer's data).
    tile_indices : sequence of int
        The tiles wanted.

    Returns
    -------
    numpy.ndarray
        The chosen tiles, in index order.
    """
    idx = np.unique(np.asarray(list(tile_indices), dtype=int))
    if idx.size == 0:
        raise ValueError("No tiles to export: select points in the map first.")
    if idx[0] < 0 or idx[-1] >= len(data):
        raise IndexError(f"Tile numbers must lie in [0, {len(data)}), got {idx[0]}..{idx[-1]}.")
    return np.asarray(data[idx])


def display_kwargs(layer: napari.layers.Image) -> dict:
    """Keyword arguments of ``viewer.add_image`` that draw a copy of ``layer``'s data as ``layer`` is drawn.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer whose look is copied.

    Returns
    -------
    dict
        Colormap, contrast limits, gamma, blending, scale and the like.
    """
    kwargs = {"rgb": bool(getattr(layer, "rgb", False))}
    for name in DISPLAY_SETTINGS:
        if name == "colormap" and kwargs["rgb"]:
            continue
        if hasattr(layer, name):
            value = getattr(layer, name)
            kwargs[name] = tuple(value) if name == "contrast_limits" else value
    return kwargs


def label_codes(values: ArrayLike, column: str) -> tuple[np.ndarray, list[str]]:
    """Label numbers of a map's column: 0 for "not assigned" ("" or cluster -1), then 1, 2, ... per value.

    Names are numbered in sorted order; clusters keep their number plus one (cluster 0 is label 1).
    Parameters
    ----------
    values : sequence
        One value per tile: class names, or cluster numbers.
    column : str
        The map's column: ``"cluster"`` (numbers, -1 for none) or an annotation column.

    Returns
    -------
    tuple
        Codes per tile (int array) and names per label number (``names[0]`` is ``""``).
    """
    values = np.asarray(values)
    if column == "cluster":
        numbers = values.astype(int)
        codes = np.where(numbers < 0, 0, numbers + 1)
        top = int(codes.max()) if codes.size else 0
        names = [""] + [f"cluster {i}" for i in range(top)]
        return codes.astype(np.int32), names
    text = values.astype(str)
    distinct = sorted(set(text.tolist()) - {""})
    lookup = {name: i + 1 for i, name in enumerate(distinct)}
    codes = np.array([lookup.get(v, 0) for v in text], dtype=np.int32)
    return codes, [""] + distinct


def labels_image(
    image_hw: tuple[int, int], origins: ArrayLike, tile_hw: tuple[int, int], codes: ArrayLike
) -> np.ndarray:
    """A label image of the source image: each tile's rectangle filled with its code (0 elsewhere).

    ``origins`` are the tiles' top-left corners (row, column) in the image; where tiles overlap (a stride
    smaller than the tile), the later tile's code wins.

    Parameters
    ----------
    image_hw : tuple of int
        ``(height, width)`` of the source image.
    origins : array-like
        ``(N, 2)`` top-left corners of the tiles.
    tile_hw : tuple of int
        ``(height, width)`` of a tile.
    codes : array-like
        Label number of each tile.

    Returns
    -------
    numpy.ndarray
        int32 ``(H, W)`` label image.
    """
    out = np.zeros(tuple(int(v) for v in image_hw), dtype=np.int32)
    h, w = int(tile_hw[0]), int(tile_hw[1])
    origins = np.asarray(origins, dtype=int)
    codes = np.asarray(codes)
    if len(origins) != len(codes):
        raise ValueError(f"{len(origins)} tile origins but {len(codes)} codes.")
    for (r, c), code in zip(origins, codes):
        out[max(r, 0) : max(r + h, 0), max(c, 0) : max(c + w, 0)] = code
    return out


def label_colors(names: list[str], column: str, taken: dict) -> dict:
    """{label number: "#rrggbb"} with the colours the map gives these names (0: transparent).

    Parameters
    ----------
    names : list of str
        Name of each label number, as from ``label_codes``.
    column : str
        The map's column the names come from.
    taken : dict
        Colours the map already gives to values, kept so both layers agree.

    Returns
    -------
    dict
        Label number to colour.
    """
    from .map_layer import name_color

    colors: dict = {0: "transparent", None: "transparent"}
    for code, name in enumerate(names[1:], start=1):
        value = code - 1 if column == "cluster" else name
        colors[code] = name_color(value, taken)
    return colors


def labels_features(names: list[str], column: str, counts: Sequence[int]) -> pd.DataFrame:
    """The features table of the labels layer: one row per label number (hovering shows the name).

    Parameters
    ----------
    names : list of str
        Name of each label number.
    column : str
        Column name for the names.
    counts : sequence of int
        Tiles with each label number.

    Returns
    -------
    pandas.DataFrame
        Columns ``index``, ``column`` and ``tiles``.
    """
    return pd.DataFrame(
        {
            "index": np.arange(len(names)),
            column: [n or "not assigned" for n in names],
            "tiles": np.asarray(counts, dtype=int),
        }
    )


class ExistingFileError(FileExistsError):
    """An export would overwrite a file."""


def refuse_existing(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` as a Path, unless it would overwrite a file.

    Parameters
    ----------
    path : str or os.PathLike
        Where an export goes.
    overwrite : bool
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The path.

    Raises
    ------
    ExistingFileError
        If the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistingFileError(
            f"{path} already exists and was not overwritten. Choose another name, or remove the file first."
        )
    return path


# -- into the viewer ---------------------------------------------------------------------------------------
def tiles_layer_of(viewer: napari.Viewer, map_layer) -> napari.layers.Image | None:
    """The tile stack a map was made from, if it is still open.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map.

    Returns
    -------
    napari.layers.Image or None
        The tile layer, or None when it was closed.
    """
    name = map_layer.metadata.get("tsimcne_tiles_layer")
    return viewer.layers[name] if name in viewer.layers else None


def add_tiles_layers(viewer: napari.Viewer, map_layer, tile_indices, name: str) -> list:
    """Copy tiles of the map's stack into new image layers (one per channel layer).

    The copies keep their channels, colormaps and contrast limits, lie right of everything on the
    canvas and carry the original tile numbers in ``metadata["tile_indices"]``; the layer that was
    active stays active (selecting in the map goes on).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map.
    tile_indices : iterable of int
        The tile numbers (in the stack) to copy; repeats are dropped.
    name : str
        Name of the new layer (with several channel layers: prefixed by each one's name).

    Returns
    -------
    list of napari.layers.Image
        The new layers.

    Raises
    ------
    ValueError
        The map's tile layer is gone, or there are no tiles to copy.
    """
    from .layout import free_column_origin
    from .thumbnails import channel_layers

    tiles_layer = tiles_layer_of(viewer, map_layer)
    if tiles_layer is None:
        raise ValueError("The map's tile layer is gone; there are no tiles to copy.")
    sources = channel_layers(viewer.layers, tiles_layer)
    indices = np.unique(np.asarray(list(tile_indices), dtype=int))
    active = viewer.layers.selection.active
    added = []
    offset = None
    for source in sources:
        data = stack_subset(source.data, indices)
        if offset is None:
            offset = free_column_origin(viewer.layers, float(max(data.shape[1:3])))
        added.append(
            viewer.add_image(
                data,
                name=name if len(sources) == 1 else f"{source.name} {name}",
                translate=(0.0, *offset),
                metadata={"tile_indices": indices, "tsimcne_copied_from": source.name},
                **display_kwargs(source),
            )
        )
    if active is not None and active in viewer.layers:
        viewer.layers.selection.active = active
    return added


def add_group_layers(viewer: napari.Viewer, map_layer, column: str, value) -> list:
    """The tiles of one class or cluster as a new image stack (see ``add_tiles_layers``).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map.
    column : str
        "annotation" for a class, "cluster" for a cluster.
    value : str or int
        The class name or cluster number.

    Returns
    -------
    list of napari.layers.Image
        The new layers.

    Raises
    ------
    ValueError
        No tile has that class or cluster, or the tile layer is gone.
    """
    from .selection import rows_where

    rows = sorted(rows_where(map_layer.features, column, value))
    if not rows:
        raise ValueError(f"No tiles with {column} {value!r}.")
    tiles = map_layer.features["tile_index"].to_numpy()[rows]
    base = map_layer.metadata.get("tsimcne_tiles_layer", map_layer.name)
    what = f"cluster {int(value)}" if column == "cluster" else str(value)
    return add_tiles_layers(viewer, map_layer, tiles, f"{base} {what}")


def add_selection_layers(viewer: napari.Viewer, map_layer) -> list:
    """The map's selected tiles as a new image stack (see ``add_tiles_layers``).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map.

    Returns
    -------
    list of napari.layers.Image
        The new layers.

    Raises
    ------
    ValueError
        No point is selected, or the tile layer is gone.
    """
    rows = sorted(map_layer.selected_data)
    if not rows:
        raise ValueError("Select points in the map first.")
    tiles = map_layer.features["tile_index"].to_numpy()[rows]
    base = map_layer.metadata.get("tsimcne_tiles_layer", map_layer.name)
    return add_tiles_layers(viewer, map_layer, tiles, f"{base} selection ({len(rows)} tiles)")


def painted_column(map_layer, column: str | None = None) -> str:
    """The column a Labels export paints: ``column``, else the one the map is coloured by if it
    is a category, else "annotation" when some tiles are named, else "cluster".

    Parameters
    ----------
    map_layer : napari.layers.Points
        The map.
    column : str, optional
        "annotation", "cluster" or "label".

    Returns
    -------
    str
        The column.

    Raises
    ------
    ValueError
        The map has no such column.
    """
    feats = map_layer.features
    if column is None:
        coloured = map_layer.metadata.get("tsimcne_color_by")
        if coloured in ("annotation", "cluster", "label"):
            column = coloured
        else:
            column = "annotation" if (feats["annotation"] != "").any() else "cluster"
    if column not in feats:
        raise ValueError(f"The map has no {column!r} column.")
    return column


def add_labels_layer(viewer: napari.Viewer, map_layer, column: str | None = None):
    """Paint the map's classes (or clusters) onto the image its tiles were cut from, as a Labels layer.

    Each tile's rectangle gets its class's number (0, transparent: not assigned) in the colour the
    map gives that class; hovering shows the name. Where tiles overlap, the later tile wins. An
    earlier layer of the same name is replaced; the map stays the active layer.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map.
    column : str, optional
        "annotation", "cluster" or "label" (default: see ``painted_column``).

    Returns
    -------
    napari.layers.Labels
        The painted layer, placed over the image; its metadata name the image
        (``source_layer``) and the column painted (``painted_column``).

    Raises
    ------
    ValueError
        The map's tiles were not cut from an image open in napari, or the map has no such column.
    """
    from napari.utils.colormaps import DirectLabelColormap

    from .crosslink import link_of
    from .map_layer import category_colors

    tiles_layer = tiles_layer_of(viewer, map_layer)
    meta = {} if tiles_layer is None else tiles_layer.metadata
    source_name, origins = meta.get("source_layer"), meta.get("origins")
    if origins is None or source_name not in viewer.layers:
        raise ValueError(
            "These tiles were not cut from an image open in napari. Cut an image into tiles in "
            "'Train map' (or open an output folder with its image) to paint classes on it."
        )
    column = painted_column(map_layer, column)
    feats = map_layer.features
    order = np.argsort(feats["tile_index"].to_numpy())
    codes, names = label_codes(feats[column].to_numpy()[order], column)
    source = viewer.layers[source_name]
    painted = labels_image(
        source.data.shape[:2], np.asarray(origins), tiles_layer.data.shape[1:3], codes
    )
    colors = label_colors(names, column, category_colors(map_layer.metadata, column))
    counts = np.bincount(codes, minlength=len(names))
    name = f"{source.name} {column}"
    if name in viewer.layers:
        viewer.layers.remove(name)
    labels = viewer.add_labels(
        painted,
        name=name,
        scale=tuple(source.scale[:2]),
        translate=tuple(source.translate[:2]),
        opacity=0.5,
        colormap=DirectLabelColormap(color_dict=colors),
        features=labels_features(names, column, counts),
        metadata={"source_layer": source.name, "painted_column": column},
    )
    link = link_of(viewer, map_layer)
    if link is not None:
        link.keep_map_active()
    return labels
