"""The map workspace as a user meets it: the map cannot be broken by accident, it is in view and beside the
images, selections keep the select tool, and classes or clusters can be selected again and namings undone."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne.plugin.annotations import import_csv
from napari_tsimcne.plugin.gallery import open_gallery
from napari_tsimcne.plugin.layout import extent_2d, overlaps, visible_extent
from napari_tsimcne.plugin.map_guard import PROTECTED_MESSAGE, is_intact
from napari_tsimcne.plugin.selection import AnnotationHistory, group_choices, rows_where

from .test_safety import _blobs, _canvas_pos, small_map  # noqa: F401 - fixture

pytestmark = pytest.mark.gui


def _drag(qtbot, viewer, layer, start_rc, end_rc, steps=12, modifiers=()):
    """Press at ``start_rc``, move to ``end_rc`` and release, on the canvas (map data coordinates)."""
    events = viewer.window._qt_viewer.canvas._scene_canvas.events
    path = [
        np.asarray(start_rc) + t * (np.asarray(end_rc) - np.asarray(start_rc))
        for t in np.linspace(0, 1, steps)
    ]
    events.mouse_press(pos=_canvas_pos(viewer, layer, path[0]), button=1, modifiers=modifiers)
    for p in path[1:]:
        events.mouse_move(pos=_canvas_pos(viewer, layer, p), button=1, modifiers=modifiers)
        qtbot.wait(10)
    events.mouse_release(pos=_canvas_pos(viewer, layer, path[-1]), button=1, modifiers=modifiers)
    qtbot.wait(10)


def _zoom_on(viewer, layer, rows):
    centre = layer.data[list(rows)].mean(0)
    viewer.scene.camera.center = tuple(layer.data_to_world(centre)[-2:])
    viewer.scene.camera.zoom = 300 / max(np.ptp(layer.data[list(rows)], axis=0).max(), 1e-3)


def test_drag_and_delete_leave_the_map_intact(qtbot, small_map, tmp_path, monkeypatch):
    viewer, _, annotate, points = small_map
    before, feats_before = points.data.copy(), points.features.copy()
    viewer.layers.selection.active = points
    points.mode = "select"
    _zoom_on(viewer, points, range(30))
    qtbot.wait(50)

    # drag a selected point in select mode: napari would move it; it goes back where its tile belongs
    points.selected_data = {3}
    actions = []
    points.events.data.connect(lambda event: actions.append(str(event.action)))
    _drag(qtbot, viewer, points, points.data[3], points.data[3] + [2.0, 2.0])
    assert "changed" in actions  # napari did move the point ...
    np.testing.assert_allclose(points.data, before)  # ... and it went back

    # Delete on the canvas (napari's shortcut) and the layer controls' delete button (remove_selected)
    points.selected_data = {0, 1, 2}
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_info", shown.append)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_Delete)
    assert shown == [PROTECTED_MESSAGE]  # the key reached the map, which said why nothing happens
    np.testing.assert_allclose(points.data, before)
    points.remove_selected()
    assert len(points.data) == len(before) and is_intact(points, len(before))
    np.testing.assert_allclose(points.data, before)
    assert points.features.equals(feats_before)

    # add mode: a click would add a point
    points.add([[0.0, 0.0]])
    assert len(points.data) == len(before) and is_intact(points, len(before))

    # the exported annotations can be read back
    points.selected_data = {4, 5}
    annotate.assign("blast")
    annotate.export_csv(tmp_path / "a.csv")
    table = import_csv(tmp_path / "a.csv", len(before))
    assert table.loc[[4, 5], "annotation"].tolist() == ["blast", "blast"]


def test_box_selection_keeps_the_map_active_with_the_select_tool(qtbot, small_map):
    viewer, _, _, points = small_map
    viewer.layers.selection.active = points
    points.mode = "select"
    blob = points.data[:30]
    _zoom_on(viewer, points, range(30))
    qtbot.wait(50)
    pad = np.ptp(blob, axis=0) * 0.2
    _drag(qtbot, viewer, points, blob.min(0) - pad, blob.max(0) + pad)
    assert set(points.selected_data) == set(range(30))
    assert list(open_gallery(viewer, create=False).shown_tiles()) == list(range(30))
    assert viewer.layers.selection.active == points and points.mode == "select"
    np.testing.assert_allclose(points.data[:30], blob)


def test_select_cluster_and_annotation_and_undo(small_map):
    viewer, _, annotate, points = small_map
    annotate.propose_clusters(3)
    cluster = int(points.features["cluster"][0])
    rows = annotate.select_cluster(cluster)
    assert rows == set(range(30)) and set(points.selected_data) == rows
    assert viewer.layers.selection.active == points

    annotate.assign("blast")
    points.selected_data = {40, 41}
    annotate.assign("myelocyte")
    points.selected_data = {0, 1}
    annotate.assign("myelocyte")  # renames two blasts
    assert annotate.select_annotation("myelocyte") == {0, 1, 40, 41}
    texts = [annotate.group_combo.itemText(i) for i in range(annotate.group_combo.count())]
    assert "blast (28)" in texts and "myelocyte (4)" in texts

    assert annotate.undo_button.isEnabled()
    assert annotate.undo_annotation()
    assert points.features.loc[[0, 1], "annotation"].tolist() == ["blast", "blast"]
    assert annotate.undo_annotation() and annotate.undo_annotation()
    assert (points.features["annotation"] == "").all()
    assert not annotate.undo_annotation() and not annotate.undo_button.isEnabled()

    # the control: pick "cluster N (30)" and press Select
    annotate.group_combo.setCurrentText(f"cluster {cluster} (30)")
    points.selected_data = set()
    annotate.select_group_button.click()
    assert set(points.selected_data) == set(range(30))


def test_a_new_map_is_in_view_and_beside_the_images(qtbot, viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    tiles = viewer.layers["tiles"]
    viewer.scene.camera.center = (0, -5000, -5000)  # looking somewhere else
    points = train.show_map(tiles, np.random.default_rng(0).normal(size=(len(tiles.data), 2)))
    _assert_visible_and_apart(viewer, points, tiles)

    # the preview of the augmentations is not drawn over the tiles or the map either
    preview = train.preview_augmentations()
    for other in (tiles, points):
        assert not overlaps(extent_2d(preview), extent_2d(other))


def _fully_shown(widget) -> bool:
    """Whether all of ``widget`` is on screen (not scrolled away, covered by a tab or squeezed out)."""
    region = widget.visibleRegion().boundingRect()
    return widget.isVisible() and region.height() == widget.height() > 0


def test_a_first_map_opens_the_annotate_dock_and_its_legend_below_the_training(
    qtbot, make_napari_viewer, sample_layer_tuple
):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    data, kwargs = sample_layer_tuple
    tiles = viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    train.status.setText(  # as while training: a long status
        "Stage 1 of 3 (pre-training), epoch 1/2, about 14 s left; 1,908 views/s. Early map: it "
        "sharpens until the end."
    )
    qtbot.wait(50)
    emb = np.random.default_rng(0).normal(size=(len(data), 2))
    points = train.show_map(tiles, emb)  # a training's first (early) map
    docks = viewer.window.dock_widgets
    annotate = docks.get("Annotate map (napari-tsimcne)")
    assert annotate is not None
    # the docks settle in a few event-loop turns (more on a busy machine)
    qtbot.waitUntil(lambda: _fully_shown(annotate.legend))
    assert points.metadata["tsimcne_color_by"] == "label"
    assert [e[0] for e in annotate.legend.entries] == ["bright", "dark"]  # the key of the colours
    # the training stays in sight: the Annotate dock is below it, not a tab over it
    main, train_dock = train.parent().parent(), train.parent()
    assert not main.tabifiedDockWidgets(train_dock)
    qtbot.waitUntil(lambda: _fully_shown(train.progress) and _fully_shown(train.loss_plot))
    # later maps of the training update the map: no second dock; a closed dock stays closed
    train.show_map(tiles, emb * 2)
    assert [n for n in docks if n.startswith("Annotate map")] == ["Annotate map (napari-tsimcne)"]
    viewer.window.remove_dock_widget(annotate)
    train.show_map(tiles, emb * 3)
    assert "Annotate map (napari-tsimcne)" not in viewer.window.dock_widgets


def _assert_visible_and_apart(viewer, points, tiles):
    shown = visible_extent(viewer.scene.camera.center, viewer.scene.camera.zoom, viewer.canvas.size)
    ext = extent_2d(points)
    assert np.all(ext[0] >= shown[0]) and np.all(ext[1] <= shown[1]), (ext, shown)
    assert not overlaps(ext, extent_2d(tiles))


def test_cut_tiles_are_placed_beside_their_image(viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    image = viewer.add_image(
        np.random.default_rng(0).random((96, 96)).astype(np.float32), name="slide"
    )
    tiles = train.cut_into_tiles("slide", tile_size=32, stride=32)
    assert not overlaps(extent_2d(tiles), extent_2d(image))


def test_history_and_groups_without_a_window():
    import pandas as pd

    feats = pd.DataFrame({"annotation": ["", "a", "a", "b"], "cluster": [0, 0, 1, -1]})
    assert rows_where(feats, "annotation", "a") == {1, 2} and rows_where(feats, "cluster", 0) == {
        0,
        1,
    }
    assert [c[0] for c in group_choices(feats)] == [
        "a (2)",
        "b (1)",
        "cluster 0 (2)",
        "cluster 1 (1)",
    ]
    history = AnnotationHistory(depth=2)
    for name in ("x", "y", "z"):
        history.record(feats)
        feats = feats.assign(annotation=name)
    assert len(history) == 2
    assert history.undo(feats)["annotation"].tolist() == ["y"] * 4


def test_a_name_keeps_its_colour_when_others_are_added():
    from napari_tsimcne.plugin.map_layer import UNASSIGNED, categorical_colors, name_color

    taken: dict = {}
    first = categorical_colors(np.array(["stroma", "", "nuclei"], dtype=object), taken)
    more = categorical_colors(
        np.array(["adipose", "stroma", "nuclei", "blood", "", "debris"], dtype=object), taken
    )
    np.testing.assert_array_equal(first[0], more[1])
    np.testing.assert_array_equal(first[2], more[2])
    assert len(set(taken.values())) == len(taken) == 5  # distinct colours while the palette lasts
    assert name_color("stroma") == name_color("stroma", {})  # the same in a new session
    assert name_color(3) == name_color(3, {"7": "#000000"}) and name_color(-1) == UNASSIGNED


def test_legend_lists_names_and_shows_a_colour_bar(small_map):
    viewer, _, annotate, points = small_map
    assert annotate.legend.bar.isVisibleTo(annotate.legend)  # outlier scores: a colour bar
    assert annotate.legend.low.text() and annotate.legend.high.text().startswith("≥")
    points.selected_data = {0, 1}
    annotate.assign("blast")
    colour = points.face_color[0].copy()
    entries = annotate.legend.entries
    assert entries[0][:1] == ("blast",) and entries[0][2] == 2 and entries[-1][0] == "not assigned"
    assert not annotate.legend.bar.isVisibleTo(annotate.legend)
    points.selected_data = {40}
    annotate.assign("aardvark")  # sorts before "blast": blast keeps its colour all the same
    np.testing.assert_array_equal(points.face_color[0], colour)
    assert [e[0] for e in annotate.legend.entries] == ["aardvark", "blast", "not assigned"]
    swatch = annotate.legend.entries[1][1]
    np.testing.assert_allclose(
        points.face_color[0][:3], [int(swatch[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    )


def _text_height(label) -> int:
    """The height ``label``'s wrapped text needs at its width (Qt's heightForWidth never answers less
    than the minimum height, so that is lifted while asking)."""
    minimum = label.minimumHeight()
    label.setMinimumHeight(0)
    need = label.heightForWidth(label.width())
    label.setMinimumHeight(minimum)
    return need


def _oversized_labels(widget) -> list[str]:
    """Wrapped labels taller than their text by more than a line (a blank gap under the text)."""
    from qtpy.QtWidgets import QLabel

    return [
        f"{label.height()} px for {_text_height(label)}: {label.text()[:40]}"
        for label in widget.findChildren(QLabel)
        if label.isVisibleTo(widget)
        and label.wordWrap()
        and label.height() > _text_height(label) + label.fontMetrics().height()
    ]


def _clipped_labels(widget) -> list[str]:
    from qtpy.QtWidgets import QLabel

    out = []
    for label in widget.findChildren(QLabel):
        if not label.isVisibleTo(widget) or not label.text():
            continue
        if label.wordWrap():
            if label.height() < _text_height(label):
                out.append(label.text())
        elif label.width() < label.minimumSizeHint().width():
            out.append(label.text())
    return out


def test_calm_dock_tooltips_folded_advanced_nothing_clipped(
    qtbot, make_napari_viewer, sample_layer_tuple
):
    from qtpy.QtWidgets import (
        QAbstractSpinBox,
        QComboBox,
        QDoubleSpinBox,
        QLineEdit,
        QPushButton,
        QSpinBox,
        QToolButton,
    )

    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    data, kwargs = sample_layer_tuple
    viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    qtbot.wait(100)
    missing = [
        f"{type(w).__name__} {getattr(w, 'text', lambda: '')()}"
        for widget in (train, annotate)
        for kind in (QComboBox, QSpinBox, QDoubleSpinBox, QPushButton, QLineEdit, QToolButton)
        for w in widget.findChildren(kind)
        if not w.toolTip() and not isinstance(w.parent(), (QComboBox, QAbstractSpinBox))
    ]  # not their parts
    assert not missing
    # the tile source comes first; advanced settings and cutting are folded away
    assert not train.advanced_section.is_expanded() and not train.cut_section.is_expanded()
    assert not train.form.batch_spin.native.isVisibleTo(
        train
    ) and train.form.length_combo.native.isVisibleTo(train)
    assert (
        train.form.layer_combo.native.mapTo(
            train, train.form.layer_combo.native.rect().topLeft()
        ).y()
        < train.form.preset_combo.native.mapTo(
            train, train.form.preset_combo.native.rect().topLeft()
        ).y()
    )
    # at 1280 x 800, with everything unfolded, no text is cut off (the docks scroll instead)
    points = train.show_map(
        viewer.layers["tiles"], np.random.default_rng(0).normal(size=(len(data), 2))
    )
    annotate.map_combo.value = points.name
    points.selected_data = {1, 2}
    annotate.assign("stroma")
    for section in (train.advanced_section, train.cut_section, train.files_section):
        section.set_expanded(True)
    for preset in ("natural", "quantitative", "auto", "microscopy"):
        train.form.preset_combo.value = preset
        qtbot.wait(50)
        assert not _clipped_labels(train) and not _clipped_labels(annotate)
    widths = {}
    for length in ("epochs", "minutes"):  # the three epoch counts take a row of their own
        train.form.length_combo.value = length
        qtbot.wait(50)
        assert not _clipped_labels(train)
        widths[length] = train.minimumSizeHint().width()
    assert widths["epochs"] <= widths["minutes"] + 10  # and do not make the dock wider
    # the dock gets wider (as when training starts): no blank gap stays under a text, nor where an
    # empty text was
    train.form.preset_combo.value = "auto"
    qtbot.wait(50)
    train.setMinimumWidth(train.width() + 200)
    qtbot.wait(100)
    assert not _clipped_labels(train) and not _oversized_labels(train)
    train.form.preset_combo.value = "microscopy"  # the advice under the help goes blank
    qtbot.wait(100)
    assert not _clipped_labels(train) and not _oversized_labels(train)


def test_the_first_naming_is_reported_as_autosaved(qtbot, small_map, autosave_dir):
    viewer, _, annotate, points = small_map
    assert annotate.autosave_label.text() == ""
    points.selected_data = {0, 1, 2}
    annotate.assign("debris")
    # about a second later the file is written and the dock says so, without any further change
    qtbot.waitUntil(lambda: annotate.autosave_label.text().startswith("Autosaved"), timeout=5000)
    assert str(autosave_dir) in annotate.autosave_label.text()
    assert annotate.autosave_path().is_file()
