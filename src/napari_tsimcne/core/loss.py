"""InfoNCE with a Cauchy similarity: t-SimCNE's contrastive loss.

For a batch of B tiles there are 2B views; view i's positive is its twin
(the other augmentation of the same tile) and the remaining 2B - 2 views are
its negatives. Similarity is the Cauchy kernel ``1 / (1 + |z_i - z_j|^2)`` on
Euclidean distances, as in t-SNE, instead of SimCLR's cosine similarity, so
the loss is meaningful directly in 2D (Böhm, Berens, Kobak, ICLR 2023).
"""

from __future__ import annotations

import torch


def cauchy_infonce(z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss over all 2B views; ``z`` is (2B, d) with rows i and i + B the two views of tile i.

    ``loss_i = -log s(i, twin(i)) + log sum_{j != i} s(i, j)`` with
    ``s(i, j) = 1 / (1 + |z_i - z_j|^2)``. Computed in float32. With
    ``rows``, only those views are anchors (the mean is over them), while all
    2B views remain their negatives: how each training process scores its own
    views against the views of every process.

    The Cauchy kernel in place of SimCLR's cosine similarity is what lets the output be
    two-dimensional (Böhm, Berens & Kobak, "Unsupervised visualization of image datasets using
    contrastive learning", ICLR 2023).

    Parameters
    ----------
    z : torch.Tensor
        (2B, d) outputs of the network for the two views of B tiles.
    rows : torch.Tensor, optional
        Indices of the views that are anchors (default: all 2B).

    Returns
    -------
    torch.Tensor
        The mean loss, a scalar.

    Raises
    ------
    ValueError
        Fewer than 4 views, or an odd number.
    """
    z = z.float()
    n = z.shape[0]
    if n % 2 or n < 4:
        raise ValueError(f"cauchy_infonce needs an even number of at least 4 views, got {n}.")
    b = n // 2
    rows = torch.arange(n, device=z.device) if rows is None else rows
    sq = (z * z).sum(1)
    d2 = (sq[rows, None] + sq[None, :] - 2.0 * (z[rows] @ z.T)).clamp_min(0.0)
    sim = 1.0 / (1.0 + d2)
    local = torch.arange(len(rows), device=z.device)
    sim = sim.index_put((local, rows), torch.zeros((), device=z.device))
    positive = sim[local, (rows + b) % n]
    return (sim.sum(1).log() - positive.log()).mean()
