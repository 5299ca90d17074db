"""Reader contribution: open the output folder of ``napari-tsimcne fit`` (or ``demo``) in napari.

The folder holds ``embedding.csv`` and ``summary.json`` (and ``model.tsimcne``, ``map.png``). The reader
returns the tiles as an image layer (read again from the input recorded in ``summary.json``, with the same
tiling options), the map as a points layer beside them, as the Train widget draws it, with the annotations
of ``annotations.csv`` when the folder has one, and, for tiles cut from one large image, that image. The
reader returns layer data only; the plugin's dock widgets link the map to its tiles (selecting points shows
their tiles) when they see these layers in the viewer (``.crosslink.link_opened_outputs``).
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .crosslink import TOKEN_KEY

EMBEDDING_FILE = "embedding.csv"
SUMMARY_FILE = "summary.json"
ANNOTATIONS_FILE = "annotations.csv"
MODEL_SUFFIX = ".tsimcne"

LayerData = tuple[Any, dict, str]


def output_folder(path: str | os.PathLike) -> Path | None:
    """The t-SimCNE output folder ``path`` is (or holds a file of), or None.

    A folder counts when it has both ``embedding.csv`` and ``summary.json``; ``path`` may also be a
    ``.tsimcne`` model file, ``embedding.csv`` or ``summary.json`` inside such a folder.

    Parameters
    ----------
    path : str or os.PathLike
        What napari was asked to open.

    Returns
    -------
    Path or None
        The output folder, or None for any other path.
    """
    try:
        p = Path(os.fspath(path))
    except TypeError:
        return None
    if p.is_file() and (p.suffix == MODEL_SUFFIX or p.name in (EMBEDDING_FILE, SUMMARY_FILE)):
        p = p.parent
    if p.is_dir() and (p / EMBEDDING_FILE).is_file() and (p / SUMMARY_FILE).is_file():
        return p
    return None


def get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[LayerData]] | None:
    """The napari reader hook: ``read_output`` for a t-SimCNE output folder, else None.

    Parameters
    ----------
    path : str, os.PathLike or list
        What napari was asked to open (a list of one path is accepted).

    Returns
    -------
    callable or None
        ``read_output``, or None so that napari asks another reader.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return read_output if output_folder(path) is not None else None


def read_output(path: str | os.PathLike | list) -> list[LayerData]:
    """Layer data tuples of an output folder: [source image,] tiles, map (tiles omitted, with a warning, if unreadable).

    The map is made by ``.map_layer.map_layer_data``, as the Train widget makes it, with the annotations of
    ``annotations.csv`` when the folder has them (a file of other tiles is skipped with a warning).

    Parameters
    ----------
    path : str, os.PathLike or list
        The output folder, or a file in it (a list of one path is accepted).

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` for napari: the source image (tiles cut from one image), the tiles,
        and the map (``"points"``). They share a token in their metadata, by which the dock widgets link
        the map to its tiles.

    Raises
    ------
    ValueError
        If ``path`` is not an output folder.
    napari_tsimcne.core.io.InputFileError
        If ``embedding.csv`` cannot be read (the reason in one line).
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    folder = output_folder(path)
    if folder is None:
        raise ValueError(
            f"{path} is not a napari-tsimcne output folder (needs {EMBEDDING_FILE} and {SUMMARY_FILE})."
        )
    from napari_tsimcne.core.io import read_embedding_csv

    summary = json.loads((folder / SUMMARY_FILE).read_text())
    table = read_embedding_csv(folder / EMBEDDING_FILE)
    n = len(table.embedding)
    token = uuid.uuid4().hex
    tiles_name = str(summary.get("data") or folder.name)

    sample = _load_tiles(summary, folder, n)
    layers: list[LayerData] = []
    labels = table.labels
    class_names: tuple[str, ...] = ()
    origins = table.origins
    if sample is not None:
        tiles, labels_read, class_names, origins_read, source = sample
        labels = labels_read if labels_read is not None else labels
        origins = origins_read if origins_read is not None else origins
        tile_hw = (int(tiles.shape[1]), int(tiles.shape[2]))
    else:
        tiles, source = None, None
        shape = summary.get("tile_shape") or [1, 1]
        tile_hw = (int(shape[0]), int(shape[1]))

    map_layer = _map_layer(
        table.embedding,
        tile_hw,
        tiles_name,
        labels,
        class_names,
        folder,
        token,
        _stack_digest(tiles, summary),
    )
    if tiles is not None:
        meta: dict[str, Any] = {
            TOKEN_KEY: token,
            "description": f"tiles of the t-SimCNE map in {folder}",
        }
        if labels is not None:
            meta["labels"] = np.asarray(labels)
            meta["class_names"] = tuple(class_names)
        if origins is not None:
            meta["origins"] = np.asarray(origins, dtype=np.int64)
        if source is not None:
            source_name = f"{tiles_name} image"
            meta["source_layer"] = source_name
            layers.append(
                _source_layer(
                    source, source_name, tile_hw, map_layer[1]["metadata"]["tsimcne_side"], token
                )
            )
        rgb = tiles.ndim == 4 and tiles.shape[-1] in (3, 4)
        layers.append((tiles, {"name": tiles_name, "rgb": rgb, "metadata": meta}, "image"))
    layers.append(map_layer)
    return layers


# -- tiles -----------------------------------------------------------------------


def _load_tiles(summary: dict, folder: Path, n: int):
    """(tiles, labels, class_names, origins, source image or None) from the recorded input, or None with a warning."""
    record = summary.get("input")
    if not isinstance(record, dict):
        warnings.warn(
            f"{folder / SUMMARY_FILE} does not record the input tiles; showing the map without them.",
            stacklevel=3,
        )
        return None
    try:
        if record.get("sample"):
            got = _sample_tiles(record, summary)
        else:
            got = _file_tiles(record, folder)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the map, with the reason
        warnings.warn(
            f"The tiles of {folder} could not be read ({exc}); showing the map without them.",
            stacklevel=3,
        )
        return None
    if len(got[0]) != n:
        warnings.warn(
            f"The input now holds {len(got[0])} tiles but the map of {folder} has {n}; "
            "showing the map without the tiles.",
            stacklevel=3,
        )
        return None
    return got


def _file_tiles(record: dict, folder: Path):
    from napari_tsimcne.core.io import read_array, read_tiles

    path = Path(record["path"])
    if not path.exists():
        # the output folder and the input may have moved together
        for candidate in (folder / path.name, folder.parent / path.name):
            if candidate.exists():
                path = candidate
                break
    tile_size, channel_axis = record.get("tile_size"), record.get("channel_axis")
    data = read_tiles(
        path,
        tile_size,
        record.get("stride"),
        min_foreground=float(record.get("min_foreground") or 0.0),
        channel_axis=channel_axis,
    )
    source = None
    if tile_size is not None:
        image = read_array(path)
        if channel_axis is not None:
            image = np.moveaxis(image, channel_axis, -1)
        if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4)):
            source = image
    return data.tiles, data.labels, tuple(data.class_names), data.origins, source


def _sample_tiles(record: dict, summary: dict):
    from napari_tsimcne.core.sample import load_sample

    n_tiles, seed = record.get("n_tiles"), int(record.get("seed") or 0)
    sample = load_sample(n_tiles=n_tiles, seed=seed)
    if summary.get("data") and sample.name != summary["data"]:
        raise ValueError(
            f"the map is of {summary['data']!r} but the sample found here is {sample.name!r}"
        )
    keep = slice(n_tiles)
    labels = None if sample.labels is None else sample.labels[keep]
    origins = None if sample.origins is None else sample.origins[keep]
    return sample.tiles[keep], labels, tuple(sample.class_names), origins, sample.source_image


def _source_layer(
    image: np.ndarray, name: str, tile_hw: tuple[int, int], side: float, token: str
) -> LayerData:
    """The image the tiles were cut from, scaled to the width of tiles and map, below them."""
    h, w = tile_hw
    width = 1.25 * w + side
    scale = width / max(image.shape[:2])
    rgb = image.ndim == 3
    kwargs = {
        "name": name,
        "rgb": rgb,
        "scale": (scale, scale),
        "translate": (side + 0.25 * h, 0.0),
        "metadata": {TOKEN_KEY: token},
    }
    return image, kwargs, "image"


# -- map -------------------------------------------------------------------------


def _stack_digest(tiles, summary: dict) -> str | None:
    """The fingerprint of the tiles (as the Annotate widget computes it), else the one in ``summary.json``."""
    from napari_tsimcne.core.fingerprint import stack_digest

    if tiles is not None:
        return stack_digest(tiles)
    recorded = summary.get("fingerprint")
    return recorded.get("digest") if isinstance(recorded, dict) else None


def _map_layer(
    embedding: np.ndarray,
    tile_hw: tuple[int, int],
    tiles_name: str,
    labels,
    class_names,
    folder: Path,
    token: str,
    fingerprint: str | None = None,
) -> LayerData:
    """The points layer of the map, made by ``.map_layer.map_layer_data`` as the Train widget makes it,
    with the annotations of ``annotations.csv`` when the folder has them."""
    from .map_layer import initial_features, map_layer_data

    meta = {} if labels is None else {"labels": labels, "class_names": tuple(class_names)}
    feats = _merge_annotations(initial_features(embedding, meta), folder, fingerprint)
    return map_layer_data(
        embedding,
        tile_hw,
        tiles_name,
        features=feats,
        extra_metadata={"tsimcne_output": str(folder), TOKEN_KEY: token},
    )


def _merge_annotations(
    feats: pd.DataFrame, folder: Path, fingerprint: str | None = None
) -> pd.DataFrame:
    """Annotation and cluster columns from ``annotations.csv`` when the folder has one of these tiles.

    A file that names another tile stack in its ``stack_fingerprint`` column is skipped with a warning.
    """
    path = folder / ANNOTATIONS_FILE
    if not path.is_file():
        return feats
    from .annotations import AnnotationFileError, import_csv

    try:
        table = import_csv(path, len(feats), fingerprint)
    except AnnotationFileError as exc:
        warnings.warn(f"Annotations not loaded: {exc}", stacklevel=4)
        return feats
    rows = feats["tile_index"].to_numpy()
    feats["annotation"] = table.loc[rows, "annotation"].astype(str).to_numpy()
    feats["cluster"] = table.loc[rows, "cluster"].to_numpy().astype(int)
    return feats
