"""A mosaic of augmented views of a few tiles, and its layer in the viewer (no Qt)."""

from __future__ import annotations

import numpy as np
import torch

from napari_tsimcne.core.augment import AugmentationSettings, augment, make_generator
from napari_tsimcne.core.neighbors import batch_profiles, profile_embedding
from napari_tsimcne.core.normalization import ChannelNormalization

from .channels import training_tiles
from .layout import fit_camera, free_column_origin
from .thumbnails import render_in_layer_colours

GAP = 2
PREVIEW_NAME = "augmentation preview"
"""The preview's layer (one at a time: a new preview replaces it)."""


def preview_indices(n_tiles: int, n: int = 8) -> np.ndarray:
    """Up to ``n`` evenly spaced tile indices.

    Parameters
    ----------
    n_tiles : int
        Tiles in the stack.
    n : int
        Tiles wanted.

    Returns
    -------
    numpy.ndarray
        Sorted, distinct indices.
    """
    return np.unique(np.linspace(0, n_tiles - 1, min(n, n_tiles)).round().astype(int))


def augmentation_mosaic(
    tiles: np.ndarray,
    settings: AugmentationSettings | str,
    n_views: int = 6,
    seed: int = 0,
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """Rows = tiles, first column the normalised original, then ``n_views`` augmented views; 2 px gaps.

    When the settings draw second views from neighbours in intensity (the quantitative preset)
    and a ``pool`` of tiles from the same stack is given, a last column shows a view of each
    tile's nearest neighbour in intensity among the pool: a partner the map pulls close.

    Colour tiles (uint8 (n, h, w, 3), or ``settings.rgb``) give a uint8 (H, W, 3) mosaic; single-channel
    tiles a float (H, W) mosaic in [0, 1]; other multichannel tiles a float (H, W, C) mosaic in [0, 1],
    every channel normalised as the network sees it (to be drawn in the channels' colours).

    Parameters
    ----------
    tiles : numpy.ndarray
        A few tiles, ``(n, h, w)`` or ``(n, h, w, c)``.
    settings : AugmentationSettings or str
        The augmentations, or a preset name.
    n_views : int
        Augmented views per tile.
    seed : int
        Seed of the views: the same seed shows the same views.
    pool : numpy.ndarray, optional
        More tiles of the same stack, to find each tile's neighbour in intensity.

    Returns
    -------
    numpy.ndarray
        The mosaic image.

    Raises
    ------
    ValueError
        If ``tiles`` is not a non-empty stack.
    """
    tiles = np.asarray(tiles)
    if tiles.ndim not in (3, 4) or len(tiles) == 0:
        raise ValueError(f"Expected tiles (n, h, w) or (n, h, w, c), got shape {tiles.shape}.")
    settings = AugmentationSettings.coerce(settings).for_stack(
        tiles.dtype, tiles.shape[3] if tiles.ndim == 4 else 1
    )
    norm = ChannelNormalization.fit(tiles)
    x = _as_batch(tiles, norm)
    gen = make_generator(torch.device("cpu"), seed)
    columns = [x] + [augment(x.clone(), settings, gen) for _ in range(n_views)]
    if settings.neighbor_views > 0 and pool is not None and len(pool) > 1:
        partners = _nearest_in_intensity(x, _as_batch(np.asarray(pool), norm))
        columns.append(augment(partners, settings, gen))
    n, c, h, w = x.shape
    rgb = bool(settings.rgb)
    cols = len(columns)
    depth = (3,) if rgb else ((c,) if c > 1 else ())
    out = np.zeros(((h + GAP) * n - GAP, (w + GAP) * cols - GAP) + depth, dtype=np.float32)
    for j, view in enumerate(columns):
        v = view.permute(0, 2, 3, 1).numpy()
        for i in range(n):
            r, cc = i * (h + GAP), j * (w + GAP)
            out[r : r + h, cc : cc + w] = v[i] if (rgb or c > 1) else v[i, :, :, 0]
    if rgb:
        return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)
    return out


def _as_batch(tiles: np.ndarray, norm: ChannelNormalization) -> torch.Tensor:
    """Tiles (n, h, w) or (n, h, w, c) as a normalised (n, c, h, w) float batch."""
    x = torch.from_numpy(np.ascontiguousarray(tiles if tiles.ndim == 4 else tiles[..., None]))
    return norm.apply(x.permute(0, 3, 1, 2))


def _nearest_in_intensity(x: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """For each tile of ``x``, the closest tile of ``pool`` in intensity profile (not the tile itself)."""
    both = profile_embedding(np.concatenate([batch_profiles(x), batch_profiles(pool)]))
    ours, theirs = both[: len(x)], both[len(x) :]
    dist = ((ours[:, None, :] - theirs[None, :, :]) ** 2).sum(-1)
    dist[dist <= 1e-10] = np.inf  # the tile itself (or an exact copy), where the pool holds it
    return pool[torch.from_numpy(dist.argmin(1))]


def show_augmentation_preview(
    viewer, layers: list, preset: str, seed: int = 0, n_tiles: int = 8, n_views: int = 6
):
    """Add (or replace) a layer of tiles beside augmented views of them, and bring it into view.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    layers : list of napari.layers.Image
        The tile layer and its channel layers, as trained together.
    preset : str
        The augmentation preset (not "auto").
    seed : int
        Seed of the random views.
    n_tiles : int
        Most tiles shown (one per row).
    n_views : int
        Augmented views per tile.

    Returns
    -------
    napari.layers.Image
        The preview layer, named ``PREVIEW_NAME``, in a free column right of everything.

    Raises
    ------
    ValueError
        The tiles cannot be augmented (e.g. too few channels or pixels).
    """
    data = training_tiles(layers)
    tiles = data[preview_indices(len(data), n_tiles)]
    pool = data[preview_indices(len(data), 2000)]  # where neighbours in intensity are sought
    mosaic = augmentation_mosaic(tiles, preset, n_views=n_views, seed=seed, pool=pool)
    if mosaic.ndim == 3 and mosaic.dtype != np.uint8:  # channels: drawn in their layers' colours
        mosaic = render_in_layer_colours(mosaic, layers)
    rgb = mosaic.ndim == 3
    if PREVIEW_NAME in viewer.layers:
        viewer.layers.remove(PREVIEW_NAME)
    origin = free_column_origin(viewer.layers, max(mosaic.shape[:2]))
    preview = viewer.add_image(
        mosaic,
        name=PREVIEW_NAME,
        rgb=rgb,
        translate=origin,
        contrast_limits=None if rgb else (0.0, 1.0),
    )
    fit_camera(viewer, [preview])
    return preview
