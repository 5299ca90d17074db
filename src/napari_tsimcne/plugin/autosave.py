"""Autosave of annotations (no Qt): one CSV per tile stack, written atomically in a background thread.

Files live in ``$NAPARI_TSIMCNE_AUTOSAVE_DIR`` or else in the user data folder
(``~/.local/share/napari-tsimcne/autosave`` on Linux), named ``<layer name>-<stack fingerprint>.autosave.csv``.
The fingerprint (shape, dtype and a hash of a few tiles) ties a file to its stack, so renaming the layer
still finds it, and a file of another stack is refused. The content is the export CSV, so "Import CSV…" reads it.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from napari_tsimcne.core.table import AXES

from . import annotations as ann

ENV_DIR = "NAPARI_TSIMCNE_AUTOSAVE_DIR"
SUFFIX = ".autosave.csv"


def autosave_dir() -> Path:
    """The autosave folder: ``$NAPARI_TSIMCNE_AUTOSAVE_DIR`` if set, else the user data folder.

    Returns
    -------
    Path
        The folder (it may not exist yet).
    """
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_data_dir

        return Path(user_data_dir("napari-tsimcne", appauthor=False)) / "autosave"
    except ImportError:  # pragma: no cover - platformdirs comes with napari
        return Path.home() / ".local" / "share" / "napari-tsimcne" / "autosave"


def stack_fingerprint(tiles) -> str:
    """A short hex digest of the stack's shape, dtype and up to 16 evenly spaced tiles (lazy arrays are fine).

    The same digest as the models' and checkpoints' fingerprints (``napari_tsimcne.core.fingerprint.stack_digest``).

    Parameters
    ----------
    tiles : array-like
        The tile stack (N, H, W[, C]); NumPy, memory-mapped or lazy.

    Returns
    -------
    str
        16 hex digits.
    """
    from napari_tsimcne.core.fingerprint import stack_digest

    return stack_digest(tiles)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60] or "tiles"


def autosave_path(layer_name: str, fingerprint: str, folder: Path | None = None) -> Path:
    """Where the annotations of the stack ``fingerprint`` (shown as ``layer_name``) are autosaved.

    Parameters
    ----------
    layer_name : str
        The map's or tile layer's name (characters unsafe in file names are replaced).
    fingerprint : str
        The stack's digest (``stack_fingerprint``).
    folder : Path, optional
        The autosave folder; ``autosave_dir`` when None.

    Returns
    -------
    Path
        ``<folder>/<layer name>-<fingerprint>.autosave.csv``.
    """
    return (folder or autosave_dir()) / f"{_safe(layer_name)}-{fingerprint}{SUFFIX}"


def fingerprint_of(path: str | os.PathLike) -> str | None:
    """The stack fingerprint in an autosave file's name (None for other names).

    Parameters
    ----------
    path : str or os.PathLike
        A file name or path.

    Returns
    -------
    str or None
        The 16 hex digits before ``.autosave.csv``.
    """
    m = re.search(r"-([0-9a-f]{16})" + re.escape(SUFFIX) + "$", Path(path).name)
    return m.group(1) if m else None


def find_autosave(fingerprint: str, folder: Path | None = None) -> Path | None:
    """The newest autosave of the stack ``fingerprint``, whatever the layer was called.

    Parameters
    ----------
    fingerprint : str
        The stack's digest.
    folder : Path, optional
        The autosave folder; ``autosave_dir`` when None.

    Returns
    -------
    Path or None
        The most recently written file of that stack, or None.
    """
    folder = folder or autosave_dir()
    if not folder.is_dir():
        return None
    hits = [p for p in folder.glob(f"*-{fingerprint}{SUFFIX}") if p.is_file()]
    return max(hits, key=lambda p: p.stat().st_mtime) if hits else None


def autosaves_of_other_stacks(
    layer_name: str, fingerprint: str, folder: Path | None = None
) -> list[Path]:
    """Autosaves of layers with this name but another stack (to explain why nothing was restored).

    Parameters
    ----------
    layer_name : str
        The layer's name.
    fingerprint : str
        The digest of the stack shown now.
    folder : Path, optional
        The autosave folder; ``autosave_dir`` when None.

    Returns
    -------
    list of Path
        Files named after the layer whose fingerprint differs.
    """
    folder = folder or autosave_dir()
    if not folder.is_dir():
        return []
    pattern = f"{_safe(layer_name)}-*{SUFFIX}"
    return [p for p in folder.glob(pattern) if fingerprint_of(p) not in (None, fingerprint)]


def load_autosave(path: str | os.PathLike, fingerprint: str, n_tiles: int) -> pd.DataFrame:
    """Read an autosave; refuses a file of another stack with ``AnnotationFileError``.

    Parameters
    ----------
    path : str or os.PathLike
        The autosave file.
    fingerprint : str
        The digest of the stack shown now; checked against the file's name and its ``stack_fingerprint``.
    n_tiles : int
        The number of tiles of the map.

    Returns
    -------
    pandas.DataFrame
        As ``napari_tsimcne.plugin.annotations.import_csv``: ``annotation`` and ``cluster`` per tile.

    Raises
    ------
    AnnotationFileError
        If the file belongs to another stack or does not list every tile exactly once.
    """
    saved = fingerprint_of(path)
    if saved is not None and saved != fingerprint:
        raise ann.AnnotationFileError(
            f"{Path(path).name} was autosaved for another tile stack (fingerprint {saved}); "
            f"these tiles have fingerprint {fingerprint}. Not restored."
        )
    return ann.import_csv(path, n_tiles, fingerprint)


def has_annotations(features: pd.DataFrame) -> bool:
    """Whether a map has any class names or clusters (a fresh map has none).

    Parameters
    ----------
    features : pandas.DataFrame
        The map's features, with ``annotation`` and ``cluster`` columns.

    Returns
    -------
    bool
        True if any tile has a name or a cluster.
    """
    return bool(
        (features["annotation"].astype(str) != "").any() or (features["cluster"] != -1).any()
    )


class AnnotationAutosaver:
    """Writes snapshots of a map's annotations to one file, in order, off the calling thread.

    ``save(features, origins)`` takes a snapshot now and returns at once; ``flush()`` waits for the writes.
    Unchanged annotations are not written again.

    Parameters
    ----------
    path : pathlib.Path
        The autosave file (see ``autosave_path``); half-written temporaries of it older than a
        minute, left by a killed process, are removed.
    """

    STALE_TMP_SECONDS = 60.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._remove_stale_temporaries()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsimcne-autosave")
        self._last: tuple | None = None
        self._pending: Future | None = None
        self.error: BaseException | None = None
        self.writes = 0
        self.saved_at: float | None = None  # time.time() of the last write that reached the disk

    def _remove_stale_temporaries(self) -> None:
        """Delete half-written temporaries of this file left by a killed process (the file itself is intact)."""
        if not self.path.parent.is_dir():
            return
        now = time.time()
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                if (
                    now - tmp.stat().st_mtime > self.STALE_TMP_SECONDS
                ):  # not a write in progress elsewhere
                    tmp.unlink()
            except OSError:
                pass

    def _key(self, features: pd.DataFrame) -> tuple:
        hashed = pd.util.hash_pandas_object(
            features[["annotation", "cluster"]].astype({"annotation": str}), index=False
        )
        return len(features), hashlib.blake2b(
            hashed.to_numpy().tobytes(), digest_size=16
        ).hexdigest()

    def save(self, features: pd.DataFrame, origins=None, force: bool = False) -> bool:
        """Queue a write of ``features``; returns False when nothing changed since the last write.

        Parameters
        ----------
        features : pandas.DataFrame
            The map's features; tile_index, x, y (z), annotation and cluster are written (a copy is
            taken now).
        origins : numpy.ndarray, optional
            (row, col) of tiles cut from one large image.
        force : bool, default False
            Write even when the annotations are unchanged.

        Returns
        -------
        bool
            Whether a write was queued.
        """
        key = self._key(features)
        if not force and key == self._last:
            return False
        self._last = key
        axes = [a for a in AXES if a in features]  # z too in a 3D map
        snapshot = features[["tile_index", *axes, "annotation", "cluster"]].copy()
        origins = None if origins is None else np.array(origins, copy=True)
        self._pending = self._executor.submit(self._write, snapshot, origins)
        return True

    @property
    def pending(self) -> bool:
        """Whether a queued write has not reached the disk yet."""
        return self._pending is not None and not self._pending.done()

    def status(self) -> str | None:
        """What to tell the user about the writes so far.

        Returns
        -------
        str or None
            "Autosave failed: <why>" after a failed write, "Autosaved to <file> at <time>." after a
            good one, None before any write reached the disk.
        """
        if self.error is not None:
            return f"Autosave failed: {self.error}"
        if self.saved_at is None:
            return None
        return f"Autosaved to {self.path} at {time.strftime('%H:%M:%S', time.localtime(self.saved_at))}."

    def mark_saved(self, features: pd.DataFrame) -> None:
        """Treat ``features`` as already on disk (e.g. just restored from this file).

        Parameters
        ----------
        features : pandas.DataFrame
            The map's features.
        """
        self._last = self._key(features)

    def _write(self, snapshot: pd.DataFrame, origins) -> None:
        try:
            ann.export_csv(
                snapshot, self.path, origins=origins, fingerprint=fingerprint_of(self.path)
            )
            self.writes += 1
            self.saved_at = time.time()
            self.error = None
        except Exception as exc:  # noqa: BLE001 - reported by the widget, never raised in the thread
            self.error = exc
            self._last = None  # try again at the next change

    def flush(self, timeout: float | None = 10.0) -> None:
        """Wait until the queued writes are on disk.

        Parameters
        ----------
        timeout : float or None, default 10.0
            Seconds to wait at most (None: as long as it takes).

        Raises
        ------
        concurrent.futures.TimeoutError
            If the write takes longer.
        """
        pending = self._pending
        if pending is not None:
            pending.result(timeout=timeout)

    def close(self) -> None:
        """Finish the queued writes and stop the writer thread."""
        self._executor.shutdown(wait=True)
