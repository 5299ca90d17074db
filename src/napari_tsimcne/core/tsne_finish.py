"""The t-SNE finish: a map made from a t-SNE of the pre-trained features, distilled into the network.

t-SimCNE (Böhm, Berens & Kobak, ICLR 2023) turns its pre-trained network into a map with two more
contrastive stages in 2-D. In a run of minutes on a CPU those stages lose about four points of
15-NN accuracy of what pre-training learned (``docs/cpu.md``): on the 17,092 blood cells, the
features of a 10-minute network hold 81.7 %, a t-SNE of them 80.1 %, the 2-D stages 77.0 %. The
t-SNE finish keeps the map parametric and keeps what the features hold:

1. **t-SNE of the features** (one step): the backbone features of every tile, un-augmented, are
   embedded by openTSNE (Poličar, Stražar & Zupan 2024) with its defaults.
2. **Fitting the network to the map** (epochs): a new head, ``MapHead``, learns to place every
   tile's features where the t-SNE put the tile (mean squared error, Adam), the backbone frozen.
   One epoch of this stage is ``PASSES_PER_EPOCH`` passes over the features: about as long as one
   epoch of pre-training on a CPU, so that progress bars and time estimates that count epochs stay
   true.

The result is one network, as with the contrastive finish: ``transform`` maps new tiles by a
forward pass. Tiles it was not trained on are placed less well than the training tiles: in a
hold-out test of 20 % of the blood cells (``benchmarks/results/new-tiles-cpu-2core_pbc17092.jsonl``)
new tiles scored 75.8 % 15-NN against 82.6 % for the training tiles, where openTSNE's own
``transform`` placed them at 78.9 % and the contrastive finish at 77.5 %.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import torch
from torch import nn

FINISHES = ("contrastive", "tsne")
"""How the 2-D map is made after pre-training: the paper's two contrastive stages, or the t-SNE finish."""

PASSES_PER_EPOCH = 20
"""Passes over all tiles' features in one epoch of fitting the head."""

DISTILL_EPOCHS = 15
"""Epochs of fitting the head to the t-SNE map (300 passes over the features): on the blood cells the
head kept 79.2 % after 100 passes, 79.7 % after 200, 80.4 % after 300 of the t-SNE's 80.1 %
(``benchmarks/results/map-head-cpu-2core_pbc17092.jsonl``)."""

DISTILL_BATCH = 256
"""Tiles per step of the fit."""

DISTILL_LR = 1e-3
"""Peak learning rate (Adam) of the fit; it warms up over a tenth of the epochs and decays to 0."""

HEAD_HIDDEN = 512
"""Units of each hidden layer of ``MapHead``: 512 units fitted for 200 passes keep as much of the
t-SNE as 1024 units for 100 passes, in about half the time (on 2 cores, 17,092 tiles: 92 against
170 s; ``benchmarks/results/map-head-cpu-2core_pbc17092.jsonl``)."""

HEAD_DEPTH = 3
"""Hidden layers of ``MapHead``: two hidden layers of 1024 kept 77 % on the blood cells, three 80 %."""

FFT_FROM_TILES = 5000
"""From this many tiles on, openTSNE's FFT approximation of the repulsive forces is used; below
it, Barnes-Hut, which is faster on few points (on 2 cores, 256 points: 0.8 s against 6.6 s; 2,000:
3.6 against 5.5 s; 8,000: 17 against 10 s)."""

TSNE_SECONDS_PER_TILE = 2.6e-3
"""openTSNE's seconds per tile on 17,092 tiles with 2 threads (43 s on the CI machine's 2 cores);
a time budget reserves this much, growing with ``log n``."""


MAX_TSNE_SHARE = 0.25
"""``finish="auto"`` takes the t-SNE finish only when its t-SNE (``tsne_seconds``) takes at most this
share of the time budget, so that pre-training keeps most of it: with 10 minutes, stacks of up to
about 51,000 tiles."""


class MapHead(nn.Module):
    """Standardise the backbone features -> ``depth`` x (Linear, ReLU) -> Linear to the map.

    The head of a network trained with the t-SNE finish. Its output is multiplied by ``out_scale``
    and shifted by ``out_shift`` (buffers), so it learns a map of unit spread but gives the
    t-SNE's coordinates.

    Parameters
    ----------
    in_dim : int
        Backbone features.
    out_dim : int, default 2
        Dimensions of the map.
    hidden_dim : int, default HEAD_HIDDEN
        Units of each hidden layer.
    depth : int, default HEAD_DEPTH
        Hidden layers.
    """

    def __init__(
        self, in_dim: int, out_dim: int = 2, hidden_dim: int = HEAD_HIDDEN, depth: int = HEAD_DEPTH
    ) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.register_buffer("out_scale", torch.ones(()))
        self.register_buffer("out_shift", torch.zeros(out_dim))
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        self.layers = nn.Sequential(*layers)
        self.last = nn.Linear(d, out_dim)

    @classmethod
    def for_state_dict(cls, state: dict, prefix: str = "head.") -> MapHead:
        """An untrained head with the layer sizes of a saved one (to load its weights into).

        Parameters
        ----------
        state : dict
            A network's ``state_dict`` holding a ``MapHead`` under ``prefix``.
        prefix : str, default "head."
            Where the head's weights are in ``state``.

        Returns
        -------
        MapHead
            The head, with untrained weights.
        """
        weights = sorted(
            (int(k[len(prefix) + 7 :].split(".")[0]), v)
            for k, v in state.items()
            if k.startswith(prefix + "layers.") and k.endswith(".weight")
        )
        last = state[prefix + "last.weight"]
        return cls(weights[0][1].shape[1], last.shape[0], last.shape[1], len(weights))

    def unit_map(self, h: torch.Tensor) -> torch.Tensor:
        """The map of unit spread that the layers learn (before ``out_scale`` and ``out_shift``).

        Parameters
        ----------
        h : torch.Tensor
            Backbone features, shape ``(N, in_dim)``.

        Returns
        -------
        torch.Tensor
            Shape ``(N, out_dim)``.
        """
        return self.last(self.layers((h - self.feature_mean) / self.feature_std))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.unit_map(h) * self.out_scale + self.out_shift


def is_map_head(head: nn.Module) -> bool:
    """Whether a network's head is a ``MapHead`` (the network was finished by a t-SNE).

    Parameters
    ----------
    head : torch.nn.Module
        ``net.head``.

    Returns
    -------
    bool
        True for a ``MapHead``.
    """
    return isinstance(head, MapHead)


def new_map_head(
    features: torch.Tensor,
    target: torch.Tensor,
    seed: int,
    hidden_dim: int = HEAD_HIDDEN,
    depth: int = HEAD_DEPTH,
) -> MapHead:
    """A head for ``features`` whose output will be scaled and shifted to ``target``'s coordinates.

    Parameters
    ----------
    features : torch.Tensor
        Backbone features of all training tiles, shape ``(N, D)``.
    target : torch.Tensor
        The map to learn, shape ``(N, out_dim)``.
    seed : int
        Seed of the head's initial weights (the global generator is left as it was).
    hidden_dim, depth : int, default HEAD_HIDDEN, HEAD_DEPTH
        Units of each hidden layer, and hidden layers.

    Returns
    -------
    MapHead
        On the device of ``features``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = MapHead(features.shape[1], target.shape[1], hidden_dim, depth)
    with torch.no_grad():
        head.feature_mean.copy_(features.mean(0).cpu())
        head.feature_std.copy_(features.std(0).clamp_min(1e-6).cpu())
        head.out_shift.copy_(target.mean(0).cpu())
        head.out_scale.copy_(target.std().clamp_min(1e-6).cpu())
    return head.to(features.device)


def tsne_seconds(n_tiles: int) -> float:
    """Seconds a time budget reserves for the t-SNE of ``n_tiles`` tiles' features.

    Parameters
    ----------
    n_tiles : int
        Tiles in the stack.

    Returns
    -------
    float
        ``TSNE_SECONDS_PER_TILE`` per tile, times ``log(n) / log(17092)`` (at least 1), and at
        least one second.
    """
    growth = max(1.0, math.log(max(n_tiles, 2)) / math.log(17092))
    return max(1.0, TSNE_SECONDS_PER_TILE * n_tiles * growth)


def feature_tsne(
    features: np.ndarray,
    out_dim: int,
    seed: int,
    *,
    n_jobs: int | None = None,
    stop: threading.Event | None = None,
) -> tuple[np.ndarray, float] | None:
    """A t-SNE of the features (openTSNE with its defaults: perplexity 30, PCA start).

    Parameters
    ----------
    features : numpy.ndarray of shape (N, D)
        Backbone features of all tiles.
    out_dim : int
        2 for a map, 3 for a point cloud (openTSNE's FFT approximation is 2-D only, so a 3-D map
        and fewer than ``FFT_FROM_TILES`` tiles use Barnes-Hut).
    seed : int
        ``random_state`` of openTSNE.
    n_jobs : int, optional
        Threads; default: PyTorch's.
    stop : threading.Event, optional
        Checked every 25 iterations; when set, the t-SNE ends and None is returned.

    Returns
    -------
    (numpy.ndarray of shape (N, out_dim), float) or None
        The map and its KL divergence; None when stopped.

    Raises
    ------
    ImportError
        When openTSNE is not installed.
    """
    try:
        from openTSNE import TSNE
    except ImportError as error:  # a dependency: only a broken install lacks it
        raise ImportError(
            "The t-SNE finish needs openTSNE: pip install openTSNE (or choose finish='contrastive')."
        ) from error

    def stopped(iteration, error, embedding) -> bool:
        return stop is not None and stop.is_set()

    if stopped(0, None, None):
        return None

    tsne = TSNE(
        n_components=out_dim,
        n_jobs=n_jobs or torch.get_num_threads(),
        random_state=seed % (2**31),
        negative_gradient_method="fft"
        if (out_dim <= 2 and len(features) >= FFT_FROM_TILES)
        else "bh",
        callbacks=stopped,
        callbacks_every_iters=25,
    )
    embedding = tsne.fit(np.ascontiguousarray(features, dtype=np.float32))
    if stop is not None and stop.is_set():
        return None
    return np.asarray(embedding, dtype=np.float32), float(embedding.kl_divergence)


def distill_epoch(
    head: MapHead,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    target: torch.Tensor,
    order: torch.Tensor,
    lr_of_step,
    stop: threading.Event | None = None,
) -> tuple[float, float] | None:
    """One epoch of fitting ``head`` to ``target`` (mean squared error on the map's unit spread).

    Parameters
    ----------
    head : MapHead
        The head being fitted.
    optimizer : torch.optim.Optimizer
        Over the head's parameters.
    features, target : torch.Tensor
        All tiles' features ``(N, D)`` and their place in the map ``(N, out_dim)``.
    order : torch.Tensor
        The tiles in this epoch's order (``PASSES_PER_EPOCH`` permutations of ``range(N)`` one
        after the other, or any other sequence of rows).
    lr_of_step : callable
        ``lr_of_step(step, steps)`` is the learning rate of the epoch's step ``step`` of ``steps``.
    stop : threading.Event, optional
        Checked before every step; when set, None is returned.

    Returns
    -------
    (float, float) or None
        Mean loss of the epoch and the last learning rate; None when stopped.
    """
    head.train()
    batches = order.to(features.device).split(DISTILL_BATCH)
    goal = (target - head.out_shift) / head.out_scale  # the map of unit spread the layers learn
    total = torch.zeros((), device=features.device)
    lr = 0.0
    for step, rows in enumerate(batches):
        if stop is not None and stop.is_set():
            return None
        lr = lr_of_step(step, len(batches))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = ((head.unit_map(features[rows]) - goal[rows]) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
    return float(total) / max(1, len(batches)), lr


def time_distill_epoch(in_dim: int, n_tiles: int, device: torch.device, repeats: int = 3) -> float:
    """Seconds of one epoch of fitting the head (``PASSES_PER_EPOCH`` passes over ``n_tiles`` tiles).

    Timed on a throw-away head.

    Parameters
    ----------
    in_dim : int
        Backbone features.
    n_tiles : int
        Tiles in the stack.
    device : torch.device
        Where the fit will run.
    repeats : int, default 3
        Timed steps, after one warm-up step.

    Returns
    -------
    float
        Seconds.
    """
    head = MapHead(in_dim).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.0)
    features = torch.randn(DISTILL_BATCH, in_dim, device=device)
    target = torch.zeros(DISTILL_BATCH, 2, device=device)
    order = torch.arange(DISTILL_BATCH)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        distill_epoch(head, optimizer, features, target, order, lambda s, n: 0.0)
        times.append(time.perf_counter() - t0)
    steps = PASSES_PER_EPOCH * max(1, math.ceil(n_tiles / DISTILL_BATCH))
    return float(np.median(times[1:])) * steps
