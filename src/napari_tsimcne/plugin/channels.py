"""Which image layers hold the channels of a tile stack, and the stack they make together (no Qt).

Microscopists open multichannel tiles in two ways, and both train as one stack of tiles (N, H, W, C):

- one layer of shape (N, C, H, W), which napari shows with a slider over the channels;
- one single-channel layer (N, H, W) per channel, as napari opens a file with ``channel_axis``
  (each in its own colour, blended additively).

A layer (N, H, W, C) with C on the last axis and RGB layers are taken as they are.
"""

from __future__ import annotations

import numpy as np

MAX_CHANNELS = 8
"""The most channels a stack of single-channel layers, or the channel axis of an (N, C, H, W) layer, may have."""


def channel_axis_of(layer) -> int | None:
    """1 when ``layer`` holds tiles as (N, C, H, W) with 2 to 8 channels; None for every other layout.

    Parameters
    ----------
    layer : napari.layers.Image
        Any image layer.

    Returns
    -------
    int or None
    """
    shape = tuple(getattr(layer.data, "shape", ()))
    if getattr(layer, "rgb", False) or len(shape) != 4:
        return None
    c, h, w = shape[1:]
    if 2 <= c <= MAX_CHANNELS and c < min(h, w) and w > MAX_CHANNELS:
        return 1
    return None


def is_single_channel_stack(layer) -> bool:
    """Whether ``layer`` is a stack (N, H, W) of one channel: a candidate channel of another stack.

    Parameters
    ----------
    layer : napari.layers.Image
        Any image layer.

    Returns
    -------
    bool
    """
    return len(tuple(getattr(layer.data, "shape", ()))) == 3 and not getattr(layer, "rgb", False)


def companion_layers(layers, tiles_layer, exclude: tuple[str, ...] = ()) -> list:
    """The single-channel image layers that could be channels of ``tiles_layer``: same (N, H, W).

    Parameters
    ----------
    layers : sequence of napari layers
        The viewer's layers.
    tiles_layer : napari.layers.Image
        The chosen tile stack.
    exclude : tuple of str
        Layer names never offered (the plugin's own layers).

    Returns
    -------
    list
        In the viewer's order, without ``tiles_layer`` itself; empty unless ``tiles_layer`` is single-channel.
    """
    if not is_single_channel_stack(tiles_layer):
        return []
    shape = tuple(tiles_layer.data.shape)
    return [
        l
        for l in layers
        if l.name != tiles_layer.name  # by name: napari hands plugins proxies of its layers
        and l.name not in exclude
        and hasattr(l, "colormap")
        and is_single_channel_stack(l)
        and tuple(l.data.shape) == shape
    ]


class StackedChannels:
    """Single-channel layers' data seen as one stack (N, H, W, C), read tile by tile (nothing is copied).

    Indexing reads only the tiles asked for; ``np.asarray`` builds the whole stack.

    Parameters
    ----------
    arrays : sequence of array-like
        One (N, H, W) array per channel, all of the same shape.
    """

    def __init__(self, arrays) -> None:
        self.arrays = list(arrays)
        shapes = {tuple(a.shape) for a in self.arrays}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(
                "The channel layers must all be stacks of the same shape (N, H, W); "
                f"got shapes {sorted(shapes)}."
            )
        if len(self.arrays) > MAX_CHANNELS:
            raise ValueError(
                f"At most {MAX_CHANNELS} channel layers can be trained together, not {len(self.arrays)}."
            )
        self.dtype = np.result_type(*[a.dtype for a in self.arrays])
        self.shape = (*next(iter(shapes)), len(self.arrays))
        self.ndim = 4

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index) -> np.ndarray:
        return np.stack([np.asarray(a[index]) for a in self.arrays], axis=-1).astype(
            self.dtype, copy=False
        )

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


def training_tiles(layers):
    """The tile stack that ``layers`` make together, channels last: what the network trains on.

    Parameters
    ----------
    layers : sequence of napari.layers.Image
        One layer ((N, H, W), (N, H, W, C), RGB or (N, C, H, W)), or several single-channel layers
        of the same shape, one per channel.

    Returns
    -------
    array-like
        (N, H, W) or (N, H, W, C): the layer's data, a view of it with the channels moved last, or a
        ``StackedChannels``.

    Raises
    ------
    ValueError
        No layer, or several layers that are not single-channel stacks of one shape.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("Choose a tile layer first.")
    if len(layers) == 1:
        layer = layers[0]
        axis = channel_axis_of(layer)
        return layer.data if axis is None else np.moveaxis(layer.data, axis, -1)
    if not all(is_single_channel_stack(l) for l in layers):
        raise ValueError(
            "Only single-channel stacks (N, H, W) can be combined as channels; "
            f"{', '.join(l.name for l in layers if not is_single_channel_stack(l))} is not one."
        )
    return StackedChannels([l.data for l in layers])
