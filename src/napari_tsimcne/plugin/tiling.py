"""Cut a large 2D image layer into a tile stack, and add it to the viewer beside the image (no Qt)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_tsimcne.core.tiles import TileStackError, tile_image

from .layout import free_column_origin

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def cut_layer_into_tiles(
    data: ArrayLike,
    rgb: bool,
    tile_size: int,
    stride: int | None = None,
    min_foreground: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Tiles (N, h, w[, C]) and their top-left origins (N, 2) of a 2D image (H, W) or RGB (H, W, C).

    Parameters
    ----------
    data : array-like
        The image layer's data.
    rgb : bool
        Whether the layer is an RGB(A) image (channels on the last axis).
    tile_size : int
        Side of a square tile in pixels.
    stride : int, optional
        Step between tiles (None: ``tile_size``, tiles side by side).
    min_foreground : float
        Keep only tiles with at least this fraction of foreground pixels (brighter than
        Otsu's threshold); 0 keeps every tile.

    Returns
    -------
    tuple of numpy.ndarray
        The tiles and their top-left ``(row, column)`` origins.

    Raises
    ------
    TileStackError
        When the image is not 2D, the tile is larger than the image or no tile passes
        the foreground filter.
    """
    img = np.asarray(data)
    expected = 3 if rgb else 2
    if img.ndim != expected:
        raise TileStackError(
            f"Choose a 2D image layer (H x W or H x W x RGB), got shape {img.shape}."
        )
    tiled = tile_image(
        img,
        int(tile_size),
        None if stride is None else int(stride),
        min_foreground=float(min_foreground),
    )
    return tiled.tiles, tiled.origins


def add_tiles_cut_from(
    viewer,
    name: str,
    tile_size: int,
    stride: int | None = None,
    min_foreground: float = 0.0,
):
    """Cut the image layer ``name`` into a new tile layer "<name> tiles" beside it.

    The new layer's metadata hold ``origins`` (where each tile was cut, row and column) and
    ``source_layer`` (the image's name), which link the tiles to their place in the image.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding the image.
    name : str
        The 2D image layer to cut (H x W or RGB).
    tile_size, stride, min_foreground
        As for ``cut_layer_into_tiles``.

    Returns
    -------
    napari.layers.Image
        The new tile layer, in a free column right of everything (never over the image).

    Raises
    ------
    TileStackError
        There is no such layer, it is not 2D, or no tile can be cut from it.
    """
    if name not in viewer.layers:
        raise TileStackError("Add a 2D image layer (H x W or RGB) to cut first.")
    source = viewer.layers[name]
    rgb = bool(getattr(source, "rgb", False))
    tiles, origins = cut_layer_into_tiles(
        np.asarray(source.data), rgb, tile_size, stride, min_foreground
    )
    row, col = free_column_origin(viewer.layers, tile_size)
    return viewer.add_image(
        tiles,
        name=f"{name} tiles",
        rgb=rgb,
        translate=(0.0, row, col),
        metadata={"origins": np.asarray(origins, dtype=np.int64), "source_layer": name},
    )
