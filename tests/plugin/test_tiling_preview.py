"""Cutting an image into tiles and the augmentation preview: pure functions and the Train widget."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tsimcne.core.augment import AugmentationSettings
from napari_tsimcne.core.normalization import ChannelNormalization
from napari_tsimcne.core.tiles import TileStackError
from napari_tsimcne.plugin.preview import GAP, augmentation_mosaic, preview_indices
from napari_tsimcne.plugin.tiling import cut_layer_into_tiles


def _image(h=100, w=70, c=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("rgb", [False, True])
def test_cut_origins_and_crops(rgb):
    img = _image(c=3 if rgb else None)
    tiles, origins = cut_layer_into_tiles(img, rgb, 32, 16)
    rows, cols = np.arange(0, 100 - 32 + 1, 16), np.arange(0, 70 - 32 + 1, 16)
    assert origins.shape == (len(rows) * len(cols), 2)
    assert set(map(tuple, origins)) == {(r, c) for r in rows for c in cols}
    assert tiles.shape == (len(origins), 32, 32) + ((3,) if rgb else ())
    for t, (r, c) in zip(tiles, origins):
        np.testing.assert_array_equal(t, img[r : r + 32, c : c + 32])


def test_cut_default_stride_and_errors():
    img = _image()
    tiles, origins = cut_layer_into_tiles(img, False, 32, None)
    assert len(tiles) == 3 * 2
    with pytest.raises(TileStackError):
        cut_layer_into_tiles(img, False, 128, 128)
    with pytest.raises(TileStackError):
        cut_layer_into_tiles(np.zeros((5, 64, 64)), False, 32, 32)


def test_cut_skips_background():
    img = np.zeros((64, 128), dtype=np.float32)
    img[:, 64:] = 1.0  # right half foreground
    img[0, 0] = 0.5
    tiles, origins = cut_layer_into_tiles(img, False, 32, 32, min_foreground=0.5)
    assert len(tiles) == 4 and (origins[:, 1] >= 64).all()
    with pytest.raises(TileStackError):
        cut_layer_into_tiles(np.zeros((64, 64)) + np.eye(64), False, 32, 32, min_foreground=0.99)


def test_preview_indices():
    np.testing.assert_array_equal(preview_indices(3), [0, 1, 2])
    idx = preview_indices(100)
    assert len(idx) == 8 and idx[0] == 0 and idx[-1] == 99


@pytest.mark.parametrize("rgb", [False, True])
def test_augmentation_mosaic(rgb):
    rng = np.random.default_rng(1)
    shape = (4, 16, 16, 3) if rgb else (4, 16, 16)
    tiles = (
        rng.integers(0, 256, shape, dtype=np.uint8)
        if rgb
        else rng.normal(100, 20, shape).astype(np.float32)
    )
    mosaic = augmentation_mosaic(
        tiles, AugmentationSettings.preset("microscopy"), n_views=6, seed=3
    )
    H, W = 4 * 16 + 3 * GAP, 7 * 16 + 6 * GAP
    assert mosaic.shape == ((H, W, 3) if rgb else (H, W))
    assert mosaic.dtype == (np.uint8 if rgb else np.float32)
    import torch

    x = torch.from_numpy(tiles if rgb else tiles[..., None]).permute(0, 3, 1, 2)
    norm = ChannelNormalization.fit(tiles).apply(x).permute(0, 2, 3, 1).numpy()
    for i in range(4):
        first = mosaic[i * (16 + GAP) : i * (16 + GAP) + 16, :16]
        if rgb:
            np.testing.assert_array_equal(first, np.round(norm[i] * 255).astype(np.uint8))
        else:
            np.testing.assert_allclose(first, norm[i, :, :, 0], atol=1e-6)
        views = [
            mosaic[i * (16 + GAP) : i * (16 + GAP) + 16, j * (16 + GAP) : j * (16 + GAP) + 16]
            for j in range(7)
        ]
        assert any(not np.array_equal(views[0], v) for v in views[1:])
        assert not np.array_equal(views[1], views[2])
    # the same seed gives the same mosaic
    np.testing.assert_array_equal(
        mosaic, augmentation_mosaic(tiles, "microscopy", n_views=6, seed=3)
    )


@pytest.mark.gui
def test_cut_and_preview_in_widget(make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    img = _image(96, 80, 3)
    viewer.add_image(img, name="slide", rgb=True)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    assert train.form.source_combo.value == "slide"
    assert train.form.tile_size_spin.value == 32 and train.form.stride_spin.value == 32
    assert train.cut_into_tiles("slide", 128, 128) is None  # too large: error shown, nothing added
    layer = train.cut_into_tiles("slide", 16, 16, 0.0)
    assert layer.name == "slide tiles" and layer.rgb
    assert layer.data.shape == (6 * 5, 16, 16, 3)
    origins = layer.metadata["origins"]
    assert origins.shape == (30, 2) and layer.metadata["source_layer"] == "slide"
    r, c = origins[7]
    np.testing.assert_array_equal(layer.data[7], img[r : r + 16, c : c + 16])
    assert train.form.layer_combo.value == "slide tiles"
    qtbot.mouseClick(train.preview_button, Qt.MouseButton.LeftButton)
    preview = viewer.layers["augmentation preview"]
    assert preview.data.shape == (8 * 16 + 7 * 2, 7 * 16 + 6 * 2, 3)
    assert "augmentation preview" not in train.form.source_combo.choices
    train.preview_augmentations()  # replaces the layer
    assert [l.name for l in viewer.layers].count("augmentation preview") == 1


def test_tile_rectangles():
    from napari_tsimcne.plugin.selection import tile_rectangles

    rects = tile_rectangles(np.array([[0, 0], [10, 20]]), [1], (8, 4))
    np.testing.assert_array_equal(rects[0], [[10, 20], [10, 24], [18, 24], [18, 20]])


@pytest.mark.gui
def test_selection_outlines_tiles_on_source(make_napari_viewer):
    from napari_tsimcne.plugin.crosslink import OUTLINE_NAME

    viewer = make_napari_viewer()
    viewer.add_image(_image(64, 64), name="slide")
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    tiles = train.cut_into_tiles("slide", 16, 16, 0.0)
    emb = np.random.default_rng(0).normal(size=(len(tiles.data), 2))
    points = train.show_map(tiles, emb)
    points.selected_data = {2, 5}
    outline = viewer.layers[OUTLINE_NAME]
    assert len(outline.data) == 2
    origins = tiles.metadata["origins"]
    idx = points.features["tile_index"].to_numpy()[[2, 5]]
    got = sorted(tuple(d.min(axis=0)) for d in outline.data)
    assert got == sorted((float(r), float(c)) for r, c in origins[idx])
    assert set(points.selected_data) == {2, 5}


def test_quantitative_preview_shows_a_neighbour_in_intensity_last():
    # dim and bright cells; each preview tile's partner must be a cell of its own brightness
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    cell = ((yy - 8) ** 2 + (xx - 8) ** 2 < 16).astype(float)
    levels = np.r_[np.full(20, 500.0), np.full(20, 3000.0)]
    pool = (100 + levels[:, None, None] * cell + rng.normal(0, 3, (40, 16, 16))).astype(np.uint16)
    tiles = pool[[0, 39]]
    settings = AugmentationSettings.preset("quantitative", crop_scale=(1.0, 1.0))
    mosaic = augmentation_mosaic(tiles, settings, n_views=2, seed=0, pool=pool)
    assert mosaic.shape == (2 * 16 + GAP, 4 * 16 + 3 * GAP)  # original, 2 views, the neighbour
    last = 3 * (16 + GAP)
    dim_partner = mosaic[:16, last : last + 16]
    bright_partner = mosaic[16 + GAP :, last : last + 16]
    assert bright_partner.max() > 0.9 and dim_partner.max() < 0.3
    # without a pool, or for other presets, no extra column
    assert augmentation_mosaic(tiles, settings, n_views=2).shape[1] == 3 * 16 + 2 * GAP
    plain = AugmentationSettings.preset("microscopy")
    assert augmentation_mosaic(tiles, plain, n_views=2, pool=pool).shape[1] == 3 * 16 + 2 * GAP
