"""Multichannel tiles as microscopists open them: one (N, C, H, W) layer, or one layer per channel."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne.plugin.channels import StackedChannels, channel_axis_of, training_tiles
from napari_tsimcne.plugin.gallery import open_gallery

from .conftest import set_tiny

pytestmark = pytest.mark.gui

N = 96


def two_channel_cells(n: int = N, side: int = 24, seed: int = 0) -> np.ndarray:
    """uint16 (n, 2, side, side): a nucleus in channel 0 for even tiles, a marker in channel 1 for odd ones."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    tiles = rng.poisson(100, size=(n, 2, side, side)).astype(np.uint16)
    for i in range(n):
        cy, cx, r = rng.uniform(8, side - 8, 2).tolist() + [rng.uniform(3, 6)]
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2) * rng.uniform(2000, 4000)
        tiles[i, i % 2] += blob.astype(np.uint16)
    return tiles


def train(qtbot, train_widget) -> None:
    set_tiny(train_widget)
    train_widget.form.apply(epochs=(1, 1, 1), batch_size=32)
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    assert train_widget.worker is not None, train_widget.status.text()
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=90_000)
    assert "done" in train_widget.status.text(), train_widget.status.text()


def colour_of(thumbnail: np.ndarray) -> np.ndarray:
    return thumbnail.reshape(-1, 3).astype(float).sum(0)


def test_an_n_c_h_w_layer_trains_and_shows_both_channels(qtbot, viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    cells = two_channel_cells()
    layer = viewer.add_image(cells, name="cells")
    assert channel_axis_of(layer) == 1  # napari shows it with a slider over the two channels
    train_widget.form.layer_combo.value = "cells"
    assert train_widget.training_tiles().shape == (N, 24, 24, 2)
    assert not train_widget.form.channels_list.isVisibleTo(train_widget)  # no other channel layers
    # uint16 camera images: the quantitative preset, no colour jitter across channels
    assert train_widget.chosen_preset() == "quantitative"
    train(qtbot, train_widget)
    points = viewer.layers["cells map"]
    assert points.data.shape == (N, 2)
    np.testing.assert_array_equal(train_widget.model.tile_shape_, (24, 24))
    assert train_widget.model.n_channels_ == 2
    # the gallery draws each tile with both channels, in two colours
    points.selected_data = {0, 1}
    gallery = open_gallery(viewer, create=False)
    source = gallery.model.source
    assert len(source.channels()) == 2
    np.testing.assert_array_equal(source.planes(1), np.moveaxis(cells[1], 0, -1))
    even, odd = (colour_of(source.thumbnail(i)) for i in (0, 1))
    assert not np.allclose(even / even.sum(), odd / odd.sum(), atol=0.02)


def test_one_layer_per_channel_trains_as_one_stack(qtbot, viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    cells = two_channel_cells(seed=1)
    viewer.add_image(cells, channel_axis=1, name=["dna", "marker"])  # as napari opens such a file
    train_widget.form.layer_combo.value = "dna"
    assert train_widget.form.channels_list.isVisibleTo(train_widget)
    items = [
        train_widget.form.channels_list.item(i)
        for i in range(train_widget.form.channels_list.count())
    ]
    assert [i.text() for i in items] == ["marker"]
    assert items[0].checkState() == Qt.CheckState.Checked  # blended onto dna: its second channel
    tiles = train_widget.training_tiles()
    assert isinstance(tiles, StackedChannels) and tiles.shape == (N, 24, 24, 2)
    np.testing.assert_array_equal(tiles[5], np.moveaxis(cells[5], 0, -1))
    train(qtbot, train_widget)
    assert train_widget.model.n_channels_ == 2
    viewer.layers["dna map"].selected_data = {3}
    gallery = open_gallery(viewer, create=False)
    assert [l.name for l in gallery.model.source.layers] == ["dna", "marker"]
    # unticked, the marker is left out of the next training
    marker = train_widget.form.channels_list.item(0)  # the list is rebuilt as layers come and go
    assert marker.text() == "marker" and marker.checkState() == Qt.CheckState.Checked
    marker.setCheckState(Qt.CheckState.Unchecked)
    assert train_widget.training_tiles().shape == (N, 24, 24)


def test_the_preview_shows_every_channel_in_its_colour(viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    viewer.add_image(two_channel_cells(), channel_axis=1, name=["dna", "marker"])
    train_widget.form.layer_combo.value = "dna"
    preview = train_widget.preview_augmentations(n_tiles=4, n_views=2)
    assert preview.rgb and preview.data.dtype == np.uint8
    # rows are tiles 0, 32, 63 and 95: even tiles have a nucleus in dna (magenta), odd ones a marker (green)
    side, gap = 24, 2
    for row, tile in enumerate((0, 32, 63, 95)):
        r = row * (side + gap)
        red, green, _ = preview.data[r : r + side, :side].reshape(-1, 3).astype(float).sum(0)
        assert (red > green) == (tile % 2 == 0), (tile, red, green)


def test_stacking_refuses_layers_of_other_shapes(viewer_with_widgets):
    viewer, _, _ = viewer_with_widgets
    a = viewer.add_image(np.zeros((10, 16, 16), np.uint16), name="a")
    b = viewer.add_image(np.zeros((10, 16, 8), np.uint16), name="b")
    with pytest.raises(ValueError, match="same shape"):
        training_tiles([a, b])
