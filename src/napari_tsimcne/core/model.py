"""The t-SimCNE network: a ResNet with a small-tile stem and an MLP projection head.

Following SimCLR's CIFAR variant (and t-SimCNE), the stem is a 3x3
convolution with stride 1 and no max-pooling, so tiles of 28 to 64 pixels
keep their detail. The number of input channels follows the data. The head
maps the 512 backbone features through 1024 hidden units to the output: 128
dimensions for pre-training, then 2 (or 3) for the map.

Backbones
---------
``"resnet18"``
    The paper's network: blocks (2, 2, 2, 2), stem stride 1.
``"resnet10"``
    One block per stage: about half the computation of ResNet-18.
``"resnet18-s2"``
    ResNet-18 whose stem has stride 2. A small tile's full-resolution layers
    are where a CIFAR-style ResNet spends most of its time; halving the
    resolution in the stem makes every later layer four times cheaper. This
    is the network chosen when training runs on a CPU (see
    ``napari_tsimcne.core.cpu``).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones import BACKBONES
from .distributed import BatchNorm2d


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (a ResNet block).

    Parameters
    ----------
    in_planes : int
        Channels coming in.
    planes : int
        Channels going out.
    stride : int
        2 halves the resolution (first block of a stage), 1 keeps it.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetBackbone(nn.Module):
    """ResNet with a CIFAR-style stem; outputs ``8 * width`` features per tile.

    Parameters
    ----------
    in_channels : int
        Channels of the tiles.
    blocks : tuple of int
        Residual blocks in each of the four stages: ``(2, 2, 2, 2)`` is ResNet-18.
    width : int
        Channels of the first stage (64 in the paper); each later stage doubles it.
    stem_stride : int
        1 keeps the tile's resolution in the stem (as in SimCLR's CIFAR variant), 2 halves it.
    """

    def __init__(
        self,
        in_channels: int,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
            BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        layers, planes_in = [], width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(planes_in, planes, stride=2 if (i > 0 and j == 0) else 1))
                planes_in = planes
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = planes_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.layers(self.stem(x))), 1)


class ProjectionHead(nn.Module):
    """Linear -> ReLU -> Linear; the last layer is what stage 2 replaces.

    Parameters
    ----------
    in_dim : int
        Backbone features per tile.
    hidden_dim : int
        Hidden units (1024 in t-SimCNE).
    out_dim : int
        Output dimensions: 128 to pre-train, 2 or 3 for the map.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 1024, out_dim: int = 128) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True))
        self.last = nn.Linear(hidden_dim, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.last(self.hidden(h))


class TSimCNENet(nn.Module):
    """Standardise -> backbone -> projection head.

    Inputs are tiles in [0, 1] (after ``ChannelNormalization``); the
    per-channel mean and standard deviation of the training tiles are stored
    as buffers so the model carries everything it needs to embed new tiles.

    Parameters
    ----------
    in_channels : int
        Channels of the tiles.
    backbone : str
        A name in ``napari_tsimcne.core.backbones.BACKBONES``: ``"resnet18"``,
        ``"resnet10"`` or ``"resnet18-s2"``.
    width : int
        Channels of the backbone's first stage.
    hidden_dim : int
        Hidden units of the projection head.
    out_dim : int
        Output dimensions (128 while pre-training).

    Raises
    ------
    ValueError
        If ``backbone`` is not known.
    """

    def __init__(
        self,
        in_channels: int,
        backbone: str = "resnet18",
        width: int = 64,
        hidden_dim: int = 1024,
        out_dim: int = 128,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"Unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}.")
        self.register_buffer("input_mean", torch.full((1, in_channels, 1, 1), 0.5))
        self.register_buffer("input_std", torch.full((1, in_channels, 1, 1), 0.25))
        spec = BACKBONES[backbone]
        self.backbone = ResNetBackbone(in_channels, spec.blocks, width, spec.stem_stride)
        self.head = ProjectionHead(self.backbone.out_dim, hidden_dim, out_dim)

    @property
    def out_dim(self) -> int:
        """Output dimensions of the network now (128 while pre-training, then 2 or 3)."""
        return self.head.last.out_features

    def replace_last_layer(self, out_dim: int, generator: torch.Generator | None = None) -> None:
        """Swap the head's last layer for a fresh one with ``out_dim`` outputs.

        The new weights are drawn from N(0, 1), as in t-SimCNE (Böhm, Berens & Kobak,
        ICLR 2023): stage 2 of training starts here.

        Parameters
        ----------
        out_dim : int
            Outputs of the new layer (2 for a map).
        generator : torch.Generator, optional
            Random generator for the weights (for reproducible runs).
        """
        old = self.head.last
        new = nn.Linear(old.in_features, out_dim, device=old.weight.device)
        with torch.no_grad():
            new.weight.normal_(0.0, 1.0, generator=generator)
            new.bias.zero_()
        self.head.last = new

    @torch.no_grad()
    def project_last_layer(self, components: torch.Tensor, mean: torch.Tensor) -> None:
        """Replace the last layer by its composition with a linear projection.

        The new layer outputs ``components @ (old_output - mean)``: with the
        top principal axes of the 128-D output, stage 2 starts from the PCA
        of what pre-training learned instead of from a random projection.

        Parameters
        ----------
        components : torch.Tensor
            Projection, shape ``(new_out_dim, old_out_dim)``, e.g. the top principal axes.
        mean : torch.Tensor
            Mean of the old output, shape ``(old_out_dim,)``, subtracted first.
        """
        old = self.head.last
        new = nn.Linear(old.in_features, components.shape[0], device=old.weight.device)
        new.weight.copy_(components @ old.weight)
        new.bias.copy_(components @ (old.bias - mean))
        self.head.last = new

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of tiles, before the projection head.

        Parameters
        ----------
        x : torch.Tensor
            Normalised tiles, shape ``(B, C, H, W)``, values in [0, 1].

        Returns
        -------
        torch.Tensor
            Shape ``(B, 8 * width)``.
        """
        return self.backbone((x - self.input_mean) / self.input_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
