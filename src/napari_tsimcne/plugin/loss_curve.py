"""Where the loss plot draws its curves (no Qt): each stage's epochs and losses as fractions of the plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .training_session import LossPoint

LOW, HIGH = 0.1, 0.9
"""A curve spans this band of the plot's height (bottom 0, top 1), leaving room for the text above it."""
MIN_SPAN = 0.02
"""Loss changes smaller than this fraction of the loss are not stretched to the plot's height."""


def scale_of(stage: int, finish: str = "contrastive") -> int:
    """The loss scale a stage shares: pre-training (128-D) alone, the two map stages (2D) together.

    With the t-SNE finish every stage has a loss of its own kind (InfoNCE, the t-SNE's KL
    divergence, the squared error of fitting the map) and its own scale.

    Parameters
    ----------
    stage : int
        1 (pre-training), 2 (to 2D) or 3 (fine-tuning).
    finish : str, default "contrastive"
        How the run makes its map after pre-training.

    Returns
    -------
    int
        1 for pre-training, 2 for the map stages; with ``finish="tsne"`` the stage itself.
    """
    if finish == "tsne":
        return stage
    return 1 if stage == 1 else 2


def stage_starts(points: Sequence[LossPoint]) -> dict[int, int]:
    """The first epoch of each stage so far (where the plot draws a boundary).

    Parameters
    ----------
    points : sequence of LossPoint
        The loss of every epoch so far, in order.

    Returns
    -------
    dict
        {stage: first epoch}.
    """
    starts: dict[int, int] = {}
    for p in points:
        starts.setdefault(p.stage, p.epoch)
    return starts


def loss_curves(
    points: Sequence[LossPoint], total_epochs: int
) -> dict[int, list[tuple[float, float]]]:
    """Each stage's curve as (x, y) fractions of the plot: x from the left, y from the bottom, both 0..1.

    An epoch is drawn at its middle on an axis of ``total_epochs`` epochs. Pre-training and the map
    stages are scaled on their own (``scale_of``), between ``LOW`` and ``HIGH``; a loss that
    changes by less than ``MIN_SPAN`` of itself stays nearly flat. Losses that are not finite are left out.

    Parameters
    ----------
    points : sequence of LossPoint
        The loss of every epoch so far.
    total_epochs : int
        The planned number of epochs (the right edge of the plot).

    Returns
    -------
    dict
        {stage: [(x, y), ...]} in epoch order; stages without a finite loss are left out.
    """
    n = max(1, int(total_epochs))
    curves: dict[int, list[tuple[float, float]]] = {}
    for stage in sorted({p.stage for p in points}):
        pts = [p for p in points if p.stage == stage and math.isfinite(p.loss)]
        if not pts:
            continue
        scale = [
            p.loss
            for p in points
            if scale_of(p.stage, p.finish) == scale_of(stage, pts[0].finish)
            and math.isfinite(p.loss)
        ]
        lo, hi = min(scale), max(scale)
        span = max(hi - lo, MIN_SPAN * max(abs(hi), 1e-6))
        curves[stage] = [
            ((p.epoch - 0.5) / n, LOW + (HIGH - LOW) * (p.loss - lo) / span) for p in pts
        ]
    return curves
