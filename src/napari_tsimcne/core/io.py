"""Reading tile stacks from files and writing maps (CSV, PNG); no Qt.

Used by the command-line tool and reusable from the napari plugin or a script.
Every write is atomic (see ``napari_tsimcne.core.persistence.atomic_write``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .persistence import atomic_write
from .table import EmbeddingTable, map_table, read_embedding, read_table, write_table
from .tiles import MAX_CHANNELS, TileStackError, check_axis, tile_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
"""File types read from a folder of tiles."""


class InputFileError(TileStackError):
    """An input file or folder that is missing or cannot be read.

    Parameters
    ----------
    message : str
        What is wrong and what to do.
    *parameters : str
        The parameters the message names, as for ``TileStackError``.
    """


@dataclass(frozen=True)
class TileData:
    """Tiles read from a file, with what is known about them.

    Parameters
    ----------
    tiles : numpy.ndarray
        The stack, (N, H, W) or (N, H, W, C).
    name : str
        A name for the stack (the file's stem).
    labels : numpy.ndarray, optional
        One known class per tile (from a ``.npz`` file's ``labels``).
    origins : numpy.ndarray, optional
        (N, 2) row and column of each tile in the image it was cut from.
    class_names : tuple of str
        Names of the label numbers, when the file has them.
    """

    tiles: np.ndarray
    name: str
    labels: np.ndarray | None = None
    origins: np.ndarray | None = None
    class_names: tuple[str, ...] = ()


# -- reading -------------------------------------------------------------------


def _read_image(path: Path) -> np.ndarray:
    """One image file as an array (TIFF via tifffile, everything else via imageio); one-line errors."""
    try:
        if path.stat().st_size == 0:
            raise InputFileError(f"Cannot read {path} as an image: the file is empty.")
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        import imageio.v3 as iio

        with warnings.catch_warnings():
            # while it looks for a plugin that reads the file, imageio may load deprecated ones that warn
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(iio.imread(path))
    except InputFileError:
        raise
    except Exception as exc:  # unreadable or not an image; imageio's messages run over many lines
        raise InputFileError(
            f"Cannot read {path} as an image (corrupt, truncated or not a {path.suffix.lstrip('.').upper()} file): "
            f"{exc.__class__.__name__}"
        ) from None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Images (key ``images`` or the first array), labels (key ``labels``) and class names (key ``classes``)."""
    with np.load(path, allow_pickle=False) as d:
        keys = list(d.keys())
        if not keys:
            raise InputFileError(f"{path} holds no arrays.")
        images = d["images"] if "images" in keys else d[keys[0]]
        labels = d["labels"] if "labels" in keys else None
        classes = tuple(str(c) for c in d["classes"]) if "classes" in keys else ()
    return images, labels, classes


def _read_folder(path: Path) -> np.ndarray:
    """All image files in a folder, sorted by name, stacked; they must share one shape."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputFileError(
            f"The folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})."
        )
    images = [_read_image(p) for p in files]
    first = images[0].shape
    for p, img in zip(files, images):
        if img.shape != first:
            raise TileStackError(
                f"All tiles in a folder must have the same shape: {files[0].name} is {first}, {p.name} is {img.shape}."
            )
    return np.stack(images)


def _read_array(
    path: Path, mmap_mode: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """The raw array (and labels, class names) stored at ``path``; a .npy is memory-mapped with ``mmap_mode``."""
    if not path.exists():
        raise InputFileError(f"No such file or folder: {path}")
    if path.is_dir():
        return _read_folder(path), None, ()
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False, mmap_mode=mmap_mode), None, ()
        if suffix == ".npz":
            return _read_npz(path)
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(f"Cannot read {path}: {exc.__class__.__name__}: {exc}") from None
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path), None, ()
    raise InputFileError(
        f"Unknown input type {suffix or '(no suffix)'} for {path}; use .tif/.tiff, .npy, .npz, an image file "
        "or a folder of image files."
    )


def read_array(path: str | os.PathLike, *, mmap_mode: str | None = None) -> np.ndarray:
    """The array stored at ``path`` as it is, before any tiling or axis moves.

    Parameters
    ----------
    path : str or os.PathLike
        A .tif/.tiff, .npy, .npz or image file, or a folder of image files.
    mmap_mode : str, optional
        Memory-map a .npy file in this mode (``"r"``) instead of reading it.

    Returns
    -------
    numpy.ndarray
        The stored array (for a folder, its images stacked).

    Raises
    ------
    InputFileError
        When the file is missing, unreadable or of an unknown type.
    """
    return _read_array(Path(path), mmap_mode)[0]


def read_tiles(
    path: str | os.PathLike,
    tile_size: int | None = None,
    stride: int | None = None,
    *,
    min_foreground: float = 0.0,
    channel_axis: int | None = None,
    mmap_mode: str | None = "r",
) -> TileData:
    """Read a tile stack from a TIFF stack, .npy, .npz, a folder of images, or one large image.

    A .npy file is memory-mapped (read-only with the default ``mmap_mode="r"``):
    a stack larger than memory opens at once, and a uint8 stack is trained on
    without being copied into memory. Pass ``mmap_mode=None`` to read it whole.

    With ``tile_size`` the file must hold one 2D image (H, W) or (H, W, C);
    it is cut with ``napari_tsimcne.tile_image`` and the tile origins are
    kept. Without it the file must hold a stack (N, H, W) or (N, H, W, C).
    ``channel_axis`` names the channel axis of the data when it is not the last.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF stack, .npy, .npz (key ``images`` or the first array; ``labels`` and ``classes`` if present),
        a folder of image files (sorted by name, all of one shape), or one large image.
    tile_size : int, optional
        Cut one large image into square tiles of this side.
    stride : int, optional
        Step between tiles when cutting (``tile_size`` when None: tiles side by side).
    min_foreground : float, default 0.0
        Cutting keeps only tiles with at least this fraction of foreground.
    channel_axis : int, optional
        The axis of the channels when it is not the last.
    mmap_mode : str or None, default "r"
        How a .npy file is memory-mapped (None: read it whole).

    Returns
    -------
    TileData
        The tiles (N, H, W) or (N, H, W, C), a name (the file's stem), and the labels, class names and
        origins where known.

    Raises
    ------
    TileStackError
        (or its subclass ``InputFileError``) with a one-line reason.
    """
    path = Path(path)
    array, labels, classes = _read_array(path, mmap_mode)
    name = path.stem if path.is_file() else path.name
    if tile_size is not None:
        if channel_axis is not None:
            check_axis(channel_axis, array.ndim)
        square_tiles = (
            array.ndim == 3 and array.shape[1] == array.shape[2] > 4
        )  # (N, H, H), not (H, W, C)
        if (
            channel_axis is None
            and array.ndim == 3
            and (array.shape[-1] > MAX_CHANNELS or square_tiles)
        ):
            raise TileStackError(
                f"{path.name} has shape {array.shape}, which looks like a stack of tiles, not one image: "
                "leave out tile_size (or, if the first axis holds the channels, pass channel_axis=0).",
                "tile_size",
                "channel_axis",
            )
        tiled = tile_image(
            array, tile_size, stride, channel_axis=channel_axis, min_foreground=min_foreground
        )
        return TileData(tiled.tiles, name, origins=tiled.origins)
    if channel_axis is not None:
        if array.ndim != 4:
            raise TileStackError(
                f"channel_axis needs a 4D stack, but {path.name} has shape {array.shape}.",
                "channel_axis",
            )
        array = np.moveaxis(array, check_axis(channel_axis, array.ndim), -1)
    if array.ndim < 2:
        raise TileStackError(
            f"{path.name} holds an array of shape {array.shape}, not images: expected a stack "
            "(N, H, W) or (N, H, W, C), or one image with tile_size=N.",
            "tile_size",
        )
    if _looks_channels_first(array):
        raise TileStackError(
            f"{path.name} has shape {array.shape}: one image with its {array.shape[0]} channels first, or a stack of "
            f"{array.shape[0]} grey tiles? For one image pass tile_size=N and channel_axis=0 to cut it into "
            "tiles; for a stack of N x C x H x W tiles pass channel_axis=1.",
            "tile_size",
            "channel_axis",
        )
    if array.ndim == 2 or (
        array.ndim == 3 and array.shape[-1] in (3, 4) and min(array.shape[:2]) > 64
    ):
        raise TileStackError(
            f"{path.name} holds one image of shape {array.shape}, not a stack of tiles; "
            "cut it into tiles with tile_size=N.",
            "tile_size",
        )
    if labels is not None and len(labels) != len(array):
        raise TileStackError(f"{path.name} has {len(array)} tiles but {len(labels)} labels.")
    return TileData(
        array, name, labels=None if labels is None else np.asarray(labels), class_names=classes
    )


def _looks_channels_first(array: np.ndarray) -> bool:
    """(C, H, W) with a few channels and large sides: one image, channels first (e.g. a 3 x 256 x 256 TIFF)."""
    return array.ndim == 3 and array.shape[0] <= 4 and min(array.shape[1:]) > 64


def read_labels(path: str | os.PathLike, column: str = "label") -> np.ndarray:
    """Labels from a .npy, an .npz (key ``labels`` or the first array) or a CSV (``column``).

    Parameters
    ----------
    path : str or os.PathLike
        The labels file.
    column : str, default "label"
        The column of a CSV file that holds the labels.

    Returns
    -------
    numpy.ndarray
        One label per tile; labels from a CSV file are text, exactly as written.

    Raises
    ------
    InputFileError
        With a one-line reason: missing, unreadable, not one of these types, or no such column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"No such labels file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as d:
                return d["labels"] if "labels" in d else d[list(d.keys())[0]]
        if suffix == ".csv":
            table = _read_csv_columns(path)
            if column not in table:
                raise InputFileError(
                    f"{path} has no column {column!r} (columns: {', '.join(table)})."
                )
            return np.asarray(table[column])
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(
            f"Cannot read labels from {path}: {exc.__class__.__name__}: {exc}"
        ) from None
    raise InputFileError(f"Labels must be a .npy, .npz or .csv file, got {path.name}.")


# -- CSV -----------------------------------------------------------------------


def write_embedding_csv(
    path: str | os.PathLike,
    embedding: np.ndarray,
    origins: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> Path:
    """Write the map as CSV, atomically: ``tile_index, x, y`` (``z`` in 3D), ``origin_row, origin_col``, ``label``.

    The columns are those of ``napari_tsimcne.core.table.COLUMNS``; origins and labels only when given.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced if it exists; an interrupted write leaves the old one).
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3).
    origins : numpy.ndarray, optional
        (row, col) of each tile cut from one large image, shape (N, 2).
    labels : numpy.ndarray, optional
        Known classes, one per tile.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If a column has another number of rows than the embedding.
    napari_tsimcne.core.persistence.OutputFileError
        When the file cannot be written.
    """
    return write_table(path, map_table(embedding, origins=origins, labels=labels))


def read_embedding_csv(path: str | os.PathLike) -> EmbeddingTable:
    """Read a CSV written by ``write_embedding_csv`` (by this or an earlier version).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; it needs x and y columns.

    Returns
    -------
    EmbeddingTable
        The map, and the origins and labels when the file has them.

    Raises
    ------
    InputFileError
        With a one-line reason: missing, not a CSV text file, empty, a row with another number of cells than
        the header, no x and y columns, or a value that is not a number.
    """
    return read_embedding(path, error=InputFileError)


def _read_csv_columns(path: Path) -> dict[str, np.ndarray]:
    """The columns of a CSV file as text, by name (raises ``InputFileError`` with the reason)."""
    table = read_table(path, "CSV", InputFileError, all_text=True)
    return {str(c): np.asarray(table[c].tolist(), dtype=str) for c in table.columns}


# -- PNG -----------------------------------------------------------------------


def plot_map(
    path: str | os.PathLike,
    embedding: np.ndarray,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
    title: str = "t-SimCNE map",
) -> Path:
    """Save a scatter plot of the first two map axes (coloured by label when given) as an image file.

    Parameters
    ----------
    path : str or os.PathLike
        The image file; its suffix names the format (PNG when it has none). Written atomically.
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3) (the third axis is not drawn).
    labels : numpy.ndarray, optional
        One class per tile: one colour per class, with a legend for up to 20 classes.
    class_names : sequence of str, optional
        Names of the integer classes 0, 1, ... for the legend.
    title : str, default "t-SimCNE map"
        The plot's title.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    napari_tsimcne.core.persistence.OutputFileError
        When the file cannot be written.
    """
    from matplotlib.figure import Figure  # Agg canvas; no GUI backend is touched

    embedding = np.asarray(embedding)
    fig = Figure(figsize=(7, 7), dpi=120)
    ax = fig.add_subplot()
    size = max(0.5, min(8.0, 20000 / max(len(embedding), 1) ** 1.1))
    if labels is None:
        ax.scatter(
            embedding[:, 0], embedding[:, 1], s=size, c="#1f77b4", linewidths=0, rasterized=True
        )
    else:
        _scatter_by_label(ax, embedding, np.asarray(labels), class_names, size)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    fig.tight_layout()
    suffix = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix))


def _scatter_by_label(
    ax, embedding: np.ndarray, labels: np.ndarray, class_names, size: float
) -> None:
    classes = np.unique(labels)
    cmap = _colours(len(classes))
    for i, c in enumerate(classes):
        sel = labels == c
        name = str(c)
        if (
            class_names is not None
            and np.issubdtype(type(c), np.integer)
            and 0 <= int(c) < len(class_names)
        ):
            name = class_names[int(c)]
        ax.scatter(
            embedding[sel, 0],
            embedding[sel, 1],
            s=size,
            color=cmap[i],
            linewidths=0,
            label=name,
            rasterized=True,
        )
    if len(classes) <= 20:
        ax.legend(markerscale=max(1.0, 6 / size), fontsize="small", frameon=False, loc="best")


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
