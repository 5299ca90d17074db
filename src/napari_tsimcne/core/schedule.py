"""The three training stages and their learning-rate schedule.

t-SimCNE trains in three stages (Böhm et al. 2023):

1. pre-train the whole network with a 128-D output;
2. replace the last linear layer by a 2-D one and train only that layer;
3. fine-tune the whole network in 2-D at a learning rate 1000 times smaller.

Each stage uses SGD with a linear warm-up followed by cosine decay to zero,
updated every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STAGE_NAMES = ("pre-training", "last layer", "fine-tuning")
"""The stages' names as shown to the user (the paper's contrastive finish)."""

TSNE_STAGE_NAMES = ("pre-training", "t-SNE of the features", "fitting the network to the map")
"""The stages' names with the t-SNE finish (``napari_tsimcne.core.tsne_finish``)."""

PAPER_EPOCHS = (1000, 50, 450)
"""The paper's epochs of the three stages (Böhm et al. 2023)."""

QUICK_GPU_EPOCHS = (40, 4, 16)
"""A first map in minutes on a CUDA GPU (the widget's and the demo's epochs there)."""


@dataclass(frozen=True)
class Stage:
    """One training stage of t-SimCNE (Böhm, Berens & Kobak, ICLR 2023)."""

    index: int
    """0: pre-training in 128-D, 1: training the new 2-D last layer, 2: fine-tuning in 2-D."""
    epochs: int
    """Epochs of the stage."""
    lr: float
    """Peak learning rate, reached after the warm-up."""
    warmup_epochs: int
    """Epochs of linear warm-up before the cosine decay."""
    train_only_last_layer: bool
    """Whether only the last layer learns (stage 2); the rest of the network is frozen."""
    finish: str = "contrastive"
    """How the map is made after pre-training: ``"contrastive"`` (the paper's) or ``"tsne"``."""

    @property
    def name(self) -> str:
        """The stage's name as shown to the user."""
        return (TSNE_STAGE_NAMES if self.finish == "tsne" else STAGE_NAMES)[self.index]


def default_lr(batch_size: int) -> float:
    """The learning rate for a batch size: SimCLR's linear scaling rule, 0.03 x batch / 256.

    t-SimCNE (Böhm, Berens & Kobak, ICLR 2023) uses this rule from SimCLR (Chen et al. 2020).

    Parameters
    ----------
    batch_size : int
        Tiles per training step.

    Returns
    -------
    float
        The learning rate of stages 1 and 2.
    """
    return 0.03 * batch_size / 256


def auto_warmup(epochs: int) -> int:
    """Warm-up epochs for a stage: 10 as in the paper, but at most a tenth of a short stage.

    Parameters
    ----------
    epochs : int
        Epochs of the stage.

    Returns
    -------
    int
        Warm-up epochs.
    """
    return min(10, epochs // 10)


def make_stages(
    total_epochs: tuple[int, int, int],
    lr: float,
    warmup: int | str = "auto",
    finetune_lr: float | None = None,
    finish: str = "contrastive",
) -> list[Stage]:
    """The three stages with learning rates lr, lr and ``finetune_lr``, warm-up in stages 1 and 3.

    Parameters
    ----------
    total_epochs : tuple of 3 int
        Epochs of each stage; the paper's are (1000, 50, 450).
    lr : float
        Learning rate of stages 1 and 2 (see ``default_lr``).
    warmup : int or "auto"
        Warm-up epochs of stages 1 and 3 (at most the stage's epochs); ``"auto"`` uses
        ``auto_warmup``.
    finetune_lr : float, optional
        Learning rate of stage 3; default ``lr / 1000``, the paper's.
    finish : {"contrastive", "tsne"}, default "contrastive"
        With ``"tsne"``, stage 2 is the t-SNE of the features (one step, whatever its epochs say)
        and stage 3 fits the map head to it at ``tsne_finish.DISTILL_LR`` (Adam), warming up over a
        tenth of its epochs.

    Returns
    -------
    list of Stage
        The three stages in order.
    """
    e1, e2, e3 = total_epochs
    w = (lambda e: auto_warmup(e)) if warmup == "auto" else (lambda e: min(int(warmup), e))
    if finish == "tsne":
        from .tsne_finish import DISTILL_LR

        return [
            Stage(0, e1, lr, w(e1), False, finish),
            Stage(1, 1 if (e2 or e3) else 0, 0.0, 0, True, finish),
            Stage(2, e3, DISTILL_LR, max(1, e3 // 10) if e3 else 0, False, finish),
        ]
    return [
        Stage(0, e1, lr, w(e1), False),
        Stage(1, e2, lr, 0, True),
        Stage(2, e3, lr / 1000 if finetune_lr is None else finetune_lr, w(e3), False),
    ]


def lr_at(stage: Stage, step: int, steps_per_epoch: int) -> float:
    """Learning rate at ``step`` (0-based) of ``stage``: linear warm-up, then cosine decay to 0.

    Parameters
    ----------
    stage : Stage
        The stage.
    step : int
        Steps done in the stage so far.
    steps_per_epoch : int
        Steps in one epoch.

    Returns
    -------
    float
        The learning rate for this step.
    """
    total = stage.epochs * steps_per_epoch
    warm = stage.warmup_epochs * steps_per_epoch
    if step < warm:
        return stage.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return stage.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
