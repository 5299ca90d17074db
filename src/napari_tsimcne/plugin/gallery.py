"""The gallery dock: the tiles of the points selected in the map, as thumbnails beside the canvas.

A thin Qt view. Thumbnails are drawn by ``.thumbnails.TileSource`` (no Qt) only when they scroll into
view, and the last few thousand are kept, so that a selection of 10,000 tiles or more stays smooth. Clicking a
thumbnail moves the tile stack to that tile and rings its point on the map (the ring that follows the stack's
slider); the selection in the map is left as it is.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QAbstractListModel, QSize, Qt, QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QLabel, QListView, QSlider, QVBoxLayout

from .qt_helpers import (
    ANNOTATE_WIDGET,
    GALLERY_WIDGET,
    TRAIN_WIDGET,
    DockWidget,
    dock_name,
    dock_of,
    keep_height,
)
from .thumbnails import TileSource, channel_layers

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import napari

    from .crosslink import MapTileLink

GALLERY_DOCK_NAME = dock_name(GALLERY_WIDGET)
"""The gallery's dock, as napari names the plugin widget "Selected tiles" (one per window)."""

MAX_SHOWN = 100_000
"""Thumbnails listed at most (the first ones by tile number); the count says how many were selected."""

CACHE_SIZE = 3_000
"""Thumbnails kept once drawn (a few screens full at the smallest size)."""

DEFAULT_SIZE, MIN_SIZE, MAX_SIZE = 64, 32, 200
"""Thumbnail side in screen pixels."""

TILE_ROLE = Qt.ItemDataRole.UserRole + 1
"""Model role of an item's tile number."""

DISPLAY_EVENTS = ("contrast_limits", "colormap", "gamma", "opacity")
"""Image-layer events after which thumbnails are drawn again."""


def pixmap_of(rgb: np.ndarray, size: int) -> QPixmap:
    """A ``size`` x ``size`` (at most) pixmap of a uint8 (h, w, 3) image; small tiles keep sharp pixels.

    Parameters
    ----------
    rgb : numpy.ndarray
        The picture, uint8, shape (h, w, 3).
    size : int
        The longest side of the pixmap, in pixels (the aspect ratio is kept).

    Returns
    -------
    QPixmap
        The thumbnail.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    mode = (
        Qt.TransformationMode.FastTransformation
        if max(h, w) <= size
        else Qt.TransformationMode.SmoothTransformation
    )
    return QPixmap.fromImage(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, mode)


class GalleryModel(QAbstractListModel):
    """Tile numbers as list items; each item's picture is drawn when the view first asks for it.

    Parameters
    ----------
    parent : QObject, optional
        The parent object.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.tiles = np.zeros(0, dtype=int)
        self.source: TileSource | None = None
        self.describe = None
        self.icon_size = DEFAULT_SIZE
        self.rendered = 0  # thumbnails drawn so far (a view draws only what it shows)
        self._channels = None
        self._cache: OrderedDict[int, QPixmap] = OrderedDict()

    def set_tiles(
        self,
        tiles: Sequence[int],
        source: TileSource | None,
        describe: Callable[[int], str] | None = None,
    ) -> None:
        """Show ``tiles`` (tile numbers) of ``source``; ``describe(tile)`` gives an item's tooltip.

        Parameters
        ----------
        tiles : array-like of int
            The tile numbers, sorted.
        source : TileSource or None
            Draws the thumbnails (None when nothing is shown).
        describe : callable, optional
            ``describe(tile) -> str``, the tooltip; "Tile <n>" when None.
        """
        self.beginResetModel()
        self.tiles = np.asarray(tiles, dtype=int)
        self.source = source
        self.describe = describe
        self._channels = None
        self._cache.clear()
        self.endResetModel()

    def rowCount(self, parent=None) -> int:  # noqa: N802 - Qt's name
        """Qt's item count: the number of tiles shown.

        Parameters
        ----------
        parent : QModelIndex, optional
            Qt's parent item (a list has none).

        Returns
        -------
        int
            The number of tiles (0 under a valid parent).
        """
        return 0 if parent is not None and parent.isValid() else len(self.tiles)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        """What Qt asks of an item: its thumbnail, its tooltip, or its tile number (``TILE_ROLE``).

        Parameters
        ----------
        index : QModelIndex
            The item.
        role : Qt.ItemDataRole or int
            What is asked.

        Returns
        -------
        QPixmap, str, int or None
            The answer, or None for other roles and invalid items.
        """
        if not index.isValid() or not 0 <= index.row() < len(self.tiles):
            return None
        tile = int(self.tiles[index.row()])
        if role == Qt.ItemDataRole.DecorationRole:
            return self.pixmap(tile)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.describe(tile) if self.describe is not None else f"Tile {tile}"
        if role == TILE_ROLE:
            return tile
        return None

    def pixmap(self, tile: int) -> QPixmap:
        """The thumbnail of ``tile`` (drawn now, or kept from before).

        Parameters
        ----------
        tile : int
            The tile's number in its stack.

        Returns
        -------
        QPixmap
            At most ``icon_size`` pixels wide and high.
        """
        pixmap = self._cache.get(tile)
        if pixmap is not None:
            self._cache.move_to_end(tile)
            return pixmap
        if self._channels is None:
            self._channels = self.source.channels()
        rgb = self.source.thumbnail(tile, max_side=2 * self.icon_size, channels=self._channels)
        pixmap = pixmap_of(rgb, self.icon_size)
        self.rendered += 1
        self._cache[tile] = pixmap
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return pixmap

    def redraw(self) -> None:
        """Draw the thumbnails again (the layers' contrast, colormaps or the size changed)."""
        self._channels = None
        self._cache.clear()
        if len(self.tiles):
            self.dataChanged.emit(
                self.index(0), self.index(len(self.tiles) - 1), [Qt.ItemDataRole.DecorationRole]
            )

    def row_of(self, tile: int) -> int | None:
        """The item of ``tile``, if listed (the tiles are sorted).

        Parameters
        ----------
        tile : int
            The tile's number in its stack.

        Returns
        -------
        int or None
            Its row in the list.
        """
        row = int(np.searchsorted(self.tiles, int(tile)))
        return row if row < len(self.tiles) and self.tiles[row] == int(tile) else None


def shown_text(n_shown: int, n_selected: int) -> str:
    """The gallery's count line: "1,000 of 1,000 shown".

    Parameters
    ----------
    n_shown : int
        Thumbnails listed.
    n_selected : int
        Tiles selected.

    Returns
    -------
    str
        The line.
    """
    return f"{n_shown:,} of {n_selected:,} shown"


class GalleryWidget(DockWidget):
    """The "Selected tiles" dock: thumbnails of the tiles selected in a map (see the module's docstring).

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it when it opens the dock).
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        _GALLERIES.add(self)
        self.link = None  # the map and tile stack shown (crosslink.MapTileLink)
        self.n_selected = 0
        self._watched_layers: list = []
        self.title = QLabel("Select points in the map to see their tiles here.")
        self.title.setWordWrap(True)
        self.count = QLabel("")
        self.count.setToolTip(
            f"Selected tiles listed here (at most {MAX_SHOWN:,}, the first by tile number)."
        )
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(MIN_SIZE, MAX_SIZE)
        self.size_slider.setValue(DEFAULT_SIZE)
        self.size_slider.setToolTip("Size of the thumbnails.")
        self.model = GalleryModel(self)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setWrapping(True)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(2000)
        self.view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.view.setToolTip("")  # each thumbnail has its own: tile number and annotation
        self._apply_size(DEFAULT_SIZE)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(50)
        self._redraw_timer.timeout.connect(self.model.redraw)

        head = QHBoxLayout()
        head.addWidget(self.count, 1)
        head.addWidget(QLabel("Size"))
        head.addWidget(self.size_slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(head)
        layout.addWidget(self.view, 1)
        self.setMinimumHeight(160)

        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        self.size_slider.valueChanged.connect(self.set_thumbnail_size)
        QTimer.singleShot(
            0, self._show_active_map
        )  # opened from the Plugins menu: the current selection

    def sizeHint(self):  # noqa: N802 - Qt's name
        """The dock's preferred size.

        Returns
        -------
        QSize
            320 x 420 pixels.
        """
        return QSize(320, 420)

    # -- what is shown ----------------------------------------------------------
    def show_tiles(self, link: MapTileLink, tile_indices: Sequence[int]) -> None:
        """Show the tiles ``tile_indices`` of ``link``'s stack (its map's selection).

        Parameters
        ----------
        link : MapTileLink
            The map and its tiles.
        tile_indices : iterable of int
            The selected tiles; the first ``MAX_SHOWN`` are listed.
        """
        tiles = np.unique(np.asarray(list(tile_indices), dtype=int))
        self.n_selected = len(tiles)
        if link is not self.link:
            self._watch(link)
        self.link = link
        shown = tiles[:MAX_SHOWN]
        source = None
        if len(shown):
            source = TileSource(channel_layers(self.viewer.layers, link.tiles_layer))
        self.model.set_tiles(shown, source, self.describe)
        self.count.setText(shown_text(len(shown), len(tiles)))
        self.title.setText(
            f"Tiles selected in {link.map_layer.name!r}. Click one to show it in the stack; "
            "hover for its name."
            if len(tiles)
            else f"No points selected in {link.map_layer.name!r}."
        )
        self._bring_forward(len(tiles) > 0)

    def _bring_forward(self, has_tiles: bool) -> None:
        """Tabbed with the Annotate map dock: the gallery in front while it shows tiles, the
        Annotate map dock (its legend and naming) in front when the selection is empty."""
        own = self.parent()
        annotate = dock_of(getattr(self.viewer, "window", None), ANNOTATE_WIDGET, shown=False)
        main = None if own is None else own.parent()
        if annotate is None or not hasattr(main, "tabifiedDockWidgets"):
            return
        if annotate in main.tabifiedDockWidgets(own):
            (own if has_tiles else annotate).raise_()

    def clear(self) -> None:
        """Show nothing (the map or its tiles were removed)."""
        self._watch(None)
        self.link = None
        self.n_selected = 0
        self.model.set_tiles([], None)
        self.count.setText("")
        self.title.setText("Select points in the map to see their tiles here.")

    def describe(self, tile: int) -> str:
        """The tooltip of a thumbnail: tile number, then its name and cluster in the map.

        Parameters
        ----------
        tile : int
            The tile's number in its stack.

        Returns
        -------
        str
            See ``.selection.tile_description``.
        """
        from .selection import tile_description

        map_layer = None if self.link is None else self.link.map_layer
        linked = map_layer is not None and map_layer in self.viewer.layers
        return tile_description(map_layer.features if linked else None, tile)

    def shown_tiles(self) -> np.ndarray:
        """The tile numbers listed, in order.

        Returns
        -------
        numpy.ndarray
            A copy.
        """
        return self.model.tiles.copy()

    def set_thumbnail_size(self, size: int) -> None:
        """Draw the thumbnails ``size`` pixels wide (the Size slider).

        Parameters
        ----------
        size : int
            Pixels.
        """
        self._apply_size(int(size))
        self.model.icon_size = int(size)
        self.model.redraw()

    def _apply_size(self, size: int) -> None:
        self.view.setIconSize(QSize(size, size))
        self.view.setGridSize(QSize(size + 6, size + 6))

    # -- clicks and the stack's slider -------------------------------------------
    def _on_clicked(self, index) -> None:
        tile = self.model.data(index, TILE_ROLE)
        if tile is not None:
            self.go_to(int(tile))

    def go_to(self, tile: int) -> None:
        """Move the stack to ``tile`` and ring its point on the map (the map's selection stays).

        Parameters
        ----------
        tile : int
            The tile's number in its stack.
        """
        if self.link is not None:
            self.link.go_to_tile(int(tile))

    def set_current_tile(self, tile: int) -> None:
        """Mark ``tile``'s thumbnail as the current one (the stack's slider moved to it).

        Parameters
        ----------
        tile : int
            The tile's number in its stack; a tile not listed clears the mark.
        """
        row = self.model.row_of(tile)
        if row is None:
            self.view.clearSelection()
            return
        index = self.model.index(row)
        self.view.blockSignals(True)
        self.view.setCurrentIndex(index)
        self.view.blockSignals(False)
        self.view.scrollTo(index)

    # -- following the layers ---------------------------------------------------
    def _watch(self, link) -> None:
        for layer in self._watched_layers:
            for name in DISPLAY_EVENTS:
                getattr(layer.events, name).disconnect(self._on_display_changed)
        self._watched_layers = []
        if link is None:
            return
        for layer in channel_layers(self.viewer.layers, link.tiles_layer):
            for name in DISPLAY_EVENTS:
                getattr(layer.events, name).connect(self._on_display_changed)
            self._watched_layers.append(layer)

    def _on_display_changed(self, event=None) -> None:
        self._redraw_timer.start()  # once the contrast slider rests a moment

    def _show_active_map(self) -> None:
        if self.link is not None:
            return
        from .crosslink import link_of

        link = link_of(self.viewer, self.viewer.layers.selection.active)
        if link is not None:
            link.show_selection()

    def shutdown(self) -> None:
        """Closed or taken out of its dock: stop following the layers; the next selection docks a new one."""
        _GALLERIES.discard(self)
        self._redraw_timer.stop()
        self._watch(None)


_GALLERIES: weakref.WeakSet = weakref.WeakSet()
"""Every gallery widget made (napari's ``dock_widgets`` hands out wrapped widgets; this finds ours)."""


def open_gallery(viewer: napari.Viewer, create: bool = True) -> GalleryWidget | None:
    """The viewer's gallery dock (None without a window, or when ``create`` is False and there is none).

    A new gallery is docked on the right without hiding the Train map dock (its progress and loss curve
    stay in view while a training runs): as a tab beside the Annotate map dock when both are open,
    below Annotate map or below Train map when only one of them is, else below the others.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    create : bool, default True
        Dock a new gallery when there is none.

    Returns
    -------
    GalleryWidget or None
        The gallery.
    """
    window = getattr(viewer, "window", None)
    if window is None:
        return None
    widget = None
    if GALLERY_DOCK_NAME in window.dock_widgets:
        widget = next((w for w in list(_GALLERIES) if w.viewer == viewer), None)
    if widget is None and create:
        widget = GalleryWidget(viewer)
        window.add_dock_widget(
            widget, name=GALLERY_DOCK_NAME, area="right", add_vertical_stretch=False
        )
        _place_beside_the_training(window, widget.parent())
    return widget


def _place_beside_the_training(window, dock) -> None:
    """Dock the gallery where it hides neither the training's progress nor the map.

    With the Train map and Annotate map docks both open: as a tab beside Annotate map (shown at
    once; three docks in one column would leave each too little room). With Annotate map alone:
    below it, so its legend and the gallery are both in view. With Train map alone: below it.
    Else where napari put it. The Train map dock keeps the height that shows its progress and
    loss curve.
    """
    main = dock.parent()
    if main is None or not hasattr(main, "tabifyDockWidget") or dock.isFloating():
        return
    annotate = dock_of(window, ANNOTATE_WIDGET)
    train = dock_of(window, TRAIN_WIDGET)
    if train is not None and train.parent() is not main:
        train = None
    below = None
    if annotate is not None and annotate.parent() is main:
        if train is not None:
            main.tabifyDockWidget(annotate, dock)
            dock.show()
            dock.raise_()
            below = annotate
        else:
            main.splitDockWidget(annotate, dock, Qt.Orientation.Vertical)
    elif train is not None:
        main.splitDockWidget(train, dock, Qt.Orientation.Vertical)
        below = dock
    train_widget = window.dock_widgets.get(dock_name(TRAIN_WIDGET))
    needed = getattr(train_widget, "progress_height", None)
    if below is not None and needed is not None and train is not None:
        keep_height(train, below, needed)
