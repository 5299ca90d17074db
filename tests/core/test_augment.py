import math

import numpy as np
import pytest
import torch

from napari_tsimcne.core.augment import (
    AugmentationSettings,
    affine_matrices,
    augment,
    make_generator,
    warp,
)

PRESETS = ["microscopy", "natural", "quantitative"]


def batch(c=3, n=8, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=gen)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_views_keep_shape_dtype_and_range(preset, channels):
    x = batch(channels)
    out = augment(x, AugmentationSettings.preset(preset), make_generator(torch.device("cpu"), 0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("preset", PRESETS)
def test_two_views_of_a_tile_differ_and_samples_get_their_own_parameters(preset, rgb_tiles):
    x = torch.from_numpy(rgb_tiles[:1]).permute(0, 3, 1, 2).float().div(255).repeat(16, 1, 1, 1)
    out = augment(x, AugmentationSettings.preset(preset), make_generator(torch.device("cpu"), 1))
    diffs = [(out[0] - out[i]).abs().mean().item() for i in range(1, 16)]
    assert min(diffs) > 1e-3, "identical inputs must give different views"
    # different views of the same tile differ from each other by different amounts: per-view parameters
    assert np.std(diffs) > 1e-4


def test_same_seed_same_views():
    x = batch()
    s = AugmentationSettings.preset("microscopy", blur_p=0.5, noise_std=0.05)
    a = augment(x, s, make_generator(torch.device("cpu"), 7))
    b = augment(x, s, make_generator(torch.device("cpu"), 7))
    assert torch.equal(a, b)


def test_a_90_degree_rotation_really_rotates():
    x = batch(c=2, n=1, size=16)
    angle = torch.tensor(math.pi / 2)
    m = torch.tensor([[[angle.cos(), -angle.sin(), 0.0], [angle.sin(), angle.cos(), 0.0]]])
    out = warp(x, m, "zeros")
    expected = torch.rot90(
        x, k=1, dims=(2, 3)
    )  # counter-clockwise in (row, col) = sampling rotated grid
    alt = torch.rot90(x, k=-1, dims=(2, 3))
    err = min((out - expected).abs().max().item(), (out - alt).abs().max().item())
    assert err < 1e-5


def test_rotation_only_preset_rotates_by_multiples_of_90_exactly():
    s = AugmentationSettings(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        rotate_90=True,
        rotation_degrees=0.0,
        hflip=0.0,
        vflip=0.0,
        jitter_p=0.0,
        grayscale_p=0.0,
    )
    x = batch(c=1, n=32, size=16)
    out = augment(x, s, make_generator(torch.device("cpu"), 3))
    for i in range(32):
        assert any(
            torch.allclose(out[i], torch.rot90(x[i], k, (1, 2)), atol=1e-5) for k in range(4)
        )


def test_border_fill_uses_the_tiles_edge_colour():
    x = torch.full((1, 3, 16, 16), 0.2)
    x[:, :, 4:12, 4:12] = 0.9  # bright centre, dark border
    m = torch.tensor([[[math.cos(0.7), -math.sin(0.7), 0.0], [math.sin(0.7), math.cos(0.7), 0.0]]])
    out = warp(x, m, "border")
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.2), atol=1e-5)  # uncovered corner


def test_crop_scale_one_without_rotation_is_identity():
    s = AugmentationSettings(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        rotate_90=False,
        rotation_degrees=0.0,
        hflip=0.0,
        vflip=0.0,
    )
    m = affine_matrices(4, 16, 24, s, make_generator(torch.device("cpu"), 0), "cpu")
    assert torch.allclose(m, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3))


def test_quantitative_preset_keeps_intensity_unchanged():
    s = AugmentationSettings.preset(
        "quantitative",
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        rotate_90=False,
        rotation_degrees=0.0,
    )
    x = batch(c=4, n=64) * 0.5
    out = augment(x, s, make_generator(torch.device("cpu"), 0))
    ratio = out.mean((2, 3)) / x.mean((2, 3))
    assert ratio.min() > 0.999 and ratio.max() < 1.001  # flips only: no gain, no jitter


def test_the_older_fluorescence_name_means_the_quantitative_preset():
    assert AugmentationSettings.preset("fluorescence") == AugmentationSettings.preset(
        "quantitative"
    )


def test_bad_settings_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentationSettings(crop_scale=(0.0, 1.0)).validate()
    with pytest.raises(ValueError, match="probability"):
        AugmentationSettings(hflip=1.5).validate()
    with pytest.raises(ValueError, match="Unknown augmentation preset"):
        AugmentationSettings.preset("cats")


def test_only_uint8_stacks_with_three_channels_count_as_colour_images():
    s = AugmentationSettings.preset("microscopy")
    assert s.for_stack(np.uint8, 3).rgb is True
    for dtype, channels in [(np.uint16, 3), (np.float32, 3), (np.uint8, 1), (np.uint8, 4)]:
        assert s.for_stack(dtype, channels).rgb is False
    # what the user says is kept
    assert AugmentationSettings.preset("microscopy", rgb=False).for_stack(np.uint8, 3).rgb is False


def test_three_fluorescence_channels_are_never_mixed_or_turned_grey():
    # a cell bright in channel 0 only: colour operations would leak it into channels 1 and 2
    x = torch.zeros(64, 3, 16, 16)
    x[:, 0, 4:12, 4:12] = 0.8
    s = AugmentationSettings.preset("microscopy", grayscale_p=1.0, jitter_p=1.0).for_stack(
        np.uint16, 3
    )
    out = augment(x, s, make_generator(torch.device("cpu"), 0))
    assert out[:, 1:].abs().max() == 0
    assert out[:, 0].amax((1, 2)).min() > 0.3  # and channel 0 still holds the cell


def test_colour_images_still_get_colour_augmentations():
    x = batch(c=3, n=16)
    s = AugmentationSettings.preset("microscopy", grayscale_p=1.0).for_stack(np.uint8, 3)
    out = augment(x, s, make_generator(torch.device("cpu"), 0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
