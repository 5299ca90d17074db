"""The gallery dock, exports of tiles, tables and labels, and 3D maps, driven in a napari window."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne.plugin import gallery as gallery_mod
from napari_tsimcne.plugin.annotations import import_csv
from napari_tsimcne.plugin.crosslink import HIGHLIGHT_NAME
from napari_tsimcne.plugin.gallery import GALLERY_DOCK_NAME, open_gallery
from napari_tsimcne.plugin.layout import extent_2d, overlaps
from napari_tsimcne.plugin.map_guard import is_intact

from .test_safety import small_map  # noqa: F401 - fixture

pytestmark = pytest.mark.gui


@pytest.fixture
def shown_viewer(make_napari_viewer):
    """A visible 1280 x 800 window with both docks (clicks need widgets on screen)."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    return viewer, train, annotate


def _map_of(train, viewer, tiles, name="cells", dims=2, **kwargs):
    layer = viewer.add_image(tiles, name=name, **kwargs)
    emb = np.random.default_rng(1).normal(size=(len(tiles), dims))
    return layer, train.show_map(layer, emb)


def test_ten_thousand_selected_tiles_are_listed_at_once_and_drawn_when_seen(
    qtbot, shown_viewer, monkeypatch
):
    viewer, train, _ = shown_viewer
    tiles = np.random.default_rng(0).integers(0, 255, (12_000, 16, 16, 3), dtype=np.uint8)
    _, points = _map_of(train, viewer, tiles, rgb=True)
    t0 = time.perf_counter()
    points.selected_data = set(range(10_000))
    qtbot.wait(10)  # the dock appears and paints its first screen
    elapsed = time.perf_counter() - t0
    gallery = open_gallery(viewer, create=False)
    assert GALLERY_DOCK_NAME in viewer.window.dock_widgets
    assert gallery.count.text() == "10,000 of 10,000 shown"
    assert gallery.model.rowCount() == 10_000 and list(gallery.shown_tiles()[:3]) == [0, 1, 2]
    assert 0 < gallery.model.rendered < 500  # only the thumbnails on screen were drawn
    assert elapsed < 5.0, elapsed  # about 0.1 s on 2 CPU cores once napari is warm

    # scrolling draws the next ones; a new selection replaces the list
    gallery.view.scrollToBottom()
    qtbot.wait(20)
    assert gallery.model.rendered > 0
    points.selected_data = {11_999, 7}
    assert list(gallery.shown_tiles()) == [7, 11_999] and gallery.count.text() == "2 of 2 shown"

    # very large selections list the first MAX_SHOWN and say so
    monkeypatch.setattr(gallery_mod, "MAX_SHOWN", 500)
    points.selected_data = set(range(2_000))
    assert gallery.count.text() == "500 of 2,000 shown" and gallery.model.rowCount() == 500

    # nothing was drawn onto the canvas
    assert [l.name for l in viewer.layers] == ["cells", "cells map", HIGHLIGHT_NAME]


def _fully_shown(widget) -> bool:
    region = widget.visibleRegion().boundingRect()
    return widget.isVisible() and region.height() == widget.height() > 0


def _in_front(widget) -> bool:
    """Whether some of ``widget`` is on screen (a dock behind another tab shows nothing)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


@pytest.mark.parametrize("with_annotate_dock", [True, False])
def test_the_gallery_never_hides_the_training(qtbot, shown_viewer, with_annotate_dock):
    viewer, train, annotate = shown_viewer
    tiles = np.random.default_rng(0).integers(0, 255, (300, 16, 16, 3), dtype=np.uint8)
    _, points = _map_of(train, viewer, tiles, rgb=True)
    if not with_annotate_dock:  # closed by the user
        viewer.window.remove_dock_widget(annotate)
    qtbot.wait(50)
    points.selected_data = set(range(50))  # selecting tiles while the training runs
    qtbot.wait(200)
    gallery = open_gallery(viewer, create=False)
    main, train_dock = train.parent().parent(), train.parent()
    assert not main.tabifiedDockWidgets(train_dock)  # not a tab over the training
    # the docks settle in a few event-loop turns (more on a busy machine)
    qtbot.waitUntil(lambda: _fully_shown(train.progress) and _fully_shown(train.loss_plot))
    qtbot.waitUntil(lambda: _fully_shown(gallery.view) and gallery.view.height() > 100)
    if with_annotate_dock:  # a tab beside the Annotate map dock, shown first
        assert main.tabifiedDockWidgets(gallery.parent()) == [annotate.parent()]
        assert _in_front(gallery.view) and not _in_front(annotate)
        points.selected_data = set()  # nothing selected: the legend comes back to the front
        qtbot.wait(100)
        assert _in_front(annotate) and not _in_front(gallery.view)
        points.selected_data = {3, 4}
        qtbot.wait(100)
        assert _in_front(gallery.view) and not _in_front(annotate)
    else:  # below the Train map dock
        assert gallery.parent().y() > train_dock.y() + train_dock.height() - 1


def test_without_the_train_dock_the_gallery_goes_below_the_legend(qtbot, shown_viewer):
    viewer, train, annotate = shown_viewer
    tiles = np.random.default_rng(0).integers(0, 255, (300, 16, 16, 3), dtype=np.uint8)
    _, points = _map_of(train, viewer, tiles, rgb=True)
    viewer.window.remove_dock_widget(train)  # training done: the user closed Train map
    qtbot.wait(50)
    points.selected_data = set(range(50))
    qtbot.wait(200)
    gallery = open_gallery(viewer, create=False)
    main = annotate.parent().parent()
    assert not main.tabifiedDockWidgets(gallery.parent())
    assert _in_front(gallery.view) and _in_front(annotate.legend)
    assert gallery.parent().y() > annotate.parent().y()


def test_clicking_a_thumbnail_moves_the_stack_and_rings_its_point(qtbot, shown_viewer):
    viewer, train, annotate = shown_viewer
    tiles = np.random.default_rng(0).random((60, 12, 12)).astype(np.float32)
    _, points = _map_of(train, viewer, tiles)
    points.selected_data = {4, 17, 33}
    points.features = points.features.assign(
        annotation=["blast" if i == 17 else "" for i in range(60)]
    )
    gallery = open_gallery(viewer, create=False)
    qtbot.wait(20)
    assert viewer.dims.current_step[0] == 4
    index = gallery.model.index(1)
    rect = gallery.view.visualRect(index)
    assert rect.isValid()
    qtbot.mouseClick(gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[0] == 17
    ring = viewer.layers[HIGHLIGHT_NAME]
    assert ring.metadata["tile_index"] == 17
    np.testing.assert_allclose(ring.data[0], points.data[17])
    assert set(points.selected_data) == {4, 17, 33}  # the user's selection is kept
    tip = gallery.model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("Tile 17") and "annotation: blast" in tip

    # the slider moved elsewhere: that tile's thumbnail becomes the current one
    viewer.dims.set_current_step(0, 33)
    assert gallery.view.currentIndex().row() == 2


def test_two_uint16_channel_layers_are_blended_in_their_colormaps(qtbot, viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    stack = np.zeros((10, 2, 8, 8), dtype=np.uint16)  # tile, channel, row, column
    stack[0, 1] = 3000  # bright only in channel 1
    stack[1, 0] = 3000  # only in channel 0
    stack[2, 0, :4] = 3000  # channel 0 in the top half, channel 1 in the bottom half
    stack[2, 1, 4:] = 3000
    layers = viewer.add_image(
        stack,
        channel_axis=1,
        name=["dna", "marker"],
        colormap=["green", "magenta"],
        contrast_limits=[(0, 3000), (0, 3000)],
    )
    points = train.show_map(layers[0], np.random.default_rng(0).normal(size=(10, 2)))
    points.selected_data = {0, 1, 2}
    gallery = open_gallery(viewer, create=False)
    assert [l.name for l in gallery.model.source.layers] == ["dna", "marker"]

    def pixel(tile, row=0):
        image = gallery.model.pixmap(tile).toImage()
        color = image.pixelColor(image.width() // 2, row * image.height() // 8)
        return color.red(), color.green(), color.blue()

    assert pixel(0) == (255, 0, 255)  # magenta
    assert pixel(1) == (0, 255, 0)  # green
    assert pixel(2, row=1) == (0, 255, 0) and pixel(2, row=6) == (255, 0, 255)

    # the thumbnails follow the layers' contrast limits
    layers[1].contrast_limits = (0, 6000)
    qtbot.waitUntil(lambda: abs(pixel(0)[0] - 128) <= 1, timeout=2000)

    # exported, the channels stay separate layers in their colours
    _, _, annotate = viewer_with_widgets
    annotate.map_combo.value = points.name
    copies = annotate.export_selection_layer()
    assert [c.colormap.name for c in copies] == ["green", "magenta"]
    np.testing.assert_array_equal(copies[1].data, stack[[0, 1, 2], 1])
    assert copies[0].data.dtype == np.uint16


def test_export_selection_and_cluster_as_layers(qtbot, small_map):
    viewer, _, annotate, points = small_map
    tiles = viewer.layers["fluo"]
    points.selected_data = {5, 3, 40}
    (copy,) = annotate.export_selection_layer()
    np.testing.assert_array_equal(copy.data, tiles.data[[3, 5, 40]])
    assert list(copy.metadata["tile_indices"]) == [3, 5, 40]
    assert tuple(copy.contrast_limits) == tuple(tiles.contrast_limits)
    assert copy.colormap.name == tiles.colormap.name
    for other in (tiles, points):
        assert not overlaps(extent_2d(copy), extent_2d(other))  # beside, not over, the user's data
    assert set(points.selected_data) == {3, 5, 40}

    annotate.propose_clusters(3)
    number = int(points.features["cluster"][40])
    rows = np.flatnonzero(points.features["cluster"].to_numpy() == number)
    (cluster,) = annotate.export_cluster_layer(number)
    np.testing.assert_array_equal(cluster.data, tiles.data[rows])
    assert cluster.name == f"fluo cluster {number}"

    points.selected_data = set()
    annotate.selection_layer_button.click()  # nothing selected: said, nothing added
    assert "Select points" in annotate.status.text()


def test_multichannel_stacks_keep_their_channels(viewer_with_widgets):
    viewer, train, annotate = viewer_with_widgets
    tiles = np.random.default_rng(0).integers(0, 4000, (20, 8, 8, 2), dtype=np.uint16)
    _, points = _map_of(train, viewer, tiles, name="two")
    annotate.map_combo.value = points.name
    points.selected_data = {2, 9}
    (copy,) = annotate.export_selection_layer()
    assert copy.data.shape == (2, 8, 8, 2) and copy.data.dtype == np.uint16
    np.testing.assert_array_equal(copy.data, tiles[[2, 9]])


def test_csv_export_round_trips_and_never_overwrites(small_map, tmp_path):
    viewer, _, annotate, points = small_map
    points.selected_data = {1, 2}
    annotate.assign("blast")
    annotate.propose_clusters(3)
    path = tmp_path / "table.csv"
    annotate.export_csv(path)
    table = pd.read_csv(path, keep_default_na=False)
    for column in ("tile_index", "x", "y", "cluster", "annotation", "outlier"):
        assert column in table.columns
    feats = points.features
    np.testing.assert_array_equal(table["tile_index"], feats["tile_index"])
    np.testing.assert_allclose(table[["x", "y", "outlier"]], feats[["x", "y", "outlier"]])
    assert table["annotation"].tolist() == feats["annotation"].tolist()
    back = import_csv(path, len(feats))
    assert back["annotation"].tolist() == feats["annotation"].tolist()
    assert back["cluster"].tolist() == feats["cluster"].tolist()

    before = path.read_text()
    points.selected_data = {7}
    annotate.assign("myelocyte")
    with pytest.raises(FileExistsError, match="already exists"):
        annotate.export_csv(path)
    assert path.read_text() == before
    annotate.export_csv(path, overwrite=True)  # what the save dialog does after asking
    assert "myelocyte" in path.read_text()


def test_known_labels_are_exported(viewer_with_widgets, tmp_path):
    viewer, train, annotate = viewer_with_widgets
    points = train.show_map(
        viewer.layers["tiles"],
        np.random.default_rng(0).normal(size=(len(viewer.layers[0].data), 2)),
    )
    annotate.map_combo.value = points.name
    annotate.export_csv(tmp_path / "t.csv")
    table = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert set(table["label"]) == {"dark", "bright"}
    assert "origin_row" in table.columns  # the histology sample's tiles know their place


def test_classes_painted_on_the_image_the_tiles_were_cut_from(viewer_with_widgets):
    viewer, train, annotate = viewer_with_widgets
    image = viewer.add_image(
        np.random.default_rng(0).random((96, 64)).astype(np.float32), name="slide"
    )
    tiles = train.cut_into_tiles("slide", tile_size=32, stride=32)  # 3 x 2 tiles
    points = train.show_map(tiles, np.random.default_rng(1).normal(size=(6, 2)))
    annotate.map_combo.value = points.name
    points.selected_data = {0, 3}
    annotate.assign("tumour")
    points.selected_data = {5}
    annotate.assign("stroma")
    labels = annotate.export_labels_layer()
    assert labels.data.shape == image.data.shape and labels.name == "slide annotation"
    assert annotate.status.text() == "'slide' painted by annotation (2 kinds)."  # and unassigned
    origins = tiles.metadata["origins"]
    names = labels.features["annotation"].tolist()
    for tile, name in ((0, "tumour"), (3, "tumour"), (5, "stroma"), (1, "not assigned")):
        r, c = origins[tile]
        assert names[labels.data[r + 5, c + 5]] == name
    # the same colour as the class's points on the map
    colour = labels.colormap.map(np.array([labels.data[origins[0][0], origins[0][1]]]))[0]
    np.testing.assert_allclose(colour[:3], points.face_color[0][:3], atol=1e-6)

    annotate.propose_clusters(2)
    by_cluster = annotate.export_labels_layer("cluster")
    r, c = origins[4]
    assert by_cluster.data[r, c] == int(points.features["cluster"][4]) + 1


def test_painting_needs_tiles_cut_from_an_open_image(small_map):
    _, _, annotate, _ = small_map
    with pytest.raises(ValueError, match="not cut from an image"):
        annotate.export_labels_layer()


def test_a_3d_embedding_gives_a_3d_map_in_a_3d_view(qtbot, small_map):
    viewer, train, annotate, _ = small_map
    tiles = viewer.layers["fluo"]
    emb = np.random.default_rng(3).normal(size=(len(tiles.data), 3))
    viewer.layers.remove("fluo map")
    points = train.show_map(tiles, emb)
    assert points.ndim == 3 and points.data.shape == (len(emb), 3)
    assert viewer.dims.ndisplay == 3
    assert list(points.features.columns[:4]) == ["tile_index", "x", "y", "z"]
    assert is_intact(points, len(emb))
    assert "z" not in annotate.color_combo.choices

    # the workspace works as in 2D: selection -> gallery and slider, clusters in 3D, updates
    points.selected_data = {2, 8}
    assert list(open_gallery(viewer, create=False).shown_tiles()) == [2, 8]
    assert viewer.dims.current_step[0] == 2
    annotate.map_combo.value = points.name
    annotate.propose_clusters(3)
    assert set(points.features["cluster"]) == {0, 1, 2}
    again = train.show_map(tiles, emb * 2.0)  # a later epoch of the same training
    assert again == points and points.data.shape == (len(emb), 3)
    np.testing.assert_allclose(points.features["z"], emb[:, 2] * 2.0)

    # the lasso draws on flat maps only, and says so
    annotate.set_lasso(True)
    assert not annotate.lasso_button.isChecked()


def test_the_gallery_from_the_plugins_menu_is_the_one_selections_fill(qtbot, small_map):
    viewer, _, _, points = small_map
    points.selected_data = {1, 2}
    viewer.window.remove_dock_widget(open_gallery(viewer, create=False).parent())
    assert open_gallery(viewer, create=False) is None  # closed: the next selection docks it again
    viewer.layers.selection.active = points
    _, opened = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Selected tiles")
    qtbot.waitUntil(lambda: list(opened.shown_tiles()) == [1, 2], timeout=2000)
    points.selected_data = {5}
    assert open_gallery(viewer, create=False).shown_tiles().tolist() == [5]
    assert list(viewer.window.dock_widgets).count(GALLERY_DOCK_NAME) == 1
    viewer.layers.remove(points)  # the map is gone: the gallery empties
    assert opened.model.rowCount() == 0
