"""Per-channel robust intensity normalisation, computed once and stored with the model.

Microscopy intensities come in any range: 12-bit cameras in uint16, floats
after background subtraction, a few hot pixels at 65535. Each channel is
mapped linearly so that its low percentile goes to 0 and its high percentile
to 1, then clipped. The same mapping is applied to every later tile, so new
tiles are embedded on the scale the network learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .tiles import TileStackError


@dataclass(frozen=True)
class ChannelNormalization:
    """Linear map of each channel's [low, high] onto [0, 1], values outside clipped.

    Computed once by ``fit`` on the training tiles and stored with the model, so new
    tiles are mapped on the same intensity scale.

    Parameters
    ----------
    low : tuple of float
        Per channel, the intensity that becomes 0 (by default the 0.1 percentile).
    high : tuple of float
        Per channel, the intensity that becomes 1 (by default the 99.9 percentile).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return len(self.low)

    @classmethod
    def fit(
        cls,
        stack: np.ndarray,
        percentiles: tuple[float, float] = (0.1, 99.9),
        max_samples: int = 4_000_000,
        seed: int = 0,
    ) -> ChannelNormalization:
        """Percentiles of each channel over (a random sample of) the stack's pixels.

        uint8 stacks map their full 0..255 range: they are display-ready
        already, and stretching them would change the colours a user sees.
        Where the percentiles coincide (sparse data: mostly 0 with a few
        bright pixels), the high end is the 95th percentile of the pixels
        above the background, so a few hot pixels among them do not set the
        scale.

        Parameters
        ----------
        stack : numpy.ndarray
            The tile stack, ``(N, H, W)`` or ``(N, H, W, C)``.
        percentiles : tuple of float
            The percentiles that become 0 and 1.
        max_samples : int
            At most this many pixels are sampled (at random) to compute them.
        seed : int
            Seed of the sample.

        Returns
        -------
        ChannelNormalization
            The normalisation of each channel.

        Raises
        ------
        TileStackError
            When the whole stack is constant, or (for non-uint8 data) one
            channel is constant.
        """
        n_channels = stack.shape[3] if stack.ndim == 4 else 1
        flat = stack.reshape(-1, n_channels)  # a view for a contiguous stack
        if _is_constant(flat):  # reads only the first chunk of a normal stack
            value = flat[0].tolist()
            raise TileStackError(
                f"Every pixel of every tile has the same value ({value[0] if n_channels == 1 else value}): "
                "the stack carries no information to learn from. Check that the right layer or file was loaded."
            )
        if stack.dtype == np.uint8:  # no sample needed: a memory-mapped stack is not read here
            return cls(low=(0.0,) * n_channels, high=(255.0,) * n_channels)
        sample = flat
        if flat.shape[0] > max_samples:
            # with replacement: choice(replace=False) would allocate memory in proportion to the whole stack
            rows = np.sort(np.random.default_rng(seed).integers(0, flat.shape[0], max_samples))
            sample = flat[rows]
        lows, highs = [], []
        for ch in range(
            n_channels
        ):  # one channel at a time: a float64 copy of one channel's sample at most
            a, b = (float(v) for v in np.percentile(sample[:, ch].astype(np.float64), percentiles))
            if not b > a:
                a, b = _sparse_range(sample[:, ch], flat[:, ch], a)
                if not b > a:
                    raise TileStackError(
                        f"Channel {ch} is constant ({a:g}) across the whole stack; it carries no information. "
                        "Drop that channel before training."
                    )
            lows.append(a)
            highs.append(b)
        return cls(low=tuple(lows), high=tuple(highs))

    def to_dict(self) -> dict:
        """The normalisation as a plain dict (what a model file stores).

        Returns
        -------
        dict
            ``{"low": [...], "high": [...]}``.
        """
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, d: dict) -> ChannelNormalization:
        """The normalisation stored by ``to_dict``.

        Parameters
        ----------
        d : dict
            With ``"low"`` and ``"high"`` lists.

        Returns
        -------
        ChannelNormalization
            The normalisation.
        """
        return cls(low=tuple(float(v) for v in d["low"]), high=tuple(float(v) for v in d["high"]))

    def scale_shift(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) of shape (1, C, 1, 1) with ``normalised = raw * scale + shift``.

        Parameters
        ----------
        device : torch.device or str
            Where the tensors are made.

        Returns
        -------
        tuple of torch.Tensor
            ``scale`` and ``shift``, float32.
        """
        lo = torch.tensor(self.low, dtype=torch.float32, device=device)
        hi = torch.tensor(self.high, dtype=torch.float32, device=device)
        scale = 1.0 / (hi - lo)
        return scale.view(1, -1, 1, 1), (-lo * scale).view(1, -1, 1, 1)

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalise a raw (B, C, H, W) batch to float32 in [0, 1].

        float64 input is scaled in float64, so values beyond float32's range
        (1e39 and up) are clipped instead of turning into NaN.

        Parameters
        ----------
        batch : torch.Tensor
            Raw tiles, shape ``(B, C, H, W)``, any numeric dtype.

        Returns
        -------
        torch.Tensor
            float32 tiles, values in [0, 1].
        """
        if batch.dtype == torch.float64:
            lo = torch.tensor(self.low, dtype=torch.float64, device=batch.device).view(1, -1, 1, 1)
            hi = torch.tensor(self.high, dtype=torch.float64, device=batch.device).view(1, -1, 1, 1)
            return ((batch - lo) / (hi - lo)).clamp_(0.0, 1.0).float()
        scale, shift = self.scale_shift(batch.device)
        return (batch.float() * scale + shift).clamp_(0.0, 1.0)


def _is_constant(pixels: np.ndarray, chunk: int = 1 << 20) -> bool:
    """True when all ``pixels`` (rows x channels) hold one value; stops at the first chunk that differs."""
    first = pixels[:1]
    for start in range(0, pixels.shape[0], chunk):
        if (pixels[start : start + chunk] != first).any():
            return False
    return True


SPARSE_PERCENTILE = 95.0
"""Percentile of the pixels off the background that sets the range of a sparse channel."""


def _sparse_range(sample: np.ndarray, full: np.ndarray, value: float) -> tuple[float, float]:
    """(low, high) of one channel whose percentiles coincide at the background ``value``.

    The few pixels off the background set the other end: the 95th
    percentile of those above it (or the 5th of those below), from the
    sample, or from the whole channel when the sample holds none. Returns
    ``(value, value)`` for a constant channel.
    """
    for pixels in (sample, full):
        above = pixels[pixels > value]
        if above.size:
            return value, float(np.percentile(above.astype(np.float64), SPARSE_PERCENTILE))
        below = pixels[pixels < value]
        if below.size:
            return float(np.percentile(below.astype(np.float64), 100 - SPARSE_PERCENTILE)), value
    return value, value
