"""torch inside a napari process: load it safely beside OpenGL, give GPU memory back."""

from __future__ import annotations

import sys


def preload_torch() -> None:
    """Load torch's lazily imported modules on the main thread, before training starts.

    The optimizer imports torch._dynamo, which imports triton. triton bundles its own LLVM; in a process
    whose OpenGL is Mesa's software renderer (llvmpipe, e.g. on a virtual display) the system LLVM is
    already loaded and importing triton then crashes the process. There triton is hidden from torch
    (nothing here needs it); elsewhere it is imported normally.
    """
    if "torch._dynamo" in sys.modules or "triton" in sys.modules:
        return
    if _system_llvm_loaded():
        sys.modules["triton"] = None  # makes "import triton" raise ImportError, which torch handles
    import torch._dynamo  # noqa: F401


def release_device_memory() -> None:
    """Give cached GPU memory back to the driver (the trainer and the tile store are gone by now)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except RuntimeError:
        pass


def _system_llvm_loaded() -> bool:
    try:
        with open("/proc/self/maps") as fh:
            return "libLLVM" in fh.read()
    except OSError:
        return False
