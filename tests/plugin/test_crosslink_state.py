"""The cross-selection of each viewer keeps its own state: two viewers in one process (tests make many) never
see each other's maps, and a closed viewer leaves nothing behind.

The viewer is used as napari hands it to plugins: wrapped in a new proxy by every dock widget."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tsimcne.plugin import crosslink
from napari_tsimcne.plugin.crosslink import HIDDEN_MESSAGE, is_linked, link_map, show_3d_map

pytestmark = pytest.mark.gui

N_TILES = 6


@pytest.fixture
def told(monkeypatch):
    """Messages shown with napari's show_info."""
    shown: list = []
    monkeypatch.setattr("napari.utils.notifications.show_info", shown.append)
    return shown


def _plugin_viewers(make_napari_viewer):
    """(viewer, two proxies of it as two of our dock widgets got it); the viewer has a stack of tiles."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((N_TILES, 8, 8), dtype=np.float32), name="tiles")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    _, gallery = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Selected tiles")
    assert annotate.viewer is not gallery.viewer  # two proxies of the same viewer
    return viewer, annotate.viewer, gallery.viewer


def _show_3d_map(proxy, name="map", seed=0):
    """A 3D map of the tiles, linked and shown the way the dock widgets do it."""
    points = np.random.default_rng(seed).normal(size=(N_TILES, 3)) * 5
    proxy.add_points(points, name=name, features={"tile_index": np.arange(N_TILES)})
    map_layer = proxy.layers[name]
    link_map(proxy, map_layer, proxy.layers["tiles"])
    show_3d_map(proxy, map_layer)
    return map_layer


def test_a_3d_map_in_one_viewer_does_not_touch_another(make_napari_viewer, told):
    first, first_proxy, _ = _plugin_viewers(make_napari_viewer)
    second, second_proxy, _ = _plugin_viewers(make_napari_viewer)

    _show_3d_map(first_proxy)
    assert first.dims.ndisplay == 3 and not first.layers["tiles"].visible
    assert second.dims.ndisplay == 2 and second.layers["tiles"].visible
    assert told == [HIDDEN_MESSAGE]

    _show_3d_map(second_proxy)
    assert not second.layers["tiles"].visible
    assert told == [HIDDEN_MESSAGE] * 2  # each viewer's user is told once

    # the 2D view of one viewer shows its own stack again, not the other's
    second.dims.ndisplay = 2
    assert second.layers["tiles"].visible
    assert first.dims.ndisplay == 3 and not first.layers["tiles"].visible
    first.dims.ndisplay = 2
    assert first.layers["tiles"].visible

    # switching back and forth: hidden again, but not told again
    first.dims.ndisplay = 3
    assert not first.layers["tiles"].visible
    assert told == [HIDDEN_MESSAGE] * 2


def test_two_3d_maps_linked_through_different_proxies_belong_to_one_viewer(
    make_napari_viewer, told
):
    viewer, annotate_proxy, gallery_proxy = _plugin_viewers(make_napari_viewer)
    early = _show_3d_map(annotate_proxy, "early map", seed=0)
    _show_3d_map(gallery_proxy, "final map", seed=1)
    assert is_linked(viewer, viewer.layers["early map"]) and is_linked(
        annotate_proxy, gallery_proxy.layers["final map"]
    )

    # one 3D map is left: the 3D view stays, its slice stays thick enough for all the points in 2D
    viewer.layers.remove(early)
    assert viewer.dims.ndisplay == 3
    assert viewer.dims.margin_left[0] > 0
    assert not viewer.layers["tiles"].visible  # still the 3D view of a map: the stack stays hidden

    # the last one gone: the 2D view with the stack and a thin slice again
    viewer.layers.remove("final map")
    assert viewer.dims.ndisplay == 2
    assert viewer.layers["tiles"].visible
    assert viewer.dims.margin_left[0] == 0 and viewer.dims.margin_right[0] == 0


def test_a_closed_viewer_leaves_nothing_behind(make_napari_viewer, told):
    viewer, proxy, _ = _plugin_viewers(make_napari_viewer)
    map_layer = _show_3d_map(proxy)
    viewer.close()

    assert not is_linked(viewer, map_layer)
    # nothing in the module remembers the viewer, its layers, or that its user was told
    containers = {
        name: value
        for name, value in vars(crosslink).items()
        if isinstance(value, (dict, list, set)) and not name.startswith("__")
    }
    assert not any(containers.values()), containers

    # a new viewer starts afresh: its user is told too
    _, new_proxy, _ = _plugin_viewers(make_napari_viewer)
    _show_3d_map(new_proxy)
    assert told == [HIDDEN_MESSAGE] * 2
