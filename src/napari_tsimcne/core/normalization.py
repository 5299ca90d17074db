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
    """Linear map of each channel's [low, high] onto [0, 1]."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def n_channels(self) -> int:
        return len(self.low)

    @classmethod
    def fit(
        cls,
        stack: np.ndarray,
        percentiles: tuple[float, float] = (0.1, 99.9),
        max_samples: int = 4_000_000,
        seed: int = 0,
    ) -> "ChannelNormalization":
        """Percentiles of each channel over (a random sample of) the stack's pixels.

        uint8 stacks map their full 0..255 range: they are display-ready
        already, and stretching them would change the colours a user sees.
        """
        n_channels = stack.shape[3] if stack.ndim == 4 else 1
        if stack.dtype == np.uint8:
            return cls(low=(0.0,) * n_channels, high=(255.0,) * n_channels)
        flat = stack.reshape(-1, n_channels)
        if flat.shape[0] > max_samples:
            rows = np.random.default_rng(seed).choice(flat.shape[0], max_samples, replace=False)
            rows.sort()
            flat = flat[rows]
        lo, hi = np.percentile(flat.astype(np.float64), percentiles, axis=0)
        lows, highs = [], []
        for ch, (a, b) in enumerate(zip(np.atleast_1d(lo), np.atleast_1d(hi))):
            if not b > a:
                cmin, cmax = float(flat[:, ch].min()), float(flat[:, ch].max())
                if not cmax > cmin:
                    raise TileStackError(
                        f"Channel {ch} is constant ({cmin:g}) across the whole stack; it carries no information. "
                        "Drop that channel before training."
                    )
                a, b = cmin, cmax  # sparse channel: percentiles collapse, use the full range
            lows.append(float(a))
            highs.append(float(b))
        return cls(low=tuple(lows), high=tuple(highs))

    def to_dict(self) -> dict:
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, d: dict) -> "ChannelNormalization":
        return cls(low=tuple(float(v) for v in d["low"]), high=tuple(float(v) for v in d["high"]))

    def scale_shift(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) of shape (1, C, 1, 1) with ``normalised = raw * scale + shift``."""
        lo = torch.tensor(self.low, dtype=torch.float32, device=device)
        hi = torch.tensor(self.high, dtype=torch.float32, device=device)
        scale = 1.0 / (hi - lo)
        return scale.view(1, -1, 1, 1), (-lo * scale).view(1, -1, 1, 1)

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalise a raw (B, C, H, W) batch to float32 in [0, 1]."""
        scale, shift = self.scale_shift(batch.device)
        return (batch.float() * scale + shift).clamp_(0.0, 1.0)
