"""The settings of one training run, in one frozen object, and the batch size a stack suggests.

``TrainingConfig`` is the single home of the optimiser's and the training
loop's defaults (SGD momentum, weight decay, gradient clipping, how the 2-D
layer starts); ``TSimCNE`` takes its own
defaults from here. This module does not import PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingConfig:
    """How the ``Trainer`` trains, with ``"auto"`` already resolved.

    Parameters
    ----------
    batch_size : int
        Tiles per step (per process under ``torchrun``); each tile gives two views.
    seed : int
        Seed of the shuffling and the augmentations; every epoch reseeds from (seed, epoch).
    embed_batch_size : int
        Tiles per forward pass when mapping all tiles (previews and the final map).
    out_dim : int, default 2
        Dimension of the map trained in stages 2 and 3: 2 (a map) or 3 (a point cloud).
    momentum : float, default 0.9
        SGD momentum (Böhm, Berens & Kobak, ICLR 2023).
    weight_decay : float, default 5e-4
        SGD weight decay (Böhm, Berens & Kobak, ICLR 2023).
    grad_clip : float or None, default 4.0
        Gradient values are clipped at this magnitude; None: no clipping.
    preview_every : int, default 0
        Map all tiles every this many epochs and attach the map to the event; 0: never.
    init_2d : {"pca", "random"}, default "pca"
        How stage 2 starts its new low-dimensional layer: from the principal axes of the
        pre-trained output, or with Gaussian weights as in the paper.
    finish : {"contrastive", "tsne"}, default "contrastive"
        How stages 2 and 3 make the map: the paper's contrastive stages, or a t-SNE of the
        pre-trained features distilled into a new head (``napari_tsimcne.core.tsne_finish``).
    init_scale : float, default 10.0
        With ``init_2d="pca"``: the spread (standard deviation) of each axis of the starting map.
    """

    batch_size: int
    seed: int
    embed_batch_size: int
    out_dim: int = 2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float | None = 4.0
    preview_every: int = 0
    init_2d: str = "pca"
    init_scale: float = 10.0
    finish: str = "contrastive"


def default_batch_size(n_tiles: int, largest: int = 1024) -> int:
    """The batch size suggested for a stack: the largest power of two that the stack holds.

    Parameters
    ----------
    n_tiles : int
        Number of tiles (per process, when several processes share the stack).
    largest : int, default 1024
        The largest batch to suggest (the device's default: 1024 on a GPU, 256 on a CPU).

    Returns
    -------
    int
        ``min(largest, 2**k)`` for the largest ``2**k <= n_tiles``; at least 2.

    Examples
    --------
    >>> default_batch_size(300), default_batch_size(5000), default_batch_size(5000, 256)
    (256, 1024, 256)
    """
    return max(2, min(largest, 1 << (max(2, int(n_tiles)).bit_length() - 1)))
