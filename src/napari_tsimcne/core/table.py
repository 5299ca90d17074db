"""The tables napari-tsimcne writes and reads, one schema for all of them; no Qt.

Three files share it: the map of ``napari-tsimcne fit`` and ``embed`` (``embedding.csv``), the annotations
exported from the Annotate widget (``annotations.csv``) and their autosave. Each is a CSV file with one row
per tile and a subset of the columns of ``COLUMNS``, always in that order:

``tile_index, x, y[, z][, origin_row, origin_col][, label][, annotation, cluster][, outlier][, stack_fingerprint]``

``write_table`` writes any of them (atomically, numbers with full precision) and ``read_table``
reads any of them with one-line reasons for what it refuses; ``read_embedding`` and
``read_annotations`` check what the map and the annotations need.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .persistence import atomic_write

COLUMNS: dict[str, str] = {
    "tile_index": "int64",
    "x": "float64",
    "y": "float64",
    "z": "float64",
    "origin_row": "int64",
    "origin_col": "int64",
    "label": "str",
    "annotation": "str",
    "cluster": "int64",
    "outlier": "float64",
    "stack_fingerprint": "str",
}
"""Every column a table may have, in file order, with its dtype (``"str"``: text, read as written).

tile_index
    The tile's number in its stack (0, 1, ...).
x, y, z
    The tile's place in the map (``z`` only in a 3D map).
origin_row, origin_col
    The top-left pixel of a tile cut from one large image.
label
    A known class of the tile (a name, or a number that ``read_embedding`` returns as an integer).
annotation
    The name given to the tile in the Annotate widget ("" for none).
cluster
    The tile's proposed cluster (-1 for none).
outlier
    How far the tile lies from its neighbours in the map (1 = typical).
stack_fingerprint
    The digest of the tile stack the annotations belong to
    (``napari_tsimcne.core.fingerprint.stack_digest``).
"""

AXES = ("x", "y", "z")
"""Columns of the map's coordinates."""
ORIGIN_COLUMNS = ("origin_row", "origin_col")
"""Columns of the origins of tiles cut from one large image."""
FINGERPRINT_COLUMN = "stack_fingerprint"
"""Column naming the tile stack an annotation file belongs to."""
TEXT_COLUMNS = tuple(c for c, dtype in COLUMNS.items() if dtype == "str")
"""Columns read as text, exactly as written (no "NA" becomes a missing value)."""

_WHOLE_NUMBER = re.compile(r"^\s*[+-]?\d+\s*$")


class TableFileError(ValueError):
    """A table file that cannot be read, or does not fit what is asked of it; the message says why."""


class AnnotationFileError(TableFileError):
    """A CSV file that does not belong to these tiles."""


@dataclass(frozen=True)
class EmbeddingTable:
    """A map read back from CSV.

    Attributes
    ----------
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3), float64.
    origins : numpy.ndarray or None
        (row, col) of each tile in its source image, shape (N, 2), int64; None for a stack of tiles.
    labels : numpy.ndarray or None
        Known classes: integers where every label is a whole number, else text; None when unknown.
    """

    embedding: np.ndarray
    origins: np.ndarray | None = None
    labels: np.ndarray | None = None


# -- building and writing -----------------------------------------------------------


def map_table(
    embedding: np.ndarray,
    *,
    tile_index: np.ndarray | None = None,
    origins: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    annotation: np.ndarray | None = None,
    cluster: np.ndarray | None = None,
    outlier: np.ndarray | None = None,
    fingerprint: str | None = None,
) -> pd.DataFrame:
    """A table of the schema (``COLUMNS``): one row per tile, the columns that are given, in order.

    Parameters
    ----------
    embedding : numpy.ndarray
        The map, shape (N, 2) or (N, 3): columns x, y (and z).
    tile_index : numpy.ndarray, optional
        Tile numbers; 0..N-1 when None.
    origins : numpy.ndarray, optional
        Shape (N, 2): columns origin_row, origin_col.
    labels, annotation : numpy.ndarray, optional
        Written as text (a number label as its digits).
    cluster : numpy.ndarray, optional
        Whole numbers (-1: no cluster).
    outlier : numpy.ndarray, optional
        Outlier scores.
    fingerprint : str, optional
        The tile stack's digest, repeated in every row of ``stack_fingerprint``.

    Returns
    -------
    pandas.DataFrame
        Columns in the order of ``COLUMNS``, with its dtypes.

    Raises
    ------
    ValueError
        If the embedding is not (N, 2) or (N, 3), or a column has another number of rows than it.
    """
    embedding = np.asarray(embedding)
    if embedding.ndim != 2 or embedding.shape[1] not in (2, 3):
        raise ValueError(f"Expected an embedding of shape (N, 2) or (N, 3), got {embedding.shape}.")
    n = len(embedding)
    columns: dict[str, np.ndarray] = {
        "tile_index": np.arange(n) if tile_index is None else np.asarray(tile_index)
    }
    for i, axis in enumerate(AXES[: embedding.shape[1]]):
        columns[axis] = embedding[:, i]
    if origins is not None:
        origins = np.asarray(origins)
        if origins.ndim != 2 or origins.shape[1] != 2:
            raise ValueError(f"Expected origins of shape (N, 2), got {origins.shape}.")
        columns["origin_row"], columns["origin_col"] = origins[:, 0], origins[:, 1]
    for name, values in (
        ("label", labels),
        ("annotation", annotation),
        ("cluster", cluster),
        ("outlier", outlier),
    ):
        if values is not None:
            columns[name] = np.asarray(values)
    for values in columns.values():
        if len(values) != n:
            raise ValueError(f"All columns need {n} rows, got one with {len(values)}.")
    table = pd.DataFrame({name: _as_dtype(values, name) for name, values in columns.items()})
    if fingerprint is not None:
        table[FINGERPRINT_COLUMN] = str(fingerprint)
    return table


def _as_dtype(values, column: str):
    """``values`` in the schema's dtype of ``column`` (text via ``str``, as Python prints each value)."""
    dtype = COLUMNS[column]
    if dtype == "str":
        return pd.Series(values).astype(str).to_numpy(dtype=object)
    return np.asarray(values).astype(dtype)


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write ``table`` as CSV, atomically: an interrupted write leaves the old file (or none), never half of one.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is created when missing. An existing file is replaced.
    table : pandas.DataFrame
        Columns of ``COLUMNS`` (e.g. from ``map_table``); they are written in the schema's order,
        any others after them. Floating-point numbers are written with all their digits (they read back
        exactly).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    napari_tsimcne.core.persistence.OutputFileError
        When the file cannot be written (permissions, read-only file system, disk full).
    """
    order = [c for c in COLUMNS if c in table.columns]
    order += [c for c in table.columns if c not in COLUMNS]
    table = table[order]
    floats = [c for c in order if pd.api.types.is_float_dtype(table[c])]
    if floats:  # float32 as the float64 it equals, with full precision, as repr() writes it
        table = table.astype({c: "float64" for c in floats})
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, lineterminator="\n"))


# -- reading ------------------------------------------------------------------------


def read_table(
    path: str | os.PathLike,
    what: str = "table",
    error: type[Exception] = TableFileError,
    *,
    all_text: bool = False,
) -> pd.DataFrame:
    """Read a CSV table of the schema; text columns stay text, other columns as pandas parses them.

    Blank lines are skipped. Files of earlier versions (the map written with ``\\r\\n`` line ends) read the same.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    what : str, default "table"
        What the file should hold, for the message when it is missing ("No such embedding file: ...").
    error : type, default TableFileError
        The exception class raised for every reason below (one line each).
    all_text : bool, default False
        Read every column as text, exactly as written (e.g. labels in any column of any CSV file).

    Returns
    -------
    pandas.DataFrame
        One row per line after the header.

    Raises
    ------
    TableFileError
        (or ``error``) if the file is missing, unreadable, not text, empty, or a row has another number of
        cells than the header.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"No such {what} file: {path}")
    dtypes = str if all_text else {c: str for c in TEXT_COLUMNS}
    try:
        table = pd.read_csv(
            path,
            dtype=dtypes,
            keep_default_na=False,
            index_col=False,
            encoding="utf-8",
        )
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not a CSV text file ({exc.__class__.__name__}).") from None
    except pd.errors.EmptyDataError:
        raise error(f"{path} is empty.") from None
    except pd.errors.ParserError as exc:
        raise error(_ragged_row(path) or f"Cannot read {path} as a table: {exc}") from None
    except (OSError, ValueError) as exc:
        raise error(f"Cannot read {path}: {exc}") from None
    if _cell_count_differs(path, table):  # a short row is filled in by pandas; find it
        reason = _ragged_row(path)
        if reason is not None:
            raise error(reason)
    return table


def _cell_count_differs(path: Path, table: pd.DataFrame) -> bool:
    """Whether the file's commas differ from a full table's (quoted commas in names count too)."""
    try:
        commas = path.read_bytes().count(b",")
    except OSError:
        return True
    return commas != (len(table.columns) - 1) * (len(table) + 1)


def _ragged_row(path: Path) -> str | None:
    """The first row with another number of cells than the header, as a message; None if there is none."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return None
            for line, row in enumerate(reader, start=2):
                if row and len(row) != len(header):
                    return f"{path}: row {line} has {len(row)} cells, but the header has {len(header)}."
    except (UnicodeDecodeError, csv.Error, OSError):
        return None
    return None


def numbers(
    table: pd.DataFrame, columns, path, error: type[Exception] = TableFileError
) -> pd.DataFrame:
    """``table`` with ``columns`` converted to the schema's number dtypes; refuses any that is not a number.

    Parameters
    ----------
    table : pandas.DataFrame
        As ``read_table`` returns it.
    columns : iterable of str
        Number columns of ``COLUMNS`` present in ``table``.
    path : str or os.PathLike
        The file, for the message.
    error : type, default TableFileError
        The exception class raised.

    Returns
    -------
    pandas.DataFrame
        A copy with those columns as int64 / float64.

    Raises
    ------
    TableFileError
        (or ``error``) naming the first value that is not a number (or not a whole number where one is needed).
    """
    out = table.copy()
    for column in columns:
        dtype = COLUMNS[column]
        values = out[column]
        try:
            empty = (
                values.isna() if pd.api.types.is_numeric_dtype(values) else values.str.strip() == ""
            )
            if (
                empty.any()
            ):  # an empty cell ("nan" is a number; pandas reads only empty cells as missing)
                row = int(np.flatnonzero(empty.to_numpy())[0])
                raise ValueError(f"an empty cell in column {column} (data row {row + 1})")
            if not pd.api.types.is_numeric_dtype(
                values
            ):  # text: as Python reads it ("nan", "inf", " 2")
                values = pd.Series(np.asarray(values.tolist(), dtype=float), index=values.index)
            if dtype == "int64" and not pd.api.types.is_integer_dtype(values):
                as_int = values.astype("int64")
                if not np.array_equal(as_int.to_numpy(), values.to_numpy()):
                    raise ValueError(f"{column} holds a number that is not whole")
                values = as_int
            out[column] = values.astype(dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise error(f"{path} holds a value that is not a number: {exc}") from None
    return out


def labels_of(values: pd.Series) -> np.ndarray:
    """Labels as read: integers (int64) where every value is a whole number, else the text unchanged.

    Parameters
    ----------
    values : pandas.Series
        The ``label`` column of ``read_table`` (text).

    Returns
    -------
    numpy.ndarray
        int64, or a NumPy string array.
    """
    text = values.astype(str)
    if len(text) and text.str.match(_WHOLE_NUMBER).all():
        try:
            return text.astype("int64").to_numpy()
        except (ValueError, OverflowError):
            pass
    return np.asarray(text.tolist())


def read_embedding(
    path: str | os.PathLike, error: type[Exception] = TableFileError
) -> EmbeddingTable:
    """Read a map written by ``write_table`` (``embedding.csv``): coordinates, origins and labels.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; it needs x and y columns (z in a 3D map); tile_index is not needed.
    error : type, default TableFileError
        The exception class raised.

    Returns
    -------
    EmbeddingTable
        The map, the origins when the file has both origin columns, the labels when it has a label column.

    Raises
    ------
    TableFileError
        (or ``error``) as ``read_table``, or if x and y are missing or hold a value that is not a number.
    """
    table = read_table(path, "embedding", error)
    axes = [a for a in AXES if a in table.columns]
    if axes[:2] != ["x", "y"]:
        raise error(
            f"{path} has no x and y columns (columns: {', '.join(map(str, table.columns))})."
        )
    has_origins = all(c in table.columns for c in ORIGIN_COLUMNS)
    table = numbers(table, axes + (list(ORIGIN_COLUMNS) if has_origins else []), path, error)
    embedding = table[axes].to_numpy(dtype=float)
    origins = table[list(ORIGIN_COLUMNS)].to_numpy(dtype=np.int64) if has_origins else None
    labels = labels_of(table["label"]) if "label" in table.columns else None
    return EmbeddingTable(embedding, origins, labels)


def check_fingerprint(table: pd.DataFrame, path, fingerprint: str | None) -> None:
    """Refuse a table whose ``stack_fingerprint`` column names another tile stack than ``fingerprint``.

    Parameters
    ----------
    table : pandas.DataFrame
        As ``read_table`` returns it; a table without the column passes.
    path : str or os.PathLike
        The file, for the message.
    fingerprint : str or None
        The digest of the tiles shown; None passes every table.

    Raises
    ------
    AnnotationFileError
        If the column names another stack.
    """
    if fingerprint is None or FINGERPRINT_COLUMN not in table.columns or not len(table):
        return
    saved = set(table[FINGERPRINT_COLUMN].astype(str))
    if saved != {fingerprint}:
        raise AnnotationFileError(
            f"{path} was saved for another tile stack (fingerprint {sorted(saved)[0]}); these tiles have "
            f"fingerprint {fingerprint}: same count, other pixels or order. Not loaded."
        )


def check_tile_index(table: pd.DataFrame, path, n_tiles: int) -> np.ndarray:
    """The ``tile_index`` column as integers; refused unless it lists every tile 0..n_tiles-1 exactly once.

    Parameters
    ----------
    table : pandas.DataFrame
        As ``read_table`` returns it, with a ``tile_index`` column.
    path : str or os.PathLike
        The file, for the message.
    n_tiles : int
        The number of tiles of the map.

    Returns
    -------
    numpy.ndarray
        The tile numbers, in the file's order.

    Raises
    ------
    AnnotationFileError
        If the table has another number of rows, or tile_index holds other values.
    """
    if len(table) != n_tiles:
        raise AnnotationFileError(
            f"{path} annotates {len(table)} tiles, but the map has {n_tiles}. It belongs to another tile stack."
        )
    try:
        index = table["tile_index"].astype(int).to_numpy()
    except (TypeError, ValueError, OverflowError):
        raise AnnotationFileError(f"{path}: tile_index must hold whole numbers.") from None
    if not np.array_equal(np.sort(index), np.arange(n_tiles)):
        raise AnnotationFileError(
            f"{path}: tile_index must list every tile 0..{n_tiles - 1} exactly once."
        )
    return index


def read_annotations(
    path: str | os.PathLike, n_tiles: int, fingerprint: str | None = None
) -> pd.DataFrame:
    """Read annotations (an export or an autosave) of a map of ``n_tiles`` tiles.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; it needs tile_index and annotation columns (cluster is optional).
    n_tiles : int
        The number of tiles of the map; the file must list each of 0..n_tiles-1 exactly once.
    fingerprint : str, optional
        The digest of the map's tiles; a file whose ``stack_fingerprint`` names another stack is refused
        (files without the column are checked by their tile count only).

    Returns
    -------
    pandas.DataFrame
        Indexed 0..n_tiles-1, with columns ``annotation`` (text, "" for none), ``cluster`` and, when
        the file has them, the map coordinates ``x``, ``y`` (``z``) it was written with. ``cluster``
        is an int, -1 for none or for a value that is not a number.

    Raises
    ------
    AnnotationFileError
        With a one-line reason: unreadable, not an annotation export, another number of tiles, another
        tile stack, or a tile_index that does not list every tile exactly once.
    """
    table = read_table(path, "annotations", AnnotationFileError)
    if "tile_index" not in table.columns or "annotation" not in table.columns:
        raise AnnotationFileError(
            f"{path} has no 'tile_index' and 'annotation' columns; is it an annotation export?"
        )
    if len(table) != n_tiles:
        check_tile_index(table, path, n_tiles)  # the count's message comes first
    check_fingerprint(table, path, fingerprint)
    index = check_tile_index(table, path, n_tiles)
    out = pd.DataFrame(index=pd.RangeIndex(n_tiles))
    out["annotation"] = ""
    out["cluster"] = -1
    out.loc[index, "annotation"] = table["annotation"].astype(str).to_numpy()
    if "cluster" in table.columns:
        cluster = pd.to_numeric(table["cluster"], errors="coerce").to_numpy(dtype=float)
        whole = np.isfinite(cluster) & (np.abs(cluster) < 2**53)
        out.loc[index, "cluster"] = np.where(whole, cluster, -1).astype(int)
    for axis in ("x", "y", "z"):  # where each tile was on the map the file was written from
        if axis in table.columns:
            out[axis] = np.nan
            out.loc[index, axis] = pd.to_numeric(table[axis], errors="coerce").to_numpy(float)
    return out
