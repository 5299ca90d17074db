"""Neighbours in intensity: who counts as alike, and the second views drawn from them."""

import numpy as np
import torch

from napari_tsimcne import TSimCNE
from napari_tsimcne.core.neighbors import NeighborViews, intensity_neighbors
from napari_tsimcne.core.normalization import ChannelNormalization
from napari_tsimcne.core.store import TileStore


def _spots(n: int, brightness: float, radius: float, seed: int) -> np.ndarray:
    """``n`` two-channel uint16 tiles, each a round cell of ``radius`` at a random place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:16, 0:16]
    out = np.empty((n, 16, 16, 2), dtype=np.uint16)
    for i in range(n):
        cy, cx = rng.uniform(5, 11, 2)
        cell = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2) * brightness
        out[i, ..., 0] = 100 + cell + rng.normal(0, 3, (16, 16))
        out[i, ..., 1] = 100 + cell / 4 + rng.normal(0, 3, (16, 16))
    return out


def _store(stack: np.ndarray) -> TileStore:
    return TileStore(stack, ChannelNormalization.fit(stack), torch.device("cpu"))


def test_neighbours_share_brightness_and_size_wherever_the_cell_lies():
    dim_small = _spots(30, 1000, 3, 0)
    bright_small = _spots(30, 3000, 3, 1)
    dim_large = _spots(30, 1000, 5, 2)
    stack = np.concatenate([dim_small, bright_small, dim_large])
    group = np.repeat([0, 1, 2], 30)
    nb = intensity_neighbors(_store(stack), k=5)
    assert nb.shape == (90, 5) and nb.dtype == np.int64
    assert (nb != np.arange(90)[:, None]).all(), "a tile is not its own neighbour"
    assert (group[nb] == group[:, None]).mean() > 0.95


def test_a_rotated_copy_is_the_nearest_neighbour():
    stack = _spots(40, 2000, 4, 3)
    stack[1] = np.rot90(stack[0])
    assert intensity_neighbors(_store(stack), k=1)[0, 0] == 1


def test_k_shrinks_for_tiny_stacks():
    assert intensity_neighbors(_store(_spots(3, 2000, 4, 4)), k=10).shape == (3, 2)


def test_second_views_come_from_neighbours_in_the_asked_fraction():
    neighbors = np.tile(np.arange(100, 105), (100, 1))  # every tile's neighbours: 100..104
    gen = torch.Generator().manual_seed(0)
    index = torch.arange(100)
    assert torch.equal(NeighborViews(neighbors, 0.0).pick(index, gen), index)
    assert (NeighborViews(neighbors, 1.0).pick(index, gen) >= 100).all()
    half = NeighborViews(neighbors, 0.5).pick(index, gen)
    assert 30 < int((half >= 100).sum()) < 70


def test_training_draws_second_views_from_neighbours_when_asked(monkeypatch):
    calls = []
    original = NeighborViews.pick
    monkeypatch.setattr(
        NeighborViews, "pick", lambda self, *a: calls.append(1) or original(self, *a)
    )
    stack = np.concatenate([_spots(64, 800, 4, 5), _spots(64, 3200, 4, 6)])
    settings = dict(total_epochs=(1, 1, 1), batch_size=32, width=4, device="cpu", random_state=0)
    y = TSimCNE(**settings, augmentations={"neighbor_views": 0.5}).fit_transform(stack)
    assert y.shape == (128, 2) and np.isfinite(y).all()
    assert len(calls) == 3 * 4  # every step of every stage: 3 epochs of 128 // 32 steps
    calls.clear()
    TSimCNE(**settings, augmentations="microscopy").fit(stack)
    assert not calls, "the papers' method draws both views from the same tile"


def test_bad_neighbour_settings_are_refused_with_a_reason():
    import pytest

    with pytest.raises(ValueError, match="neighbor_views"):
        TSimCNE(augmentations={"neighbor_views": 1.5}).validate(_spots(8, 1000, 3, 0))
    with pytest.raises(ValueError, match="neighbor_k"):
        TSimCNE(augmentations={"neighbor_k": 0}).validate(_spots(8, 1000, 3, 0))
