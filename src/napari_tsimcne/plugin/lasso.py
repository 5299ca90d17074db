"""Free-hand lasso selection on the map (napari 0.9's Points layer only selects with a box).

While the lasso is on, dragging on the map draws a free-hand outline; on release the points inside it
become the layer's ``selected_data``, exactly as napari's box selection sets it, so the gallery and the
stack follow through the same selection event. Shift or Ctrl adds to the current selection. The camera
does not pan while the lasso is on (the wheel still zooms). No Qt here.
"""

from __future__ import annotations

import time

import numpy as np

from .selection import points_in_polygon

LASSO_NAME = "lasso"
_MIN_STEP_PX = 2.0  # canvas pixels between recorded vertices
_DRAW_EVERY_S = 0.03  # redraw the outline at most this often while dragging


class LassoTool:
    """Turn free-hand lasso selection on or off for one map (Points) layer.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map: one point per tile.
    on_disabled : callable, optional
        Called when the lasso turns itself off (e.g. another layer became active), so a
        button can follow.
    """

    def __init__(self, viewer, map_layer, on_disabled=None) -> None:
        self.viewer = viewer
        self.layer = map_layer
        self.on_disabled = on_disabled
        self.active = False
        self._outline = None

    # -- on and off ---------------------------------------------------------------
    def enable(self) -> None:
        """Make the map the active layer and let drags on it draw a lasso.

        Raises
        ------
        ValueError
            The map layer has been removed from the viewer.
        """
        if self.active:
            return
        layer = self.layer
        if layer not in self.viewer.layers:
            raise ValueError("The map layer is no longer in the viewer.")
        self.active = True
        side = float(layer.metadata.get("tsimcne_side", 1.0))
        self._outline = self.viewer.add_shapes(
            name=LASSO_NAME,
            edge_color="yellow",
            face_color="transparent",
            edge_width=side / 150,
            translate=layer.translate,
            opacity=0.9,
        )
        self.viewer.layers.selection.active = layer
        layer.mode = "pan_zoom"
        layer.mouse_pan = False  # the camera must not pan while the lasso is drawn
        layer.mouse_drag_callbacks.append(self._drag)
        layer.events.mode.connect(self._on_mode)
        self.viewer.layers.events.removed.connect(self._on_removed)

    def disable(self) -> None:
        """Back to napari's own modes; the camera pans again."""
        if not self.active:
            return
        self.active = False
        layer = self.layer
        if self._drag in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(self._drag)
        layer.events.mode.disconnect(self._on_mode)
        self.viewer.layers.events.removed.disconnect(self._on_removed)
        layer.mouse_pan = layer.mode == "pan_zoom"
        if self._outline is not None and self._outline in self.viewer.layers:
            self.viewer.layers.remove(self._outline)
        self._outline = None
        if self.on_disabled is not None:
            self.on_disabled()

    def _on_mode(self, event=None) -> None:
        # the user picked another mode in the layer controls: the lasso gives way
        self.disable()

    def _on_removed(self, event) -> None:
        if self._outline is not None and event.value == self._outline:
            self._outline = None  # already gone: disable() must not remove it again
            self.disable()
        elif event.value == self.layer:
            self.disable()

    # -- drawing --------------------------------------------------------------------
    def _data_xy(self, event) -> np.ndarray:
        return np.asarray(self.layer.world_to_data(event.position), dtype=float)[-2:]

    def _draw(self, path: list) -> None:
        if self._outline is not None and len(path) >= 2:
            self._outline.data = [np.asarray(path)]
            self._outline.shape_type = ["path"]

    def _drag(self, layer, event):
        """Mouse-drag callback: press starts the outline, moves extend it, release selects."""
        add = "Shift" in event.modifiers or "Control" in event.modifiers
        path = [self._data_xy(event)]
        last_px = np.asarray(event.pos, dtype=float)
        last_draw = 0.0
        yield
        while event.type == "mouse_move":
            px = np.asarray(event.pos, dtype=float)
            if np.hypot(*(px - last_px)) >= _MIN_STEP_PX:
                path.append(self._data_xy(event))
                last_px = px
                if time.perf_counter() - last_draw > _DRAW_EVERY_S:
                    self._draw(path)
                    last_draw = time.perf_counter()
            yield
        path.append(self._data_xy(event))
        if self._outline is not None:
            self._outline.data = []
        self.select(np.asarray(path), add=add)

    def select(self, polygon: np.ndarray, add: bool = False) -> np.ndarray:
        """Select the points inside ``polygon`` (data coordinates of the map, row/column).

        Parameters
        ----------
        polygon : numpy.ndarray
            ``(K, 2)`` corners of the lasso.
        add : bool
            Add to the current selection instead of replacing it.

        Returns
        -------
        numpy.ndarray
            Indices of the points inside.
        """
        inside = points_in_polygon(np.asarray(self.layer.data)[:, -2:], polygon)
        chosen = set(inside.tolist())
        if add:
            chosen |= set(self.layer.selected_data)
        self.layer.selected_data = chosen
        return inside
