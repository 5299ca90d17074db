"""A batch too large for the CPU's memory is refused with the largest that fits (instead of the process dying)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tsimcne import TSimCNE
from napari_tsimcne.core import memory
from napari_tsimcne.core.model import TSimCNENet
from napari_tsimcne.core.parameters import ParameterError


def test_the_estimate_is_close_to_what_a_step_uses():
    net = TSimCNENet(3, "resnet10", 8)
    per_view = memory.bytes_per_view(net, 3, (16, 16))
    # the outputs of every layer for one view: the first layers alone hold 8 x 16 x 16 floats each
    assert 8 * 16 * 16 * 4 * 4 < per_view < 8 * 16 * 16 * 4 * 60
    assert memory.step_bytes(per_view, 64) == 128 * per_view + memory.LOSS_COPIES * 4 * 128**2
    assert net.training  # measuring leaves the network as it was


def test_a_batch_too_large_for_the_free_memory_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**20)  # 64 MB free
    tiles = np.random.default_rng(0).random((2048, 16, 16), dtype=np.float32)
    model = TSimCNE(
        backbone="resnet10", width=8, batch_size=2048, total_epochs=(1, 0, 0), device="cpu"
    )
    with pytest.raises(
        ParameterError, match=r"batch_size=2048 needs about .* GB .* batch_size <= \d+"
    ) as err:
        model.fit(tiles)
    assert err.value.parameters == ("batch_size",)
    fits = int(str(err.value).split("batch_size <= ")[1].split(",")[0])
    assert 2 <= fits < 2048
    TSimCNE(
        backbone="resnet10", width=8, batch_size=fits, total_epochs=(1, 0, 0), device="cpu"
    ).fit(tiles[: max(256, fits)])


def test_unknown_free_memory_is_not_a_reason_to_refuse(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    memory.check_batch_fits(TSimCNENet(1, "resnet10", 4), 1, (8, 8), 10**6)


def test_free_memory_is_found_here():
    free = memory.available_memory()
    assert free is None or free > 2**20


def test_validate_refuses_a_batch_too_large_before_any_training(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**20)
    tiles = np.zeros((2048, 16, 16), dtype=np.float32)
    model = TSimCNE(backbone="resnet10", width=8, batch_size=2048, device="cpu")
    with pytest.raises(ParameterError, match=r"batch_size=2048 needs about"):
        model.validate(tiles)
    TSimCNE(backbone="resnet10", width=8, batch_size=64, device="cpu").validate(tiles)
