"""The backbones by name, without importing PyTorch (the command line's --help lists them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneSpec:
    """The shape of a ResNet backbone."""

    blocks: tuple[int, ...]
    """Residual blocks in each of the four stages."""
    stem_stride: int = 1
    """Stride of the first 3x3 convolution (1 keeps the tile's full resolution)."""


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec((2, 2, 2, 2)),
    "resnet10": BackboneSpec((1, 1, 1, 1)),
    "resnet18-s2": BackboneSpec((2, 2, 2, 2), stem_stride=2),
}
"""The backbones by name; see ``napari_tsimcne.core.model`` for what each is for."""
