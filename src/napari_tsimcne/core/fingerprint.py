"""Fingerprints of tile stacks: which tiles a model, checkpoint or annotation file belongs to.

A fingerprint is the stack's shape, its dtype and a hash of up to 16 evenly
spaced tiles: cheap for any stack size (memory-mapped and lazy arrays too),
and different for another stack of the same shape with near certainty.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .tiles import TileStackError

N_HASHED_TILES = 16
"""Tiles read for the hash, evenly spaced over the stack."""


class TileMismatchError(TileStackError):
    """Tiles that are not the ones a checkpoint, model or annotation file was made for.

    Parameters
    ----------
    message : str
        What is wrong and what to do.
    *parameters : str
        The parameters the message names, as for ``TileStackError``.
    """


@dataclass(frozen=True)
class TileFingerprint:
    """Shape, dtype and a sample hash of a tile stack."""

    n_tiles: int
    """Number of tiles."""
    shape: tuple[int, ...]
    """The shape of one tile: (H, W) or (H, W, C)."""
    dtype: str
    """The stack's dtype, e.g. ``"uint8"``."""
    digest: str
    """16 hex digits over the stack's shape, dtype and the sampled tiles."""

    def to_dict(self) -> dict:
        """Plain values for a model file or JSON.

        Returns
        -------
        dict
            ``n_tiles``, ``shape``, ``dtype`` and ``digest``.
        """
        return {
            "n_tiles": self.n_tiles,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "digest": self.digest,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TileFingerprint:
        """The fingerprint stored by ``to_dict``.

        Parameters
        ----------
        d : dict
            Plain values, as from ``to_dict``.

        Returns
        -------
        TileFingerprint
            The fingerprint.

        Raises
        ------
        KeyError, TypeError, ValueError
            When ``d`` is damaged.
        """
        return cls(
            int(d["n_tiles"]), tuple(int(s) for s in d["shape"]), str(d["dtype"]), str(d["digest"])
        )

    def describe(self) -> str:
        """The stack in words, for messages.

        Returns
        -------
        str
            E.g. ``'1,000 tiles of 28 x 28 x 3 (uint8)'``.
        """
        return f"{self.n_tiles:,} tiles of {' x '.join(map(str, self.shape))} ({self.dtype})"


def stack_digest(tiles: np.ndarray) -> str:
    """A 16-hex-digit digest of the stack's shape, dtype and up to 16 evenly spaced tiles.

    Parameters
    ----------
    tiles : array-like
        Anything with ``shape``, ``dtype`` and integer indexing (NumPy, memory maps, dask, zarr).

    Returns
    -------
    str
        The digest.
    """
    shape = tuple(int(s) for s in tiles.shape)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr((shape, str(np.dtype(tiles.dtype)))).encode())
    n = shape[0] if shape else 0
    for i in np.unique(np.linspace(0, max(n - 1, 0), min(n, N_HASHED_TILES)).round().astype(int)):
        digest.update(np.ascontiguousarray(np.asarray(tiles[int(i)])).tobytes())
    return digest.hexdigest()


def fingerprint(tiles: np.ndarray) -> TileFingerprint:
    """The ``TileFingerprint`` of a tile stack (N, H, W) or (N, H, W, C).

    Parameters
    ----------
    tiles : numpy.ndarray
        The tile stack.

    Returns
    -------
    TileFingerprint
        Its shape, dtype and a hash of up to 16 evenly spaced tiles.
    """
    shape = tuple(int(s) for s in tiles.shape)
    return TileFingerprint(shape[0], shape[1:], str(np.dtype(tiles.dtype)), stack_digest(tiles))


def check_same_tiles(expected: TileFingerprint | None, tiles: np.ndarray, what: str) -> None:
    """Refuse ``tiles`` unless they match ``expected`` (None: an old file without a fingerprint, not checked).

    Parameters
    ----------
    expected : TileFingerprint or None
        The fingerprint stored with the checkpoint, model or annotations.
    tiles : array-like
        The stack offered now.
    what : str
        What was made for the other tiles, e.g. ``"The checkpoint"``.

    Raises
    ------
    TileMismatchError
        Naming both stacks.
    """
    if expected is None:
        return
    actual = fingerprint(tiles)
    if actual == expected:
        return
    detail = (
        "the same shape but other pixels"
        if (actual.n_tiles, actual.shape, actual.dtype)
        == (expected.n_tiles, expected.shape, expected.dtype)
        else actual.describe()
    )
    raise TileMismatchError(
        f"{what} was made for other tiles: {expected.describe()} (fingerprint {expected.digest}); "
        f"these are {detail} (fingerprint {actual.digest}). Use the same tiles, in the same order."
    )
