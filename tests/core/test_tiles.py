import numpy as np
import pytest

from napari_tsimcne import TileStackError, as_tile_stack, tile_image
from napari_tsimcne.core.normalization import ChannelNormalization


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((0, 32, 32)), "empty"),
        (np.zeros((1, 32, 32)), "single tile"),
        (np.zeros((32, 32)), "one 2D image"),
        (np.zeros((2, 3, 32, 32, 1)), "dimensions"),
        (np.zeros((4, 4, 4)), "too small"),
        (np.zeros((4, 32, 32), dtype=bool), "boolean"),
        (np.zeros((4, 32, 32), dtype=np.complex64), "complex"),
        (np.zeros((4, 32, 32, 40)), "channel_axis"),
    ],
)
def test_bad_stacks_get_a_specific_message(array, message):
    with pytest.raises(TileStackError, match=message):
        as_tile_stack(array)


def test_nan_tiles_are_named():
    x = np.zeros((5, 16, 16), dtype=np.float32)
    x[3, 2, 2] = np.nan
    with pytest.raises(TileStackError, match="first: tile 3"):
        as_tile_stack(x)


def test_channel_axis_is_moved_without_copy():
    x = np.zeros((6, 2, 16, 20), dtype=np.uint16)
    out = as_tile_stack(x, channel_axis=1)
    assert out.shape == (6, 16, 20, 2)
    assert np.shares_memory(out, x)


def test_tile_image_grid_and_origins():
    img = np.arange(100 * 80).reshape(100, 80)
    t = tile_image(img, 32, 16)
    rows, cols = (100 - 32) // 16 + 1, (80 - 32) // 16 + 1
    assert t.tiles.shape == (rows * cols, 32, 32)
    for tile, (r, c) in zip(t.tiles, t.origins):
        assert np.array_equal(tile, img[r : r + 32, c : c + 32])


def test_tile_image_skips_background():
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[:32, :32] = 200  # one bright quadrant
    t = tile_image(img, 16, min_foreground=0.5)
    assert len(t.tiles) == 4
    assert (t.origins < 32).all()


def test_normalisation_maps_robust_range_per_channel():
    rng = np.random.default_rng(0)
    x = np.stack(
        [rng.integers(100, 200, (50, 16, 16)), rng.integers(1000, 4000, (50, 16, 16))], -1
    ).astype(np.uint16)
    x[0, 0, 0, 1] = 65535  # one hot pixel must not set the range
    norm = ChannelNormalization.fit(x)
    assert norm.high[1] < 5000 and norm.low[0] >= 100


def test_constant_channel_is_refused():
    x = np.ones((10, 16, 16, 2), dtype=np.float32)
    x[..., 0] = np.random.default_rng(0).random((10, 16, 16))
    with pytest.raises(TileStackError, match="Channel 1 is constant"):
        ChannelNormalization.fit(x)
