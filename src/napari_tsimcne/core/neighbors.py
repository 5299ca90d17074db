"""Neighbours in intensity: tiles that hold as much of each stain, spread over as many pixels.

In quantitative fluorescence the amount of a stain in a cell is the signal
(DNA content orders the cell cycle; marker levels separate cell types).
Augmentations alone cannot teach a network that two tiles are alike in that
sense: instance discrimination keeps the views of one tile together and
pushes all tiles apart. This module finds, for every tile, the tiles with the
most similar *intensity profile*: for each channel, the sorted pixel values
(the intensity histogram, read at evenly spaced quantiles) and their mean.
The profile is unchanged by rotation, flips and the cell's position in the
tile, and it keeps the cell's total intensity, its area and how its stain is
distributed; each channel weighs the same. The training then draws some of
its positive pairs from these neighbours (t-SNE's k-nearest-neighbour graph
joined to t-SimCNE's augmentation graph; Damrich et al. 2023, "From t-SNE to
UMAP with contrastive learning").
"""

from __future__ import annotations

import numpy as np
import torch

from .store import TileStore

PROFILE_QUANTILES = 32
"""Points read off each channel's sorted pixel values."""
PROFILE_DIMENSIONS = 16
"""Principal components of the profiles in which neighbours are searched."""


@torch.no_grad()
def intensity_profiles(
    store: TileStore, quantiles: int = PROFILE_QUANTILES, chunk: int = 2048
) -> np.ndarray:
    """Per-channel intensity profiles of every tile, shape (N, C * (quantiles + 1)).

    Parameters
    ----------
    store
        The normalised tiles (each channel in [0, 1] on the stack's own scale).
    quantiles
        How many evenly spaced quantiles of each channel's pixel values to keep.
    chunk
        Tiles handled at once (bounds the memory used).

    Returns
    -------
    numpy.ndarray
        float32 rows: for each channel, ``quantiles`` sorted pixel values and their mean.
    """
    n = len(store)
    rows = []
    for start in range(0, n, chunk):
        x = store.gather(torch.arange(start, min(n, start + chunk)))  # (B, C, H, W)
        flat = x.float().flatten(2)  # (B, C, HW)
        srt = flat.sort(dim=2).values
        pos = torch.linspace(0, srt.shape[2] - 1, quantiles, device=srt.device).round().long()
        prof = torch.cat([srt[:, :, pos], flat.mean(2, keepdim=True)], dim=2)
        rows.append(prof.flatten(1).cpu().numpy())
    return np.concatenate(rows).astype(np.float32)


def profile_embedding(profiles: np.ndarray, n_channels: int, dims: int = PROFILE_DIMENSIONS):
    """The profiles centred, each channel's block scaled to unit mean energy, projected on ``dims`` PCs."""
    x = profiles.astype(np.float64)
    x = x - x.mean(0)
    blocks = np.split(x, n_channels, axis=1)
    scaled = []
    for b in blocks:
        energy = np.sqrt((b**2).sum(1).mean())
        scaled.append(b / energy if energy > 0 else b)
    x = np.concatenate(scaled, axis=1)
    dims = min(dims, x.shape[1], len(x))
    _, _, vt = np.linalg.svd(x[: min(len(x), 20000)], full_matrices=False)
    return (x @ vt[:dims].T).astype(np.float32)


def intensity_neighbors(store: TileStore, k: int = 10) -> np.ndarray:
    """The ``k`` nearest tiles of every tile in intensity-profile space, shape (N, k), int64.

    A tile is never its own neighbour. With fewer than ``k + 1`` tiles, ``k``
    shrinks to what there is.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(store)
    k = max(1, min(k, n - 1))
    emb = profile_embedding(intensity_profiles(store), store.normalization.n_channels)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb, return_distance=False)
    out = np.empty((n, k), dtype=np.int64)
    for i, row in enumerate(idx):  # drop the tile itself (not always first when duplicates exist)
        others = row[row != i]
        out[i] = others[:k]
    return out


class NeighborViews:
    """Chooses whose tile each second view shows: the tile itself, or one of its neighbours.

    Parameters
    ----------
    neighbors
        (N, k) indices of each tile's nearest neighbours, as from :func:`intensity_neighbors`.
    fraction
        Probability that a pair's second view comes from a neighbour.
    """

    def __init__(self, neighbors: np.ndarray, fraction: float) -> None:
        self.neighbors = torch.as_tensor(neighbors, dtype=torch.long)
        self.fraction = float(fraction)

    def pick(self, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """For tile indices ``index`` (on the CPU), the tiles their second views show."""
        n, k = len(index), self.neighbors.shape[1]
        which = torch.randint(0, k, (n,), generator=generator)
        use = torch.rand(n, generator=generator) < self.fraction
        return torch.where(use, self.neighbors[index, which], index)
