"""Annotation autosave, HDBSCAN, lasso, closing during training and error messages in the dock widgets."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne.plugin.annotations import AnnotationFileError
from napari_tsimcne.plugin.gallery import open_gallery
from napari_tsimcne.plugin.lasso import LASSO_NAME

from .conftest import N_TILES, set_tiny

pytestmark = pytest.mark.gui


def _blobs(n_per=30, seed=1):
    """Three tight blobs and two far-off points: a map with obvious clusters and noise."""
    rng = np.random.default_rng(seed)
    emb = np.vstack(
        [rng.normal(scale=0.3, size=(n_per, 2)) + c for c in ((0, 0), (10, 0), (0, 10))]
    )
    return np.vstack([emb, [[25.0, 25.0], [-15.0, 20.0]]])


@pytest.fixture
def small_map(viewer_with_widgets):
    """A 92-tile grey stack "fluo" and its map (no training), with the widgets."""
    viewer, train, annotate = viewer_with_widgets
    emb = _blobs()
    tiles = np.random.default_rng(0).random((len(emb), 12, 12)).astype(np.float32)
    layer = viewer.add_image(tiles, name="fluo")
    points = train.show_map(layer, emb)
    annotate.map_combo.value = points.name
    return viewer, train, annotate, points


@pytest.fixture
def notes(monkeypatch):
    """Messages shown with napari's show_info / show_error by the widgets."""
    shown = {"info": [], "error": []}
    for module in ("train_widget", "annotate_widget", "qt_helpers"):
        for kind in ("info", "error"):
            if hasattr(importlib.import_module(f"napari_tsimcne.plugin.{module}"), f"show_{kind}"):
                monkeypatch.setattr(
                    f"napari_tsimcne.plugin.{module}.show_{kind}", shown[kind].append
                )
    return shown


def test_autosave_after_a_change_and_restore_on_a_new_map(qtbot, small_map, autosave_dir, notes):
    viewer, train, annotate, points = small_map
    path = annotate.autosave_path(points)
    assert path.parent == autosave_dir and path.name.startswith("fluo-") and not path.exists()
    points.selected_data = {0, 1, 2}
    annotate.assign("blast")
    qtbot.waitUntil(path.exists, timeout=3000)  # within the ~1 s delay
    table = pd.read_csv(path, keep_default_na=False)
    assert table["annotation"].tolist()[:4] == ["blast"] * 3 + [""] and len(table) == len(
        points.data
    )

    # a later change reaches the file too, and the file is always a whole CSV
    annotate.propose_clusters(3)
    qtbot.waitUntil(lambda: set(pd.read_csv(path)["cluster"]) == {0, 1, 2}, timeout=3000)
    annotate.flush_autosave()

    # napari crashed; the same stack is opened again under another name: the names come back
    viewer.layers.remove(points)
    viewer.layers["fluo"].name = "fluo again"
    again = train.show_map(viewer.layers["fluo again"], _blobs(seed=2))
    qtbot.waitUntil(lambda: (again.features["annotation"] == "blast").sum() == 3, timeout=2000)
    # the clusters were regions of the old map: on a map trained again they are left out, and said so
    assert set(again.features["cluster"]) == {-1}
    restored = [m for m in notes["info"] if "Restored 3 annotated tiles" in m]
    assert restored and "clusters were proposed on an earlier map" in restored[-1]


def test_autosave_of_another_stack_is_refused(qtbot, small_map, autosave_dir, notes):
    viewer, train, annotate, points = small_map
    # an autosave of a different stack that was also called "fluo"
    other = autosave_dir / "fluo-00000000000000ff.autosave.csv"
    other.parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "tile_index": np.arange(len(points.data)),
            "x": 0.0,
            "y": 0.0,
            "annotation": "wrong",
            "cluster": 0,
        }
    ).to_csv(other, index=False)
    viewer.layers.remove(points)
    points = train.show_map(viewer.layers["fluo"], _blobs())
    qtbot.waitUntil(
        lambda: any("belongs to another tile stack" in m for m in notes["info"]), timeout=2000
    )
    assert (points.features["annotation"] == "").all()
    with pytest.raises(AnnotationFileError, match="autosaved for another tile stack"):
        annotate.restore_autosave(points, other)
    assert (points.features["annotation"] == "").all()
    # the button shows the same message in napari's notifications
    annotate.map_combo.value = points.name
    qtbot.mouseClick(annotate.restore_button, Qt.MouseButton.LeftButton)
    assert "No autosave for this tile stack" in notes["error"][-1]


def test_closing_the_widget_writes_the_last_change(qtbot, small_map):
    viewer, _, annotate, points = small_map
    points.selected_data = {5}
    annotate.assign("late")
    path = annotate.autosave_path(points)
    viewer.window.remove_dock_widget(annotate)  # before the autosave delay is over
    assert pd.read_csv(path, keep_default_na=False)["annotation"][5] == "late"


def test_hdbscan_in_the_widget(qtbot, small_map):
    _, _, annotate, points = small_map
    annotate.method_combo.value = "HDBSCAN"
    assert annotate.min_size_spin.native.isVisibleTo(
        annotate
    ) and not annotate.k_spin.native.isVisibleTo(annotate)
    annotate.min_size_spin.value = 10
    qtbot.mouseClick(annotate.cluster_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: annotate._cluster_worker is None, timeout=10_000)
    clusters = points.features["cluster"].to_numpy()
    assert [len(set(clusters[i * 30 : (i + 1) * 30])) for i in range(3)] == [1, 1, 1]
    assert len(set(clusters[:90])) == 3 and (clusters[-2:] == -1).all()
    assert "3 clusters" in annotate.status.text() and annotate.color_combo.value == "cluster"


def _canvas_pos(viewer, layer, data_rc):
    """Canvas pixel (x, y) of a point given in the layer's data coordinates (row, col)."""
    canvas = viewer.window._qt_viewer.canvas
    world = np.asarray(layer.data_to_world(np.asarray(data_rc, dtype=float)))[-2:]
    transform = canvas.view.transform * canvas.view.scene.transform
    return tuple(float(v) for v in transform.map([world[1], world[0]])[:2])


def test_lasso_selects_like_the_box_and_drives_the_gallery(qtbot, small_map):
    viewer, _, annotate, points = small_map
    qtbot.mouseClick(annotate.lasso_button, Qt.MouseButton.LeftButton)
    assert annotate.lasso_button.isChecked() and LASSO_NAME in viewer.layers
    assert viewer.layers.selection.active.name == points.name and not viewer.scene.camera.mouse_pan

    # a free-hand loop around the first blob, drawn with the mouse on the canvas
    blob = points.data[:30]
    centre, radius = blob.mean(0), np.ptp(blob, axis=0).max() * 0.9
    viewer.scene.camera.center = tuple(points.data_to_world(centre)[-2:])
    viewer.scene.camera.zoom = 150 / radius  # the loop is ~150 pixels wide on the canvas
    qtbot.wait(50)
    angles = np.linspace(0, 2 * np.pi, 40)
    loop = [centre + radius * np.array([np.sin(a), np.cos(a)]) for a in angles]
    events = viewer.window._qt_viewer.canvas._scene_canvas.events
    before = points.data.copy()
    events.mouse_press(pos=_canvas_pos(viewer, points, loop[0]), button=1, modifiers=())
    for p in loop[1:]:
        events.mouse_move(pos=_canvas_pos(viewer, points, p), button=1, modifiers=())
        qtbot.wait(10)  # napari throttles mouse moves (5 ms); a hand is slower anyway
    events.mouse_release(pos=_canvas_pos(viewer, points, loop[-1]), button=1, modifiers=())
    assert set(points.selected_data) == set(range(30))
    np.testing.assert_array_equal(
        points.data, before
    )  # the lasso moves no points, the camera did not pan
    assert list(open_gallery(viewer, create=False).shown_tiles()) == list(range(30))
    assert viewer.dims.current_step[0] == 0

    # choosing another mode in the layer controls ends the lasso, and the camera pans again
    points.mode = "select"
    assert not annotate.lasso_button.isChecked() and LASSO_NAME not in viewer.layers
    points.mode = "pan_zoom"
    assert viewer.scene.camera.mouse_pan


def test_closing_the_train_widget_stops_training(qtbot, viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    set_tiny(train)
    train.form.apply(epochs=(200, 1, 1))
    train.start_training()
    qtbot.waitUntil(lambda: train.progress.value() >= 1, timeout=60_000)
    names = [l.name for l in viewer.layers]
    viewer.window.remove_dock_widget(
        train
    )  # the dock's "x": returns at once, training stops after this epoch
    qtbot.waitUntil(
        lambda: not train.session.running, timeout=30_000
    )  # an epoch takes ~1 s here (more on a busy machine)
    qtbot.waitUntil(lambda: train.worker is None, timeout=5000)
    assert train.model.embedding_.shape == (N_TILES, 2)  # the model is kept
    assert len(train.model.history_) < 200
    assert [l.name for l in viewer.layers] == names  # a closed widget leaves the layers alone


def test_closing_napari_stops_training(qtbot, make_napari_viewer, sample_layer_tuple):
    viewer = make_napari_viewer()
    data, kwargs = sample_layer_tuple
    viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    set_tiny(train)
    train.form.apply(epochs=(200, 1, 1))
    train.start_training()
    qtbot.waitUntil(lambda: train.progress.value() >= 1, timeout=60_000)
    viewer.close()  # napari's task list calls our cancel callback, which waits for the epoch to end
    assert train.session.wait(30)
    assert train.model.embedding_.shape == (N_TILES, 2)


def test_out_of_memory_is_told_in_a_notification_and_training_goes_on(
    qtbot, viewer_with_widgets, notes, out_of_memory_once
):
    viewer, train, _ = viewer_with_widgets
    set_tiny(train)
    train.start_training()
    qtbot.waitUntil(lambda: train.worker is None, timeout=60_000)
    assert any("batch size halved to 32" in m for m in notes["info"]), notes
    assert train.model.embedding_.shape == (N_TILES, 2) and len(train.model.history_) == 4


@pytest.mark.parametrize(
    "tiles, message",
    [
        (np.zeros((20, 8, 8), bool), "boolean"),
        (np.zeros((1, 16, 16), np.float32), "single tile"),
    ],
    ids=["boolean", "one-tile"],
)
def test_bad_stacks_show_the_core_message(qtbot, viewer_with_widgets, notes, tiles, message):
    viewer, train, _ = viewer_with_widgets
    set_tiny(train)
    viewer.add_image(tiles, name="bad")
    train.form.layer_combo.value = "bad"
    names = [l.name for l in viewer.layers]
    qtbot.mouseClick(train.train_button, Qt.MouseButton.LeftButton)
    assert notes["error"] and message in notes["error"][-1]
    assert (
        train.worker is None
        and train.train_button.isEnabled()
        and not train.stop_button.isEnabled()
    )
    assert [l.name for l in viewer.layers] == names


def test_bad_model_files_show_the_core_message(
    qtbot, viewer_with_widgets, notes, tmp_path, monkeypatch
):
    from napari_tsimcne.core import TSimCNE

    viewer, train, _ = viewer_with_widgets
    corrupt = tmp_path / "broken.tsimcne"
    corrupt.write_bytes(b"not a model" * 10)
    monkeypatch.setattr(
        "napari_tsimcne.plugin.qt_helpers.QFileDialog.getOpenFileName",
        lambda *a, **k: (str(corrupt), ""),
    )
    qtbot.mouseClick(train.load_button, Qt.MouseButton.LeftButton)
    assert "not a readable napari-tsimcne model" in notes["error"][-1] and train.model is None

    # a model of grey tiles cannot map the RGB tiles
    grey = TSimCNE(total_epochs=(1, 0, 1), batch_size=8, device="cpu", backbone="resnet10", width=4)
    grey.fit(np.random.default_rng(0).random((16, 32, 32)).astype(np.float32))
    grey.save(tmp_path / "grey.tsimcne")
    train.load_model(tmp_path / "grey.tsimcne")
    names = [l.name for l in viewer.layers]
    qtbot.mouseClick(train.embed_button, Qt.MouseButton.LeftButton)  # maps in the background
    qtbot.waitUntil(train.embed_button.isEnabled, timeout=30_000)
    assert "1 channel(s), but these have 3" in notes["error"][-1]
    assert [l.name for l in viewer.layers] == names and train.embed_button.isEnabled()


def test_renamed_layers_stay_chosen_and_linked(small_map, tmp_path):
    viewer, train, annotate, points = small_map
    tiles = viewer.layers["fluo"]
    train.form.layer_combo.value = "fluo"
    train.form.batch_spin.value = 32  # the user's choice outlives the rename
    tiles.name = "fluo (slide 2)"
    assert train.form.layer_combo.value == "fluo (slide 2)" and train.tiles_layer() == tiles
    assert train.form.batch_spin.value == 32
    assert points.metadata["tsimcne_tiles_layer"] == "fluo (slide 2)"  # the map follows its tiles
    points.name = "fluo map (run 1)"
    assert annotate.map_combo.value == "fluo map (run 1)" and annotate.map_layer() == points
    annotate.color_by("cluster")
    assert points.metadata["tsimcne_color_by"] == "cluster"
    points.selected_data = {0, 1}
    annotate.assign("debris")
    annotate.export_csv(tmp_path / "named.csv")  # finds the tiles under their new name
    assert "debris" in (tmp_path / "named.csv").read_text()


def test_train_needs_tiles_and_an_available_device(make_napari_viewer):
    import torch

    viewer = make_napari_viewer()
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    assert not train.train_button.isEnabled() and not train.preview_button.isEnabled()
    viewer.add_image(np.zeros((40, 12, 12), np.float32), name="cells")
    assert train.train_button.isEnabled() and train.preview_button.isEnabled()
    if torch.backends.mps.is_available():
        pytest.skip("this machine has Apple's MPS: the unavailable device to test is missing")
    train.form.device_combo.value = "mps"  # not on this machine: said at once, not at Train
    assert train.status.text().startswith("There is no MPS device here")
    train.form.device_combo.value = "cpu"
    assert train.status.text() == "Not trained."
