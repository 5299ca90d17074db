"""The training loop, written as a generator of progress events.

Whoever drives the loop (a script, napari's ``thread_worker``, the
command-line tool) sees every epoch as a ``TrainingEvent`` and stops
training by simply not asking for the next one: the model keeps what it has
learned so far. Every epoch reseeds the augmentation and shuffling random
generators from (seed, epoch), so a run resumed from a checkpoint at an epoch
boundary continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from .augment import AugmentationSettings, augment, make_generator
from .config import TrainingConfig
from .device import GPU_DEFAULTS, autocast, memory_format
from .distributed import SINGLE, DistContext, gather_views, mean_over_processes, wrap
from .loss import cauchy_infonce
from .model import TSimCNENet
from .neighbors import NeighborViews, intensity_neighbors
from .schedule import Stage, lr_at
from .store import TileStore
from .tsne_finish import (
    PASSES_PER_EPOCH,
    distill_epoch,
    feature_tsne,
    is_map_head,
    new_map_head,
)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the model is kept as of the last good epoch."""


@dataclass(frozen=True)
class TrainingEvent:
    """Progress of one finished epoch."""

    stage: int
    """1: pre-training (128-D), 2: last layer only, 3: fine-tuning."""
    stage_name: str
    """The stage in words: "pre-training", "last layer" or "fine-tuning"."""
    epoch: int
    """Epoch within the stage, from 1."""
    stage_epochs: int
    """Epochs planned for this stage."""
    global_epoch: int
    """Epoch over all stages, from 1."""
    total_epochs: int
    """Epochs planned for all stages (a time budget may change it after an epoch)."""
    loss: float
    """Mean loss of the epoch."""
    lr: float
    """Learning rate at the epoch's last step."""
    views_per_second: float
    """Augmented views trained on per second, all processes together."""
    seconds: float
    """Time since training started."""
    batch_size: int
    """Tiles per step (per process) in this epoch."""
    embedding: np.ndarray | None = None
    """All tiles mapped, (N, out_dim), on some epochs; in stage 1 a PCA of the 128-D output."""
    message: str | None = None
    """Something the user should know (e.g. the batch was halved after running out of memory)."""

    @property
    def fraction_done(self) -> float:
        """Share of all epochs finished, from 0 to 1."""
        return self.global_epoch / max(1, self.total_epochs)


@dataclass
class TrainerState:
    """Where training stands; everything needed to continue from an epoch boundary.

    Parameters
    ----------
    stage : int
        The stage being trained (0-based).
    epoch : int
        Finished epochs within that stage.
    batch_size : int
        The batch size now (halved after running out of GPU memory).
    history : list of dict
        One record per finished epoch (stage, epoch, loss, learning rate, throughput).
    target : torch.Tensor, optional
        With the t-SNE finish: the t-SNE map of the features (N, out_dim) the network is fitted to.
    """

    stage: int = 0
    epoch: int = 0  # finished epochs within the stage
    batch_size: int = GPU_DEFAULTS.batch_size
    history: list = field(default_factory=list)
    target: torch.Tensor | None = None


def _epoch_seed(seed: int, global_epoch: int, *more: int) -> int:
    return int(np.random.SeedSequence([seed, global_epoch, *more]).generate_state(1)[0])


class _StageModel(nn.Module):
    """The forward pass of one stage: the whole network, or (stage 2) the last layer on frozen features.

    Wrapping this (not the bare network) in DistributedDataParallel lets
    stage 2 keep the backbone out of the gradient computation.
    """

    def __init__(self, net: TSimCNENet, only_last: bool, device: torch.device) -> None:
        super().__init__()
        self.net = net
        self.only_last = only_last
        self.device = device

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        with autocast(self.device):
            if self.only_last:
                with torch.no_grad():
                    h = self.net.head.hidden(self.net.features(views))
                return self.net.head.last(h)
            return self.net(views)


class Trainer:
    """Runs the three t-SimCNE stages on a ``TileStore``, one epoch per event.

    Parameters
    ----------
    net : TSimCNENet
        The network to train, on the store's device; its last layer is replaced
        (or re-projected) when stage 2 starts.
    store : TileStore
        The normalised training tiles.
    stages : list of Stage
        The three stages (see ``make_stages``).
    augmentations : AugmentationSettings
        The augmentations, decided for the stack (``rgb`` set).
    config : TrainingConfig
        Batch size, seed, optimiser settings, previews (one frozen object).
    state : TrainerState, optional
        Where to start (a resumed run); default: the beginning.
    optimizer_state : dict, optional
        The optimizer's state to restore when resuming in the middle of a stage.
    dist : DistContext, default SINGLE
        This process's place under ``torchrun``; one process by default.
    """

    def __init__(
        self,
        net: TSimCNENet,
        store: TileStore,
        stages: list[Stage],
        augmentations: AugmentationSettings,
        config: TrainingConfig,
        *,
        state: TrainerState | None = None,
        optimizer_state: dict | None = None,
        dist: DistContext = SINGLE,
    ) -> None:
        self.net = net
        self.store = store
        self.stages = stages
        self.augmentations = augmentations
        self.config = config
        self.device = store.device
        self.state = state or TrainerState(batch_size=config.batch_size)
        self.optimizer: torch.optim.Optimizer | None = None
        self._optimizer_state = optimizer_state  # restored when resuming mid-stage
        self.dist = dist
        self._model: nn.Module | None = None

    # -- stages -------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        """Epochs of all stages together (the plan may change with ``replan``)."""
        return sum(s.epochs for s in self.stages)

    def _global_epoch(self, stage: int, epoch: int) -> int:
        return sum(s.epochs for s in self.stages[:stage]) + epoch

    def _enter_stage(self, stage: Stage) -> None:
        """Set trainable parameters and a new optimizer for ``stage``."""
        self._entered = stage.index
        if stage.finish == "tsne" and stage.index >= 1:
            self._enter_tsne_stage(stage)
            return
        if stage.index >= 1 and self.net.out_dim != self.config.out_dim:
            if self.config.init_2d == "pca":
                self._init_last_layer_from_pca()
            else:
                gen = make_generator(
                    torch.device("cpu"), _epoch_seed(self.config.seed, 0)
                )  # epochs count from 1
                self.net.replace_last_layer(self.config.out_dim, gen)
            self.net.to(self.device)
        only_last = stage.train_only_last_layer
        for p in self.net.parameters():
            p.requires_grad_(not only_last)
        self.net.head.last.requires_grad_(True)
        params = [p for p in self.net.parameters() if p.requires_grad]
        self._model = wrap(_StageModel(self.net, only_last, self.device), self.dist, self.device)
        self.optimizer = torch.optim.SGD(
            params,
            lr=stage.lr,
            momentum=self.config.momentum,
            weight_decay=self.config.weight_decay,
        )
        if self._optimizer_state is not None:
            self.optimizer.load_state_dict(self._optimizer_state)
            self._optimizer_state = None
        self._remember_good_weights()

    def _enter_tsne_stage(self, stage: Stage) -> None:
        """The t-SNE finish: features of all tiles once; at stage 3 a new map head and its optimizer."""
        if getattr(self, "_features", None) is None:
            _, features = self.embed(return_features=True)
            self._features = torch.from_numpy(features).float().to(self.device)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.optimizer = None
        if stage.index == 2:
            target = self.state.target.to(self.device)
            if not is_map_head(self.net.head):
                self.net.head = new_map_head(self._features, target, self.config.seed)
            for p in self.net.head.parameters():
                p.requires_grad_(True)
            self.optimizer = torch.optim.Adam(self.net.head.parameters(), lr=stage.lr)
            if self._optimizer_state is not None:
                self.optimizer.load_state_dict(self._optimizer_state)
                self._optimizer_state = None
        self._remember_good_weights()

    def _tsne_epoch(
        self, stage: Stage, global_epoch: int, stop: threading.Event | None
    ) -> tuple[float, float, int] | None:
        """Stage 2 of the t-SNE finish (the t-SNE) or one epoch of stage 3 (fitting the head to it)."""
        n = len(self.store)
        if stage.index == 1:
            result = feature_tsne(
                self._features.cpu().numpy(), self.config.out_dim, self.config.seed, stop=stop
            )
            if result is None:
                return None
            self.state.target = torch.from_numpy(result[0])
            return result[1], 0.0, 0  # no views: the network does not train here
        gen_cpu = make_generator(torch.device("cpu"), _epoch_seed(self.config.seed, global_epoch))
        done = self.state.epoch
        order = torch.cat([torch.randperm(n, generator=gen_cpu) for _ in range(PASSES_PER_EPOCH)])
        result = distill_epoch(
            self.net.head,
            self.optimizer,
            self._features,
            self.state.target.to(self.device),
            order,
            lambda step, steps: lr_at(stage, done * steps + step, steps),
            stop,
        )
        return None if result is None else (result[0], result[1], 0)  # features, not views

    def _remember_good_weights(self) -> None:
        """Keep a copy of the weights (on the device) to fall back to if the loss diverges."""
        self._good_weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    @torch.no_grad()
    def _init_last_layer_from_pca(self, max_tiles: int = 4096) -> None:
        """Start the low-dimensional layer as the PCA of the pre-trained output, each axis scaled to the same spread."""
        was_training = self.net.training
        self.net.eval()
        with autocast(self.device):
            z = self.net(
                self.store.evenly_spaced(max_tiles).contiguous(
                    memory_format=memory_format(self.device)
                )
            )
        self.net.train(was_training)
        z = z.float()
        mean = z.mean(0)
        _, s, vt = torch.linalg.svd(z - mean, full_matrices=False)
        spread = (s[: self.config.out_dim] / (len(z) - 1) ** 0.5).clamp_min(1e-6)
        comps = (
            vt[: self.config.out_dim] / spread[:, None] * self.config.init_scale
        )  # each axis with the same spread
        self.net.project_last_layer(comps, mean)

    # -- one epoch ----------------------------------------------------------
    def _augmentation_generator(
        self, gen_cpu: torch.Generator, global_epoch: int
    ) -> torch.Generator:
        """One process: the shuffling generator (CPU) or one seeded alike; several: one per process."""
        if self.dist.active:
            return make_generator(
                self.device, _epoch_seed(self.config.seed, global_epoch, self.dist.rank)
            )
        if self.device.type == "cpu":
            return gen_cpu
        return make_generator(self.device, _epoch_seed(self.config.seed, global_epoch))

    def _run_epoch(
        self, stage: Stage, global_epoch: int, stop: threading.Event | None = None
    ) -> tuple[float, float, int] | None:
        """Train one epoch; returns (mean loss, last lr, views trained on by all processes).

        With several processes every step takes one global batch of
        ``batch_size x processes`` tiles from the same shuffled order; each
        process augments its own share, and the loss compares its views with
        the views of all processes. Returns None when ``stop`` is set before the
        epoch's last step (checked before every step; a single process only).
        """
        if stage.finish == "tsne" and stage.index >= 1:
            return self._tsne_epoch(stage, global_epoch, stop)
        n = len(self.store)
        bs = self.state.batch_size
        world, rank = self.dist.world_size, self.dist.rank
        steps = n // (bs * world)
        gen_cpu = make_generator(torch.device("cpu"), _epoch_seed(self.config.seed, global_epoch))
        perm = torch.randperm(n, generator=gen_cpu)
        gen_dev = self._augmentation_generator(gen_cpu, global_epoch)
        fmt = memory_format(self.device)
        total = torch.zeros((), device=self.device)
        params = [p for p in self.net.parameters() if p.requires_grad]
        lr = stage.lr
        neighbors = self._neighbor_views()
        self.net.train()
        stoppable = stop is not None and not self.dist.active  # all processes must take each step
        for step in range(steps):
            if stoppable and stop.is_set():
                return None
            lr = lr_at(stage, self.state.epoch * steps + step, steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            first = (step * world + rank) * bs
            index = perm[first : first + bs]
            tiles = self.store.gather(index)
            partners = (
                tiles if neighbors is None else self.store.gather(neighbors.pick(index, gen_cpu))
            )
            views = augment(torch.cat([tiles, partners]), self.augmentations, gen_dev).contiguous(
                memory_format=fmt
            )
            z, rows = gather_views(self._model(views), self.dist)
            loss = cauchy_infonce(z, rows)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip:
                torch.nn.utils.clip_grad_value_(params, self.config.grad_clip)
            self.optimizer.step()
            total += loss.detach()
        total = mean_over_processes(total, self.dist)
        return float(total) / max(1, steps), lr, 2 * bs * world * steps

    def _neighbor_views(self) -> NeighborViews | None:
        """The intensity neighbours the second views are drawn from, found once per run; None when unused."""
        aug = self.augmentations
        if aug.neighbor_views <= 0:
            return None
        if getattr(self, "_neighbors", None) is None:
            self._neighbors = NeighborViews(
                intensity_neighbors(self.store, aug.neighbor_k), aug.neighbor_views
            )
        return self._neighbors

    # -- embedding ----------------------------------------------------------
    @torch.no_grad()
    def embed(
        self, return_features: bool = False, progress: Callable[[int, int], None] | None = None
    ):
        """Map every training tile with the network as it is now.

        Parameters
        ----------
        return_features : bool, default False
            Also return the backbone features.
        progress : callable, optional
            ``progress(done, total)`` after each batch.

        Returns
        -------
        numpy.ndarray
            The output (N, out_dim) (128-D during pre-training); with
            ``return_features=True`` a tuple of it and the features.
        """
        return embed_store(
            self.net,
            self.store,
            self.config.embed_batch_size,
            return_features=return_features,
            progress=progress,
        )

    def preview(self) -> np.ndarray:
        """The map of all tiles now; during pre-training the first two principal axes.

        Returns
        -------
        numpy.ndarray of shape (N, 2) or (N, 3)
            The map.
        """
        if self.state.target is not None and not is_map_head(self.net.head):
            return self.state.target.numpy()  # the t-SNE finish: its map, before the head learns it
        if is_map_head(self.net.head) and getattr(self, "_features", None) is not None:
            with torch.no_grad():  # the head alone, on the features it is fitted to
                self.net.head.eval()
                y = self.net.head(self._features).float().cpu().numpy()
                self.net.head.train()
            return y
        y = self.embed()
        return y if y.shape[1] <= 3 else pca_2d(y)[0]

    # -- the generator ------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> Iterator[TrainingEvent]:
        """Train from the current state to the end, yielding one event per epoch.

        Parameters
        ----------
        stop : threading.Event, optional
            Set from another thread to end training within one step: the epoch
            under way is left unfinished (the state stays at the last finished
            epoch, so a resumed run repeats it) and the generator ends.

        Returns
        -------
        iterator of TrainingEvent
            One event per finished epoch; stop early by no longer iterating.

        Raises
        ------
        TrainingDivergedError
            When the loss becomes NaN or infinite (the weights of the last good
            epoch are restored first).
        RuntimeError
            When the GPU runs out of memory under several processes, or even at batch size 16.
        """
        start = time.perf_counter()
        pending_message = None
        for index in range(self.state.stage, len(self.stages)):
            stage = self.stages[index]
            if stage.epochs == 0:
                self.state.stage, self.state.epoch = stage.index + 1, 0
                continue
            self._enter_stage(stage)
            while self.state.stage == index and self.state.epoch < self.stages[index].epochs:
                stage = self.stages[index]  # re-read: replan() may have changed the epochs
                global_epoch = self._global_epoch(stage.index, self.state.epoch) + 1
                t0 = time.perf_counter()
                try:
                    result = self._run_epoch(stage, global_epoch, stop)
                except torch.cuda.OutOfMemoryError:
                    if self.dist.active:  # every process would have to agree on the new batch size
                        raise RuntimeError(
                            f"GPU out of memory at batch size {self.state.batch_size} per process. "
                            "Restart with a smaller batch size."
                        ) from None
                    pending_message = self._halve_batch()  # the epoch restarts at the smaller batch
                    continue
                if result is None:  # stopped part-way through the epoch
                    return
                loss, lr, views = result
                message, pending_message = pending_message, None
                if not np.isfinite(loss):
                    self.net.load_state_dict(self._good_weights)
                    raise TrainingDivergedError(
                        f"The loss became {loss} in stage {stage.index + 1} ({stage.name}), epoch {self.state.epoch + 1}. "
                        "The model was reset to its last good epoch. "
                        "Try a smaller learning rate or check the tiles for extreme values."
                    )
                self._remember_good_weights()
                dt = time.perf_counter() - t0
                self.state.epoch += 1
                last_of_stage = self.state.epoch == stage.epochs
                is_final = last_of_stage and stage.index == len(self.stages) - 1
                want_preview = self.config.preview_every > 0 and (
                    global_epoch % self.config.preview_every == 0 or last_of_stage
                )
                embedding = (
                    self.preview()
                    if (want_preview and not is_final and self.dist.is_main)
                    else None
                )
                record = dict(
                    stage=stage.index + 1,
                    epoch=self.state.epoch,
                    loss=loss,
                    lr=lr,
                    views_per_second=views / dt if dt > 0 else float("nan"),
                    seconds=dt,
                    batch_size=self.state.batch_size,
                )
                if stage.finish != "contrastive":  # its stages 2 and 3 have other losses
                    record["finish"] = stage.finish
                self.state.history.append(record)
                if last_of_stage:  # the next stage starts from its first epoch
                    self.state.stage, self.state.epoch = stage.index + 1, 0
                yield TrainingEvent(
                    stage=stage.index + 1,
                    stage_name=stage.name,
                    epoch=record["epoch"],
                    stage_epochs=stage.epochs,
                    global_epoch=global_epoch,
                    total_epochs=self.total_epochs,
                    loss=loss,
                    lr=lr,
                    views_per_second=record["views_per_second"],
                    seconds=time.perf_counter() - start,
                    batch_size=self.state.batch_size,
                    embedding=embedding,
                    message=message,
                )

    def replan(self, stages: list[Stage]) -> None:
        """Train ``stages`` from now on (a time budget re-measured after the first epoch).

        Finished epochs stay finished: the current stage keeps at least the epochs it has done.
        Right after the last epoch of a stage (before the next one starts), that stage can
        still be lengthened.

        Parameters
        ----------
        stages : list of Stage
            The new plan, with the same three stages.

        Raises
        ------
        ValueError
            When ``stages`` are not the same three stages.
        """
        if [s.index for s in stages] != [s.index for s in self.stages]:
            raise ValueError("replan() needs the same three stages.")
        current, done = self.state.stage, self.state.epoch
        previous = current - 1
        if (
            done == 0
            and previous >= 0
            and getattr(self, "_entered", None) == previous
            and stages[previous].epochs > self.stages[previous].epochs
        ):
            # the stage that has just ended (its optimizer still in place) is to go on
            current, done = previous, self.stages[previous].epochs
            self.state.stage, self.state.epoch = current, done
        self.stages = [
            replace(s, epochs=max(s.epochs, done)) if s.index == current else s for s in stages
        ]

    def _halve_batch(self) -> str:
        if self.state.batch_size <= 16:
            raise RuntimeError(
                "The GPU ran out of memory even at batch size 16; use a smaller model or the CPU."
            )
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        self.state.batch_size //= 2
        return (
            f"GPU out of memory: batch size halved to {self.state.batch_size}; training continues."
        )


@torch.no_grad()
def embed_store(
    net: TSimCNENet,
    store: TileStore,
    batch_size: int,
    *,
    return_features: bool = False,
    progress: Callable[[int, int], None] | None = None,
):
    """Map every tile of ``store`` through ``net`` (eval mode, no augmentation).

    Parameters
    ----------
    net : TSimCNENet
        The network; its training mode is restored afterwards.
    store : TileStore
        The tiles, normalised.
    batch_size : int
        Tiles per forward pass.
    return_features : bool, default False
        Also return the backbone features.
    progress : callable, optional
        ``progress(done, total)`` after each batch, with the number of tiles mapped so far.

    Returns
    -------
    numpy.ndarray
        The output (N, out_dim) as float32; with ``return_features=True`` a tuple of it
        and the features (N, 8 x width).
    """
    was_training = net.training
    net.eval()
    fmt = memory_format(store.device)
    outs, feats = [], []
    try:
        for idx, tiles in store.iter_batches(batch_size):
            with autocast(store.device):
                h = net.features(tiles.contiguous(memory_format=fmt))
                z = net.head(h)
            outs.append(z.float().cpu())
            if return_features:
                feats.append(h.float().cpu())
            if progress is not None:
                progress(int(idx[-1]) + 1, store.n_tiles)
    finally:
        net.train(was_training)
    y = torch.cat(outs).numpy()
    return (y, torch.cat(feats).numpy()) if return_features else y


def pca_2d(y: np.ndarray, basis: tuple[np.ndarray, np.ndarray] | None = None):
    """Project ``y`` onto its first two principal components.

    Parameters
    ----------
    y : numpy.ndarray of shape (N, D)
        Points to project.
    basis : tuple of (mean, components), optional
        A projection found before (to map new points alike); default: found from ``y``.

    Returns
    -------
    projection : numpy.ndarray of shape (N, 2)
        The projected points, float32.
    basis : tuple of (mean, components)
        The mean (D,) and the two principal axes (2, D).
    """
    if basis is None:
        mean = y.mean(0)
        _, _, vt = np.linalg.svd(y - mean, full_matrices=False)
        basis = (mean, vt[:2])
    mean, comps = basis
    return ((y - mean) @ comps.T).astype(np.float32), basis
