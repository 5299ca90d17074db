"""``TSimCNE``: the scikit-learn-style entry point of the library."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple, replace
from typing import NamedTuple

import numpy as np
import sklearn.exceptions
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from .augment import AugmentationSettings
from .budget import StepCosts, epochs_for_budget, measure_step_costs
from .config import TrainingConfig, default_batch_size
from .device import GPU_DEFAULTS, defaults_for, memory_format, resolve_device
from .distributed import DistContext, broadcast_ints, broadcast_seed, from_environment
from .fingerprint import TileFingerprint, check_same_tiles, fingerprint
from .memory import check_batch_fits
from .model import TSimCNENet
from .normalization import ChannelNormalization
from .parameters import (
    ParameterError,
    check_parameter,
    check_parameters,
    is_auto,
    is_whole,
)
from .persistence import ModelFileError, load_payload, save_payload
from .recommend import recommend_preset
from .schedule import PAPER_EPOCHS, default_lr, make_stages
from .store import TileStore
from .tiles import MAX_CHANNELS, MIN_TILE_SIZE, TileStackError, as_tile_stack, stack_info
from .training import Trainer, TrainerState, TrainingEvent, embed_store, pca_2d
from .tsne_finish import (
    DISTILL_EPOCHS,
    MAX_TSNE_SHARE,
    MapHead,
    time_distill_epoch,
    tsne_seconds,
)


class NotFittedError(sklearn.exceptions.NotFittedError, RuntimeError):
    """The model has not been trained or loaded yet.

    A ``sklearn.exceptions.NotFittedError`` (so also a ``ValueError`` and an
    ``AttributeError``), and a ``RuntimeError`` as in earlier versions.
    """


class TSimCNE(TransformerMixin, BaseEstimator):
    """t-SimCNE: contrastive learning straight to a 2D map of image tiles [1]_.

    A scikit-learn estimator: ``fit`` trains on a stack of tiles (no labels),
    ``transform`` maps new tiles with the trained network, and
    ``sklearn.base.clone``, ``get_params`` and ``set_params`` work as
    for any estimator. Each parameter is stored as given; ``"auto"`` is resolved
    when training starts, and the attributes ending in ``_`` hold what was used.

    Parameters
    ----------
    total_epochs : tuple of 3 int or "auto", default "auto"
        Epochs of the three stages [1]_: 128-D pre-training, training of the new
        2-D last layer alone, and fine-tuning of everything in 2-D. The
        paper's budget is (1000, 50, 450). ``"auto"``: the paper's
        budget on a CUDA GPU; elsewhere the epochs that fit ``time_budget``.
    batch_size : int or "auto", default "auto"
        Tiles per step; each gives two views, and every other view in the
        batch is a negative [2]_. Larger batches give better maps (the paper uses
        1024). Must not exceed the number of tiles. Under ``torchrun`` this is
        the batch of each process; the global batch is processes x batch_size
        (see the multi-GPU page of the docs). ``"auto"``: 1024 on a GPU, 256 on
        a CPU, at most the largest power of two that the stack holds
        (``default_batch_size``).
    augmentations : str, AugmentationSettings or "auto", default "auto"
        What two views of the same tile may differ in; what the augmentations
        vary, the map ignores [2]_. A preset name (``"microscopy"``,
        ``"natural"``: SimCLR's set as used by [1]_, ``"quantitative"``), an
        ``AugmentationSettings``, or ``"auto"``:
        the preset that suits the stack
        (``recommend_preset``:
        ``"quantitative"`` for camera data of bright objects on a dark
        background whose intensity differs between tiles, ``"microscopy"``
        otherwise); ``preset_`` and ``preset_reason_`` say which and why.
    device : {"auto", "cuda", "cuda:N", "mps", "cpu"}, default "auto"
        Where to train; ``"auto"``: CUDA, then Apple's MPS, then the CPU.
    random_state : int or None, default None
        Seed for weights, shuffling and augmentations (None: a fresh one). On the
        CPU the same seed gives the same embedding on the same machine with the
        same number of threads and PyTorch version; other thread counts, CPUs or
        versions sum in another order and can give a slightly different map.
    out_dim : {2, 3}, default 2
        2 for a map, 3 for a 3D point cloud.
    pretrain_dim : int, default 128
        Output dimension during pre-training (128 in [1]_).
    backbone : {"auto", "resnet18", "resnet10", "resnet18-s2"}, default "auto"
        ``"resnet18"`` (the paper's [1]_), the lighter ``"resnet10"``, or
        ``"resnet18-s2"`` (ResNet-18 with a stride-2 stem: about three times
        cheaper on small tiles). ``"auto"``: ResNet-18 on a GPU,
        ``"resnet18-s2"`` on a CPU: in 10 minutes its maps match the stride-1
        network's, and it maps new tiles three times faster (see the CPU page of
        the docs).
    width : int or "auto", default "auto"
        Channels of the first network layer (64 in [1]_; smaller is faster and
        weaker; at least 4). ``"auto"``: 64 on a GPU, 16 on a CPU.
    lr : float or "auto", default "auto"
        Learning rate of stages 1 and 2. ``"auto"``: 0.03 x (global) batch size
        / 256, SimCLR's linear scaling rule [2]_ as used by [1]_.
    finetune_lr : float or "auto", default "auto"
        Learning rate of stage 3, where the whole network is fine-tuned in 2D.
        ``"auto"``: ``lr / 1000`` on a CUDA GPU, as in [1]_, whose 1000 epochs of
        pre-training leave little to change; ``lr`` on a CPU or an Apple GPU,
        where a run of minutes leaves the network unfinished (see the CPU page of
        the docs for the measurements).
    warmup : int or "auto", default "auto"
        Warm-up epochs in stages 1 and 3; ``"auto"``: 10, at most a tenth of the stage.
    momentum : float, default 0.9
        SGD momentum, in [0, 1) (0.9 in [1]_).
    weight_decay : float, default 5e-4
        SGD weight decay (5e-4 in [1]_).
    grad_clip : float or None, default 4.0
        Gradient values are clipped at this magnitude (4 in [1]_); None: no clipping.
    preview_every : int or "auto", default "auto"
        Map all tiles every this many epochs during training and attach the
        result to the progress event (0: never; ``"auto"``: about 25 times).
    embed_batch_size : int or "auto", default "auto"
        Tiles per forward pass when embedding. ``"auto"``: 2048 on a GPU, 128 on
        a CPU (small batches keep a CPU's caches warm: up to twice as fast).
    init_2d : {"pca", "random"}, default "pca"
        How stage 2 starts its new 2-D layer. ``"pca"``: the first
        principal axes of the pre-trained 128-D output, so the map starts from
        what pre-training learned; at short budgets this gives much better maps
        (on 1,000 PBC tiles with a small net: 15-NN 50-55 % instead of 21-36 %).
        Each axis starts with the same spread, so the map uses both dimensions.
        ``"random"``: Gaussian weights, as in [1]_.
    finish : {"auto", "contrastive", "tsne"}, default "auto"
        How the map is made after pre-training. ``"contrastive"``: the paper's
        stages 2 and 3 [1]_. ``"tsne"``: a t-SNE of the pre-trained features
        (openTSNE), then a new head of the network fitted to it; the network
        still maps new tiles by a forward pass (``napari_tsimcne.core.tsne_finish``).
        In a run of minutes on a CPU the contrastive stages lose about four points
        of 15-NN accuracy of what pre-training learned, the t-SNE finish about
        one. ``"auto"``: ``"tsne"`` when training for a time budget on a CPU
        (a 2-D map, one process, and a t-SNE that takes at most
        ``tsne_finish.MAX_TSNE_SHARE`` of the budget); ``"contrastive"``
        otherwise. With ``"tsne"``, the epochs of stage 2 are one t-SNE and
        those of stage 3 are epochs of fitting the head, each
        ``tsne_finish.PASSES_PER_EPOCH`` (20) passes over the features (up to
        ``tsne_finish.DISTILL_EPOCHS`` (15) epochs under a time budget).
    time_budget : float, "auto" or None, default "auto"
        Seconds for training and mapping, as an alternative to ``total_epochs``:
        the first training steps are timed on a copy of the network and the
        epochs are set to fit, split over the stages in the paper's ratio
        (1000 : 50 : 450). ``"auto"``: 600 (about 10 minutes) when no
        CUDA GPU is found and ``total_epochs`` is ``"auto"``; otherwise unused.
        ``None``: no budget (``total_epochs="auto"`` then means the paper's
        epochs). The epochs depend on the machine's speed, so give
        ``total_epochs`` for a run that must be repeated exactly. After
        fitting, ``total_epochs_`` holds the epochs that were trained.

    Attributes
    ----------
    total_epochs_, batch_size_, backbone_, width_
        The settings the model was trained with (``"auto"`` resolved).
    step_costs_
        With a time budget: the measured ``StepCosts``.
    embedding_ : numpy.ndarray of shape (N, out_dim)
        The map of the training tiles.
    model_ : TSimCNENet
        The trained network.
    history_ : list of dict
        Loss, learning rate and speed of every epoch.

    Raises
    ------
    ParameterError
        From ``validate``, ``fit`` and ``fit_iter`` when a parameter
        has a value it cannot take; the message names the parameter as in Python.

    References
    ----------
    .. [1] Böhm, J. N., Berens, P. & Kobak, D. (2023). Unsupervised visualization
       of image datasets using contrastive learning. International Conference on
       Learning Representations (ICLR).
    .. [2] Chen, T., Kornblith, S., Norouzi, M. & Hinton, G. (2020). A simple
       framework for contrastive learning of visual representations. International
       Conference on Machine Learning (ICML), 1597-1607.
    """

    def __init__(
        self,
        total_epochs: tuple[int, int, int] | str = "auto",
        batch_size: int | str = "auto",
        augmentations: str | AugmentationSettings = "auto",
        device: str = "auto",
        random_state: int | None = None,
        out_dim: int = TrainingConfig.out_dim,
        pretrain_dim: int = 128,
        backbone: str = "auto",
        width: int | str = "auto",
        lr: float | str = "auto",
        finetune_lr: float | str = "auto",
        warmup: int | str = "auto",
        momentum: float = TrainingConfig.momentum,
        weight_decay: float = TrainingConfig.weight_decay,
        grad_clip: float | None = TrainingConfig.grad_clip,
        preview_every: int | str = "auto",
        embed_batch_size: int | str = "auto",
        init_2d: str = TrainingConfig.init_2d,
        finish: str = "auto",
        time_budget: float | str | None = "auto",
    ) -> None:
        self.total_epochs = total_epochs
        self.batch_size = batch_size
        self.augmentations = augmentations
        self.device = device
        self.random_state = random_state
        self.out_dim = out_dim
        self.pretrain_dim = pretrain_dim
        self.backbone = backbone
        self.width = width
        self.lr = lr
        self.finetune_lr = finetune_lr
        self.warmup = warmup
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.preview_every = preview_every
        self.embed_batch_size = embed_batch_size
        self.init_2d = init_2d
        self.finish = finish
        self.time_budget = time_budget

    def __sklearn_is_fitted__(self) -> bool:
        """Whether the model is trained or loaded (for ``sklearn.utils.validation.check_is_fitted``).

        Returns
        -------
        bool
            True once ``fit``, ``fit_iter`` or ``load`` has set ``model_``.
        """
        return getattr(self, "model_", None) is not None

    # -- validation ---------------------------------------------------------
    def plan_for(self, device: torch.device, n_tiles: int, processes: int = 1) -> Plan:
        """What the ``"auto"`` settings stand for when training ``n_tiles`` tiles on ``device``.

        Checks every parameter on its own first, so the values it resolves are sound.

        Parameters
        ----------
        device : torch.device
            A resolved device (``napari_tsimcne.core.device.resolve_device``); its defaults are
            ``defaults_for(device)``.
        n_tiles : int
            Tiles in the stack (the batch size is at most the largest power of two they hold).
        processes : int, default 1
            Training processes sharing the stack (multi-GPU training).

        Returns
        -------
        Plan
            Epochs (None when a time budget sets them), time budget, batch size, network, width and
            the fine-tuning learning-rate ratio.

        Raises
        ------
        ParameterError
            A parameter has a value it cannot take, or ``total_epochs`` and ``time_budget`` are
            both given.
        """
        check_parameters(self.get_params())  # each on its own: the table of parameters.RULES
        d = defaults_for(device)
        batch = self.batch_size
        if is_auto(batch):
            batch = default_batch_size(n_tiles // max(1, processes), largest=d.batch_size)
        backbone = d.backbone if is_auto(self.backbone) else self.backbone
        width = d.width if is_auto(self.width) else self.width
        budget = self.time_budget
        if not is_auto(self.total_epochs):
            if not (budget is None or is_auto(budget)):
                raise ParameterError(
                    f"Give total_epochs or time_budget, not both (got total_epochs={self.total_epochs!r} and "
                    f"time_budget={budget!r}); set the other to 'auto'.",
                    "total_epochs",
                    "time_budget",
                )
            finish = self._finish_for(None, processes, n_tiles)
            return Plan(
                self.total_epochs, None, batch, backbone, width, d.finetune_lr_ratio, finish
            )
        if is_auto(budget):
            budget = d.time_budget
        if budget is None:
            epochs = d.total_epochs or GPU_DEFAULTS.total_epochs
            finish = self._finish_for(None, processes, n_tiles)
            return Plan(epochs, None, batch, backbone, width, d.finetune_lr_ratio, finish)
        finish = self._finish_for(d.finish, processes, n_tiles, float(budget))
        return Plan(None, float(budget), batch, backbone, width, d.finetune_lr_ratio, finish)

    def _finish_for(
        self, device_choice: str | None, processes: int, n_tiles: int, budget: float | None = None
    ) -> str:
        """``finish`` resolved: ``"auto"`` takes the device's choice under a time budget (if it fits)."""
        finish = self.finish
        if is_auto(finish):
            fits = (
                budget is not None
                and self.out_dim == 2
                and processes == 1
                and tsne_seconds(n_tiles) <= MAX_TSNE_SHARE * budget
            )
            finish = device_choice if (device_choice and fits) else "contrastive"
        if finish == "tsne" and processes > 1:
            raise ParameterError(
                f"finish='tsne' trains in one process, not {processes}; use finish='contrastive' "
                "for multi-GPU training.",
                "finish",
            )
        return finish

    def _check_params(
        self, n_tiles: int, processes: int, plan: Plan
    ) -> tuple[tuple[int, int, int] | None, float, float, AugmentationSettings]:
        """Check what the table cannot: the settings together and against the stack.

        ``plan`` holds the resolved ``"auto"`` settings; epochs are None with a time budget.
        Returns the epochs, the learning rates of stages 1-2 and of stage 3, and the augmentations.
        """
        epochs = None
        if plan.total_epochs is not None:
            epochs = tuple(int(e) for e in plan.total_epochs)
            if sum(epochs) == 0:
                raise ParameterError(
                    "All three total_epochs are 0: nothing would be trained.", "total_epochs"
                )
        batch_size = int(plan.batch_size)
        if batch_size * processes > n_tiles:
            per = f" per process x {processes} processes" if processes > 1 else ""
            most = n_tiles // processes
            raise ParameterError(
                f"batch_size={batch_size}{per} is larger than the stack ({n_tiles} tiles). "
                f"Use batch_size <= {most} (for example {default_batch_size(most, largest=most)}).",
                "batch_size",
            )
        lr = default_lr(batch_size * processes) if is_auto(self.lr) else self.lr  # global batch
        finetune_lr = lr * plan.finetune_lr_ratio if is_auto(self.finetune_lr) else self.finetune_lr
        aug = AugmentationSettings.coerce(
            "microscopy" if is_auto(self.augmentations) else self.augmentations
        )
        aug.validate()
        return epochs, float(lr), float(finetune_lr), aug

    def _augmentations_for(self, stack: np.ndarray, checked: AugmentationSettings):
        """The augmentations this stack trains with: "auto" resolved, colour decided; sets ``augmentations_``."""
        n_channels = stack.shape[3] if stack.ndim == 4 else 1
        if is_auto(self.augmentations):
            rec = recommend_preset(stack)
            self.preset_, self.preset_reason_ = rec.preset, rec.reason
            checked = AugmentationSettings.preset(rec.preset)
        else:
            self.preset_ = self.augmentations if isinstance(self.augmentations, str) else None
            self.preset_reason_ = None
        self.augmentations_ = checked.for_stack(stack.dtype, n_channels)
        return self.augmentations_

    def _preview_every(self, epochs: tuple[int, int, int]) -> int:
        if is_auto(self.preview_every):
            return max(1, sum(epochs) // 25)
        return int(self.preview_every or 0)

    def _training_config(
        self, batch_size: int, seed: int, preview_every: int, device: torch.device, finish: str
    ) -> TrainingConfig:
        """The Trainer's settings: these parameters, with ``"auto"`` resolved for ``device``."""
        return TrainingConfig(
            batch_size=batch_size,
            seed=seed,
            embed_batch_size=self._embed_batch(device),
            out_dim=self.out_dim,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            preview_every=preview_every,
            init_2d=self.init_2d,
            finish=finish,
        )

    def _seed(self) -> int:
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    # -- training -----------------------------------------------------------
    def _new_network(self, info, plan: Plan, seed: int) -> TSimCNENet:
        """The untrained network for a stack and a plan, its weights drawn from ``seed`` (global RNG untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return TSimCNENet(
                info.n_channels, plan.backbone, int(plan.width), out_dim=self.pretrain_dim
            )

    def validate(self, X, *, channel_axis: int | None = None) -> TSimCNE:
        """Check the shape of ``X`` and every parameter now, without training.

        Cheap (the pixel values are checked when training starts), so a user interface can refuse
        bad settings at once and run ``fit_iter`` in the background.

        Parameters
        ----------
        X : array-like of shape (N, H, W) or (N, H, W, C)
            The tiles that are to be trained on.
        channel_axis : int, optional
            The axis of the channels when it is not the last.

        Returns
        -------
        TSimCNE
            ``self``, unchanged.

        Raises
        ------
        TileStackError
            When ``X`` is not a stack of tiles.
        ParameterError
            When a parameter has a value it cannot take, alone or together with the
            others or the stack (a ``batch_size`` larger than the stack, or on the CPU
            larger than the free memory holds); a ``ValueError``.
        ValueError
            When the augmentation settings are inconsistent.
        """
        stack = as_tile_stack(X, channel_axis=channel_axis, check_values=False)
        info = stack_info(stack)
        device = resolve_device(self.device)
        plan = self.plan_for(device, info.n_tiles)
        self._check_params(info.n_tiles, 1, plan)
        if device.type == "cpu":  # running out of memory would kill the process: refuse it now
            net = self._new_network(info, plan, seed=0)
            check_batch_fits(net, info.n_channels, (info.height, info.width), int(plan.batch_size))
        return self

    def fit_iter(
        self,
        X,
        *,
        channel_axis: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[TrainingEvent]:
        """Check ``X`` and the parameters now, then return a generator that trains epoch by epoch.

        Stop early by no longer iterating (or calling ``.close()``): the model
        keeps what it learned, and ``embedding_`` holds the map of the training
        tiles.

        Parameters
        ----------
        X : array-like of shape (N, H, W) or (N, H, W, C)
            The tiles.
        channel_axis : int, optional
            The axis of the channels when it is not the last.
        checkpoint : str or os.PathLike, optional
            Where to write the model and the training state (atomically) every
            ``checkpoint_every`` epochs; continue an interrupted run with
            ``TSimCNE.load(checkpoint).resume_iter(X)``.
        checkpoint_every : int, default 1
            Epochs between checkpoints.
        progress : callable, optional
            ``progress(done, total)`` is called while the training tiles are mapped
            at the end (after the last epoch or an early stop), for a progress bar.
        stop : threading.Event, optional
            Set it from another thread (a Stop button) to end training within one
            training step instead of at the end of the epoch under way; the
            generator then ends, the unfinished epoch is not counted (a checkpoint
            keeps the last finished one) and ``embedding_`` holds the map of the
            model as it is. Ignored between steps of a run over several processes.

        Returns
        -------
        iterator of TrainingEvent
            One ``TrainingEvent`` per epoch.

        Raises
        ------
        TileStackError, ParameterError
            At once, before the generator is returned (see ``validate``).
        TrainingDivergedError
            While iterating, when the loss becomes NaN or infinite.
        """
        started = time.perf_counter()
        stack = as_tile_stack(X, channel_axis=channel_axis)
        info = stack_info(stack)
        device, ctx = _device_and_processes(self.device)
        plan = self.plan_for(device, info.n_tiles, ctx.world_size)
        epochs, lr, finetune_lr, aug = self._check_params(info.n_tiles, ctx.world_size, plan)
        aug = self._augmentations_for(stack, aug)
        self.fingerprint_ = fingerprint(stack)
        seed = broadcast_seed(self._seed(), ctx)
        normalization = ChannelNormalization.fit(stack)
        store = TileStore(stack, normalization, device)
        net = self._new_network(info, plan, seed)
        _set_input_statistics(net, store)
        net.to(
            device=device,
            memory_format=memory_format(device),
        )
        batch_size = int(plan.batch_size)
        if (
            device.type == "cpu"
        ):  # running out of memory kills the process: refuse too large a batch
            check_batch_fits(net, info.n_channels, (info.height, info.width), batch_size)
        self.step_costs_ = None
        self._budget = self._fit_budget = None
        if epochs is None:  # a time budget: time the first steps, then choose the epochs that fit
            self.step_costs_ = measure_step_costs(net, store, aug, batch_size, seed=seed)
            distill = (
                time_distill_epoch(net.backbone.out_dim, info.n_tiles, device)
                if plan.finish == "tsne"
                else 0.0
            )
            left = plan.time_budget - (time.perf_counter() - started)
            epochs, budget_previews = epochs_for_budget(
                left,
                self.step_costs_,
                info.n_tiles,
                batch_size * ctx.world_size,
                previews=self.preview_every != 0,
                finish=plan.finish,
                distill_epoch=distill,
            )
            *epochs, budget_previews = broadcast_ints((*epochs, budget_previews), ctx)
            epochs = tuple(epochs)
            preview_every = (
                budget_previews if is_auto(self.preview_every) else int(self.preview_every)
            )
            self._budget = _Budget(
                started,
                plan.time_budget,
                info.n_tiles,
                batch_size * ctx.world_size,
                lr,
                finetune_lr,
                plan.finish,
                distill,
            )
        else:
            preview_every = self._preview_every(epochs)
        self.total_epochs_, self.batch_size_, self.backbone_, self.width_ = (
            epochs,
            batch_size,
            plan.backbone,
            int(plan.width),
        )
        self.time_budget_ = plan.time_budget
        self.finetune_lr_ = finetune_lr
        self.finish_ = plan.finish
        self.model_ = net
        self.normalization_ = normalization
        self.n_channels_ = info.n_channels
        self.tile_shape_ = info.tile_shape
        self.device_ = device
        self.pca_ = None
        self.embedding_ = None
        self.history_ = []
        self.fit_seconds_ = 0.0
        trainer = Trainer(
            net,
            store,
            make_stages(epochs, lr, self.warmup, finetune_lr, plan.finish),
            aug,
            self._training_config(batch_size, seed, preview_every, device, plan.finish),
            state=TrainerState(batch_size=batch_size, history=self.history_),
            dist=ctx,
        )
        return self._drive(trainer, checkpoint, checkpoint_every, progress, stop)

    def resume_iter(
        self,
        X,
        *,
        channel_axis: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        progress: Callable[[int, int], None] | None = None,
        allow_other_tiles: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[TrainingEvent]:
        """Continue training from a checkpoint loaded with ``load``, on the same tiles.

        With the same seed on the CPU the result equals an uninterrupted run.

        Parameters
        ----------
        X : array-like of shape (N, H, W) or (N, H, W, C)
            The tiles the checkpoint was trained on.
        channel_axis : int, optional
            The axis of the channels when it is not the last.
        checkpoint, checkpoint_every, progress, stop
            As for ``fit_iter``.
        allow_other_tiles : bool, default False
            Skip the check that ``X`` holds the checkpoint's tiles (for example for the
            same tiles re-read as another dtype). Checkpoints written without a
            fingerprint are not checked.

        Returns
        -------
        iterator of TrainingEvent
            One event per remaining epoch.

        Raises
        ------
        NotFittedError
            When no model was loaded.
        ValueError
            When the model holds no training state to resume.
        TileMismatchError
            When ``X`` differs from the checkpoint's tiles (by count, shape, dtype or a
            hash of 16 of them).
        """
        self._check_fitted()
        resume = getattr(self, "_resume_state", None)
        if resume is None:
            raise ValueError(
                "This model holds no training state to resume; load a checkpoint written by fit_iter(checkpoint=...)."
            )
        stack = as_tile_stack(X, channel_axis=channel_axis)
        info = stack_info(stack)
        self._check_compatible(info)
        if not allow_other_tiles:
            check_same_tiles(getattr(self, "fingerprint_", None), stack, "The checkpoint")
        else:
            self.fingerprint_ = fingerprint(stack)
        device, ctx = _device_and_processes(self.device)
        plan = self.plan_for(device, info.n_tiles, ctx.world_size)
        epochs, lr, finetune_lr, aug = self._check_params(info.n_tiles, ctx.world_size, plan)
        aug = self._augmentations_for(stack, aug)
        if epochs is None:
            raise ValueError(
                "This checkpoint does not say how many epochs to train; it cannot be resumed."
            )
        self.device_ = device
        self.finetune_lr_ = finetune_lr
        self.finish_ = plan.finish
        store = TileStore(stack, self.normalization_, device)
        net = self.model_.to(
            device=device,
            memory_format=memory_format(device),
        )
        self.pca_ = None
        trainer = Trainer(
            net,
            store,
            make_stages(epochs, lr, self.warmup, finetune_lr, plan.finish),
            aug,
            self._training_config(
                int(resume["batch_size"]),
                int(resume["seed"]),
                self._preview_every(epochs),
                device,
                plan.finish,
            ),
            state=TrainerState(
                stage=int(resume["stage"]),
                epoch=int(resume["epoch"]),
                batch_size=int(resume["batch_size"]),
                history=self.history_,
                target=resume.get("target"),
            ),
            optimizer_state=resume.get("optimizer"),
            dist=ctx,
        )
        self._resume_state = None
        # a resumed run trains the epochs that were planned
        self._budget = self._fit_budget = None
        return self._drive(trainer, checkpoint, checkpoint_every, progress, stop)

    def _drive(
        self,
        trainer: Trainer,
        checkpoint=None,
        checkpoint_every: int = 1,
        progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[TrainingEvent]:
        start = time.perf_counter()
        finished = False
        try:
            for event in trainer.run(stop):
                if getattr(self, "_budget", None) is not None and event.stage == 1:
                    event = self._replan(trainer, event)
                if getattr(self, "_fit_budget", None) is not None and event.stage >= 2:
                    event = self._replan_the_fit(trainer, event)
                if (
                    checkpoint is not None
                    and trainer.dist.is_main
                    and (
                        event.global_epoch % max(1, checkpoint_every) == 0
                        or event.global_epoch == event.total_epochs
                    )
                ):
                    self._save_checkpoint(checkpoint, trainer)
                if event.global_epoch == event.total_epochs:
                    self._finish(trainer, progress)
                    finished = True
                    event = _with_embedding(event, self.embedding_)
                yield event
        finally:
            if not finished:
                self._finish(trainer, progress)
            self.fit_seconds_ = time.perf_counter() - start

    def _replan(self, trainer: Trainer, event: TrainingEvent) -> TrainingEvent:
        """After each epoch of pre-training under a time budget: set the epochs left from the real speed.

        The first steps, timed before training, tend to be slower than the steady state, and the
        machine may get busier or calmer while it trains (another program starts or ends); the
        last whole epochs (the median of up to three) are the best measure of what the next ones
        will take. The epochs are split in the paper's ratio over the whole run; pre-training
        can still be lengthened right after its last planned epoch. Once the last two stages
        are planned at its end, the plan stands.
        """
        budget = self._budget
        if event.epoch == 1:
            self._timed_costs = self.step_costs_  # the first steps' timing, before training
        steps = max(1, budget.n_tiles // budget.global_batch)
        recent = [h["seconds"] for h in trainer.state.history[-3:] if h["stage"] == 1]
        factor = float(np.median(recent)) / steps / self._timed_costs.full_step
        costs = StepCosts(*(c * factor for c in astuple(self._timed_costs)))
        left = budget.seconds_left()
        full_epoch = costs.epoch_seconds(steps)[0]
        plan = dict(  # the fit's cost as timed: a slow epoch of pre-training says little of it
            previews=self.preview_every != 0,
            finish=budget.finish,
            distill_epoch=budget.distill_epoch,
        )
        done = event.epoch
        # the whole run in the paper's ratio, the epochs done counted at today's speed
        total, previews = epochs_for_budget(
            left + done * full_epoch, costs, budget.n_tiles, budget.global_batch, **plan
        )
        if total[0] > done:
            epochs = total
        elif done < event.stage_epochs:  # pre-training cannot stop mid-way: one more epoch
            epochs = (done + 1, total[1], total[2])
        elif budget.finish == "tsne":  # the t-SNE and the fit are planned at their length
            epochs = (done, total[1], total[2])
        else:  # pre-training is over: the time left goes to the last two stages, in their ratio
            rest, previews = epochs_for_budget(
                left + full_epoch,  # pays for the one stage-1 epoch the split below counts
                costs,
                budget.n_tiles,
                budget.global_batch,
                ratio=(1, PAPER_EPOCHS[1], PAPER_EPOCHS[2]),
                **plan,
            )
            epochs = (done, rest[1], rest[2])
        *epochs, previews = broadcast_ints((*epochs, previews), trainer.dist)
        trainer.replan(
            make_stages(tuple(epochs), budget.lr, self.warmup, budget.finetune_lr, budget.finish)
        )
        if is_auto(self.preview_every):
            trainer.config = replace(trainer.config, preview_every=previews)
        self.total_epochs_ = tuple(s.epochs for s in trainer.stages)
        self.step_costs_ = costs
        if trainer.stages[0].epochs <= event.epoch:
            self._budget = None  # pre-training ends now; the last two stages keep this plan
            if budget.finish == "tsne":  # ... but the fit gets the time the t-SNE leaves
                self._fit_budget = budget
        return replace(
            event, stage_epochs=trainer.stages[0].epochs, total_epochs=trainer.total_epochs
        )

    def _replan_the_fit(self, trainer: Trainer, event: TrainingEvent) -> TrainingEvent:
        """With the t-SNE finish under a time budget: the epochs of the fit that the time left pays.

        Once the t-SNE is done (a stage-2 event), at most ``DISTILL_EPOCHS`` and at least one, at
        the fit's cost as timed before training; after each epoch of the fit (stage 3), that epoch
        is the measure (the cost timed before training can be a quarter short) and the fit is
        only ever shortened. The final mapping of all tiles is kept aside.
        """
        budget, now = self._fit_budget, time.perf_counter()
        if event.stage == 2:
            done, cap, epoch_seconds = 0, DISTILL_EPOCHS, budget.distill_epoch
        else:
            done, cap = event.epoch, trainer.stages[2].epochs
            epoch_seconds = now - self._fit_epoch_started
        self._fit_epoch_started = now
        left = budget.seconds_left() - self.step_costs_.embed_tile * budget.n_tiles
        more = max(0, int(left // max(epoch_seconds, 1e-9)))
        epochs = max(1, min(cap, done + more))
        if epochs == trainer.stages[2].epochs:
            return event
        e1, e2, _ = (s.epochs for s in trainer.stages)
        trainer.replan(
            make_stages((e1, e2, epochs), budget.lr, self.warmup, budget.finetune_lr, "tsne")
        )
        self.total_epochs_ = tuple(s.epochs for s in trainer.stages)
        return replace(
            event,
            stage_epochs=trainer.stages[event.stage - 1].epochs,
            total_epochs=trainer.total_epochs,
        )

    def _finish(self, trainer: Trainer, progress: Callable[[int, int], None] | None = None) -> None:
        """Map the training tiles with the model as it is now (also after an early stop)."""
        y = trainer.embed(progress=progress)
        if (
            y.shape[1] > 3
        ):  # stopped during pre-training: show the 128-D output's first two principal axes
            y, self.pca_ = pca_2d(y)
        self.embedding_ = y
        self.stages_done_ = trainer.state.stage

    def fit(self, X, y=None, *, channel_axis: int | None = None) -> TSimCNE:
        """Train on the tile stack ``X``.

        Parameters
        ----------
        X : array-like of shape (N, H, W) or (N, H, W, C)
            The tiles, any real dtype; see ``as_tile_stack``.
        y : None
            Ignored: training uses no labels (accepted for scikit-learn pipelines).
        channel_axis : int, optional
            The axis of the channels when it is not the last, e.g. 1 for (N, C, H, W).

        Returns
        -------
        TSimCNE
            ``self``, trained; ``embedding_`` holds the map of ``X``.

        Raises
        ------
        TileStackError
            When ``X`` is not a stack of tiles the network can learn from.
        ParameterError
            When a parameter has a value it cannot take (a ``ValueError``).
        TrainingDivergedError
            When the loss becomes NaN or infinite.
        """
        for _ in self.fit_iter(X, channel_axis=channel_axis):
            pass
        return self

    def fit_transform(self, X, y=None, *, channel_axis: int | None = None) -> np.ndarray:
        """Train on ``X`` and return its map.

        Parameters
        ----------
        X : array-like of shape (N, H, W) or (N, H, W, C)
            The tiles.
        y : None
            Ignored: training uses no labels.
        channel_axis : int, optional
            The axis of the channels when it is not the last.

        Returns
        -------
        numpy.ndarray of shape (N, out_dim)
            The map of the training tiles (``embedding_``).

        Raises
        ------
        TileStackError, ParameterError, TrainingDivergedError
            As ``fit``.
        """
        return self.fit(X, channel_axis=channel_axis).embedding_

    # -- embedding ----------------------------------------------------------
    def _embed_batch(self, device: torch.device) -> int:
        """Tiles per forward pass when mapping on ``device`` (``"auto"``: see ``DeviceDefaults``)."""
        if is_auto(self.embed_batch_size):
            return defaults_for(device).embed_batch_size
        return int(self.embed_batch_size)

    def _check_fitted(self) -> None:
        if getattr(self, "model_", None) is None:
            raise NotFittedError(
                "This TSimCNE model is not trained yet: call fit() first, or TSimCNE.load(path)."
            )

    def transform(
        self,
        X,
        *,
        channel_axis: int | None = None,
        return_features: bool = False,
        device: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        """Map new tiles with the trained network (no retraining).

        Parameters
        ----------
        X : array-like of shape (N, H, W) or (N, H, W, C)
            Tiles with the channels and the size of the training tiles.
        channel_axis : int, optional
            The axis of the channels when it is not the last.
        return_features : bool, default False
            Also return the backbone features.
        device : str, optional
            Where to run the network (default: where it was trained or loaded).
        progress : callable, optional
            ``progress(done, total)`` is called after each batch (e.g. to drive a progress bar).

        Returns
        -------
        numpy.ndarray of shape (N, out_dim)
            The map; with ``return_features=True`` a tuple of the map and the backbone
            features, shape (N, 512) for the paper's width.

        Raises
        ------
        NotFittedError
            When the model is neither trained nor loaded.
        TileStackError
            When the tiles' channels or size differ from the training tiles'.
        ParameterError
            When ``embed_batch_size`` or ``device`` has a value it cannot take.
        """
        self._check_fitted()
        if self.model_.out_dim > 3 and getattr(self, "pca_", None) is None:
            # stopped before its first epoch ended (or a checkpoint of that moment): no map to place tiles on
            raise NotFittedError(
                "This model stopped during pre-training before it made a map (its output has "
                f"{self.model_.out_dim} dimensions). Train it with fit(), or continue a checkpoint "
                "with resume_iter()."
            )
        check_parameter("embed_batch_size", self.embed_batch_size)
        stack = as_tile_stack(X, channel_axis=channel_axis, min_tiles=1)
        info = stack_info(stack)
        self._check_compatible(info)
        dev = resolve_device(device) if device is not None else self.device_
        self.model_.to(dev)
        store = TileStore(stack, self.normalization_, dev)
        out = embed_store(
            self.model_,
            store,
            self._embed_batch(dev),
            return_features=return_features,
            progress=progress,
        )
        y, feats = out if return_features else (out, None)
        if self.pca_ is not None:
            y = pca_2d(y, self.pca_)[0]
        return (y, feats) if return_features else y

    def _check_compatible(self, info) -> None:
        """Refuse tiles whose channels or size differ from the model's."""
        if info.n_channels != self.n_channels_:
            raise TileStackError(
                f"The model was trained on tiles with {self.n_channels_} channel(s), but these have {info.n_channels}. "
                "Use tiles with the same channels, in the same order."
            )
        if info.tile_shape != tuple(self.tile_shape_):
            raise TileStackError(
                f"The model was trained on {self.tile_shape_[0]} x {self.tile_shape_[1]} tiles, but these are "
                f"{info.height} x {info.width}. Cut or resize the tiles to the model's size."
            )

    # -- files --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model (weights, normalisation, settings) to one file, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (by convention ``*.tsimcne``).

        Raises
        ------
        NotFittedError
            When the model is neither trained nor loaded.
        OutputFileError
            When the file cannot be written.
        """
        self._check_fitted()
        save_payload(path, self._payload())

    def _save_checkpoint(self, path: str | os.PathLike, trainer: Trainer) -> None:
        """The model file plus what is needed to continue training from this epoch."""
        st = trainer.state
        payload = self._payload()
        payload["embedding"] = None
        payload["trainer"] = {
            "stage": st.stage,
            "epoch": st.epoch,
            "batch_size": st.batch_size,
            "seed": trainer.config.seed,
            "optimizer": trainer.optimizer.state_dict()
            if (st.epoch > 0 and trainer.optimizer)
            else None,
            "target": None if st.target is None else st.target.detach().cpu(),
        }
        save_payload(path, payload)

    def _payload(self) -> dict:
        params = self.get_params()
        # what the model was trained with: "auto" and a time budget resolved, so a resumed run trains the same epochs
        params.update(
            total_epochs=list(self.total_epochs_),
            batch_size=int(self.batch_size_),
            backbone=self.backbone_,
            width=int(self.width_),
            time_budget=None,
        )
        if getattr(self, "finetune_lr_", None) is not None:  # as trained: "auto" resolved
            params["finetune_lr"] = float(self.finetune_lr_)
        if getattr(self, "finish_", None) is not None:
            params["finish"] = self.finish_
        aug = getattr(self, "augmentations_", None) or AugmentationSettings.coerce(
            params["augmentations"]
        )
        params["augmentations"] = aug.to_dict()  # as trained: "auto" resolved
        return {
            "params": params,
            "state_dict": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "normalization": self.normalization_.to_dict(),
            "n_channels": self.n_channels_,
            "tile_shape": list(self.tile_shape_),
            "model_out_dim": self.model_.out_dim,
            "pca": None if self.pca_ is None else [torch.from_numpy(a) for a in self.pca_],
            "history": [dict(h) for h in self.history_],
            "embedding": None
            if self.embedding_ is None
            else torch.from_numpy(np.ascontiguousarray(self.embedding_)),
            "fingerprint": None
            if getattr(self, "fingerprint_", None) is None
            else self.fingerprint_.to_dict(),
        }

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> TSimCNE:
        """Read a model written by ``save``; it runs on ``device`` (a CPU-only machine works).

        Parameters
        ----------
        path : str or os.PathLike
            A model file (or a checkpoint, to continue with ``resume_iter``).
        device : str, default "auto"
            Where the network runs; as the ``device`` parameter.

        Returns
        -------
        TSimCNE
            The model, fitted, with the parameters it was trained with.

        Raises
        ------
        ParameterError
            When ``device`` is unknown or absent on this machine.
        ModelFileError
            When the file is missing, corrupt, not a napari-tsimcne model, or
            holds damaged parts (settings, weights that are not finite,
            normalisation or tile shape that do not fit the network).
        """
        resolve_device(device)  # an absent device is the caller's setting, not a damaged file
        payload = load_payload(path)
        try:
            model = cls._from_payload(payload, device)
        except ModelFileError as exc:
            raise ModelFileError(f"{path} is damaged: {exc}") from None
        except (KeyError, IndexError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(
                f"{path} is damaged or incompatible: {exc.__class__.__name__}: {exc}"
            ) from None
        return model

    @classmethod
    def _from_payload(cls, payload: dict, device: str) -> TSimCNE:
        """The model described by a checked payload; raises on damaged fields (turned into ModelFileError)."""
        params = dict(payload["params"])
        params["augmentations"] = AugmentationSettings.coerce(params["augmentations"])
        params["total_epochs"] = tuple(params["total_epochs"])
        params["device"] = device
        if "finetune_lr" not in params:  # written before it was a parameter: the paper's lr / 1000
            lr = params.get("lr", "auto")
            lr = default_lr(int(params["batch_size"])) if is_auto(lr) else float(lr)
            params["finetune_lr"] = lr / 1000
        model = cls(**params)
        model.total_epochs_, model.batch_size_ = params["total_epochs"], int(params["batch_size"])
        model.backbone_, model.width_ = params["backbone"], int(params["width"])
        model.time_budget_ = None
        finetune = params.get("finetune_lr", "auto")
        model.finetune_lr_ = None if is_auto(finetune) else float(finetune)
        n_channels, tile_shape = _checked_shape(payload)
        net = TSimCNENet(
            n_channels, params["backbone"], params["width"], out_dim=int(payload["model_out_dim"])
        )
        state = payload["state_dict"]
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise ModelFileError("its weights are not a table of tensors")
        if "head.layers.0.weight" in state:  # finished by a t-SNE: its own head
            net.head = MapHead.for_state_dict(state)
        model.finish_ = params.get("finish") if not is_auto(params.get("finish", "auto")) else None
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ModelFileError(
                f"{len(bad)} weight tensor(s) hold NaN or infinite values (first: {bad[0]})"
            )
        net.load_state_dict(state)
        try:
            normalization = ChannelNormalization.from_dict(payload["normalization"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(
                f"its normalisation {payload['normalization']!r} is not a low and a high value "
                "per channel"
            ) from None
        if (
            normalization.n_channels != n_channels
            or len(normalization.high) != n_channels
            or not all(
                np.isfinite(lo) and np.isfinite(hi) and hi > lo
                for lo, hi in zip(normalization.low, normalization.high)
            )
        ):
            raise ModelFileError(
                f"its normalisation {payload['normalization']!r} does not fit {n_channels} channel(s)"
            )
        model.device_ = resolve_device(device)
        model.model_ = net.to(model.device_).eval()
        model.normalization_ = normalization
        model.n_channels_ = n_channels
        model.tile_shape_ = tile_shape
        model.pca_ = None if payload["pca"] is None else tuple(t.numpy() for t in payload["pca"])
        if model.pca_ is not None and (
            len(model.pca_) != 2 or model.pca_[1].shape != (2, net.out_dim)
        ):
            raise ModelFileError("its PCA projection does not fit the network's output")
        model.history_ = [dict(h) for h in payload.get("history", [])]
        emb = payload.get("embedding")
        model.embedding_ = None if emb is None else emb.numpy()
        fp = payload.get("fingerprint")
        model.fingerprint_ = None if fp is None else TileFingerprint.from_dict(fp)
        model._resume_state = payload.get("trainer")
        if model._resume_state is not None and not isinstance(model._resume_state, dict):
            raise ModelFileError("its training state is not a table")
        return model


def _device_and_processes(device: str) -> tuple[torch.device, DistContext]:
    """The device to train on and, under torchrun, this process's place (one GPU per process)."""
    dev = resolve_device(device)
    ctx = from_environment(dev.type)
    if ctx.active and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    return dev, ctx


def _checked_shape(payload: dict) -> tuple[int, tuple[int, int]]:
    """The channel count and tile shape stored in a payload, checked."""
    n_channels, tile_shape = payload["n_channels"], payload["tile_shape"]
    if not is_whole(n_channels) or not 1 <= n_channels <= MAX_CHANNELS:
        raise ModelFileError(
            f"its channel count {n_channels!r} is not a whole number from 1 to {MAX_CHANNELS}"
        )
    if (
        not isinstance(tile_shape, (list, tuple))
        or len(tile_shape) != 2
        or not all(is_whole(v) and v >= MIN_TILE_SIZE for v in tile_shape)
    ):
        raise ModelFileError(
            f"its tile shape {tile_shape!r} is not two whole numbers of at least {MIN_TILE_SIZE}"
        )
    return int(n_channels), (int(tile_shape[0]), int(tile_shape[1]))


class _Budget(NamedTuple):
    """A time budget being trained: what re-planning after the first epoch needs."""

    started: float
    seconds: float
    n_tiles: int
    global_batch: int
    lr: float
    finetune_lr: float
    finish: str = "contrastive"
    distill_epoch: float = 0.0

    def seconds_left(self) -> float:
        """Seconds of the budget not yet spent."""
        return self.seconds - (time.perf_counter() - self.started)


class Plan(NamedTuple):
    """The settings of one run with ``"auto"`` resolved for its device (``TSimCNE.plan_for``).

    Parameters
    ----------
    total_epochs : tuple of 3 int or None
        Epochs of the three stages; None: the time budget sets them.
    time_budget : float or None
        Seconds of training and mapping; None: train ``total_epochs``.
    batch_size : int
        Tiles per training step.
    backbone : str
        The network (one of ``BACKBONES``).
    width : int
        Channels of the network's first layer.
    finetune_lr_ratio : float
        Stage 3's learning rate as a multiple of the learning rate of stages 1 and 2.
    finish : str, default "contrastive"
        How the map is made after pre-training: ``"contrastive"`` or ``"tsne"``.
    """

    total_epochs: tuple[int, int, int] | None
    time_budget: float | None
    batch_size: int
    backbone: str
    width: int
    finetune_lr_ratio: float
    finish: str = "contrastive"


def _with_embedding(event: TrainingEvent, embedding: np.ndarray) -> TrainingEvent:
    from dataclasses import replace

    return replace(event, embedding=embedding)


@torch.no_grad()
def _set_input_statistics(net: TSimCNENet, store: TileStore, max_tiles: int = 4096) -> None:
    """Store the per-channel mean and std of (a sample of) the normalised tiles in the network."""
    x = store.evenly_spaced(max_tiles)
    mean = x.mean((0, 2, 3), keepdim=True)
    std = x.std((0, 2, 3), keepdim=True).clamp_min(1e-3)
    net.input_mean.copy_(mean.cpu())
    net.input_std.copy_(std.cpu())
