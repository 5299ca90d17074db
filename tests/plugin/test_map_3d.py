"""A 3D map as a user meets it: framed in the 3D view without the tile stack in the way."""

from __future__ import annotations

import numpy as np
import pytest

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
