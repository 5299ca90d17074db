"""Where the plugin's layers go on the canvas: never over the user's images, and in view when they appear.

napari draws every layer in one world coordinate system. The user's tile stack (and any image it was cut
from) sits at the origin; everything the plugin adds (the map, the augmentation preview, tiles cut from
an image) is placed in a free column to the right of all that is already there, and the camera is fitted
to a map when it first appears (in 2D and in 3D). Only napari's public API (``layer.extent``, the camera). No Qt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import napari

GAP_FRACTION = 0.1
"""Space left between regions, as a fraction of the size of the thing placed (at least 2 world units)."""

OVERLAY_NAMES = ("current tile", "selected tiles outline", "lasso")
"""Plugin layers drawn on top of others on purpose (a ring on the map, outlines on the image, the lasso)."""


def extent_2d(layer: napari.layers.Layer) -> np.ndarray | None:
    """The layer's world extent in the two displayed (last) axes: [[top, left], [bottom, right]], or None if empty.

    Parameters
    ----------
    layer : napari.layers.Layer
        A layer of the viewer.

    Returns
    -------
    numpy.ndarray or None
        ``(2, 2)`` extent in world coordinates.
    """
    try:
        ext = np.asarray(layer.extent.world, dtype=float)[:, -2:]
    except (AttributeError, ValueError):
        return None
    if not np.all(np.isfinite(ext)) or np.any(ext[1] < ext[0]):
        return None
    if (
        hasattr(layer, "data")
        and hasattr(layer.data, "__len__")
        and not isinstance(layer.data, np.ndarray)
        and len(layer.data) == 0
    ):
        return None  # e.g. an empty Shapes layer
    return ext


def occupied_extent(
    layers: Iterable[napari.layers.Layer], exclude: Iterable[napari.layers.Layer] = ()
) -> np.ndarray | None:
    """The union of the 2D extents of ``layers`` (minus overlays and ``exclude``), or None when nothing is there.

    Parameters
    ----------
    layers : sequence of napari.layers.Layer
        The viewer's layers.
    exclude : sequence of napari.layers.Layer
        Layers not taken into account.

    Returns
    -------
    numpy.ndarray or None
        ``(2, 2)`` extent [[top, left], [bottom, right]].
    """
    boxes = []
    for layer in layers:
        if layer.name in OVERLAY_NAMES or any(layer == other for other in exclude):
            continue
        ext = extent_2d(layer)
        if ext is not None:
            boxes.append(ext)
    if not boxes:
        return None
    boxes = np.asarray(boxes)
    return np.array([boxes[:, 0].min(0), boxes[:, 1].max(0)])


def free_column_origin(
    layers: Iterable[napari.layers.Layer],
    size: float,
    exclude: Iterable[napari.layers.Layer] = (),
) -> tuple[float, float]:
    """(row, column) of the top-left corner of a free region right of everything in ``layers``.

    Parameters
    ----------
    layers : sequence of napari.layers.Layer
        The viewer's layers.
    size : float
        Side of the region wanted, in world units.
    exclude : sequence of napari.layers.Layer
        Layers not taken into account (e.g. the one being placed).

    Returns
    -------
    tuple of float
        Top-left corner of the free region.
    """
    occupied = occupied_extent(layers, exclude)
    if occupied is None:
        return 0.0, 0.0
    gap = max(2.0, GAP_FRACTION * float(size))
    return float(occupied[0, 0]), float(occupied[1, 1] + gap)


def overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two 2D extents [[top, left], [bottom, right]] overlap (touching edges do not count).

    Parameters
    ----------
    a, b : numpy.ndarray
        ``(2, 2)`` extents.

    Returns
    -------
    bool
        True when they share an area.
    """
    return bool(np.all(a[0] < b[1]) and np.all(b[0] < a[1]))


def visible_extent(
    camera_center: Sequence[float], zoom: float, canvas_size: Sequence[int]
) -> np.ndarray:
    """The world region [[top, left], [bottom, right]] the 2D camera shows on a canvas of (height, width) pixels.

    Parameters
    ----------
    camera_center : sequence of float
        The camera's centre; the last two values are (row, column).
    zoom : float
        Screen pixels per world unit.
    canvas_size : tuple of int
        ``(height, width)`` of the canvas in screen pixels.

    Returns
    -------
    numpy.ndarray
        ``(2, 2)`` extent.
    """
    center = np.asarray(camera_center, dtype=float)[-2:]
    half = np.asarray(canvas_size, dtype=float)[:2] / (2.0 * float(zoom))
    return np.array([center - half, center + half])


def extent_3d(layer: napari.layers.Layer) -> np.ndarray | None:
    """The layer's world extent in the last three axes (a 2D layer lies in the plane 0), or None if empty.

    Parameters
    ----------
    layer : napari.layers.Layer
        A layer of the viewer.

    Returns
    -------
    numpy.ndarray or None
        ``(2, 3)`` extent [[plane, top, left], [plane, bottom, right]] in world coordinates.
    """
    if extent_2d(layer) is None:
        return None
    return _last_three_axes(np.asarray(layer.extent.world, dtype=float))


def _last_three_axes(positions: np.ndarray) -> np.ndarray:
    """The last three columns of ``positions``; a 2D layer's get the plane 0 in front."""
    positions = positions[:, -3:]
    if positions.shape[1] < 3:
        positions = np.hstack([np.zeros((len(positions), 3 - positions.shape[1])), positions])
    return positions


def box_corners(extent: np.ndarray) -> np.ndarray:
    """The 8 corners of a 3D box [[plane, top, left], [plane, bottom, right]].

    Parameters
    ----------
    extent : numpy.ndarray
        ``(2, 3)`` extent.

    Returns
    -------
    numpy.ndarray
        ``(8, 3)`` corners.
    """
    lo, hi = np.asarray(extent, dtype=float)
    return np.array(
        [
            [(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]]
            for i in (0, 1)
            for j in (0, 1)
            for k in (0, 1)
        ]
    )


def world_points_3d(layer: napari.layers.Layer) -> np.ndarray | None:
    """What must be in view of a layer in 3D: a map's points (world plane, row, column), else its box's corners.

    Parameters
    ----------
    layer : napari.layers.Layer
        A layer of the viewer.

    Returns
    -------
    numpy.ndarray or None
        ``(M, 3)`` world positions; None for an empty layer.
    """
    ext = extent_3d(layer)
    if ext is None:
        return None
    data = getattr(layer, "data", None)
    if (
        isinstance(data, np.ndarray)
        and data.ndim == 2
        and hasattr(layer, "size")  # points (an image's data is pixels, not positions)
        and np.allclose(np.asarray(layer.affine.affine_matrix), np.eye(data.shape[1] + 1))
        and np.allclose(np.asarray(layer.rotate), np.eye(data.shape[1]))
        and np.allclose(np.asarray(layer.shear), 0)
    ):
        return _last_three_axes(data * np.asarray(layer.scale) + np.asarray(layer.translate))
    return box_corners(ext)


def screen_axes(view_direction: Sequence[float], up_direction: Sequence[float]) -> np.ndarray:
    """Unit vectors (up, right, into the screen) of a 3D camera, in world (plane, row, column) order.

    Parameters
    ----------
    view_direction : sequence of float
        The camera's view direction (napari's ``camera.view_direction``).
    up_direction : sequence of float
        The direction shown upwards on the canvas (``camera.up_direction``).

    Returns
    -------
    numpy.ndarray
        ``(3, 3)``: rows up, right, view (orthonormal).
    """
    view = np.asarray(view_direction, dtype=float)
    view = view / np.linalg.norm(view)
    up = np.asarray(up_direction, dtype=float)
    up = up - np.dot(up, view) * view
    up = up / np.linalg.norm(up)
    return np.array([up, np.cross(view, up), view])


def fit_camera(
    viewer: napari.Viewer, layers: Iterable[napari.layers.Layer], margin: float = 0.05
) -> None:
    """Centre the camera on ``layers`` and zoom so that they fill the canvas but for ``margin``.

    In 2D the camera looks at the layers' (row, column) box. In 3D it keeps its angles and frames the
    layers as the camera sees them (every point of a map, the box of other layers), centred in depth too,
    so that turning the view turns the layers about their middle. (napari's ``fit_to_view(layers=...)`` fails for a 2D
    layer beside a 3D stack, so the camera is set here.)

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    layers : sequence of napari.layers.Layer
        The layers to show.
    margin : float
        Fraction of the canvas left free around them.
    """
    canvas = np.asarray(viewer.canvas.size, dtype=float)[:2]
    camera = _camera(viewer)
    if viewer.dims.ndisplay == 3:
        shown = [w for w in (world_points_3d(layer) for layer in layers) if w is not None]
        if not shown:
            return
        axes = screen_axes(camera.view_direction, camera.up_direction)
        on_screen = np.concatenate(shown) @ axes.T  # (up, right, depth) of each point
        lo, hi = on_screen.min(0), on_screen.max(0)
        camera.center = tuple(((lo + hi) / 2) @ axes)
        size = np.maximum(hi[:2] - lo[:2], 1e-9)
        camera.zoom = float(np.min(canvas * (1.0 - 2 * margin) / size))
        return
    boxes = [e for e in (extent_2d(layer) for layer in layers) if e is not None]
    if not boxes:
        return
    boxes = np.asarray(boxes)
    lo, hi = boxes[:, 0].min(0), boxes[:, 1].max(0)
    size = np.maximum(hi - lo, 1e-9)
    center = list(camera.center)
    center[-2:] = (lo + hi) / 2
    camera.center = tuple(center)
    camera.zoom = float(np.min(canvas * (1.0 - 2 * margin) / size))


def is_in_view(viewer: napari.Viewer, layer: napari.layers.Layer) -> bool:
    """Whether all of the layer is inside what the camera shows (in 3D: as the camera sees it, ``world_points_3d``).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    layer : napari.layers.Layer
        A layer of the viewer.

    Returns
    -------
    bool
        True when all of the layer is visible.
    """
    camera = _camera(viewer)
    if viewer.dims.ndisplay == 3:
        world = world_points_3d(layer)
        if world is None:
            return True
        axes = screen_axes(camera.view_direction, camera.up_direction)[:2]
        offsets = (world - np.asarray(camera.center, dtype=float)[-3:]) @ axes.T
        half = np.asarray(viewer.canvas.size, dtype=float)[:2] / (2.0 * float(camera.zoom))
        return bool(np.all(np.abs(offsets) <= half * (1 + 1e-6)))
    ext = extent_2d(layer)
    if ext is None:
        return True
    shown = visible_extent(camera.center, camera.zoom, viewer.canvas.size)
    return bool(np.all(ext[0] >= shown[0]) and np.all(ext[1] <= shown[1]))


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
