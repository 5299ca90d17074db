"""Thumbnails of tiles drawn the way napari shows their image layers (no Qt).

A tile is drawn from one or more channels. Each channel has a colormap, contrast limits, a gamma and an
opacity, as napari's image layers do; channels are added up (napari's additive blending) and the sum is
clipped to white. An RGB(A) tile is drawn as colours, with its layer's contrast limits and gamma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .channels import channel_axis_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import napari
    from napari.utils import Colormap

LUT_SIZE = 256
"""Entries of a channel's colour table."""

TWO_CHANNEL_COLORMAPS = ("magenta", "green")
MANY_CHANNEL_COLORMAPS = ("cyan", "yellow", "magenta", "red", "green", "blue")
"""Colormaps of the channels of one multichannel layer (napari's choice when it splits channels)."""


@dataclass(frozen=True, eq=False)
class ChannelDisplay:
    """How one channel is drawn: a colour table from black to the colormap's end, limits, gamma, opacity.

    ``colors`` is (LUT_SIZE, 3) RGB in [0, 1]: entry i is the colour of the value at fraction
    i / (LUT_SIZE - 1) between the contrast limits.
    """

    colors: np.ndarray
    """``(LUT_SIZE, 3)`` RGB colour table in [0, 1], from black to the colormap's end."""
    contrast_limits: tuple[float, float]
    """Values drawn black and at full colour."""
    gamma: float = 1.0
    """Gamma of the layer (1: linear)."""
    opacity: float = 1.0
    """Opacity of the layer, 0 to 1."""

    @classmethod
    def from_colormap(
        cls,
        colormap: str | Colormap,
        contrast_limits: tuple[float, float],
        gamma: float = 1.0,
        opacity: float = 1.0,
    ) -> ChannelDisplay:
        """A channel drawn with a napari colormap (a name such as ``"green"`` or a Colormap object).

        Parameters
        ----------
        colormap : str or napari.utils.Colormap
            The colormap.
        contrast_limits : tuple of float
            Values drawn black and at full colour.
        gamma : float
            Gamma (1: linear).
        opacity : float
            Opacity, 0 to 1.

        Returns
        -------
        ChannelDisplay
            How the channel is drawn.
        """
        from napari.utils.colormaps import ensure_colormap

        colors = np.asarray(ensure_colormap(colormap).map(np.linspace(0.0, 1.0, LUT_SIZE)))
        lo, hi = (float(v) for v in contrast_limits)
        return cls(colors[:, :3].astype(np.float32), (lo, hi), float(gamma), float(opacity))

    @classmethod
    def of_layer(cls, layer: napari.layers.Image) -> ChannelDisplay:
        """How a napari image layer draws its data now: colormap, contrast limits, gamma and opacity.

        Parameters
        ----------
        layer : napari.layers.Image
            A single-channel image layer.

        Returns
        -------
        ChannelDisplay
            How the layer draws its data.
        """
        return cls.from_colormap(
            layer.colormap, tuple(layer.contrast_limits), layer.gamma, layer.opacity
        )


def default_colormaps(n_channels: int) -> tuple[str, ...]:
    """Colormaps for the channels of one multichannel layer: grey for one, magenta and green for two.

    Parameters
    ----------
    n_channels : int
        Number of channels.

    Returns
    -------
    tuple of str
        napari colormap names, one per channel.
    """
    if n_channels == 1:
        return ("gray",)
    cycle = TWO_CHANNEL_COLORMAPS if n_channels == 2 else MANY_CHANNEL_COLORMAPS
    return tuple(cycle[i % len(cycle)] for i in range(n_channels))


def shrink(tile: np.ndarray, max_side: int | None) -> np.ndarray:
    """Every k-th pixel of ``tile`` (H, W[, C]) so that neither side exceeds ``max_side`` (None: unchanged).

    Parameters
    ----------
    tile : numpy.ndarray
        One tile.
    max_side : int or None
        Longest side wanted, in pixels.

    Returns
    -------
    numpy.ndarray
        The tile or a strided view of it.
    """
    if max_side is None:
        return tile
    step = int(math.ceil(max(tile.shape[0], tile.shape[1]) / max(int(max_side), 1)))
    return tile[::step, ::step] if step > 1 else tile


def _unit(values: np.ndarray, contrast_limits: tuple[float, float], gamma: float) -> np.ndarray:
    lo, hi = contrast_limits
    out = (np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(max(hi - lo, 1e-12))
    np.clip(out, 0.0, 1.0, out=out)
    if gamma != 1.0:
        np.power(out, np.float32(gamma), out=out)
    return out


def render_channels(planes: np.ndarray, channels: Sequence[ChannelDisplay]) -> np.ndarray:
    """Blend channels additively: ``planes`` (H, W) or (H, W, C), one ``ChannelDisplay`` per channel.

    Parameters
    ----------
    planes : numpy.ndarray
        One tile's channels, ``(H, W)`` or ``(H, W, C)``.
    channels : sequence of ChannelDisplay
        How each channel is drawn.

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)`` RGB image.
    """
    planes = np.asarray(planes)
    if planes.ndim == 2:
        planes = planes[..., None]
    channels = list(channels)
    if planes.ndim != 3 or planes.shape[-1] != len(channels):
        raise ValueError(
            f"Expected (H, W, C) with C = {len(channels)} channels, got shape {planes.shape}."
        )
    acc = np.zeros(planes.shape[:2] + (3,), dtype=np.float32)
    for i, ch in enumerate(channels):
        unit = _unit(planes[..., i], ch.contrast_limits, ch.gamma)
        index = np.rint(unit * (LUT_SIZE - 1)).astype(np.intp)
        acc += ch.colors[index] * np.float32(ch.opacity)
    return _to_uint8(acc)


def render_in_layer_colours(planes: np.ndarray, layers: Sequence) -> np.ndarray:
    """A normalised multichannel image (values in [0, 1]) as RGB, each channel in its layer's colour.

    Parameters
    ----------
    planes : numpy.ndarray
        ``(H, W, C)``, for example a preview mosaic of normalised tiles.
    layers : sequence of napari.layers.Image
        The layers of the C channels; when their number differs from C, napari's default
        channel colours are used.

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)`` RGB image.
    """
    n = planes.shape[-1]
    colormaps = [layer.colormap for layer in layers] if len(layers) == n else default_colormaps(n)
    return render_channels(planes, [ChannelDisplay.from_colormap(c, (0.0, 1.0)) for c in colormaps])


def render_rgb(
    tile: np.ndarray, contrast_limits: tuple[float, float], gamma: float = 1.0
) -> np.ndarray:
    """An RGB(A) tile (H, W, 3|4) as napari draws an RGB layer; alpha darkens towards black.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(H, W, 3)`` or ``(H, W, 4)``.
    contrast_limits : tuple of float
        Values drawn black and at full colour.
    gamma : float
        Gamma (1: linear).

    Returns
    -------
    numpy.ndarray
        uint8 ``(H, W, 3)``.
    """
    tile = np.asarray(tile)
    if tile.ndim != 3 or tile.shape[-1] not in (3, 4):
        raise ValueError(f"Expected an RGB(A) tile (H, W, 3|4), got shape {tile.shape}.")
    rgb = _unit(tile[..., :3], contrast_limits, gamma)
    if tile.shape[-1] == 4:
        rgb *= _unit(tile[..., 3:], contrast_limits, 1.0)
    return _to_uint8(rgb)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    np.clip(unit, 0.0, 1.0, out=unit)
    return np.rint(unit * 255).astype(np.uint8)


def render_thumbnail(
    planes: np.ndarray,
    channels: Sequence[ChannelDisplay],
    rgb: bool = False,
    max_side: int | None = None,
) -> np.ndarray:
    """One tile as an RGB uint8 (h, w, 3) thumbnail, at most ``max_side`` pixels a side.

    Parameters
    ----------
    planes : numpy.ndarray
        The tile: (H, W) for one channel, (H, W, C) for C channels, or (H, W, 3|4) colours when ``rgb``.
    channels : sequence of ChannelDisplay
        One per channel (for ``rgb``: one, whose contrast limits and gamma apply to all colours).
    rgb : bool, default False
        Whether the tile holds colours rather than channels.
    max_side : int or None, default None
        Take every k-th pixel so that the thumbnail is at most this wide and high (None: full size).

    Returns
    -------
    numpy.ndarray
        uint8 (h, w, 3).
    """
    planes = shrink(np.asarray(planes), max_side)
    if rgb:
        ch = list(channels)[0]
        return render_rgb(planes, ch.contrast_limits, ch.gamma)
    return render_channels(planes, channels)


CHANNEL_LAYERS_KEY = "tsimcne_channel_layers"
"""Tile-layer metadata: names of the single-channel layers that together are the tiles' channels."""


def channel_layers(layers: Iterable[napari.layers.Layer], tiles_layer: napari.layers.Image) -> list:
    """The image layers that together show ``tiles_layer``'s tiles on the canvas, in the viewer's order.

    The names in ``tiles_layer.metadata["tsimcne_channel_layers"]`` when set; else, for a single-channel
    stack, ``tiles_layer`` with every visible single-channel image layer of the same shape that napari adds
    onto it (additive blending: how a file opened with one layer per channel is shown); else
    ``tiles_layer`` alone.

    Parameters
    ----------
    layers : sequence of napari.layers.Layer
        The viewer's layers.
    tiles_layer : napari.layers.Image
        The layer of the tile stack.

    Returns
    -------
    list of napari.layers.Image
        The layers, bottom first.
    """
    named = tiles_layer.metadata.get(CHANNEL_LAYERS_KEY)
    if named:
        found = [l for l in layers if l.name in set(named)]
        if found:
            return found
    rgb = bool(getattr(tiles_layer, "rgb", False))
    shape = tuple(tiles_layer.data.shape)
    if rgb or len(shape) != 3:
        return [tiles_layer]
    return [
        l
        for l in layers
        if l == tiles_layer
        or (
            l.visible
            and not getattr(l, "rgb", True)
            and getattr(l, "blending", "") == "additive"
            and tuple(getattr(l.data, "shape", ())) == shape
            and hasattr(l, "colormap")
        )
    ]


class TileSource:
    """Where a gallery's pixels come from: image layers of a tile stack (N, H, W[, C]) and how napari draws them.

    ``layers``: one multichannel or RGB layer, or several single-channel layers (one per channel). The
    display settings are read from the layers on every ``thumbnail``, so thumbnails follow changes of
    contrast limits and colormaps.

    Parameters
    ----------
    layers : sequence of napari.layers.Image
        One multichannel or RGB layer, or one single-channel layer per channel.

    Raises
    ------
    ValueError
        If ``layers`` is empty.
    """

    def __init__(self, layers) -> None:
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("A tile source needs at least one image layer.")
        self.rgb = len(self.layers) == 1 and bool(getattr(self.layers[0], "rgb", False))
        # (N, C, H, W), as napari shows a stack with a channel slider
        self.channel_axis = channel_axis_of(self.layers[0]) if len(self.layers) == 1 else None

    def __len__(self) -> int:
        return int(self.layers[0].data.shape[0])

    def planes(self, tile: int) -> np.ndarray:
        """The channels of ``tile``: (H, W), (H, W, C) or RGB (H, W, 3|4).

        Parameters
        ----------
        tile : int
            Index of the tile in the stack.

        Returns
        -------
        numpy.ndarray
            Its pixels, channels last.
        """
        if len(self.layers) == 1:
            planes = np.asarray(self.layers[0].data[int(tile)])
            return planes if self.channel_axis is None else np.moveaxis(planes, 0, -1)
        return np.stack([np.asarray(l.data[int(tile)]) for l in self.layers], axis=-1)

    def channels(self) -> list[ChannelDisplay]:
        """One ``ChannelDisplay`` per channel, as the layers draw them now.

        Returns
        -------
        list of ChannelDisplay
            How each channel is drawn.
        """
        if len(self.layers) > 1 or self.rgb:
            return [ChannelDisplay.of_layer(l) for l in self.layers]
        layer = self.layers[0]
        shape = layer.data.shape
        n = 1 if len(shape) == 3 else int(shape[1] if self.channel_axis else shape[-1])
        if n == 1:
            return [ChannelDisplay.of_layer(layer)]
        limits = tuple(layer.contrast_limits)
        return [
            ChannelDisplay.from_colormap(c, limits, layer.gamma, layer.opacity)
            for c in default_colormaps(n)
        ]

    def thumbnail(
        self,
        tile: int,
        max_side: int | None = None,
        channels: Sequence[ChannelDisplay] | None = None,
    ) -> np.ndarray:
        """``tile`` drawn as uint8 (h, w, 3), as napari draws it on the canvas.

        Parameters
        ----------
        tile : int
            Index of the tile in the stack.
        max_side : int, optional
            Longest side of the thumbnail in pixels (None: full size).
        channels : sequence of ChannelDisplay, optional
            How each channel is drawn, when already known (``channels``); read from the
            layers otherwise.

        Returns
        -------
        numpy.ndarray
            uint8 ``(h, w, 3)`` RGB image.
        """
        return render_thumbnail(
            self.planes(tile),
            self.channels() if channels is None else channels,
            self.rgb,
            max_side,
        )
