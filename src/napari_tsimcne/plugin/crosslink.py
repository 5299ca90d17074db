"""Cross-selection between the map layer and the tile stack (main thread only).

napari hands plugins its objects wrapped in a proxy that forwards ``==`` and ``hash`` to the object behind
it, so layers are compared with ``==`` (never ``is``) and used as dictionary keys directly.

What the cross-selection remembers (the links, the stacks hidden in 3D, ...) belongs to one viewer and
lives with it (``_ViewerState``): two viewers never see each other's maps, and a closed viewer leaves
nothing behind in this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .selection import tile_rectangles, tile_to_point

if TYPE_CHECKING:
    from collections.abc import Sequence

    import napari

GALLERY_NAME = "selected tiles"
"""Name of the image layer older versions drew the gallery into (the gallery is now a dock, see .gallery)."""
HIGHLIGHT_NAME = "current tile"
OUTLINE_NAME = "selected tiles outline"


@dataclass(eq=False)
class _ViewerState:
    """What the cross-selection of one viewer remembers (``_state`` finds it).

    Attributes
    ----------
    links : dict
        The link of each map layer (keyed by the layer; dropped when the map or its tiles leave the viewer).
    hidden_in_3d : list
        Tile stacks the plugin hid for the 3D view of a map; shown again in the 2D view.
    told_hidden : bool
        Whether the user was told why the stacks are hidden (once per viewer, not at every switch).
    depth_margin : tuple of (int, float) or None
        (axis, margin): the thick slice ``show_depth_in_2d`` set on the depth axis of a 3D map.
    """

    links: dict = field(default_factory=dict)
    hidden_in_3d: list = field(default_factory=list)
    told_hidden: bool = False
    depth_margin: tuple[int, float] | None = None


STATE_ATTRIBUTE = "tsimcne_crosslink"
"""Attribute of a viewer's layer list that holds the viewer's ``_ViewerState``."""


def _state(viewer: napari.Viewer) -> _ViewerState:
    """The cross-selection state of ``viewer``, made on first use and found again for the same viewer.

    It is kept on the viewer's layer list, which lives exactly as long as the viewer (the viewer itself,
    a pydantic model, takes no attributes). napari hands each plugin widget its own proxy of the viewer,
    and a new proxy of the layer list on each access, so neither ``id`` nor a weak reference of what a
    plugin holds identifies the viewer; the instance dictionary, which the proxy forwards, is the list's own. Reading it with
    ``vars`` gives back the state itself (an attribute read through the proxy would wrap it in a proxy).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it).

    Returns
    -------
    _ViewerState
        The same object for every call with the same viewer.
    """
    attributes = vars(viewer.layers)
    state = attributes.get(STATE_ATTRIBUTE)
    if state is None:
        state = attributes[STATE_ATTRIBUTE] = _ViewerState()
    return state


def _set_if_changed(layer, name: str, value) -> None:
    """Set a layer's scale or translate only when it differs: each set makes napari recompute the
    extents of all layers and the dims (tens of ms beside a 100,000-point map)."""
    if not np.allclose(
        np.asarray(getattr(layer, name), dtype=float), np.asarray(value, dtype=float)
    ):
        setattr(layer, name, value)


def _selection_signal(layer):
    """The signal a Points layer's selection emits on change (napari 0.9: psygnal ``items_changed``)."""
    events = layer.selected_data.events
    return events.items_changed if hasattr(events, "items_changed") else events.changed


class MapTileLink:
    """Selected points -> gallery dock of their tiles and the stack slider on the first; slider -> ringed point.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map: one point per tile.
    tiles_layer : napari.layers.Image
        The tile stack the map was made from.
    """

    def __init__(self, viewer, map_layer, tiles_layer) -> None:
        self.viewer = viewer
        self.map_layer = map_layer
        self.tiles_layer = tiles_layer
        self._busy = False
        self._step_3d = tuple(viewer.dims.current_step)  # the slider as it was in the 3D view
        _selection_signal(self.map_layer).connect(self._on_selection)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.ndisplay.connect(self._on_ndisplay)
        self.viewer.dims.events.range.connect(self._on_range)
        self.tiles_layer.events.name.connect(self._on_tiles_renamed)
        show_depth_in_2d(self.viewer, self.map_layer)

    def disconnect(self) -> None:
        """Stop following the map's selection, the stack's slider and the 2D/3D switch."""
        _selection_signal(self.map_layer).disconnect(self._on_selection)
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.dims.events.ndisplay.disconnect(self._on_ndisplay)
        self.viewer.dims.events.range.disconnect(self._on_range)
        self.tiles_layer.events.name.disconnect(self._on_tiles_renamed)

    def _on_tiles_renamed(self, event=None) -> None:
        """The map names its tile layer (exports, autosave, the reader): it follows a rename."""
        self.map_layer.metadata["tsimcne_tiles_layer"] = self.tiles_layer.name

    def _on_layer_removed(self, event) -> None:
        if event.value == self.map_layer or event.value == self.tiles_layer:
            self.disconnect()
            gallery = self._gallery(create=False)
            if gallery is not None and gallery.link is self:
                gallery.clear()
            links = _state(self.viewer).links
            if links.get(self.map_layer) is self:
                del links[self.map_layer]
            if _is_3d(self.map_layer):
                stop_depth_in_2d(self.viewer)
                if not (_any_3d_map(self.viewer) and self.viewer.dims.ndisplay == 3):
                    show_tile_volumes(self.viewer)  # no 3D map is left in the 3D view
                if event.value == self.map_layer and not _any_3d_map(self.viewer):
                    self.viewer.dims.ndisplay = (
                        2  # the 3D view was for the map (e.g. a 2D map replaces it)
                    )

    # -- 2D and 3D view of a 3D map ---------------------------------------------
    def _on_ndisplay(self, event=None) -> None:
        """napari's 2D/3D switch: in 3D the map is framed and the stack hidden; in 2D all points show."""
        from .layout import fit_camera, is_in_view

        if not _is_3d(self.map_layer) or self.map_layer not in self.viewer.layers:
            return
        if self.viewer.dims.ndisplay == 3:
            self._step_3d = tuple(self.viewer.dims.current_step)
            hide_tile_volumes(self.viewer, self.map_layer)
            fit_camera(self.viewer, [self.map_layer])  # turning the map turns it about its middle
            return
        show_tile_volumes(self.viewer)
        show_depth_in_2d(self.viewer, self.map_layer)
        if len(self._step_3d) == self.viewer.dims.ndim:
            # napari moved the slider to the camera's depth: back to the tile shown before
            self.viewer.dims.current_step = self._step_3d
        if not is_in_view(self.viewer, self.map_layer):
            fit_camera(self.viewer, [self.map_layer])

    def _on_range(self, event=None) -> None:
        if self.viewer.dims.ndisplay == 2 and self.map_layer in self.viewer.layers:
            show_depth_in_2d(self.viewer, self.map_layer)

    def current_tile(self) -> int | None:
        """The tile whose point is ringed.

        Returns
        -------
        int or None
            Its index in the stack; None before any point was ringed.
        """
        if HIGHLIGHT_NAME in self.viewer.layers:
            tile = self.viewer.layers[HIGHLIGHT_NAME].metadata.get("tile_index")
            return None if tile is None else int(tile)
        return None

    def keep_map_active(self) -> None:
        """After adding a layer (napari makes it the active one): the map again, with the tool it had."""
        if self.map_layer in self.viewer.layers:
            mode = self.map_layer.mode
            self.viewer.layers.selection.active = self.map_layer
            if self.map_layer.mode != mode:
                self.map_layer.mode = mode

    # -- points -> tiles ------------------------------------------------------
    def _on_selection(self, event=None) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self.show_selection()
        finally:
            self._busy = False

    def show_selection(self) -> None:
        """Show the selected points' tiles in the gallery dock and move the stack to the first of them."""
        rows = sorted(self.map_layer.selected_data)
        if self.tiles_layer not in self.viewer.layers:
            return
        if not rows:
            gallery = self._gallery(create=False)
            if gallery is not None and gallery.link in (self, None):
                gallery.show_tiles(self, [])
            return
        tiles = self.map_layer.features["tile_index"].to_numpy()[rows]
        self.update_gallery(tiles)
        self.outline_on_source(tiles)
        step = list(self.viewer.dims.current_step)
        if len(step) >= 3 and step[0] != tiles[0]:
            step[0] = int(tiles[0])
            self.viewer.dims.current_step = tuple(step)
        self.highlight(int(tiles[0]))

    def _gallery(self, create: bool = True):
        from .gallery import open_gallery

        return open_gallery(self.viewer, create=create)

    def update_gallery(self, tile_indices: Sequence[int]) -> None:
        """Show ``tile_indices`` in the gallery dock (docked beside the canvas on first use).

        Parameters
        ----------
        tile_indices : sequence of int
            The tiles to show.
        """
        gallery = self._gallery()
        if gallery is not None:
            gallery.show_tiles(self, tile_indices)

    def go_to_tile(self, tile: int) -> None:
        """Move the stack's slider to ``tile`` and ring its point on the map; the selection is kept.

        Parameters
        ----------
        tile : int
            Index of the tile in the stack.
        """
        step = list(self.viewer.dims.current_step)
        if len(step) >= 3 and step[0] != int(tile):
            step[0] = int(tile)
            self.viewer.dims.current_step = tuple(step)  # rings the point (see _on_step)
        if self.current_tile() != int(tile):  # e.g. in 3D, where the slider is not shown
            self.highlight(int(tile))

    def outline_on_source(self, tile_indices: Sequence[int]) -> None:
        """Outline the tiles on the image they were cut from (tile layers made by "Cut a large image into tiles").

        Parameters
        ----------
        tile_indices : sequence of int
            The tiles to outline; earlier outlines are replaced.
        """
        meta = self.tiles_layer.metadata
        source_name, origins = meta.get("source_layer"), meta.get("origins")
        if origins is None or source_name not in self.viewer.layers:
            return
        source = self.viewer.layers[source_name]
        rects = tile_rectangles(origins, tile_indices, self.tiles_layer.data.shape[1:3])
        if OUTLINE_NAME in self.viewer.layers:
            self.viewer.layers.remove(OUTLINE_NAME)
        self.viewer.add_shapes(
            rects,
            shape_type="rectangle",
            name=OUTLINE_NAME,
            face_color="transparent",
            edge_color="yellow",
            edge_width=1,
            scale=source.scale[-2:],
            translate=source.translate[-2:],
        )
        self.keep_map_active()

    # -- tiles -> point -------------------------------------------------------
    def _on_step(self, event=None) -> None:
        if self.viewer.dims.ndisplay == 3:
            self._step_3d = tuple(self.viewer.dims.current_step)
        if self._busy:
            return
        step = self.viewer.dims.current_step
        if len(step) >= 3:
            self.highlight(int(step[0]))
            gallery = self._gallery(create=False)
            if gallery is not None and gallery.link is self:
                gallery.set_current_tile(int(step[0]))

    def highlight(self, tile: int) -> None:
        """Mark the point of ``tile`` with a ring in a small extra points layer.

        Parameters
        ----------
        tile : int
            Index of the tile in the stack.
        """
        if self.map_layer not in self.viewer.layers:
            return
        row = tile_to_point(self.map_layer.features["tile_index"].to_numpy(), tile)
        if row is None:
            return
        pos = self.map_layer.data[row : row + 1]
        size = float(np.max(self.map_layer.size)) * 3
        if (
            HIGHLIGHT_NAME in self.viewer.layers
            and self.viewer.layers[HIGHLIGHT_NAME].ndim != pos.shape[1]
        ):
            self.viewer.layers.remove(
                HIGHLIGHT_NAME
            )  # the ring of a 2D map, now a 3D one (or back)
        if HIGHLIGHT_NAME in self.viewer.layers:
            layer = self.viewer.layers[HIGHLIGHT_NAME]
            layer.data = pos
            _set_if_changed(layer, "translate", self.map_layer.translate)
        else:
            layer = self.viewer.add_points(
                pos,
                name=HIGHLIGHT_NAME,
                size=size,
                face_color="transparent",
                border_color="red",
                border_width=0.2,
                translate=self.map_layer.translate,
                projection_mode="all",  # a ring on a 3D map shows in the 2D view too
            )
            self.keep_map_active()
        layer.metadata["tile_index"] = tile


def _is_3d(layer) -> bool:
    """``map_layer.is_3d``, imported when first needed (map_layer imports this module)."""
    from .map_layer import is_3d

    return is_3d(layer)


def tile_volumes(viewer: napari.Viewer, map_layer: napari.layers.Points) -> list:
    """The image layers napari would draw as a block in 3D: stacks with one tile per point of the map.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        A map.

    Returns
    -------
    list of napari.layers.Image
        (N, H, W[, C]) and (N, C, H, W) layers whose first axis has one entry per point.
    """
    from napari.layers import Image

    n = len(map_layer.data)
    return [
        layer
        for layer in viewer.layers
        if isinstance(layer, Image)
        and layer.ndim >= 3
        and len(getattr(layer.data, "shape", ())) >= 3  # (a multiscale image is a list)
        and layer.data.shape[0] == n
    ]


HIDDEN_MESSAGE = (
    "In the 3D view the tile stack is hidden (napari would draw it as one block beside the map). "
    "Switch to the 2D view to see the tiles again; clicked points still show their tiles in the gallery."
)


def hide_tile_volumes(viewer: napari.Viewer, map_layer: napari.layers.Points) -> list:
    """Hide the tile stacks of a 3D map while the 3D view shows it (their data is left as it is).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        A 3D map.

    Returns
    -------
    list of napari.layers.Image
        The layers hidden by this call (``show_tile_volumes`` shows them again).
    """
    state = _state(viewer)
    hidden = [layer for layer in tile_volumes(viewer, map_layer) if layer.visible]
    for layer in hidden:
        layer.visible = False
        state.hidden_in_3d.append(layer)
    if hidden and not state.told_hidden:
        from napari.utils.notifications import show_info

        show_info(HIDDEN_MESSAGE)
        state.told_hidden = True  # once per viewer: not at every switch
    return hidden


def show_tile_volumes(viewer: napari.Viewer) -> None:
    """Show again the tile stacks ``hide_tile_volumes`` hid (those the user hid stay hidden).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    """
    state = _state(viewer)
    for layer in list(state.hidden_in_3d):
        if layer in viewer.layers:
            layer.visible = True
        state.hidden_in_3d.remove(layer)  # shown again, or gone from the viewer


def show_depth_in_2d(viewer: napari.Viewer, map_layer: napari.layers.Points) -> None:
    """Let the 2D view show every point of a 3D map, projected onto (row, column), at any tile of the slider.

    The map's depth shares the slider's axis with the tile stack; napari draws the points of a layer
    with ``projection_mode="all"`` that lie in the slice around the slider, so the slice is made as thick
    as the slider's range and the map's depth together. Images (projection mode "none") keep showing the
    one tile of the slider.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        A map; a 2D map changes nothing.
    """
    if not _is_3d(map_layer):
        return
    map_layer.projection_mode = "all"
    axis = viewer.dims.ndim - 3
    if axis < 0:
        return
    depth = np.asarray(map_layer.extent.world, dtype=float)[:, -3]
    start, stop = viewer.dims.range[axis][:2]
    margin = float(max(stop - depth[0], depth[1] - start, 0.0)) + 1.0
    left, right = list(viewer.dims.margin_left), list(viewer.dims.margin_right)
    if left[axis] >= margin and right[axis] >= margin:
        return
    left[axis] = right[axis] = margin
    viewer.dims.margin_left, viewer.dims.margin_right = tuple(left), tuple(right)
    _state(viewer).depth_margin = (axis, margin)


def _any_3d_map(viewer: napari.Viewer) -> bool:
    """Whether a linked 3D map is still in the viewer."""
    return any(
        _is_3d(link.map_layer) and link.map_layer in viewer.layers
        for link in _state(viewer).links.values()
    )


def stop_depth_in_2d(viewer: napari.Viewer) -> None:
    """Make the slice thin again (once no 3D map is left), where ``show_depth_in_2d`` made it thick.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    """
    if _any_3d_map(viewer):
        return
    state = _state(viewer)
    if state.depth_margin is None:
        return
    (axis, margin), state.depth_margin = state.depth_margin, None
    if axis >= viewer.dims.ndim:
        return
    left, right = list(viewer.dims.margin_left), list(viewer.dims.margin_right)
    if left[axis] == margin and right[axis] == margin:
        left[axis] = right[axis] = 0.0
        viewer.dims.margin_left, viewer.dims.margin_right = tuple(left), tuple(right)


def link_map(
    viewer: napari.Viewer, map_layer: napari.layers.Points, tiles_layer: napari.layers.Image
) -> MapTileLink:
    """Connect the map and the tile stack (once per map layer).

    Selecting points shows their tiles in the "Selected tiles" dock; moving the stack's
    slider rings the tile's point on the map.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        The map: one point per tile.
    tiles_layer : napari.layers.Image
        The tile stack the map was made from.

    Returns
    -------
    MapTileLink
        The link (the existing one when the map was linked before).
    """
    from .map_guard import protect_map

    links = _state(viewer).links
    link = links.get(map_layer)
    if link is None:
        link = links[map_layer] = MapTileLink(viewer, map_layer, tiles_layer)
        protect_map(map_layer)  # its points cannot be moved, deleted or added by accident
    link.tiles_layer = tiles_layer
    show_3d_map(viewer, map_layer, new=False)
    return link


def show_3d_map(viewer: napari.Viewer, map_layer: napari.layers.Points, new: bool = True) -> None:
    """Show a 3D map as it reads best: in the 3D view, framed, with its tile stacks hidden there.

    In the 2D view (the user's choice) all its points stay visible (``show_depth_in_2d``).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    map_layer : napari.layers.Points
        A map; a 2D map changes nothing.
    new : bool
        A map that just appeared: switch to the 3D view and frame it. Otherwise (new points of the same
        map) the camera moves only when the map is not all in view.
    """
    from .layout import fit_camera, is_in_view

    if not _is_3d(map_layer) or map_layer not in viewer.layers:
        return
    show_depth_in_2d(viewer, map_layer)
    if new and viewer.dims.ndisplay != 3:
        viewer.dims.ndisplay = 3  # a linked map hides the stacks and frames itself (_on_ndisplay)
    if new and viewer.dims.ndisplay == 3:
        hide_tile_volumes(viewer, map_layer)
    if new or not is_in_view(viewer, map_layer):
        fit_camera(viewer, [map_layer])


def is_linked(viewer: napari.Viewer, map_layer: napari.layers.Layer) -> bool:
    """Whether a map layer is linked to its tiles in ``viewer``.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer the map is in.
    map_layer : napari.layers.Points
        The map: one point per tile.

    Returns
    -------
    bool
        True after ``link_map`` and until the map or the tiles are removed.
    """
    return map_layer in _state(viewer).links


def link_of(viewer: napari.Viewer, layer: napari.layers.Layer) -> MapTileLink | None:
    """The link of a map layer in ``viewer`` (None for other layers and unlinked maps).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer the layer is in.
    layer : napari.layers.Layer
        Any layer.

    Returns
    -------
    MapTileLink or None
        The link.
    """
    try:
        return _state(viewer).links.get(layer)
    except TypeError:  # e.g. None or an unhashable stand-in
        return None


TOKEN_KEY = "tsimcne_reader_token"
"""Metadata key shared by the layers of one read of an output folder (see ``.reader``)."""


def link_opened_outputs(viewer: napari.Viewer) -> list:
    """Link every map opened from an output folder (by the reader) to its tiles, once; returns the maps linked.

    The reader only returns layer data; the dock widgets call this when layers are added (and when they open),
    so that maps opened before or after a widget is shown are linked.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.

    Returns
    -------
    list of napari.layers.Points
        The maps linked by this call.
    """
    from napari.layers import Image, Points

    linked = []
    for layer in list(viewer.layers):
        if (
            not isinstance(layer, Points)
            or TOKEN_KEY not in layer.metadata
            or is_linked(viewer, layer)
        ):
            continue
        token = layer.metadata[TOKEN_KEY]
        ours = [
            l for l in viewer.layers if isinstance(l, Image) and l.metadata.get(TOKEN_KEY) == token
        ]
        tiles = next((l for l in ours if l.ndim >= 3), None)
        if tiles is None:
            continue
        source = next((l for l in ours if l.ndim == 2), None)
        # names may have got a suffix ("cells [1]") when the same folder was opened twice
        layer.metadata["tsimcne_tiles_layer"] = tiles.name
        if source is not None:
            tiles.metadata["source_layer"] = source.name
        link_map(viewer, layer, tiles)
        linked.append(layer)
    if linked:
        from .layout import fit_camera
        from .map_layer import show_in_3d

        viewer.layers.selection.active = linked[-1]
        show_in_3d(viewer, linked[-1])  # a 3D map is seen in 3D
        fit_camera(viewer, [linked[-1]])  # the map, not the first tile, fills the canvas
        # docks opening right after (the one calling this, or the next) narrow the canvas: fit again then
        linked[-1].metadata[FIT_UNTIL_KEY] = time.monotonic() + REFIT_SECONDS
    return linked


FIT_UNTIL_KEY = "tsimcne_fit_until"
REFIT_SECONDS = 3.0
"""How long after a map is opened a change of the canvas size (docks opening) fits the camera to it again."""


def refit_new_maps(viewer: napari.Viewer) -> None:
    """Fit the camera again to a map opened moments ago (the canvas changed size as docks opened).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    """
    from napari.layers import Points

    from .layout import fit_camera

    now = time.monotonic()
    fresh = [
        l
        for l in viewer.layers
        if isinstance(l, Points) and l.metadata.get(FIT_UNTIL_KEY, 0.0) > now and l.visible
    ]
    if fresh:
        fit_camera(viewer, fresh[-1:])
