"""Training on several processes (one per GPU) under ``torchrun``.

Each process trains on its own share of every global batch, and the
contrastive loss sees the views of *all* processes: the outputs are gathered
with their gradients, each process scores its own views against every view,
and batch-norm statistics are pooled over all processes. So ``P`` processes
with batch ``B`` each train like one process with batch ``P * B`` (tested with
the CPU's gloo backend), and the learning rate follows the global batch.

Launch with ``torchrun --nproc-per-node=4 -m napari_tsimcne fit ...`` or a
script that calls ``TSimCNE.fit``; the environment variables that
torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``) switch this on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place among the training processes."""

    rank: int = 0
    """This process's number, 0 to ``world_size - 1``; 0 writes files and reports."""
    world_size: int = 1
    """Number of training processes (1: no distributed training)."""
    local_rank: int = 0
    """This process's number on its own machine (which GPU it uses)."""

    @property
    def active(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is the process that writes files and reports progress."""
        return self.rank == 0


SINGLE = DistContext()


def from_environment(device_type: str = "cpu") -> DistContext:
    """The context torchrun describes in the environment; joins (or starts) the process group.

    Without ``WORLD_SIZE`` > 1 this is a single process and nothing is started.
    The backend is NCCL for CUDA and gloo otherwise.

    Parameters
    ----------
    device_type : str
        ``"cuda"``, ``"mps"`` or ``"cpu"``: chooses the backend.

    Returns
    -------
    DistContext
        This process's rank and the number of processes.

    Raises
    ------
    RuntimeError
        When ``WORLD_SIZE`` > 1 but PyTorch has no distributed support.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1, but this PyTorch build has no torch.distributed.")
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        kwargs = {"device_id": torch.device("cuda", local_rank)} if device_type == "cuda" else {}
        dist.init_process_group(backend, **kwargs)
    return DistContext(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank
    )


class _GatherWithGradient(torch.autograd.Function):
    """All-gather whose backward sums every process's gradient for this process's part."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


def gather_views(z: torch.Tensor, ctx: DistContext) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gather every process's (2B, d) views into the layout a single process would have.

    Each process holds ``[first views; second views]`` of its B tiles. The
    result is ``[first views of all tiles; second views of all tiles]``
    (2PB, d), in the order of the global batch, plus the rows of this
    process's own views within it (None in a single process: all of them).

    Parameters
    ----------
    z : torch.Tensor
        This process's outputs, shape ``(2B, d)``.
    ctx : DistContext
        This process's place among the training processes.

    Returns
    -------
    tuple
        All views ``(2PB, d)``, with gradients flowing back to each process's own, and the
        indices of this process's rows (or None).
    """
    b = z.shape[0] // 2
    if not ctx.active:
        return z, None
    parts = _GatherWithGradient.apply(z)  # (P, 2B, d)
    everything = torch.cat(
        [parts[:, :b].reshape(-1, z.shape[1]), parts[:, b:].reshape(-1, z.shape[1])]
    )
    own = torch.arange(b, device=z.device) + ctx.rank * b
    return everything, torch.cat([own, own + ctx.world_size * b])


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(sum) with the matching backward (the sum of every process's gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class PooledBatchNorm:
    """Mixin: in training, batch statistics pooled over all processes (one all-reduce per layer).

    Works on any backend, the CPU's gloo included. In a single process, or in
    evaluation, it is exactly the ordinary batch norm.

    Parameters
    ----------
    *args, **kwargs
        Those of the batch-norm class it is mixed into (e.g. ``num_features``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Normalise ``x`` with the batch statistics of all processes (in training).

        Parameters
        ----------
        x : torch.Tensor
            Activations, shape ``(B, C, ...)``.

        Returns
        -------
        torch.Tensor
            Normalised activations, same shape.
        """
        if not (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([float(x.numel() // x.shape[1])], device=x.device)
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        total = _SumOverProcesses.apply(local)
        c = x.shape[1]
        n = total[2 * c]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                self.running_mean.mul_(1 - m).add_(
                    mean.detach().to(self.running_mean.dtype), alpha=m
                )
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class BatchNorm2d(PooledBatchNorm, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with statistics pooled over training processes.

    Parameters
    ----------
    num_features : int
        Channels.
    eps, momentum, affine, track_running_stats, device, dtype, bias
        As for ``torch.nn.BatchNorm2d``.
    """


def wrap(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when several processes train; else itself.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    ctx : DistContext
        This process's place among the training processes.
    device : torch.device
        The device this process trains on.

    Returns
    -------
    torch.nn.Module
        The wrapped network, or ``module`` itself in a single process.
    """
    if not ctx.active:
        return module
    ids = (
        [device.index if device.index is not None else ctx.local_rank]
        if device.type == "cuda"
        else None
    )
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def broadcast_ints(values: tuple[int, ...], ctx: DistContext) -> tuple[int, ...]:
    """Rank 0's whole numbers on every process (seeds, epochs chosen for a time budget).

    Parameters
    ----------
    values : tuple of int
        This process's numbers; only rank 0's count.
    ctx : DistContext
        This process's place among the training processes.

    Returns
    -------
    tuple of int
        Rank 0's numbers.
    """
    if not ctx.active:
        return tuple(values)
    t = torch.tensor(list(values), dtype=torch.int64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, 0)
    return tuple(int(v) for v in t.tolist())


def broadcast_seed(seed: int, ctx: DistContext) -> int:
    """Rank 0's seed on every process (so shuffling and weights agree).

    Parameters
    ----------
    seed : int
        This process's seed; only rank 0's counts.
    ctx : DistContext
        This process's place among the training processes.

    Returns
    -------
    int
        Rank 0's seed.
    """
    return broadcast_ints((seed,), ctx)[0]


def mean_over_processes(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of a scalar over processes (for reporting the loss).

    Parameters
    ----------
    value : torch.Tensor
        A scalar of this process.
    ctx : DistContext
        This process's place among the training processes.

    Returns
    -------
    torch.Tensor
        The mean over all processes.
    """
    if not ctx.active:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / ctx.world_size
