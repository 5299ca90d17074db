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

PAPER_EPOCHS = (1000, 50, 450)
"""The paper's epochs of the three stages (Böhm et al. 2023)."""

QUICK_GPU_EPOCHS = (40, 4, 16)
"""A first map in minutes on a CUDA GPU (the widget's and the demo's epochs there)."""


@dataclass(frozen=True)
class Stage:
    """One training stage."""

    index: int  # 0, 1, 2
    epochs: int
    lr: float
    warmup_epochs: int
    train_only_last_layer: bool

    @property
    def name(self) -> str:
        return STAGE_NAMES[self.index]


def default_lr(batch_size: int) -> float:
    """SimCLR's linear scaling rule, used by t-SimCNE: 0.03 x batch / 256."""
    return 0.03 * batch_size / 256


def auto_warmup(epochs: int) -> int:
    """10 warm-up epochs as in the paper, but at most a tenth of a short stage."""
    return min(10, epochs // 10)


def make_stages(
    total_epochs: tuple[int, int, int], lr: float, warmup: int | str = "auto"
) -> list[Stage]:
    """The three stages with learning rates lr, lr and lr / 1000, warm-up in stages 1 and 3."""
    e1, e2, e3 = total_epochs
    w = (lambda e: auto_warmup(e)) if warmup == "auto" else (lambda e: min(int(warmup), e))
    return [
        Stage(0, e1, lr, w(e1), False),
        Stage(1, e2, lr, 0, True),
        Stage(2, e3, lr / 1000, w(e3), False),
    ]


def lr_at(stage: Stage, step: int, steps_per_epoch: int) -> float:
    """Learning rate at ``step`` (0-based) of ``stage``: linear warm-up, then cosine decay to 0."""
    total = stage.epochs * steps_per_epoch
    warm = stage.warmup_epochs * steps_per_epoch
    if step < warm:
        return stage.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return stage.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
