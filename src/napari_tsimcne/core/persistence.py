"""Model files: one ``.tsimcne`` file (a PyTorch archive of plain tensors and values).

Files are written atomically (to a temporary file beside the target, then
renamed), so an interrupted save never leaves a half-written model, and they
get the permissions the umask gives to any new file. Loading uses
``weights_only=True``: a model file cannot run code, and it loads on a
CPU-only machine whatever device it was trained on.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

FORMAT = "napari-tsimcne"
FORMAT_VERSION = 1
REQUIRED_KEYS = (
    "params",
    "state_dict",
    "normalization",
    "n_channels",
    "tile_shape",
    "model_out_dim",
    "pca",
)
"""What a model file must hold besides the format tag."""

STAGING_PREFIX = ".tsimcne-staging-"
"""Name start of the folder in which a set of outputs is written before it is moved into place."""

STALE_SECONDS = 3600.0
"""A temporary of a process that still runs is removed only when it is older than this."""

_TMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)-[^.]+\.tmp$")
_STAGING_NAME = re.compile("^" + re.escape(STAGING_PREFIX) + r"(?P<pid>\d+)-")


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, or not a napari-tsimcne model."""


class OutputFileError(OSError):
    """An output that cannot be written: folder not writable, read-only file system, disk full."""


_REASONS = {
    errno.ENOSPC: "the disk is full (no space left on the device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
}


def output_error(path: str | os.PathLike, exc: BaseException) -> OutputFileError:
    """An ``OutputFileError`` that says in one line why ``path`` could not be written.

    Parameters
    ----------
    path : str or os.PathLike
        The file or folder that was being written.
    exc : BaseException
        What the write raised (an ``OSError``, or PyTorch's ``RuntimeError`` of a failed archive write).

    Returns
    -------
    OutputFileError
        With ``errno`` set where ``exc`` had one.
    """
    code = getattr(exc, "errno", None)
    reason = _REASONS.get(code) if code is not None else None
    if reason is None and isinstance(exc, RuntimeError):
        reason = "the file could not be written (is the disk full?)"
    if reason is None:
        text = getattr(exc, "strerror", None) or str(exc)
        reason = text.splitlines()[0] if text else exc.__class__.__name__
    return _output_file_error(f"Cannot write {path}: {reason}.", code or errno.EIO)


def _output_file_error(message: str, code: int) -> OutputFileError:
    """An ``OutputFileError`` whose text is ``message`` alone (no "[Errno N]" in front)."""
    error = OutputFileError(message)
    error.errno = code
    return error


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permissions ``open()`` gives a new file under the current umask (mkstemp's files are 0600).

    Returns
    -------
    int
        File mode bits, e.g. ``0o644``.
    """
    return 0o666 & ~_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only when it succeeded.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder is created when missing.
    write : callable
        Writes the content to the temporary path it is given.

    Returns
    -------
    Path
        ``path``, now holding the new content with the umask's permissions.

    Raises
    ------
    OutputFileError
        When the folder or the file cannot be written (permissions, read-only, disk full).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
        )
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if (
            isinstance(exc, OSError)
            and not isinstance(exc, OutputFileError)
            and getattr(exc, "errno", None) in _REASONS
        ):
            raise output_error(path, exc) from None
        raise
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _is_stale(entry: Path, pid: int, now: float) -> bool:
    try:
        age = now - entry.stat().st_mtime
    except OSError:
        return False
    return not _pid_alive(pid) or age > STALE_SECONDS


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporaries in ``folder`` left by killed writers (of ``atomic_write`` and ``StagedOutputs``).

    A temporary is stale when the process named in it no longer runs, or when it is
    older than ``STALE_SECONDS``. Finished files are never touched.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to clean; nothing happens when it does not exist.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed, now = [], time.time()
    for entry in folder.iterdir():
        m = _TMP_NAME.match(entry.name) or _STAGING_NAME.match(entry.name)
        if m is None or not _is_stale(entry, int(m.group("pid")), now):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


class StagedOutputs:
    """A set of output files written into a hidden folder inside ``folder``, then moved into place together.

    Use ``path`` for each file's temporary location, then ``commit`` with
    the names in the order they should appear (the last one, e.g. a summary, marks
    a complete set and is removed before the others move). Leaving without commit
    removes the staging folder.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder (created if missing).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.staging = Path(
                tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.folder)
            )
        except OSError as exc:
            raise output_error(self.folder, exc) from None

    def path(self, name: str) -> Path:
        """Where to write the output ``name`` for now.

        Parameters
        ----------
        name : str
            File name in the output folder.

        Returns
        -------
        pathlib.Path
            Its path in the staging folder, until ``commit``.
        """
        return self.staging / name

    def commit(self, names: list[str]) -> list[Path]:
        """Move the staged files ``names`` into the output folder, in this order; returns their final paths.

        The last name marks a complete set: its old version is removed first, so a process killed
        between two moves leaves a folder without it (recognisably incomplete), never old and new
        files under a marker of the old set.

        Parameters
        ----------
        names : list of str
            Staged file names; the last one marks a complete set.

        Returns
        -------
        list of pathlib.Path
            Their paths in the output folder.

        Raises
        ------
        OutputFileError
            When a file cannot be moved.
        """
        done, name = [], names[-1]
        try:
            (self.folder / name).unlink(missing_ok=True)
            for name in names:
                target = self.folder / name
                os.replace(self.staging / name, target)
                done.append(target)
        except OSError as exc:
            raise output_error(self.folder / name, exc) from None
        finally:
            self.discard()
        return done

    def discard(self) -> None:
        """Remove the staging folder and whatever is left in it."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> StagedOutputs:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and make sure a file can be written in it (before any long work).

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OutputFileError
        When the folder cannot be created or written to.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise _output_file_error(
            f"Cannot write into {folder}: it is a file, not a folder.", errno.ENOTDIR
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(
            prefix=f".write-test.{os.getpid()}-", suffix=".tmp", dir=folder
        )
        try:
            os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise output_error(folder, exc) from None
    return folder


def save_payload(path: str | os.PathLike, payload: dict) -> Path:
    """Write a model payload (with the format tag) to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The model file to write; an older file there is replaced only once the new one is
        complete.
    payload : dict
        Tensors and plain values (what ``load_payload`` returns).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    OutputFileError
        When the file cannot be written, e.g. on a full disk.
    """
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}

    def write(tmp: str) -> None:
        try:
            torch.save(payload, tmp)
        except (
            RuntimeError
        ) as exc:  # PyTorch's archive writer on a full disk: "enforce fail at inline_container.cc"
            raise output_error(path, exc) from None

    return atomic_write(path, write)


def load_payload(path: str | os.PathLike) -> dict:
    """Read and check the payload of a model file.

    The file is read with PyTorch's ``weights_only=True``, so it cannot run code.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tsimcne`` model file or checkpoint.

    Returns
    -------
    dict
        The payload: weights, normalisation, settings, history and map.

    Raises
    ------
    ModelFileError
        When the file is missing, unreadable, not a napari-tsimcne model, newer, or lacks a part.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"No model file at {path}.")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; pass the .tsimcne model file inside it.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip errors, unpickling errors, truncation
        raise ModelFileError(
            f"{path} is not a readable napari-tsimcne model (corrupt or another kind of file): {exc.__class__.__name__}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is a PyTorch file but not a napari-tsimcne model.")
    version = payload.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ModelFileError(
            f"{path} is damaged: its format version {version!r} is not a whole number."
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer napari-tsimcne (format {version}); please upgrade."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ModelFileError(
            f"{path} is damaged: it lacks {', '.join(missing)}. Train and save the model again."
        )
    return payload
