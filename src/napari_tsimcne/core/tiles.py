"""Tile stacks: validation, and cutting one large image into a grid of tiles.

A *tile stack* is an array of shape ``(N, H, W)`` (one channel) or
``(N, H, W, C)`` (C channels, last axis). Everything in the library works on
stacks in this layout; ``as_tile_stack`` checks a user's array once and
returns it without copying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .parameters import NamedParametersError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

MIN_TILE_SIZE = 8
"""Smallest tile side the network accepts: the ResNet halves 8 px three times to 1 px."""

MAX_CHANNELS = 16
"""More channels than this on the last axis almost always means a wrong axis order."""


class TileStackError(NamedParametersError):
    """A tile stack that cannot be trained on or embedded, with the reason.

    Parameters
    ----------
    message : str
        What is wrong and what to do, naming parameters as in Python (``channel_axis=1``).
    *parameters : str
        The parameters the message names.

    Attributes
    ----------
    parameters : tuple of str
        The parameters the message names; a front end that names its settings
        differently (the command line's ``--channel-axis``) translates them.
    """


@dataclass(frozen=True)
class StackInfo:
    """Shape facts of a validated tile stack.

    Parameters
    ----------
    n_tiles : int
        Number of tiles.
    height, width : int
        Tile size in pixels.
    n_channels : int
        Channels per tile (1 for a ``(N, H, W)`` stack).
    """

    n_tiles: int
    height: int
    width: int
    n_channels: int

    @property
    def tile_shape(self) -> tuple[int, int]:
        """``(height, width)`` of a tile in pixels."""
        return (self.height, self.width)


def as_tile_stack(
    tiles: ArrayLike,
    *,
    channel_axis: int | None = None,
    check_values: bool = True,
    min_tiles: int = 2,
) -> np.ndarray:
    """Return ``tiles`` as an ``(N, H, W)`` or ``(N, H, W, C)`` NumPy array, or raise.

    Parameters
    ----------
    tiles
        Array-like of shape (N, H, W) or (N, H, W, C); uint8, uint16, other
        integers or floats. Lazy arrays (dask, zarr) are read into memory.
    channel_axis
        Axis that holds channels when it is not the last one (e.g. 1 for
        ``(N, C, H, W)``). It is moved to the end without copying.
    check_values
        Scan the data for NaN and infinite values (one pass over the data).
    min_tiles
        Fewest tiles accepted: 2 for training (contrastive learning compares
        tiles), 1 for mapping tiles with a trained model.

    Returns
    -------
    numpy.ndarray
        The stack, channels last, without a copy where possible.

    Raises
    ------
    TileStackError
        With a message that names the problem and what to do about it.
    """
    if tiles is None:
        raise TileStackError(
            "No tiles were given (got None). Pass an array of shape (N, H, W) or (N, H, W, C)."
        )
    try:
        arr = np.asarray(tiles)
    except ValueError:  # a list of arrays of different shapes
        raise TileStackError(
            "The tiles have different shapes, so they cannot form one stack. All tiles need the same height, "
            "width and channels: crop or pad them to one size first."
        ) from None
    if arr.dtype == bool:
        raise TileStackError(
            "The tiles are boolean (a mask?). t-SimCNE needs intensity images: "
            "convert with tiles.astype(np.uint8) if the mask really is the image."
        )
    if np.iscomplexobj(arr):
        raise TileStackError(
            "The tiles have a complex dtype. Pass the magnitude (np.abs(tiles)) or the real part."
        )
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TileStackError(
            f"The tiles have dtype {arr.dtype}; expected an integer or floating-point dtype."
        )
    if channel_axis is not None:
        if arr.ndim != 4:
            raise TileStackError(
                f"channel_axis={channel_axis} needs a 4D stack, but the tiles have shape {arr.shape}.",
                "channel_axis",
            )
        arr = np.moveaxis(arr, check_axis(channel_axis, arr.ndim), -1)
    if arr.ndim == 2:
        raise TileStackError(
            f"Got one 2D image of shape {arr.shape}, not a stack of tiles. "
            f"Cut it into tiles: {HOW_TO_CUT}."
        )
    if arr.ndim not in (3, 4):
        raise TileStackError(
            f"Expected tiles of shape (N, H, W) or (N, H, W, C), but got {arr.ndim} dimensions {arr.shape}."
        )
    n = arr.shape[0]
    if n == 0:
        raise TileStackError("The tile stack is empty (0 tiles).")
    if n == 1 and min_tiles > 1:
        raise TileStackError(
            "The stack holds a single tile. Contrastive learning needs many tiles (hundreds at least); "
            f"if this is one large image, cut it into tiles: {HOW_TO_CUT}."
        )
    h, w = arr.shape[1:3]
    if arr.ndim == 4:
        c = arr.shape[3]
        if c == 0:
            raise TileStackError(f"The tiles have 0 channels (shape {arr.shape}).")
        if c > MAX_CHANNELS:
            raise TileStackError(
                f"The last axis has {c} entries, read as channels; at most {MAX_CHANNELS} are supported. "
                f"If the channels are on another axis, pass channel_axis (shape {arr.shape}).",
                "channel_axis",
            )
    if min(h, w) < MIN_TILE_SIZE:
        raise TileStackError(_too_small_message(arr.shape), "channel_axis")
    if check_values and np.issubdtype(arr.dtype, np.floating):
        bad_tiles = _non_finite_tiles(arr)
        if bad_tiles.size:
            raise TileStackError(
                f"{bad_tiles.size} tile(s) contain NaN or infinite values (first: tile {bad_tiles[0]}). "
                "Replace them (np.nan_to_num) or drop those tiles."
            )
    return arr


def check_axis(axis: int, ndim: int, name: str = "channel_axis") -> int:
    """``axis`` as a valid axis of an ``ndim``-dimensional array, or a ``TileStackError`` naming ``name``.

    Parameters
    ----------
    axis : int
        The axis asked for; negative values count from the end.
    ndim : int
        Dimensions of the array.
    name : str
        The parameter's name, for the message.

    Returns
    -------
    int
        The axis, from 0 to ``ndim - 1``.
    """
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
        raise TileStackError(f"{name} must be a whole number, got {axis!r}.", name)
    if not -ndim <= axis < ndim:
        raise TileStackError(
            f"{name}={axis} is out of range for data with {ndim} dimensions (use 0 to {ndim - 1}, or -{ndim} to -1).",
            name,
        )
    return int(axis) % ndim


HOW_TO_CUT = (
    "napari_tsimcne.tile_image(image, tile_size=...), or 'Cut a large image into tiles' in napari"
)
"""How to make tiles of one large image, as error messages say it (the command line says its own)."""


def _too_small_message(shape: tuple[int, ...]) -> str:
    """Why tiles of ``shape`` are too small, with the likeliest axis mix-up named."""
    h, w = shape[1:3]
    text = f"Tiles of {h} x {w} pixels are too small; the network needs at least {MIN_TILE_SIZE} x {MIN_TILE_SIZE}."
    if len(shape) == 3 and shape[2] <= 4 and min(shape[:2]) >= MIN_TILE_SIZE:
        return (
            f"{text} Shape {shape} looks like one image with {shape[2]} colour channels, not a stack: "
            f"cut it into tiles: {HOW_TO_CUT}."
        )
    if len(shape) == 4 and shape[1] <= MAX_CHANNELS and min(shape[2:]) >= MIN_TILE_SIZE:
        return f"{text} Shape {shape} looks like (N, C, H, W): pass channel_axis=1."
    return f"{text} (Is the axis order right? shape {shape})"


def tiles_per_chunk(stack: np.ndarray, chunk_bytes: int = 64 << 20) -> int:
    """How many tiles of ``stack`` fit into ``chunk_bytes`` (at least one), for work done chunk by chunk.

    Parameters
    ----------
    stack : numpy.ndarray
        The tile stack (or a memory map of it).
    chunk_bytes : int
        Memory one chunk may take, in bytes (64 MiB by default).

    Returns
    -------
    int
        Tiles per chunk, at least 1.
    """
    return max(1, chunk_bytes // max(1, stack[:1].nbytes))


def _non_finite_tiles(arr: np.ndarray) -> np.ndarray:
    """Indices of tiles holding NaN or infinity, checked in chunks (no full-size mask)."""
    step = tiles_per_chunk(arr)
    bad = []
    for start in range(0, arr.shape[0], step):
        finite = np.isfinite(arr[start : start + step]).reshape(-1, arr[:1].size).all(axis=1)
        if not finite.all():
            bad.append(start + np.flatnonzero(~finite))
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def stack_info(stack: np.ndarray) -> StackInfo:
    """Shape facts of a stack already checked by ``as_tile_stack``.

    Parameters
    ----------
    stack : numpy.ndarray
        An ``(N, H, W)`` or ``(N, H, W, C)`` tile stack.

    Returns
    -------
    StackInfo
        Its number of tiles, tile size and channels.
    """
    c = stack.shape[3] if stack.ndim == 4 else 1
    return StackInfo(int(stack.shape[0]), int(stack.shape[1]), int(stack.shape[2]), int(c))


@dataclass(frozen=True)
class TiledImage:
    """Tiles cut from one large image, and where each came from.

    ``origins[i]`` is the (row, column) of tile ``i``'s top-left pixel in the
    source image, so a point in the map can be traced back to the image.

    Parameters
    ----------
    tiles : numpy.ndarray
        The tile stack, ``(N, H, W)`` or ``(N, H, W, C)``.
    origins : numpy.ndarray
        ``(N, 2)`` row and column of each tile's top-left pixel in the source image.
    tile_size : tuple of int
        ``(height, width)`` of the tiles.
    source_shape : tuple of int
        Shape of the image the tiles were cut from.
    """

    tiles: np.ndarray
    origins: np.ndarray
    tile_size: tuple[int, int]
    source_shape: tuple[int, ...]


def tile_image(
    image: ArrayLike,
    tile_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    *,
    channel_axis: int | None = None,
    min_foreground: float = 0.0,
    background_threshold: float | None = None,
) -> TiledImage:
    """Cut a 2D image (H, W) or (H, W, C) into a grid of tiles.

    Parameters
    ----------
    image
        The large image; channels on the last axis unless ``channel_axis``.
    tile_size
        Tile side in pixels (or (height, width)).
    stride
        Step between tile origins; defaults to ``tile_size`` (no overlap).
        Tiles that would run past the border are left out.
    min_foreground
        Keep only tiles whose fraction of foreground pixels is at least this
        (0 keeps every tile). Foreground is brighter than ``background_threshold``
        (Otsu's threshold of the image's mean over channels when None); useful
        to skip empty slide background.

    Returns
    -------
    TiledImage
        The tiles and each tile's origin in the image.

    Raises
    ------
    TileStackError
        When the image is not 2D, the tile is larger than the image or no tile passes
        the foreground filter.
    """
    img = np.asarray(image)
    if channel_axis is not None:
        img = np.moveaxis(img, check_axis(channel_axis, img.ndim), -1)
    if img.ndim not in (2, 3):
        raise TileStackError(
            f"tile_image expects one 2D image (H, W) or (H, W, C), got shape {img.shape}."
        )
    th, tw = (tile_size, tile_size) if np.isscalar(tile_size) else tuple(tile_size)
    sh, sw = (
        (th, tw) if stride is None else ((stride, stride) if np.isscalar(stride) else tuple(stride))
    )
    th, tw, sh, sw = int(th), int(tw), int(sh), int(sw)
    if min(th, tw) < 1 or min(sh, sw) < 1:
        raise TileStackError(
            f"Tile size and stride must be positive, got tile {th} x {tw}, stride {sh} x {sw}."
        )
    H, W = img.shape[:2]
    if th > H or tw > W:
        raise TileStackError(f"Tiles of {th} x {tw} do not fit into an image of {H} x {W}.")
    rows = np.arange(0, H - th + 1, sh)
    cols = np.arange(0, W - tw + 1, sw)
    origins = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    if min_foreground > 0:
        grey = img.mean(axis=-1) if img.ndim == 3 else img.astype(np.float64)
        if background_threshold is None:
            from skimage.filters import threshold_otsu

            background_threshold = float(threshold_otsu(grey))
        fg = grey > background_threshold
        # fraction of foreground in each window via an integral image
        ii = np.pad(fg.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        r, c = origins[:, 0], origins[:, 1]
        counts = ii[r + th, c + tw] - ii[r, c + tw] - ii[r + th, c] + ii[r, c]
        origins = origins[counts / (th * tw) >= min_foreground]
    if len(origins) == 0:
        raise TileStackError("No tile passed the foreground filter; lower min_foreground.")
    tiles = np.stack([img[r : r + th, c : c + tw] for r, c in origins])
    return TiledImage(
        tiles=tiles, origins=origins.astype(np.int64), tile_size=(th, tw), source_shape=img.shape
    )
