"""Model files: one ``.tsimcne`` file (a PyTorch archive of plain tensors and values).

Files are written atomically (to a temporary file beside the target, then
renamed), so an interrupted save never leaves a half-written model. Loading
uses ``weights_only=True``: a model file cannot run code, and it loads on a
CPU-only machine whatever device it was trained on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

FORMAT = "napari-tsimcne"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("params", "state_dict", "normalization", "n_channels", "tile_shape", "model_out_dim", "pca")
"""What a model file must hold besides the format tag."""


class ModelFileError(ValueError):
    """A model file that is missing, corrupt, or not a napari-tsimcne model."""


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` only when it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_payload(path: str | os.PathLike, payload: dict) -> Path:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_payload(path: str | os.PathLike) -> dict:
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
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer napari-tsimcne (format {payload['format_version']}); please upgrade."
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ModelFileError(f"{path} is damaged: it lacks {', '.join(missing)}. Train and save the model again.")
    return payload
