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
    tiles: np.ndarray
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    origins: np.ndarray | None = None
    source_image: np.ndarray | None = None
    description: str = ""


def data_dirs() -> list[Path]:
    """Folders searched for the shared data files."""
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
    """The first existing ``name`` in :func:`data_dirs`, or None."""
    for d in data_dirs():
        if (d / name).is_file():
            return d / name
    return None


def load_pbc(n_tiles: int | None = None, seed: int = 0) -> SampleTiles:
    """The PBC blood-cell tiles (all, or a stratified-by-chance random subset of ``n_tiles``)."""
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
    """32 x 32 tiles (stride 16) of scikit-image's bundled immunohistochemistry image."""
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
    """Blood cells when the data file is present, else the bundled histology tiles."""
    try:
        return load_pbc(n_tiles, seed)
    except FileNotFoundError:
        return load_histology()
