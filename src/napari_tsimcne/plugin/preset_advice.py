"""Which augmentation preset suits the tiles chosen in napari: the "auto" choice of Train map (no Qt)."""

from __future__ import annotations

import weakref

import numpy as np

from napari_tsimcne.core.recommend import Recommendation, recommend_preset

from .channels import channel_axis_of, training_tiles
from .preview import preview_indices

FALLBACK_PRESET = "microscopy"
"""What "auto" trains with when it cannot judge the tiles."""


class PresetAdvisor:
    """The preset that suits the chosen tile layers, and why; judged once per choice of layers.

    Parameters
    ----------
    max_tiles : int, default 500
        Tiles judged (spread evenly over the stack): a few hundred suffice.
    """

    def __init__(self, max_tiles: int = 500) -> None:
        self.max_tiles = max_tiles
        self._judged: list[tuple[str, tuple, str, weakref.ref]] | None = None
        self._advice: Recommendation | None = None

    def _same_layers(self, layers: list) -> bool:
        """Whether ``layers`` hold the very arrays judged last (same names, shapes and data)."""
        if self._judged is None or len(self._judged) != len(layers):
            return False
        return all(
            (name, shape, dtype) == (l.name, l.data.shape, str(l.data.dtype)) and ref() is l.data
            for (name, shape, dtype, ref), l in zip(self._judged, layers)
        )

    def advice(self, layers: list) -> Recommendation | None:
        """The preset that suits the tiles of ``layers`` and the reason ("auto" picks it).

        Parameters
        ----------
        layers : list of napari.layers.Image
            The tile layer and its ticked channel layers, as ``training_tiles`` takes them.

        Returns
        -------
        Recommendation or None
            None without layers, or when the first is not a stack of tiles this can judge.
        """
        if not layers:
            return None
        data = layers[0].data
        channels_last = data.ndim == 4 and (
            layers[0].rgb or data.shape[-1] <= 8 or channel_axis_of(layers[0]) is not None
        )
        if data.ndim != 3 and not channels_last:
            return None
        if not self._same_layers(layers):
            tiles = training_tiles(layers)
            sample = np.asarray(tiles[preview_indices(len(tiles), self.max_tiles)])
            self._advice = recommend_preset(sample, max_tiles=self.max_tiles)
            self._judged = [(l.name, l.data.shape, str(l.data.dtype), _ref(l.data)) for l in layers]
        return self._advice

    def resolve(self, choice: str, layers: list) -> str:
        """The preset training will use: ``choice``, with "auto" resolved for ``layers``.

        Parameters
        ----------
        choice : str
            A preset name or "auto".
        layers : list of napari.layers.Image
            The chosen layers.

        Returns
        -------
        str
            A preset name; ``FALLBACK_PRESET`` when "auto" cannot judge the tiles.
        """
        if choice != "auto":
            return choice
        advice = self.advice(layers)
        return advice.preset if advice is not None else FALLBACK_PRESET


def _ref(data) -> weakref.ref:
    """A weak reference to a layer's array (a strong one for types that take none)."""
    try:
        return weakref.ref(data)
    except TypeError:
        return lambda: data  # type: ignore[return-value]
