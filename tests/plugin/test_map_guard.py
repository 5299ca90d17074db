"""The map guard and the canvas layout without a window: napari layers only, no viewer, no Qt."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tsimcne.plugin.layout import free_column_origin, overlaps, visible_extent
from napari_tsimcne.plugin.map_guard import is_intact, protect_map
from napari_tsimcne.plugin.map_layer import initial_features, map_coordinates


@pytest.fixture
def map_points():
    from napari.layers import Points

    emb = np.random.default_rng(0).normal(size=(50, 2))
    side = 64.0
    layer = Points(
        map_coordinates(emb, side),
        features=initial_features(emb),
        metadata={"tsimcne_side": side, "tsimcne_tiles_layer": "tiles"},
    )
    notes = []
    guard = protect_map(layer, notify=notes.append)
    return layer, guard, notes


def test_moved_removed_and_added_points_go_back(map_points):
    layer, guard, notes = map_points
    before, feats = layer.data.copy(), layer.features.copy()
    feats.loc[[3, 4], "annotation"] = "blast"
    layer.features = feats
    colours = layer.face_color.copy()

    data = layer.data.copy()
    data[7] += 5.0
    layer.data = data  # a move, as napari's select tool makes it
    np.testing.assert_allclose(layer.data, before)

    layer.selected_data = {3, 10}
    layer.remove_selected()
    assert is_intact(layer, 50) and layer.features.equals(feats)
    np.testing.assert_allclose(layer.face_color, colours)
    assert set(layer.selected_data) == {3, 10}

    layer.add([[1.0, 1.0]])
    assert is_intact(layer, 50) and layer.features.equals(feats)
    assert guard.restored == 3 and len(notes) == 3


def test_the_plugins_own_updates_pass(map_points):
    from napari_tsimcne.plugin.map_layer import update_map_layer

    layer, guard, _ = map_points
    emb = np.random.default_rng(1).normal(size=(50, 2))
    update_map_layer(layer, emb)
    np.testing.assert_allclose(layer.data, map_coordinates(emb, 64.0))
    assert guard.restored == 0
    assert protect_map(layer) is None  # once per layer


def test_layout_maths():
    a = np.array([[0.0, 0.0], [10.0, 10.0]])
    assert overlaps(a, a + 5) and not overlaps(a, a + [0, 10]) and not overlaps(a, a + [0, 11])
    np.testing.assert_allclose(visible_extent((0, 50, 100), 2.0, (200, 400)), [[0, 0], [100, 200]])

    class Layer:
        def __init__(self, name, ext):
            self.name = name
            self.extent = type("E", (), {"world": np.asarray(ext, float)})()
            self.data = np.zeros((1, 2))

    layers = [
        Layer("tiles", [[0, -0.5, -0.5], [99, 31.5, 31.5]]),
        Layer("current tile", [[0, 0], [1000, 1000]]),
    ]
    row, col = free_column_origin(layers, size=64)
    assert row == -0.5 and col == pytest.approx(
        31.5 + 6.4
    )  # right of the tiles; overlays do not count
    assert free_column_origin([], size=64) == (0.0, 0.0)
