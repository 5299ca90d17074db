"""Neighbours in intensity: tiles that hold as much of each stain, spread over as many pixels.

In quantitative fluorescence the amount of a stain in a cell is the signal
(DNA content orders the cell cycle; marker levels separate cell types).
Augmentations alone cannot teach a network that two tiles are alike in that
sense: instance discrimination keeps the views of one tile together and
pushes all tiles apart. This module finds, for every tile, the tiles with the
most similar *intensity profile*: for each channel, the brightest pixel,
the second, the fourth and so on down to the median (ranks spaced
geometrically, so a small cell and a large one are both described by many
of its own pixels rather than by background), and the channel's mean. The
profile is unchanged by rotation, flips and the cell's position in the
tile; it keeps the cell's total intensity, its area and how its stain is
distributed. Each value is standardised over the stack, so every channel
weighs the same whatever its brightness. The training then draws some of
its positive pairs from these neighbours (t-SNE's k-nearest-neighbour graph
joined to t-SimCNE's augmentation graph; Damrich et al. 2023, "From t-SNE to
UMAP with contrastive learning").
"""

from __future__ import annotations

import numpy as np
import torch

from .store import TileStore

PROFILE_POINTS = 32
"""At most this many ranks are read off each channel's sorted pixel values."""
PROFILE_DIMENSIONS = 16
"""Principal components of the profiles in which neighbours are searched."""


def profile_ranks(n_pixels: int, points: int = PROFILE_POINTS) -> np.ndarray:
    """Ranks from the brightest pixel (0) to the median, spaced geometrically; at most ``points``.

    Parameters
    ----------
    n_pixels : int
        Pixels per tile and channel.
    points : int
        At most this many ranks.

    Returns
    -------
    numpy.ndarray
        Sorted, distinct 0-based ranks, int64.
    """
    half = max(1, n_pixels // 2)
    return np.unique(np.round(np.geomspace(1, half, points)).astype(np.int64)) - 1


@torch.no_grad()
def intensity_profiles(
    store: TileStore, points: int = PROFILE_POINTS, chunk: int = 2048
) -> np.ndarray:
    """Per-channel intensity profiles of every tile, shape (N, C * (ranks + 1)).

    Parameters
    ----------
    store
        The normalised tiles (each channel in [0, 1] on the stack's own scale).
    points
        At most how many ranks of each channel's sorted pixel values to keep
        (see ``profile_ranks``).
    chunk
        Tiles handled at once (bounds the memory used).

    Returns
    -------
    numpy.ndarray
        float32 rows: for each channel, its pixel values at the ranks, then their mean.
    """
    n = len(store)
    rows = [
        batch_profiles(store.gather(torch.arange(start, min(n, start + chunk))), points)
        for start in range(0, n, chunk)
    ]
    return np.concatenate(rows)


@torch.no_grad()
def batch_profiles(x: torch.Tensor, points: int = PROFILE_POINTS) -> np.ndarray:
    """The intensity profiles of a normalised batch (B, C, H, W), as rows of ``intensity_profiles``.

    Parameters
    ----------
    x : torch.Tensor
        Normalised tiles, shape ``(B, C, H, W)``.
    points : int
        At most how many ranks of each channel's sorted pixel values to keep.

    Returns
    -------
    numpy.ndarray
        float32, one row per tile.
    """
    flat = x.float().flatten(2)  # (B, C, HW)
    ranks = torch.as_tensor(profile_ranks(flat.shape[2], points), device=flat.device)
    top = flat.sort(dim=2, descending=True).values[:, :, ranks]
    prof = torch.cat([top, flat.mean(2, keepdim=True)], dim=2)
    return prof.flatten(1).cpu().numpy().astype(np.float32)


def profile_embedding(profiles: np.ndarray, dims: int = PROFILE_DIMENSIONS) -> np.ndarray:
    """The profiles standardised value by value and projected on their first ``dims`` principal components.

    Parameters
    ----------
    profiles : numpy.ndarray
        One row per tile, from ``intensity_profiles``.
    dims : int
        Principal components to keep.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(N, dims)`` (fewer columns when there are fewer values or tiles).
    """
    x = profiles.astype(np.float64)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-6)
    dims = min(dims, x.shape[1], len(x))
    rows = np.unique(np.linspace(0, len(x) - 1, min(len(x), 20000)).astype(np.int64))
    _, _, vt = np.linalg.svd(x[rows], full_matrices=False)
    return (x @ vt[:dims].T).astype(np.float32)


def intensity_embedding(store: TileStore) -> np.ndarray:
    """Every tile's intensity profile, standardised and reduced to ``PROFILE_DIMENSIONS`` components.

    Parameters
    ----------
    store : TileStore
        The normalised tiles.

    Returns
    -------
    numpy.ndarray
        float32, one row per tile.
    """
    return profile_embedding(intensity_profiles(store))


def nearest_neighbors(points: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest other points of every point, shape (N, k), int64.

    A point is never its own neighbour. With fewer than ``k + 1`` points,
    ``k`` shrinks to what there is.

    Parameters
    ----------
    points : numpy.ndarray
        Shape ``(N, D)``.
    k : int
        Neighbours per point.

    Returns
    -------
    numpy.ndarray
        Indices of each point's neighbours, nearest first.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(points)
    k = max(1, min(k, n - 1))
    idx = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points, return_distance=False)
    out = np.empty((n, k), dtype=np.int64)
    for i, row in enumerate(idx):  # drop the point itself (not always first when duplicates exist)
        out[i] = row[row != i][:k]
    return out


def intensity_neighbors(store: TileStore, k: int = 10) -> np.ndarray:
    """The ``k`` nearest tiles of every tile in intensity-profile space, shape (N, k), int64.

    Parameters
    ----------
    store : TileStore
        The normalised tiles.
    k : int
        Neighbours per tile (``AugmentationSettings.neighbor_k``).

    Returns
    -------
    numpy.ndarray
        Indices of each tile's neighbours, nearest first.
    """
    return nearest_neighbors(intensity_embedding(store), k)


class NeighborViews:
    """Chooses whose tile each second view shows: the tile itself, or one of its neighbours.

    Parameters
    ----------
    neighbors
        (N, k) indices of each tile's nearest neighbours, as from ``intensity_neighbors``.
    fraction
        Probability that a pair's second view comes from a neighbour.
    """

    def __init__(self, neighbors: np.ndarray, fraction: float) -> None:
        self.neighbors = torch.as_tensor(neighbors, dtype=torch.long)
        self.fraction = float(fraction)

    def pick(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """For tile indices ``index`` (on the CPU), the tiles their second views show.

        Parameters
        ----------
        index : torch.Tensor
            Indices of the batch's tiles, on the CPU.
        generator : torch.Generator
            CPU random generator.

        Returns
        -------
        torch.Tensor
            For each tile, itself or (with probability ``fraction``) one of its neighbours.
        """
        n, k = len(index), self.neighbors.shape[1]
        which = torch.randint(0, k, (n,), generator=generator)
        use = torch.rand(n, generator=generator) < self.fraction
        return torch.where(use, self.neighbors[index, which], index)
