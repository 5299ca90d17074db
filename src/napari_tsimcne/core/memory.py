"""Will a training step fit in memory? An estimate for the CPU, where running out kills the process.

On a CUDA GPU running out of memory raises an error that training handles (the batch is halved). On a
CPU the operating system ends the process instead, with no message. So before training on the CPU the
memory one step needs is estimated and compared with the memory that is free; a batch that cannot fit
is refused with the largest one that can.
"""

from __future__ import annotations

import os

import torch

from .parameters import ParameterError

SAFETY = 0.7
"""Use at most this share of the free memory for one training step."""
LOSS_COPIES = 4
"""Views x views float32 matrices the loss keeps for one step (similarities, kernel, softmax, gradient)."""
ACTIVATION_COPIES = 1.5
"""Stored activations and their gradients, relative to one forward pass's outputs (measured: 1.0-1.5)."""


def available_memory() -> int | None:
    """Bytes of memory free for a new allocation, or None where this cannot be told.

    Returns
    -------
    int or None
        ``MemAvailable`` of ``/proc/meminfo`` on Linux, else the free physical pages (POSIX).
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def bytes_per_view(net: torch.nn.Module, channels: int, tile_hw: tuple[int, int]) -> int:
    """Bytes of activations one augmented view keeps during a training step of ``net``.

    Parameters
    ----------
    net : torch.nn.Module
        The network (on the CPU).
    channels : int
        Channels of a tile.
    tile_hw : tuple of int
        Height and width of a tile.

    Returns
    -------
    int
        The outputs of every layer for one view in float32, times ``ACTIVATION_COPIES``.
    """
    total = 0

    def count(_module, _inputs, output) -> None:
        nonlocal total
        if torch.is_tensor(output):
            total += output.numel()

    leaves = [m for m in net.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(2, channels, *tile_hw))
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    return int(total / 2 * 4 * ACTIVATION_COPIES)


def step_bytes(per_view: int, batch_size: int) -> int:
    """Memory of one training step: two views per tile, their activations and the loss matrices.

    Parameters
    ----------
    per_view : int
        ``bytes_per_view``.
    batch_size : int
        Tiles per step.

    Returns
    -------
    int
    """
    views = 2 * int(batch_size)
    return views * int(per_view) + LOSS_COPIES * 4 * views * views


def check_batch_fits(
    net: torch.nn.Module, channels: int, tile_hw: tuple[int, int], batch_size: int
) -> None:
    """Refuse a batch whose training step would not fit in the free memory (CPU training).

    Parameters
    ----------
    net : torch.nn.Module
        The network to train, on the CPU.
    channels : int
        Channels of a tile.
    tile_hw : tuple of int
        Height and width of a tile.
    batch_size : int
        Tiles per step.

    Raises
    ------
    ParameterError
        When one step needs more than ``SAFETY`` of the free memory; the message gives the
        largest power-of-two batch that fits.
    """
    free = available_memory()
    if free is None:
        return
    per_view = bytes_per_view(net, channels, tile_hw)
    need = step_bytes(per_view, batch_size)
    if need <= SAFETY * free:
        return
    fits = 2
    while step_bytes(per_view, fits * 2) <= SAFETY * free and fits * 2 < batch_size:
        fits *= 2
    raise ParameterError(
        f"batch_size={batch_size} needs about {need / 2**30:.1f} GB of memory per training step on "
        f"the CPU, but {free / 2**30:.1f} GB are free. Use batch_size <= {fits}, or free memory.",
        "batch_size",
    )
