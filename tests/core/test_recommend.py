"""The preset recommended from a stack, and the sentence that says why."""

import numpy as np

from napari_tsimcne.core.recommend import recommend_preset


def _fluorescence(n=200, seed=0, spread=True):
    """uint16 cells on a dark background; with ``spread`` their brightness differs 3-fold."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:24, 0:24]
    cell = ((yy - 12) ** 2 + (xx - 12) ** 2 < 25).astype(float)
    level = rng.uniform(1000, 3000, n) if spread else np.full(n, 2000.0)
    stack = 100 + level[:, None, None, None] * cell[None, ..., None] * np.ones((1, 1, 1, 3))
    return (stack + rng.normal(0, 5, stack.shape)).clip(0).astype(np.uint16)


def test_colour_pictures_get_the_microscopy_preset(rgb_tiles):
    rec = recommend_preset(rgb_tiles)
    assert rec.preset == "microscopy" and "colour" in rec.reason


def test_three_channel_fluorescence_with_varying_intensity_gets_the_quantitative_preset():
    rec = recommend_preset(_fluorescence())
    assert rec.preset == "quantitative"
    assert "16-bit" in rec.reason and "dark background" in rec.reason and "-fold" in rec.reason


def test_even_intensities_or_a_bright_background_keep_the_microscopy_preset():
    even = recommend_preset(_fluorescence(spread=False))
    assert even.preset == "microscopy" and "varies little" in even.reason
    brightfield = (60000 - _fluorescence().astype(np.int64) * 10).clip(0).astype(np.uint16)
    bright = recommend_preset(brightfield)
    assert bright.preset == "microscopy" and "not a dark background" in bright.reason


def test_float_and_single_channel_stacks_are_judged_alike():
    stack = _fluorescence().astype(np.float32)
    assert recommend_preset(stack).preset == "quantitative"
    assert recommend_preset(stack[..., 0]).preset == "quantitative"
    assert "Floating-point" in recommend_preset(stack).reason
