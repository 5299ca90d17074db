"""Choosing the compute device and the precision that suits it."""

from __future__ import annotations

import contextlib

import torch

from .defaults import CPU_DEFAULTS as CPU_DEFAULTS  # torch-free, where the CLI's help reads them
from .defaults import GPU_DEFAULTS as GPU_DEFAULTS
from .defaults import MPS_DEFAULTS as MPS_DEFAULTS
from .defaults import SHORT_RUN_FINETUNE as SHORT_RUN_FINETUNE
from .defaults import DeviceDefaults as DeviceDefaults
from .parameters import DEVICES as DEVICES  # the names, kept where PyTorch is not needed
from .parameters import ParameterError, check_parameter


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
