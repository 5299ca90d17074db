"""What the Annotate widget exports into the viewer (no Qt): tiles as a new stack, a map's classes or clusters
painted onto the image the tiles were cut from, and the check that an export does not overwrite a file."""

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
