"""Shared fixtures: real data from ../shared/data (skipped with a reason where absent) and tiny model settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_tsimcne.core.sample import PBC_FILE, find_data_file

torch.set_num_threads(2)

TINY = dict(
    backbone="resnet10",
    width=8,
    batch_size=64,
    total_epochs=(2, 1, 1),
    random_state=0,
    device="cpu",
    preview_every=0,
)
"""A network and budget small enough that a fit takes seconds on 2 CPU cores."""


@pytest.fixture(scope="session")
def pbc():
    """(tiles, labels) of pbc28.npz, or skip where the file is absent."""
    path = find_data_file(PBC_FILE)
    if path is None:
        pytest.skip(
            f"{PBC_FILE} not found (looked in ../shared/data and $NAPARI_TSIMCNE_DATA); real-data test skipped"
        )
    with np.load(path) as d:
        return d["images"], d["labels"]


@pytest.fixture
def rgb_tiles():
    """256 real histology tiles (32 x 32 RGB) cut from scikit-image's bundled image."""
    from napari_tsimcne.core.sample import load_histology

    return load_histology().tiles[:256]


@pytest.fixture
def out_of_memory_once(monkeypatch):
    """The first training epoch raises CUDA's out-of-memory error (as a too-large batch on a GPU would)."""
    from napari_tsimcne.core import training

    real = training.Trainer._run_epoch
    calls = {"n": 0}

    def run_epoch(self, stage, global_epoch, stop=None):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real(self, stage, global_epoch, stop)

    monkeypatch.setattr(training.Trainer, "_run_epoch", run_epoch)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    return calls


def pytest_collection_modifyitems(config, items):
    """GPU tests run only where PyTorch sees a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible to PyTorch here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
