"""Real sample tiles that work offline.

Two sources, in order of preference:

1. ``pbc28.npz`` (peripheral blood cells, 28 x 28 RGB, 8 labelled classes),
   found through ``$NAPARI_TSIMCNE_DATA`` or a ``shared/data`` folder beside
   the working directory or the source checkout. It is never downloaded.
2. Tiles cut from scikit-image's bundled immunohistochemistry image (a real
   512 x 512 RGB histology micrograph that ships inside scikit-image), 32 x 32
   tiles with stride 16. No labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .tiles import tile_image

PBC_FILE = "pbc28.npz"


@dataclass(frozen=True)
class SampleTiles:
    """A tile stack with optional labels, and what it is."""

    name: str
    """Short name, e.g. ``"blood cells (PBC)"``."""
    tiles: np.ndarray
    """The tile stack, ``(N, H, W)`` or ``(N, H, W, C)``."""
    labels: np.ndarray | None = None
    """Class index of each tile (for scoring the map only), or None."""
    class_names: tuple[str, ...] = ()
    """Name of each class index in ``labels``."""
    origins: np.ndarray | None = None
    """``(N, 2)`` row and column of each tile in ``source_image``, or None."""
    source_image: np.ndarray | None = None
    """The image the tiles were cut from, or None."""
    description: str = ""
    """One sentence on where the tiles come from."""


def data_dirs() -> list[Path]:
    """Folders searched for the shared data files.

    ``NAPARI_TSIMCNE_DATA`` first, then ``shared/data`` and ``.data`` beside the working
    folder and the package's parent folders.

    Returns
    -------
    list of pathlib.Path
        The folders, each once, in the order searched.
    """
    dirs = []
    if os.environ.get("NAPARI_TSIMCNE_DATA"):
        dirs.append(Path(os.environ["NAPARI_TSIMCNE_DATA"]))
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        dirs += [base / "shared" / "data", base.parent / "shared" / "data", base / ".data"]
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_data_file(name: str) -> Path | None:
    """The first existing ``name`` in ``data_dirs``, or None.

    Parameters
    ----------
    name : str
        A file name, e.g. ``"pbc.npz"``.

    Returns
    -------
    pathlib.Path or None
        Its path, or None when no folder holds it.
    """
    for d in data_dirs():
        if (d / name).is_file():
            return d / name
    return None


def load_pbc(n_tiles: int | None = None, seed: int = 0) -> SampleTiles:
    """The PBC blood-cell tiles (all, or a stratified-by-chance random subset of ``n_tiles``).

    Parameters
    ----------
    n_tiles : int, optional
        Tiles to draw at random (None: all 17,092).
    seed : int
        Seed of the draw.

    Returns
    -------
    SampleTiles
        The tiles with their cell-type labels.

    Raises
    ------
    FileNotFoundError
        When the data file is in none of ``data_dirs`` (set ``NAPARI_TSIMCNE_DATA``).
    """
    path = find_data_file(PBC_FILE)
    if path is None:
        raise FileNotFoundError(
            f"{PBC_FILE} was not found in any of: {', '.join(str(d) for d in data_dirs()[:4])} ... "
            "Set NAPARI_TSIMCNE_DATA to the folder that holds it."
        )
    with np.load(path) as d:
        tiles, labels, classes = d["images"], d["labels"], tuple(str(c) for c in d["classes"])
    if n_tiles is not None and n_tiles < len(tiles):
        idx = np.sort(np.random.default_rng(seed).choice(len(tiles), n_tiles, replace=False))
        tiles, labels = tiles[idx], labels[idx]
    return SampleTiles(
        "blood cells (PBC)",
        tiles,
        labels,
        classes,
        description=f"{len(tiles)} peripheral blood cells, 28 x 28 RGB, from {path}",
    )


def load_histology() -> SampleTiles:
    """32 x 32 tiles (stride 16) of scikit-image's bundled immunohistochemistry image.

    Returns
    -------
    SampleTiles
        RGB tiles without labels, with their origins and the source image.
    """
    from skimage import data

    image = data.immunohistochemistry()
    tiled = tile_image(image, 32, 16)
    return SampleTiles(
        "histology (IHC)",
        tiled.tiles,
        origins=tiled.origins,
        source_image=image,
        description=f"{len(tiled.tiles)} tiles of 32 x 32 cut from scikit-image's immunohistochemistry image",
    )


def load_sample(n_tiles: int | None = 4000, seed: int = 0) -> SampleTiles:
    """Blood cells when the data file is present, else the bundled histology tiles.

    Parameters
    ----------
    n_tiles : int, optional
        Blood-cell tiles to draw at random (None: all).
    seed : int
        Seed of the draw.

    Returns
    -------
    SampleTiles
        The tiles.
    """
    try:
        return load_pbc(n_tiles, seed)
    except FileNotFoundError:
        return load_histology()
