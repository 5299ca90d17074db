"""Drive the dock widgets as a user would: train, select, annotate, export and import."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne.core.config import default_batch_size
from napari_tsimcne.plugin.crosslink import GALLERY_NAME, HIGHLIGHT_NAME
from napari_tsimcne.plugin.gallery import open_gallery
from napari_tsimcne.plugin.layout import extent_2d, overlaps, visible_extent

from .conftest import N_TILES, set_tiny

pytestmark = pytest.mark.gui


def train(qtbot, train_widget, timeout=90_000):
    set_tiny(train_widget)
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    assert train_widget.worker is not None
    pbar = train_widget.pbar  # napari's progress bar (activity dock) counts the epochs
    assert pbar.total == sum(s.value for s in train_widget.form.epoch_spins)
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=timeout)
    assert pbar.n == pbar.total


@pytest.fixture
def trained(qtbot, viewer_with_widgets):
    viewer, train_widget, annotate = viewer_with_widgets
    train(qtbot, train_widget)
    return viewer, train_widget, annotate, viewer.layers["tiles map"]


def test_widget_defaults(viewer_with_widgets):
    viewer, train_widget, annotate = viewer_with_widgets
    assert train_widget.form.layer_combo.value == "tiles"
    assert train_widget.form.batch_spin.value == 256  # largest power of two <= 256 tiles
    assert train_widget.form.preset_combo.value == "auto"
    # the tiles are RGB uint8 pictures: auto picks microscopy and says why, under the choice
    assert train_widget.chosen_preset() == "microscopy"
    assert "For these tiles: microscopy" in train_widget.form.preset_advice.text()
    train_widget.form.preset_combo.value = "quantitative"
    assert "intensity" in train_widget.form.preset_help.text()
    assert "'auto' would choose microscopy" in train_widget.form.preset_advice.text()
    assert not annotate.map_combo.choices


def test_train_builds_map_and_cross_selection(qtbot, trained, tmp_path):
    viewer, train_widget, annotate, layer = trained
    assert "done" in train_widget.status.text()
    assert layer.data.shape == (N_TILES, 2)
    for col in ("tile_index", "x", "y", "annotation", "cluster", "outlier", "label"):
        assert col in layer.features.columns
    np.testing.assert_allclose(
        layer.features[["x", "y"]].to_numpy(), train_widget.model.embedding_, rtol=1e-6
    )
    # the map lies beside the tile stack, not over it, and the camera shows all of it
    tile_extent = viewer.layers["tiles"].extent.world
    assert layer.extent.world[0, -1] > tile_extent[1, -1]
    camera = viewer.scene.camera
    shown = visible_extent(camera.center, camera.zoom, viewer.canvas.size)
    ext = extent_2d(layer)
    assert np.all(ext[0] >= shown[0]) and np.all(ext[1] <= shown[1])
    assert not overlaps(ext, extent_2d(viewer.layers["tiles"]))
    assert annotate.map_combo.value == "tiles map"

    # points -> tiles: the gallery dock lists the selected tiles, stack moves to the first one
    layer.selected_data = {5, 9, 40}
    gallery = open_gallery(viewer, create=False)
    assert list(gallery.shown_tiles()) == [5, 9, 40] and gallery.count.text() == "3 of 3 shown"
    np.testing.assert_array_equal(gallery.model.source.planes(9), viewer.layers["tiles"].data[9])
    assert GALLERY_NAME not in viewer.layers  # nothing is drawn over the canvas
    assert viewer.dims.current_step[0] == 5

    # tiles -> point: moving the slider rings that tile's point
    viewer.dims.set_current_step(0, 77)
    ring = viewer.layers[HIGHLIGHT_NAME]
    assert ring.metadata["tile_index"] == 77
    np.testing.assert_allclose(ring.data[0], layer.data[77])
    assert set(layer.selected_data) == {5, 9, 40}  # no feedback loop into the selection

    # save and reload the model, embed again without training
    path = tmp_path / "m.pt"
    train_widget.save_model(path)
    train_widget.model = None
    train_widget.load_model(path)
    worker = train_widget.embed_with_model()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    again = worker.map_layer
    assert again.name == layer.name and len(layer.data) == N_TILES
    assert len(viewer.layers) == 3  # tiles, map, ring: nothing duplicated
    assert "Mapped" in train_widget.status.text() and train_widget.embed_button.isEnabled()


def test_annotate_export_import(qtbot, trained, tmp_path):
    viewer, _, annotate, layer = trained
    layer.selected_data = {1, 2, 3}
    annotate.name_edit.setText("stroma")
    qtbot.mouseClick(annotate.assign_button, Qt.MouseButton.LeftButton)
    assert layer.features.loc[[1, 2, 3], "annotation"].tolist() == ["stroma"] * 3
    assert (layer.features["annotation"] == "stroma").sum() == 3
    assert not np.allclose(
        layer.face_color[1], layer.face_color[0]
    )  # named points get their own colour

    annotate.k_spin.value = 3
    qtbot.mouseClick(annotate.cluster_button, Qt.MouseButton.LeftButton)
    assert set(layer.features["cluster"]) == {0, 1, 2}

    path = tmp_path / "ann.csv"
    annotate.export_csv(path)
    saved = layer.features[["annotation", "cluster"]].copy()
    feats = layer.features.copy()
    feats["annotation"] = ""
    feats["cluster"] = -1
    layer.features = feats
    annotate.import_csv(path)
    assert layer.features["annotation"].tolist() == saved["annotation"].tolist()
    assert layer.features["cluster"].tolist() == saved["cluster"].tolist()
    assert "origin_row" in path.read_text().splitlines()[0]

    # a CSV of another tile stack is refused with a clear message, and nothing changes
    bad = tmp_path / "bad.csv"
    bad.write_text("tile_index,annotation\n0,a\n1,b\n")
    with pytest.raises(ValueError, match=f"annotates 2 tiles, but the map has {N_TILES}"):
        annotate.import_csv(bad)
    assert layer.features["annotation"].tolist() == saved["annotation"].tolist()


def test_bad_settings_show_error_and_widget_stays_usable(qtbot, viewer_with_widgets, monkeypatch):
    viewer, train_widget, _ = viewer_with_widgets
    errors = []
    monkeypatch.setattr("napari_tsimcne.plugin.train_widget.show_error", errors.append)
    set_tiny(train_widget)
    train_widget.form.batch_spin.value = 512  # more than the 256 tiles
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    assert errors and "batch_size=512" in errors[0]
    assert train_widget.worker is None and train_widget.train_button.isEnabled()
    viewer.add_image(np.zeros((10, 10)), name="flat")  # a 2D image is no tile stack
    assert "flat" not in train_widget.form.layer_combo.choices


def test_batch_size_is_suggested_per_stack_and_kept_when_other_layers_change(
    qtbot, viewer_with_widgets
):
    viewer, train_widget, _ = viewer_with_widgets
    stack = train_widget.form.layer_combo.value
    assert train_widget.form.batch_spin.value == default_batch_size(
        viewer.layers[stack].data.shape[0]
    )
    train_widget.form.batch_spin.value = 100
    viewer.add_points(
        np.zeros((3, 2)), name="other points"
    )  # e.g. the map, the gallery, a user's layer
    viewer.layers.remove("other points")
    assert train_widget.form.batch_spin.value == 100
    viewer.add_image(np.zeros((40, 16, 16), np.float32), name="small stack")
    train_widget.form.layer_combo.value = "small stack"
    assert train_widget.form.batch_spin.value == 32  # suggested for 40 tiles
    train_widget.form.layer_combo.value = stack
    assert train_widget.form.batch_spin.value == default_batch_size(
        viewer.layers[stack].data.shape[0]
    )


def test_stop_keeps_the_model_and_resume_finishes_the_run(qtbot, viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    set_tiny(train_widget)
    train_widget.form.epoch_spins[0].value = 6
    assert not train_widget.resume_button.isEnabled()  # nothing to continue yet
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train_widget.progress.value() >= 1, timeout=60_000)
    qtbot.mouseClick(train_widget.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=60_000)
    stopped_at = train_widget.session.epochs_done
    assert 1 <= stopped_at < 8
    assert "stopped after epoch" in train_widget.status.text()
    assert train_widget.model.embedding_.shape == (N_TILES, 2)
    assert viewer.layers["tiles map"].data.shape == (N_TILES, 2)
    # the loss curve shows every epoch so far, and Resume is offered for these tiles
    assert [p.epoch for p in train_widget.loss_plot.points] == list(range(1, stopped_at + 1))
    assert train_widget.resume_button.isEnabled()
    qtbot.mouseClick(train_widget.resume_button, Qt.MouseButton.LeftButton)
    assert train_widget.worker is not None and not train_widget.train_button.isEnabled()
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=60_000)
    assert "done" in train_widget.status.text()
    assert f"continued from epoch {stopped_at}" in train_widget.status.text()
    assert len(train_widget.model.history_) == 6 + 1 + 1  # continued, not restarted
    assert [p.epoch for p in train_widget.loss_plot.points] == list(range(1, 9))
    assert [p.stage for p in train_widget.loss_plot.points][-2:] == [2, 3]
    assert not train_widget.resume_button.isEnabled()  # a finished run leaves nothing to continue


def test_colour_by_follows_the_map(trained):
    viewer, _, annotate, layer = trained
    assert annotate.color_combo.value == "label"  # the tiles' metadata has labels
    annotate.color_by("outlier")
    assert layer.metadata["tsimcne_color_by"] == "outlier"
    annotate.propose_clusters(4)
    assert annotate.color_combo.value == "cluster"


def test_demo_viewer_docks_both_widgets(make_napari_viewer, monkeypatch):
    import napari

    from napari_tsimcne.plugin import demo

    made = []
    monkeypatch.setattr(
        napari, "Viewer", lambda **kw: made.append(make_napari_viewer(**kw)) or made[-1]
    )
    monkeypatch.setattr(napari, "run", lambda: None)
    demo.run_demo_viewer()
    viewer = made[0]
    assert len(viewer.layers) == 1 and viewer.layers[0].rgb
    assert {"Train map (napari-tsimcne)", "Annotate map (napari-tsimcne)"} <= set(
        viewer.window.dock_widgets
    )


@pytest.mark.parametrize("shape", [(40, 16, 12), (40, 16, 12, 2)], ids=["grey", "two-channel"])
def test_gallery_of_grey_and_multichannel_stacks(viewer_with_widgets, shape):
    viewer, train_widget, _ = viewer_with_widgets
    tiles = np.random.default_rng(0).random(shape).astype(np.float32)
    layer = viewer.add_image(tiles, name="fluo")
    assert "fluo" in train_widget.form.layer_combo.choices
    emb = np.random.default_rng(1).normal(size=(40, 2))
    points = train_widget.show_map(layer, emb)
    assert (
        points.name == "fluo map"
        and len(points.data) == 40
        and points.metadata["tsimcne_color_by"] == "outlier"
    )
    points.selected_data = {3, 4}
    gallery = open_gallery(viewer, create=False)
    assert list(gallery.shown_tiles()) == [3, 4]
    np.testing.assert_array_equal(gallery.model.source.planes(3), tiles[3])  # all channels
    assert len(gallery.model.source.channels()) == (1 if tiles.ndim == 3 else 2)
    assert gallery.model.source.thumbnail(3).shape == (16, 12, 3)
    assert not gallery.model.pixmap(3).isNull()
    assert viewer.dims.current_step[0] == 3


def test_a_time_budget_from_the_widget_plans_the_epochs_and_trains(qtbot, viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    train_widget.form.apply(device="cpu", backbone="resnet10", width=8, batch_size=64, minutes=0.1)
    form = train_widget.form
    assert form.length_combo.value == "minutes"
    assert not form.epoch_spins[0].native.isVisibleTo(train_widget)
    started = time.perf_counter()
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    assert (
        "timing the first steps" in train_widget.status.text()
    )  # says what it does before the first epoch
    qtbot.waitUntil(lambda: train_widget.pbar is not None, timeout=60_000)  # the epochs are planned
    model = train_widget.model
    assert train_widget.pbar.total == sum(model.total_epochs_) and model.time_budget_ == 6.0
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=90_000)
    took = time.perf_counter() - started
    assert model.embedding_ is not None and "Training done" in train_widget.status.text()
    # without a GPU a time budget finishes with the t-SNE of the features ("Map by": auto)
    assert form.finish_combo.value == "auto" and model.finish_ == "tsne"
    assert {h["stage"] for h in model.history_} == {1, 2, 3}
    # the promise holds: from pressing Train to the final map within 20 % of the 6 s asked
    # (plus 2 s for a busy machine), and the time is used rather than left over
    assert 0.6 * 6.0 <= took <= 1.2 * 6.0 + 2, took


def test_map_by_reaches_the_model(viewer_with_widgets):
    _, train_widget, _ = viewer_with_widgets
    form = train_widget.form
    assert form.settings().finish == "auto"
    form.apply(finish="contrastive")
    assert form.settings().make_model().finish == "contrastive"
    form.finish_combo.value = "tsne"
    assert form.settings().make_model().finish == "tsne"
    with pytest.raises(ValueError, match="'umap' is not one of"):
        form.apply(finish="umap")


def test_bad_settings_say_not_started(qtbot, viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    train_widget.form.apply(device="cpu", epochs=(1, 0, 0), batch_size=4096)  # more than the tiles
    train_widget.start_training()
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=30_000)
    assert train_widget.status.text().startswith("Not started: batch_size=4096")
    assert train_widget.train_button.isEnabled()


def test_fluorescence_tiles_get_the_quantitative_preset_with_its_reason(viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    cell = ((yy - 8) ** 2 + (xx - 8) ** 2 < 20).astype(float)
    stack = 100 + rng.uniform(500, 3000, (64, 1, 1)) * cell + rng.normal(0, 3, (64, 16, 16))
    viewer.add_image(stack.astype(np.uint16), name="nuclei")
    train_widget.form.layer_combo.value = "nuclei"
    assert train_widget.chosen_preset() == "quantitative"
    advice = train_widget.form.preset_advice.text()
    assert advice.startswith("For these tiles: quantitative.") and "dark background" in advice
    preview = train_widget.preview_augmentations(n_tiles=4, n_views=2)
    # original, two views and the neighbour in intensity
    assert preview.data.shape[1] == 4 * 16 + 3 * 2


def test_embedding_with_a_model_leaves_napari_responsive(qtbot, trained):
    """The mapping runs in a thread: the event loop keeps running while 20,000 tiles are mapped."""
    from qtpy.QtCore import QTimer

    viewer, train_widget, _, layer = trained
    tiles = viewer.layers["tiles"]
    big = np.concatenate([tiles.data] * (20_000 // len(tiles.data) + 1))[:20_000]
    viewer.add_image(big, name="many tiles", rgb=tiles.rgb)
    train_widget.form.layer_combo.value = "many tiles"
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    started = time.perf_counter()
    worker = train_widget.embed_with_model()
    assert time.perf_counter() - started < 0.5  # returns at once
    assert not train_widget.embed_button.isEnabled()  # no second mapping while one runs
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    took = time.perf_counter() - started
    timer.stop()
    assert len(worker.map_layer.data) == 20_000
    assert len(ticks) > 0.3 * took / 0.010  # the timer fired all along


def test_a_3d_map_from_the_widget(qtbot, viewer_with_widgets):
    viewer, train_widget, _ = viewer_with_widgets
    set_tiny(train_widget)
    train_widget.form.apply(epochs=(1, 1, 1), dimensions=3)
    assert train_widget.form.dims_combo.value == "3D"
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=60_000)
    layer = viewer.layers["tiles map"]
    assert layer.data.shape == (N_TILES, 3)  # never cut to 2D
    assert train_widget.model.embedding_.shape == (N_TILES, 3)
    assert viewer.dims.ndisplay == 3  # shown in napari's 3D view
    # back to 2D: the 3D map is replaced, not mixed
    train_widget.form.apply(dimensions=2)
    qtbot.mouseClick(train_widget.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train_widget.worker is None, timeout=60_000)
    assert viewer.layers["tiles map"].data.shape == (N_TILES, 2)
