"""A map that cannot be broken by accident: its points are not moved, deleted or added by the mouse or keys.

napari's Points layer lets a user drag selected points in select mode, delete them with the Delete key or
the layer controls' button, and add points in add mode. A map's points are tiles, so all of these would
break the map (and the exported annotations). ``protect_map`` keeps the select tool (box selection,
click selection) and puts the points back right after any such edit: a point's place is a function of its
``x, y`` features, so moved points are recomputed from them, and rows removed or added are restored from a
copy taken just before napari removes or adds them. The plugin's own updates (new embeddings) change the
features first and then the points, so they are recognised as intact and left alone.

Only napari's public API is used (``layer.events.data`` and its ``action``, ``bind_key``). No Qt here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import napari
    import pandas as pd
    from napari.utils.events import Event

GUARDED_KEY = "tsimcne_guarded"
PROTECTED_MESSAGE = (
    "The map's points are tiles: they cannot be moved, deleted or added. "
    "Select points with the select tool or the lasso, then name them in 'Annotate map'."
)


def expected_positions(
    layer: napari.layers.Points, features: pd.DataFrame | None = None
) -> np.ndarray:
    """Where the map's points belong: the layer's ``x, y`` (``z``) features scaled into its square (cube).

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    features : pandas.DataFrame, optional
        The features to read (None: the layer's own).

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` or ``(N, 3)`` point positions.
    """
    from .map_layer import embedding_columns, map_coordinates

    feats = layer.features if features is None else features
    side = float(layer.metadata.get("tsimcne_side", 1.0))
    return map_coordinates(feats[embedding_columns(feats)].to_numpy(dtype=float), side)


def is_intact(layer: napari.layers.Points, n_points: int) -> bool:
    """Whether the layer still has ``n_points`` points, one per tile, each where its features put it.

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    n_points : int
        Number of tiles.

    Returns
    -------
    bool
        True when nothing was moved, added or deleted.
    """
    data = np.asarray(layer.data)
    feats = layer.features
    if len(data) != n_points or len(feats) != n_points:
        return False
    if not np.array_equal(feats["tile_index"].to_numpy(), np.arange(n_points)):
        return False
    expected = expected_positions(layer)
    return bool(
        np.allclose(
            data[:, -expected.shape[1] :],
            expected,
            rtol=1e-6,
            atol=1e-6 * max(1.0, np.abs(data).max()),
        )
    )


class MapGuard:
    """Puts the points of one map layer back after any edit (see the module's docstring).

    Connected to ``layer.events.data``; ``restored`` counts the repairs; ``notify(message)`` is called
    after each (napari's ``show_info`` by default).

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    notify : callable, optional
        Called with a message for the user after each repair.
    """

    def __init__(self, layer, notify=None) -> None:
        self.n_points = len(layer.data)
        self.restored = 0
        self.notify = notify
        self._snapshot = None
        self._restoring = False

    def on_data(self, event: Event) -> None:
        """React to an edit of the layer's points: undo moves, additions and deletions.

        Parameters
        ----------
        event : napari.utils.events.Event
            The layer's ``data`` event.
        """
        from napari.layers.base import ActionType

        if self._restoring:
            return
        layer = event.source
        action = getattr(event, "action", None)
        if action in (ActionType.REMOVING, ActionType.ADDING):
            # napari removes/adds the rows of the features right after this: keep what we need to undo it
            if len(layer.data) == self.n_points:
                self._snapshot = (
                    layer.features.copy(),
                    np.array(layer.face_color, copy=True),
                    np.array(layer.size, copy=True),
                    set(layer.selected_data),
                )
            return
        if action == ActionType.CHANGING:
            return
        if is_intact(layer, self.n_points):
            self._snapshot = None
            return
        self.restore(layer)

    def restore(self, layer: napari.layers.Points) -> None:
        """Put every point back where its tile belongs, with its features, colour and size.

        Parameters
        ----------
        layer : napari.layers.Points
            The map layer.
        """
        snapshot, self._snapshot = self._snapshot, None
        self._restoring = True
        try:
            if snapshot is not None and len(snapshot[0]) == self.n_points:
                feats, colors, sizes, selected = snapshot
                layer.data = expected_positions(layer, feats)
                layer.features = feats
                layer.face_color = colors
                layer.size = sizes
                layer.selected_data = selected
            else:  # moved points: the features are untouched
                selected = set(layer.selected_data)
                layer.data = expected_positions(layer)
                layer.selected_data = selected
        finally:
            self._restoring = False
        self.restored += 1
        if self.notify is not None:
            self.notify(PROTECTED_MESSAGE)


def _ignore_key(layer) -> None:
    from napari.utils.notifications import show_info

    show_info(PROTECTED_MESSAGE)


def protect_map(
    layer: napari.layers.Points, notify: Callable[[str], object] | None = None
) -> MapGuard | None:
    """Protect a map layer (once; returns its guard, or None when it was protected before).

    The guard lives as long as the layer: napari's events hold plain functions (not methods) strongly.

    Parameters
    ----------
    layer : napari.layers.Points
        The map layer.
    notify : callable, optional
        Called with a message for the user after each repair (napari's ``show_info`` by default).

    Returns
    -------
    MapGuard or None
        The new guard.
    """
    if layer.metadata.get(GUARDED_KEY):
        return None
    if notify is None:
        from napari.utils.notifications import show_info as notify
    guard = MapGuard(layer, notify=notify)
    layer.events.data.connect(lambda event: guard.on_data(event))
    for key in ("Delete", "Backspace"):
        layer.bind_key(key, _ignore_key, overwrite=True)
    layer.metadata[GUARDED_KEY] = True
    return guard
