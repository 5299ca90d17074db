"""The CUDA path: bf16 autocast, channels-last, on-device augmentation, pinned host streaming. Skipped without a GPU."""

import numpy as np
import pytest
import torch

from napari_tsimcne import TSimCNE
from napari_tsimcne.core.augment import AugmentationSettings, augment, make_generator
from napari_tsimcne.core.normalization import ChannelNormalization
from napari_tsimcne.core.store import TileStore
from tests.conftest import TINY

pytestmark = pytest.mark.gpu


def test_training_on_cuda_gives_a_finite_map(rgb_tiles):
    model = TSimCNE(**{**TINY, "device": "cuda"})
    y = model.fit_transform(rgb_tiles)
    assert y.shape == (256, 2) and np.isfinite(y).all()
    assert next(model.model_.parameters()).is_cuda


def test_the_tsne_finish_trains_on_cuda_and_maps_on_the_cpu(rgb_tiles, tmp_path):
    model = TSimCNE(**{**TINY, "device": "cuda", "finish": "tsne", "total_epochs": (2, 1, 2)})
    y = model.fit_transform(rgb_tiles)
    assert y.shape == (256, 2) and np.isfinite(y).all()
    model.save(tmp_path / "m.tsimcne")
    on_cpu = TSimCNE.load(tmp_path / "m.tsimcne", device="cpu").transform(rgb_tiles)
    np.testing.assert_allclose(on_cpu, y, atol=0.05 * float(np.abs(y).max()))  # bf16 on the GPU


def test_augmentations_run_on_the_gpu():
    x = torch.rand(64, 3, 32, 32, device="cuda")
    out = augment(
        x,
        AugmentationSettings.preset("microscopy", blur_p=0.5, noise_std=0.05),
        make_generator(torch.device("cuda"), 0),
    )
    assert out.is_cuda and out.shape == x.shape and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pinned_host_stack_gathers_the_same_tiles_as_a_device_stack(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 250, (300, 16, 16, 3)).astype(dtype)
    norm = ChannelNormalization.fit(x)
    on_gpu = TileStore(x, norm, torch.device("cuda"), on_device=True)
    streamed = TileStore(x, norm, torch.device("cuda"), on_device=False)
    assert streamed.data.is_pinned()
    idx = torch.tensor([5, 0, 299, 17])
    torch.testing.assert_close(on_gpu.gather(idx), streamed.gather(idx))


def test_model_saved_on_gpu_loads_on_cpu(rgb_tiles, tmp_path):
    model = TSimCNE(**{**TINY, "device": "cuda"}).fit(rgb_tiles)
    model.save(tmp_path / "m.tsimcne")
    cpu = TSimCNE.load(tmp_path / "m.tsimcne", device="cpu")
    y_gpu = model.transform(rgb_tiles[:32])
    y_cpu = cpu.transform(rgb_tiles[:32])
    np.testing.assert_allclose(
        y_cpu, y_gpu, rtol=0.05, atol=0.05 * np.abs(y_gpu).max()
    )  # bf16 vs fp32
