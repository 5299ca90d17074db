"""A 3D map as a user meets it: framed in the 3D view without the tile stack in the way, and readable in
napari's 2D view (every point drawn, selectable, with the gallery and the current-tile ring working)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tsimcne.plugin.crosslink import HIGHLIGHT_NAME, link_of
from napari_tsimcne.plugin.gallery import open_gallery

from .test_safety import _canvas_pos

pytestmark = pytest.mark.gui


def _world(layer) -> np.ndarray:
    """World (plane, row, column) of every point of a map."""
    return np.asarray(layer.data, dtype=float) * layer.scale + layer.translate


def _on_canvas(viewer, layer) -> np.ndarray:
    """(up, right) pixel offsets of every point from the canvas centre, as napari's 3D camera shows them."""
    camera = viewer.scene.camera
    view = np.asarray(camera.view_direction, dtype=float)
    up = np.asarray(camera.up_direction, dtype=float)
    right = np.cross(view, up)
    offsets = _world(layer) - np.asarray(camera.center, dtype=float)
    return np.column_stack([offsets @ up, offsets @ right]) * camera.zoom


def _all_on_canvas(viewer, layer) -> bool:
    half = np.asarray(viewer.canvas.size, dtype=float)[:2] / 2
    return bool(np.all(np.abs(_on_canvas(viewer, layer)) <= half))


def _map_3d(viewer, train, seed=0):
    tiles = viewer.layers["tiles"]
    embedding = np.random.default_rng(seed).normal(size=(len(tiles.data), 3))
    return train.show_map(tiles, embedding)


def test_a_3d_map_is_framed_and_the_tile_stack_does_not_fill_the_3d_view(viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    tiles = viewer.layers["tiles"]
    before = tiles.data.copy()
    viewer.scene.camera.center = (0, -5000, -5000)  # looking somewhere else
    points = _map_3d(viewer, train)
    assert viewer.dims.ndisplay == 3

    # every point is on the canvas, the map in its middle and filling most of it
    assert _all_on_canvas(viewer, points)
    pixels = _on_canvas(viewer, points)
    middle = (pixels.min(0) + pixels.max(0)) / 2
    canvas = np.asarray(viewer.canvas.size, dtype=float)[:2]
    assert np.all(np.abs(middle) < 0.05 * canvas), middle
    assert np.max(np.ptp(pixels, axis=0) / canvas) > 0.6
    # the camera turns the map about its middle, not about the stack's
    centre = (_world(points).min(0) + _world(points).max(0)) / 2
    np.testing.assert_allclose(
        viewer.scene.camera.center, centre, atol=0.05 * points.metadata["tsimcne_side"]
    )

    # the tile stack (napari would draw it as a block) is hidden in 3D; its data is untouched
    assert not tiles.visible
    np.testing.assert_array_equal(tiles.data, before)

    # turned and moved away by the user, then the final map replaces the early one: in view again
    viewer.scene.camera.angles = (30, -40, 120)
    viewer.scene.camera.center = (0, 3000, 3000)
    assert not _all_on_canvas(viewer, points)
    again = _map_3d(viewer, train, seed=1)
    assert again == points  # the same layer, new positions
    assert _all_on_canvas(viewer, points)
    np.testing.assert_allclose(viewer.scene.camera.angles, (30, -40, 120), atol=1e-3)  # kept

    # a map already in view is left where the user put it
    viewer.scene.camera.zoom = viewer.scene.camera.zoom * 0.5
    camera = (viewer.scene.camera.center, viewer.scene.camera.zoom)
    _map_3d(viewer, train, seed=2)
    assert (viewer.scene.camera.center, viewer.scene.camera.zoom) == camera

    # the 2D view shows the stack again
    viewer.dims.ndisplay = 2
    assert tiles.visible


def test_a_3d_map_is_readable_in_the_2d_view(qtbot, viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    tiles = viewer.layers["tiles"]
    points = _map_3d(viewer, train)
    link = link_of(viewer, points)
    link.go_to_tile(5)  # chosen in 3D (a click in the gallery)
    viewer.dims.ndisplay = 2  # napari's 2D/3D button
    qtbot.wait(50)

    # the stack shows the same tile, and the ring is still on its point
    assert tiles.visible and viewer.dims.current_step[0] == 5
    ring = viewer.layers[HIGHLIGHT_NAME]
    assert ring.metadata["tile_index"] == 5

    def shown(layer, world_rc, step) -> bool:
        return layer.get_value((step, *world_rc), world=True) is not None

    # every point is drawn (and can be clicked), whichever tile the slider shows
    for step in (5, len(tiles.data) - 1):
        viewer.dims.current_step = (step, *viewer.dims.current_step[1:])
        world = _world(points)[:, 1:]
        assert all(shown(points, rc, step) for rc in world), step
        row = int(np.flatnonzero(points.features["tile_index"].to_numpy() == step)[0])
        assert shown(ring, world[row], step)  # the ring moved with the slider and is drawn

    # a box drawn with the select tool takes every point inside it, whatever its depth
    viewer.layers.selection.active = points
    points.mode = "select"
    qtbot.wait(50)
    data = np.asarray(points.data)
    # from beside the map (a press on a point would drag it) to its middle
    lo = data[:, 1:].min(0) - 0.1 * points.metadata["tsimcne_side"]
    hi = np.median(data[:, 1:], axis=0)
    size = float(np.max(points.size))  # napari takes a point whose disc the box touches
    inside = set(np.flatnonzero(np.all(data[:, 1:] < hi - size, axis=1)).tolist())
    outside = set(np.flatnonzero(np.any(data[:, 1:] > hi + size, axis=1)).tolist())
    events = viewer.window._qt_viewer.canvas._scene_canvas.events
    corners = [(data[:, 0].mean(), *lo), (data[:, 0].mean(), *hi)]
    events.mouse_press(pos=_canvas_pos(viewer, points, corners[0]), button=1)
    for t in np.linspace(0, 1, 8)[1:]:
        rc = np.asarray(corners[0]) + t * (np.asarray(corners[1]) - np.asarray(corners[0]))
        events.mouse_move(pos=_canvas_pos(viewer, points, rc), button=1)
        qtbot.wait(10)
    events.mouse_release(pos=_canvas_pos(viewer, points, corners[1]), button=1)
    qtbot.wait(50)
    assert len(inside) > 5
    chosen = set(points.selected_data)
    assert inside <= chosen and not (outside & chosen)

    # ... and the gallery lists their tiles
    gallery = open_gallery(viewer, create=False)
    expected = sorted(points.features["tile_index"].to_numpy()[sorted(chosen)].tolist())
    assert sorted(gallery.shown_tiles().tolist()) == expected


def test_a_2d_map_after_a_3d_map_is_seen_in_the_2d_view(viewer_with_widgets):
    viewer, train, _ = viewer_with_widgets
    tiles = viewer.layers["tiles"]
    _map_3d(viewer, train)
    assert viewer.dims.ndisplay == 3 and not tiles.visible
    flat = train.show_map(tiles, np.random.default_rng(0).normal(size=(len(tiles.data), 2)))
    assert flat.data.shape[1] == 2
    # back in the 2D view (not a flat map beside the stack drawn as a block), the slice thin again
    assert viewer.dims.ndisplay == 2 and tiles.visible
    assert viewer.dims.thickness[0] <= 1.0
