"""Which augmentation preset suits a stack: read off its dtype, channels, background and intensities.

The choice matters most for quantitative fluorescence: there the amount of
each stain in a cell is a measurement (DNA content, marker levels) and the
map should keep it, while for colour pictures of stained slides brightness
and colour vary with staining and should be ignored. The signs used hold for
microscopy in general rather than for one data set:

* 8-bit images with three channels are colour pictures (stained slides,
  brightfield, photographs); 8-bit data are also usually display-scaled.
* 16-bit and floating-point images come from a camera or a detector; where
  most pixels are dark (a background around bright objects, as fluorescence
  records them) and the tiles' total intensity differs clearly from tile to
  tile, intensity carries information the map should keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .normalization import ChannelNormalization

DARK_BACKGROUND = 0.5
"""Share of pixels below a quarter of a channel's range from which a stack counts as dark-field."""
INTENSITY_SPREAD = 1.5
"""Ratio between the 90th and 10th percentile of the tiles' total intensity that counts as a spread."""


@dataclass(frozen=True)
class Recommendation:
    """A preset and the one sentence that says why."""

    preset: str
    """The preset's name (see ``AugmentationSettings.preset``)."""
    reason: str
    """Why, in one sentence for the user."""


def recommend_preset(stack: np.ndarray, max_tiles: int = 2000) -> Recommendation:
    """The augmentation preset that suits ``stack`` (N, H, W) or (N, H, W, C), with the reason.

    Parameters
    ----------
    stack
        The tiles, channels last, in their original dtype.
    max_tiles
        How many evenly spaced tiles to look at (the answer does not need them all).

    Returns
    -------
    Recommendation
        ``"microscopy"`` for colour pictures and display-scaled images, ``"quantitative"`` for
        camera data with a dark background whose tiles differ in intensity.
    """
    n_channels = stack.shape[3] if stack.ndim == 4 else 1
    dtype = np.dtype(stack.dtype)
    if dtype == np.uint8:
        if n_channels == 3:
            return Recommendation(
                "microscopy",
                "8-bit images with 3 channels are colour pictures: shape and colour tell the cells "
                "apart, while brightness and staining vary from slide to slide and are ignored.",
            )
        return Recommendation(
            "microscopy",
            "8-bit images are usually scaled for display, so their brightness is not a measurement; "
            "the map goes by shape and texture.",
        )
    idx = np.unique(np.linspace(0, len(stack) - 1, min(len(stack), max_tiles)).astype(int))
    sample = np.asarray(stack[idx], dtype=np.float64)
    if sample.ndim == 3:
        sample = sample[..., None]
    try:
        norm = ChannelNormalization.fit(sample)
    except ValueError:  # constant data: nothing to recommend for; the training will refuse it
        return Recommendation("microscopy", "The stack holds no variation to judge it by.")
    lo, hi = np.asarray(norm.low), np.asarray(norm.high)
    x = np.clip((sample - lo) / (hi - lo), 0, 1)
    dark = float(np.mean(x < 0.25))
    totals = x.sum((1, 2))  # (tiles, channels)
    p10, p90 = np.percentile(totals, [10, 90], axis=0)
    spread = float(np.max(p90 / np.maximum(p10, 1e-9)))
    bits = f"{dtype.itemsize * 8}-bit" if dtype.kind in "ui" else "Floating-point"
    if dark >= DARK_BACKGROUND and spread >= INTENSITY_SPREAD:
        return Recommendation(
            "quantitative",
            f"{bits} images of bright objects on a dark background ({dark:.0%} of pixels), whose total "
            f"intensity differs {spread:.1f}-fold between tiles: intensity is likely a measurement "
            "(DNA content, marker levels), which this preset keeps.",
        )
    why = (
        f"most pixels are bright ({1 - dark:.0%}), not a dark background"
        if dark < DARK_BACKGROUND
        else f"the tiles' total intensity varies little ({spread:.1f}-fold)"
    )
    return Recommendation(
        "microscopy",
        f"{bits} images, but {why}: the map goes by shape and texture and ignores brightness.",
    )
