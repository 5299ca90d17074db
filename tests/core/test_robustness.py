"""Awkward but valid input trains without NaN; hopeless input is refused before training; the stack is not copied."""

import tracemalloc

import numpy as np
import pytest
import torch

from napari_tsimcne import TileStackError, TSimCNE, as_tile_stack
from napari_tsimcne.core import store as store_module
from napari_tsimcne.core.normalization import ChannelNormalization
from napari_tsimcne.core.store import TileStore
from napari_tsimcne.core.tiles import MIN_TILE_SIZE
from tests.conftest import TINY

SHORT = {**TINY, "total_epochs": (1, 1, 1)}


def _fit_finite(tiles, **params) -> TSimCNE:
    model = TSimCNE(**{**SHORT, **params}).fit(tiles)
    assert model.embedding_.shape == (len(tiles), 2)
    assert np.isfinite(model.embedding_).all()
    assert all(np.isfinite(h["loss"]) for h in model.history_)
    return model


# -- valid but awkward input trains ---------------------------------------------------------------


def test_non_square_tiles_fit_and_transform(rgb_tiles):
    tiles = rgb_tiles[:, :24, :32]  # 24 x 32, a strided view
    model = _fit_finite(tiles)
    assert model.tile_shape_ == (24, 32)
    y = model.transform(tiles[:50])
    assert y.shape == (50, 2) and np.isfinite(y).all()
    np.testing.assert_allclose(y, model.embedding_[:50], rtol=1e-4, atol=1e-4)
    with pytest.raises(TileStackError, match="24 x 32 tiles, but these are 32 x 24"):
        model.transform(np.ascontiguousarray(tiles.transpose(0, 2, 1, 3)))


def test_uint16_with_hot_pixels_is_scaled_by_its_signal_and_trains(rgb_tiles):
    rng = np.random.default_rng(0)
    tiles = (100 + rgb_tiles[:128].mean(-1) * 12).astype(np.uint16)  # a 12-bit camera: 100..3160
    flat = tiles.reshape(-1)
    flat[rng.choice(flat.size, flat.size // 2000, replace=False)] = 65535  # 0.05 % hot pixels
    norm = ChannelNormalization.fit(tiles)
    assert (
        100 <= norm.low[0] < 1000 and 2000 < norm.high[0] < 3200
    )  # the hot pixels do not set the range
    _fit_finite(tiles)


def test_uint16_full_range_trains(rgb_tiles):
    x = rgb_tiles[:128].astype(np.float64)
    lo, hi = x.min(axis=(0, 1, 2)), x.max(axis=(0, 1, 2))
    tiles = ((x - lo) / (hi - lo) * 65535).round().astype(np.uint16)  # each channel spans 0..65535
    norm = ChannelNormalization.fit(tiles)
    assert all(lo < 15000 and hi > 50000 for lo, hi in zip(norm.low, norm.high))
    _fit_finite(tiles)


def test_sparse_uint16_uses_the_pixels_above_background():
    rng = np.random.default_rng(1)
    tiles = np.zeros((200, 16, 16), np.uint16)
    flat = tiles.reshape(-1)
    flat[rng.choice(flat.size, 40, replace=False)] = rng.integers(
        1000, 3000, 40
    )  # sparse bright spots
    flat[:2] = 65535  # and two hot pixels
    norm = ChannelNormalization.fit(tiles)
    assert norm.low == (0.0,) and 1000 < norm.high[0] < 3000


def test_sparse_uint16_mostly_zero_trains():
    rng = np.random.default_rng(2)
    tiles = np.zeros((256, 16, 16), np.uint16)
    tiles.reshape(-1)[rng.choice(tiles.size, 3000, replace=False)] = rng.integers(500, 4000, 3000)
    tiles.reshape(-1)[:3] = 65535
    _fit_finite(tiles)


def test_a_few_constant_tiles_among_others_are_fine(rgb_tiles):
    tiles = rgb_tiles.copy()
    tiles[:8] = 0  # black tiles
    tiles[8:12] = 255  # white tiles
    _fit_finite(tiles)


def test_smallest_accepted_tiles_train(rgb_tiles):
    tiles = rgb_tiles[:, :MIN_TILE_SIZE, :MIN_TILE_SIZE]
    _fit_finite(tiles)
    with pytest.raises(TileStackError, match=f"at least {MIN_TILE_SIZE} x {MIN_TILE_SIZE}"):
        TSimCNE(**SHORT).fit_iter(rgb_tiles[:, : MIN_TILE_SIZE - 1, : MIN_TILE_SIZE - 1])


def test_float64_beyond_float32_range_is_clipped_not_nan(rgb_tiles):
    x = rgb_tiles[:64].astype(np.float64) * 1e300
    norm = ChannelNormalization.fit(x)
    batch = TileStore(x, norm, torch.device("cpu")).gather(torch.arange(64))
    assert torch.isfinite(batch).all() and float(batch.max()) == pytest.approx(1.0, abs=1e-3)


def test_big_endian_data_is_read(rgb_tiles):
    x = rgb_tiles[:64].astype(">f4")
    norm = ChannelNormalization.fit(x)
    got = TileStore(x, norm, torch.device("cpu")).gather(torch.arange(64))
    want = TileStore(rgb_tiles[:64].astype(np.float32), norm, torch.device("cpu")).gather(
        torch.arange(64)
    )
    assert torch.equal(got, want)


# -- hopeless input is refused before training -----------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_a_constant_stack_is_refused_before_training(dtype, monkeypatch):
    from napari_tsimcne.core import estimator

    monkeypatch.setattr(estimator, "Trainer", None)  # anything reaching training fails differently
    with pytest.raises(TileStackError, match="same value"):
        TSimCNE(**SHORT).fit_iter(np.full((100, 16, 16, 3), 7, dtype=dtype))


def test_constant_check_and_sparse_range_look_past_the_sample():
    x = np.zeros((40, 16, 16), np.uint8)
    x[-1, -1, -1] = 9  # one pixel differs; a sample would miss it
    norm = ChannelNormalization.fit(x, max_samples=100)
    assert norm.high == (255.0,)
    y = np.zeros((40, 16, 16), np.uint16)
    y[-1, -1, -1] = 9
    assert ChannelNormalization.fit(y, max_samples=100).high == (9.0,)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((512, 512, 3), np.uint8), "looks like one image with 3 colour channels"),
        (np.ones((20, 3, 16, 16), np.uint8), "pass channel_axis=1"),
        ([np.zeros((16, 16)), np.zeros((20, 20))], "different shapes"),
        (np.zeros((4, 16, 16), dtype="<U2"), "expected an integer or floating-point dtype"),
    ],
)
def test_axis_mix_ups_and_ragged_stacks_are_explained(array, message):
    with pytest.raises(TileStackError, match=message):
        as_tile_stack(array)


def test_load_refuses_a_napari_tsimcne_file_without_weights(tmp_path):
    from napari_tsimcne import ModelFileError

    path = tmp_path / "incomplete.tsimcne"
    torch.save({"format": "napari-tsimcne", "format_version": 1, "params": {}}, path)
    with pytest.raises(ModelFileError, match="lacks state_dict"):
        TSimCNE.load(path)


# -- host memory: the stack is not copied more than needed ------------------------------------------


def test_uint8_store_shares_the_input_memory(tmp_path, rgb_tiles):
    norm = ChannelNormalization.fit(rgb_tiles)
    store = TileStore(rgb_tiles, norm, torch.device("cpu"))
    assert np.shares_memory(store.data.numpy(), rgb_tiles)
    np.save(tmp_path / "tiles.npy", rgb_tiles)
    from napari_tsimcne.core.io import read_tiles

    mapped = read_tiles(tmp_path / "tiles.npy").tiles  # memory-mapped, read-only
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")  # no "not writable" warning
        store = TileStore(mapped, norm, torch.device("cpu"))
    assert np.shares_memory(store.data.numpy(), mapped)
    assert torch.equal(
        store.gather(torch.arange(5)),
        TileStore(rgb_tiles, norm, torch.device("cpu")).gather(torch.arange(5)),
    )


def test_fit_keeps_a_uint8_stack_uncopied(rgb_tiles):
    model = TSimCNE(**SHORT)
    events = model.fit_iter(rgb_tiles)
    trainer = events.gi_frame.f_locals["trainer"]
    assert np.shares_memory(trainer.store.data.numpy(), rgb_tiles)


def test_other_dtypes_are_stored_once_as_float16_in_chunks(rgb_tiles, monkeypatch):
    x = rgb_tiles.astype(np.float32) / 255
    norm = ChannelNormalization.fit(x)
    whole = TileStore(x, norm, torch.device("cpu"))
    assert (
        whole.data.dtype == torch.float16 and whole.data.shape == x.shape
    )  # 2 bytes per pixel, one copy
    monkeypatch.setattr(store_module, "_CHUNK_BYTES", x[:1].nbytes * 7)  # 7 tiles a chunk
    chunked = TileStore(x, norm, torch.device("cpu"))
    assert torch.equal(chunked.data, whole.data)


def test_checks_make_no_full_size_temporaries():
    x = np.random.default_rng(0).random(
        (2600, 64, 64, 3), dtype=np.float32
    )  # 128 MB, above the 64 MB chunk
    x[-1, 0, 0, 0] = np.nan
    tracemalloc.start()
    try:
        with pytest.raises(TileStackError, match="first: tile 2599"):
            as_tile_stack(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * x.nbytes  # a boolean mask of the whole stack would be 0.25 x
    x[-1, 0, 0, 0] = 0.5
    tracemalloc.start()
    try:
        ChannelNormalization.fit(x, max_samples=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (
        peak < 48e6
    )  # set by the 1,000,000-pixel sample (about 36 bytes a pixel), not by the stack
