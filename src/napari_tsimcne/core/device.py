"""Choosing the compute device and the precision that suits it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .parameters import DEVICES as DEVICES  # the names, kept where PyTorch is not needed
from .parameters import ParameterError, check_parameter
from .schedule import PAPER_EPOCHS


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The device to run on: ``"auto"`` picks CUDA, then Apple's MPS, then the CPU.

    Parameters
    ----------
    device : str or torch.device, default "auto"
        ``"auto"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.

    Returns
    -------
    torch.device
        The device, present on this machine.

    Raises
    ------
    ParameterError
        When ``device`` is none of the names above, or names a device this machine lacks.
    """
    if isinstance(device, torch.device):
        device = str(device)
    check_parameter("device", str(device))
    name = str(device).lower()
    kind = name.split(":")[0]
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(
                "device='cuda' was requested, but PyTorch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
                "Use device='auto' (the default) or device='cpu'.",
                "device",
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ParameterError(
                f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) are present.",
                "device",
            )
        return torch.device(name)
    if kind == "mps":
        if not _mps_available():
            raise ParameterError(
                "device='mps' was requested, but Apple's MPS backend is not available here.",
                "device",
            )
        return torch.device("mps")
    if kind == "cpu":
        return torch.device("cpu")
    raise AssertionError(f"device {name!r} passed the check but is not handled")


@dataclass(frozen=True)
class DeviceDefaults:
    """What ``"auto"`` means for the network, the batch and the training length on one kind of device."""

    backbone: str
    """The network (see ``napari_tsimcne.core.backbones.BACKBONES``)."""
    width: int
    """Channels of the network's first layer."""
    batch_size: int
    """Tiles per training step."""
    total_epochs: tuple[int, int, int] | None
    """Epochs of the three stages, or None: set by ``time_budget`` instead."""
    time_budget: float | None
    """Seconds of training and mapping, or None: train ``total_epochs``."""
    embed_batch_size: int = 2048
    """Tiles per forward pass when mapping. On a CPU small batches keep the activations in the cache:
    mapping 64 x 64 tiles is 1.3 to 2 times faster with 128 tiles per pass than with 2048."""
    finetune_lr_ratio: float = 1e-3
    """Stage 3's learning rate as a multiple of ``lr``. The paper's 1/1000 suits its 1000 epochs of
    pre-training and 450 of fine-tuning; in a run of minutes the network must still change to
    serve the 2D map, and fine-tuning at the full rate or above keeps more of what it learned."""


SHORT_RUN_FINETUNE = 1.0
"""Stage 3's learning rate as a multiple of ``lr`` where ``"auto"`` means a run of minutes (CPU, MPS).

From one network pre-trained for 32 epochs on the CPU (all 17,092 blood cells), 16 epochs of
stage 3 gave maps of 74.3 / 75.9 / 76.7 / 77.3 % 15-NN at 1/1000, 1/10, 1 and 3 times ``lr``
(``benchmarks/results/map-stages-cpu-2core_pbc17092.jsonl``). On 1,000 tiles and 10 / 3 / 3 epochs,
two seeds gave 54 and 47 % at 1/1000, 60 and 52 % at 1 x ``lr``, 57 and 56 % at 1.5 x
(``finetune-small-cpu-2core_pbc1000.jsonl``); at 3 x one seed fell to 35 %, so ``lr`` it is."""

GPU_DEFAULTS = DeviceDefaults("resnet18", 64, 1024, PAPER_EPOCHS, None)
"""CUDA: the paper's network, batch and budget (Böhm et al. 2023)."""

MPS_DEFAULTS = DeviceDefaults(
    "resnet18", 64, 1024, None, 600.0, finetune_lr_ratio=SHORT_RUN_FINETUNE
)
"""Apple's GPUs: the paper's network, trained for about 10 minutes."""

CPU_DEFAULTS = DeviceDefaults(
    "resnet18-s2", 16, 256, None, 600.0, embed_batch_size=128, finetune_lr_ratio=SHORT_RUN_FINETUNE
)
"""No GPU: ResNet-18 with a stride-2 stem and 16 channels in its first layer, batch 256, about 10 minutes.

On 28 x 28 tiles the stride-2 stem makes a training step 2.9 times cheaper
than the paper's stride-1 stem at the same width. In a 10-minute budget on 2
cores both gave maps of the same quality (73.3 and 73.9 % 15-NN on the blood
cells), and the stride-2 network maps new tiles three times faster (5,260
against about 1,400 tiles/s); docs/cpu.md shows the measurements.
"""


def defaults_for(device: torch.device) -> DeviceDefaults:
    """The settings that ``"auto"`` stands for on ``device``.

    Parameters
    ----------
    device : torch.device
        A resolved device (see ``resolve_device``).

    Returns
    -------
    DeviceDefaults
        ``GPU_DEFAULTS`` on CUDA, ``MPS_DEFAULTS`` on Apple's MPS, ``CPU_DEFAULTS`` elsewhere.
    """
    if device.type == "cuda":
        return GPU_DEFAULTS
    if device.type == "mps":
        return MPS_DEFAULTS
    return CPU_DEFAULTS


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores); full float32 elsewhere.

    Parameters
    ----------
    device : torch.device
        The device the computation runs on.

    Returns
    -------
    contextlib.AbstractContextManager
        ``torch.autocast`` on CUDA, a context that does nothing elsewhere.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA, where cuDNN's convolutions are fastest with it.

    Parameters
    ----------
    device : torch.device
        The device the tensors live on.

    Returns
    -------
    torch.memory_format
        ``torch.channels_last`` on CUDA, ``torch.contiguous_format`` elsewhere.
    """
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def device_name(device: torch.device) -> str:
    """The device in words, for logs and summaries.

    Parameters
    ----------
    device : torch.device
        A resolved device.

    Returns
    -------
    str
        The GPU's name on CUDA; on the CPU the processor and the number of threads.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        return (
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    return str(device)
