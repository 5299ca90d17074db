"""The tile stack held as one tensor, from which training batches are gathered.

Tiles stay in (N, H, W, C) order: a gathered batch permuted to (B, C, H, W)
is then already in channels-last memory layout, which is what convolutions
on a GPU want. uint8 stacks are kept as they are (for a contiguous CPU stack,
including a read-only ``np.load(..., mmap_mode="r")`` memory map, without any
copy) and normalised batch by batch in ``TileStore.gather``; other dtypes
are normalised once, in chunks of at most 64 MiB of input, and kept as
float16 (one copy of 2 bytes per pixel). A stack too large for GPU memory
stays in pinned host memory and each batch is copied over asynchronously.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from .normalization import ChannelNormalization
from .tiles import tiles_per_chunk

_CHUNK_BYTES = 64 << 20
"""Input bytes normalised at a time, so the float32 intermediate stays small."""


class TileStore:
    """Tiles of one stack, normalised to [0, 1] on access.

    uint8 stacks are kept as they are (normalised per batch); other dtypes are normalised
    once into float16. The tiles live on the device when they fit, else in (pinned) CPU
    memory and are copied per batch.

    Parameters
    ----------
    stack : numpy.ndarray
        The tile stack, ``(N, H, W)`` or ``(N, H, W, C)`` (a memory map is fine).
    normalization : ChannelNormalization
        The intensity scale of each channel.
    device : torch.device
        Where batches are returned.
    on_device : bool, optional
        Keep all tiles on the device (None: when they fit).
    """

    def __init__(
        self,
        stack: np.ndarray,
        normalization: ChannelNormalization,
        device: torch.device,
        *,
        on_device: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.normalization = normalization
        self.n_tiles = int(stack.shape[0])
        nhwc = stack if stack.ndim == 4 else stack[..., None]
        self.raw_uint8 = nhwc.dtype == np.uint8
        bytes_needed = nhwc[:1].size * self.n_tiles * (1 if self.raw_uint8 else 2)
        if on_device is None:
            on_device = self.device.type == "cpu" or _fits_on_device(bytes_needed, self.device)
        self.on_device = bool(on_device)
        target = self.device if self.on_device else torch.device("cpu")
        pin = not self.on_device and self.device.type == "cuda"
        if self.raw_uint8 and target.type == "cpu" and not pin:
            self.data = _as_tensor(nhwc)  # no copy for a contiguous stack
        else:
            dtype = torch.uint8 if self.raw_uint8 else torch.float16
            self.data = torch.empty(nhwc.shape, dtype=dtype, device=target, pin_memory=pin)
            step = tiles_per_chunk(nhwc, _CHUNK_BYTES)
            for start in range(0, self.n_tiles, step):
                chunk = _as_tensor(nhwc[start : start + step])
                if not self.raw_uint8:
                    chunk = (
                        normalization.apply(chunk.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).half()
                    )
                self.data[start : start + step].copy_(chunk)
        self._scale, self._shift = normalization.scale_shift(self.device)

    def __len__(self) -> int:
        return self.n_tiles

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """Tiles ``index`` as float32 (B, C, H, W) in [0, 1] on the device (channels-last layout).

        Parameters
        ----------
        index : torch.Tensor
            Tile indices (int64).

        Returns
        -------
        torch.Tensor
            The normalised tiles.
        """
        batch = self.data.index_select(0, index.to(self.data.device))
        if batch.device != self.device:
            batch = batch.pin_memory() if self.device.type == "cuda" else batch
            batch = batch.to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2)
        if self.raw_uint8:
            return (batch.float() * self._scale + self._shift).clamp_(0.0, 1.0)
        return batch.float()

    def evenly_spaced(self, max_tiles: int) -> torch.Tensor:
        """Up to ``max_tiles`` tiles spread evenly over the stack, as ``gather`` returns them.

        Parameters
        ----------
        max_tiles : int
            At most this many tiles.

        Returns
        -------
        torch.Tensor
            The normalised tiles.
        """
        return self.gather(torch.linspace(0, self.n_tiles - 1, min(self.n_tiles, max_tiles)).long())

    def iter_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches over all tiles, in order (for embedding).

        Parameters
        ----------
        batch_size : int
            Tiles per batch (the last batch may be smaller).

        Yields
        ------
        tuple of torch.Tensor
            The indices of a batch and its normalised tiles.
        """
        for start in range(0, self.n_tiles, batch_size):
            idx = torch.arange(start, min(start + batch_size, self.n_tiles))
            yield idx, self.gather(idx)


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing ``array``'s memory where it is contiguous (copied only where not).

    Read-only arrays (memory maps) are shared too: the store never writes to its tiles.
    Big-endian data (from some TIFF or FITS files) is converted to the native byte order.
    """
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    array = np.ascontiguousarray(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _fits_on_device(nbytes: int, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < 0.5 * free
