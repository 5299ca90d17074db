"""Choosing the compute device and the precision that suits it."""

from __future__ import annotations

import contextlib

import torch

DEVICES = ("auto", "cuda", "mps", "cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; a named device that is absent raises."""
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).lower()
    kind = name.split(":")[0]
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "device='cuda' was requested, but PyTorch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
                "Use device 'auto' (the default; --device auto on the command line) or 'cpu'."
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) are present.")
        return torch.device(name)
    if kind == "mps":
        if not _mps_available():
            raise ValueError("device='mps' was requested, but Apple's MPS backend is not available here.")
        return torch.device("mps")
    if kind == "cpu":
        return torch.device("cpu")
    raise ValueError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)} (or 'cuda:N').")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (tensor cores); full float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA, where cuDNN's convolutions are fastest with it."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return str(device)
