"""Training for a time budget: epochs chosen from the speed measured on the first steps.

A person asks for "a map in about 10 minutes", not for "16 / 1 / 7 epochs".
Before training, ``measure_step_costs`` times a few real training steps
on a throw-away copy of the network (so the run itself is not changed), a
step of stage 2 (only the last layer trains) and the mapping of one batch.
``epochs_for_budget`` then picks the largest number of epochs, split over
the three stages in the paper's ratio 1000 : 50 : 450 (Böhm et al. 2023),
whose training, live previews and final mapping of all tiles fit the budget.
After the first epoch the estimator plans the rest again from that epoch's
real speed, which is steadier than a few steps.

The epochs depend on the machine's speed, so the same seed on another
machine (or on a busy one) can give another number of epochs and another
map. For a run that must be repeated exactly, give ``total_epochs``.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from .augment import AugmentationSettings, augment, make_generator
from .config import TrainingConfig
from .device import autocast, memory_format
from .loss import cauchy_infonce
from .model import TSimCNENet
from .schedule import PAPER_EPOCHS
from .store import TileStore

PAPER_RATIO = PAPER_EPOCHS
"""Epochs of the three stages in the paper; a time budget keeps these proportions."""

PREVIEW_SHARE = 0.05
"""At most this share of a time budget goes to live previews of the map."""

MAX_PREVIEWS = 25
"""Live previews of a whole run, at most (as for ``preview_every='auto'``)."""


@dataclass(frozen=True)
class StepCosts:
    """Measured seconds of the parts of a training run on one machine."""

    full_step: float
    """One training step of the whole network (stages 1 and 3)."""
    last_layer_step: float
    """One training step of stage 2 (frozen backbone, only the last layer learns)."""
    embed_tile: float
    """Mapping one tile (forward pass, no augmentation)."""

    def epoch_seconds(self, steps_per_epoch: int) -> tuple[float, float]:
        """Seconds per epoch of (stages 1 and 3, stage 2).

        Parameters
        ----------
        steps_per_epoch : int
            Training steps in one epoch.

        Returns
        -------
        tuple of float
            Seconds of an epoch of stages 1 and 3, and of stage 2.
        """
        return self.full_step * steps_per_epoch, self.last_layer_step * steps_per_epoch


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _timed(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    The first calls of a new shape are slow (kernels are chosen, memory is allocated).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        t0 = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def measure_step_costs(
    net: TSimCNENet,
    store: TileStore,
    augmentations: AugmentationSettings,
    batch_size: int,
    *,
    repeats: int = 3,
    seed: int = 0,
) -> StepCosts:
    """Time training steps and mapping on a copy of ``net``; ``net`` itself is left untouched.

    Parameters
    ----------
    net : TSimCNENet
        The network about to be trained (its weights and buffers are not changed).
    store : TileStore
        The training tiles, on the training device.
    augmentations : AugmentationSettings
        The augmentations of the run (they are part of every step's cost).
    batch_size : int
        Tiles per step; each gives two views.
    repeats : int
        Timed steps of each kind, after two warm-up steps.
    seed : int
        Seed of the throw-away augmentation generator (the run's generators are not used).

    Returns
    -------
    StepCosts
        Median seconds per full step, per stage-2 step and per mapped tile.
    """
    device = store.device
    fmt = memory_format(device)
    probe = copy.deepcopy(net).train()
    optimizer = torch.optim.SGD(  # the run's optimizer, at a learning rate that changes nothing
        probe.parameters(), lr=1e-6, momentum=TrainingConfig.momentum
    )
    gen = make_generator(device, seed)
    tiles = store.gather(torch.arange(min(batch_size, len(store))))

    def views() -> torch.Tensor:
        return augment(torch.cat([tiles, tiles]), augmentations, gen).contiguous(memory_format=fmt)

    def full_step() -> None:
        with autocast(device):
            z = probe(views())
        loss = cauchy_infonce(z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def last_layer_step() -> None:
        with autocast(device):
            with torch.no_grad():
                h = probe.head.hidden(probe.features(views()))
            z = probe.head.last(h)
        loss = cauchy_infonce(z)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def mapping() -> None:
        with autocast(device):
            probe.head(probe.features(tiles.contiguous(memory_format=fmt)))

    full = _timed(full_step, device, repeats)
    last = _timed(last_layer_step, device, repeats)
    probe.eval()
    embed = _timed(mapping, device, repeats, warmup=1) / len(tiles)
    del probe, optimizer
    return StepCosts(full, last, embed)


def epochs_for_budget(
    seconds: float,
    costs: StepCosts,
    n_tiles: int,
    batch_size: int,
    *,
    previews: bool = True,
    ratio: tuple[int, int, int] = PAPER_RATIO,
    finish: str = "contrastive",
    distill_epoch: float = 0.0,
) -> tuple[tuple[int, int, int], int]:
    """The most epochs (in ``ratio``) whose training, previews and final mapping fit ``seconds``.

    Parameters
    ----------
    seconds : float
        The time left for training and mapping.
    costs : StepCosts
        From ``measure_step_costs``.
    n_tiles, batch_size : int
        The stack size and the tiles per step (an epoch has ``n_tiles // batch_size`` steps).
    previews : bool
        Whether live previews of the map are wanted; they get at most
        ``PREVIEW_SHARE`` of the budget and at most ``MAX_PREVIEWS``.
    ratio : tuple of int
        Proportions of the three stages.
    finish : {"contrastive", "tsne"}, default "contrastive"
        With ``"tsne"`` the last two stages are one t-SNE (``tsne_finish.tsne_seconds``) and up to
        ``tsne_finish.DISTILL_EPOCHS`` epochs of fitting the head (at most a quarter of
        ``seconds``); pre-training gets the rest.
    distill_epoch : float, default 0.0
        With ``"tsne"``: seconds of one epoch of fitting the head (``time_distill_epoch``).

    Returns
    -------
    epochs : tuple of int
        Epochs of the three stages (each at least 1).
    preview_every : int
        Map all tiles every this many epochs during training (0: never).
    """
    steps = max(1, n_tiles // batch_size)
    full_epoch, last_epoch = costs.epoch_seconds(steps)
    mapping = costs.embed_tile * n_tiles
    n_previews = 0
    if previews and mapping > 0:
        n_previews = int(min(MAX_PREVIEWS, PREVIEW_SHARE * seconds // mapping))
    left = seconds - mapping * (1 + n_previews)
    if finish == "tsne":
        return _tsne_finish_epochs(
            left, seconds, full_epoch, mapping, n_tiles, n_previews, distill_epoch
        )
    share = [r / sum(ratio) for r in ratio]
    per_unit = (share[0] + share[2]) * full_epoch + share[
        1
    ] * last_epoch  # seconds per epoch of the mix
    total = max(0.0, left) / per_unit if per_unit > 0 else 1.0
    epochs = [max(1, math.floor(total * sh)) for sh in share]

    def cost(e: list[int]) -> float:
        return (e[0] + e[2]) * full_epoch + e[1] * last_epoch

    # spend what rounding down left over on stage 1 or 3, whichever is further below its share
    while True:
        for i in sorted((0, 2), key=lambda i: epochs[i] / share[i]):
            more = epochs[:i] + [epochs[i] + 1] + epochs[i + 1 :]
            if cost(more) <= left:
                epochs = more
                break
        else:
            break
    preview_every = 0 if n_previews == 0 else max(1, math.ceil(sum(epochs) / n_previews))
    return tuple(epochs), preview_every  # type: ignore[return-value]


def _tsne_finish_epochs(
    left: float,
    seconds: float,
    full_epoch: float,
    mapping: float,
    n_tiles: int,
    n_previews: int,
    distill_epoch: float,
) -> tuple[tuple[int, int, int], int]:
    """``epochs_for_budget`` with the t-SNE finish: fixed last stages, pre-training gets the rest."""
    from .tsne_finish import DISTILL_EPOCHS, tsne_seconds

    fit = DISTILL_EPOCHS
    if distill_epoch > 0:
        fit = max(1, min(DISTILL_EPOCHS, math.floor(0.25 * seconds / distill_epoch)))
    left -= mapping + tsne_seconds(n_tiles) + fit * distill_epoch  # features, t-SNE, fit
    pretrain = max(1, math.floor(left / full_epoch)) if full_epoch > 0 else 1
    epochs = (pretrain, 1, fit)
    preview_every = 0 if n_previews == 0 else max(1, math.ceil(sum(epochs) / n_previews))
    return epochs, preview_every


def planned_seconds(
    epochs: tuple[int, int, int],
    costs: StepCosts,
    n_tiles: int,
    batch_size: int,
    preview_every: int = 0,
) -> float:
    """Expected seconds of training ``epochs`` plus previews and the final mapping.

    Parameters
    ----------
    epochs : tuple of 3 int
        Epochs of the three stages.
    costs : StepCosts
        Measured seconds per step and per mapped tile (see ``measure_step_costs``).
    n_tiles : int
        Tiles trained on.
    batch_size : int
        Tiles per step.
    preview_every : int
        A map of all tiles every this many epochs (0: none).

    Returns
    -------
    float
        Seconds.
    """
    steps = max(1, n_tiles // batch_size)
    full_epoch, last_epoch = costs.epoch_seconds(steps)
    mapping = costs.embed_tile * n_tiles
    n_previews = sum(epochs) // preview_every if preview_every else 0
    return (
        (epochs[0] + epochs[2]) * full_epoch + epochs[1] * last_epoch + mapping * (1 + n_previews)
    )
