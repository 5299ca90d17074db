"""Data augmentations computed on whole batches, on the model's device.

Augmentations define what the map ignores: whatever they vary, the network
learns to disregard. Each view in a batch draws its own random parameters.
All geometric changes (random resized crop, rotation, flips) are composed
into a single affine warp per view and applied with one ``grid_sample``;
intensity changes follow per view. Inputs and outputs are float tensors of
shape (B, C, H, W) with values in [0, 1].

Presets
-------
``"natural"``
    The t-SimCNE paper's augmentations for natural photographs (Böhm et al.
    2023): random resized crop (scale 0.2 to 1), horizontal flip, colour
    jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, greyscale with p = 0.2.
``"microscopy"`` (default)
    The natural set plus rotations by any angle (multiples of 90 degrees plus
    a random angle, corners filled with the tile's border colour) and
    vertical flips: cells and tissue have no "up" (Nwabufo et al. 2024).
``"quantitative"``
    For quantitative fluorescence, where the amount of each stain is the
    signal (DNA content, marker levels): rotations by any angle, flips and
    mild crops (80 to 100 % of the tile, so a cell's size changes by at most
    about 10 %), no change of brightness, contrast or colour; and three in
    four positive pairs made of views of two different tiles that are
    nearest neighbours in per-channel intensity profile (``neighbor_views``;
    see ``napari_tsimcne.core.neighbors``), the fourth of two views of one
    tile. The map then keeps cells in order of their intensities and sizes,
    and still apart by shape where these agree. ``"fluorescence"`` is
    accepted as an older name for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .presets import PRESET_ALIASES, PRESETS

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


@dataclass(frozen=True)
class AugmentationSettings:
    """Every parameter of the augmentations; see ``preset`` for the named sets.

    Two random views of each tile form a positive pair: what the augmentations vary, the
    map learns to ignore. The set follows SimCLR (Chen et al., ICML 2020) as used by
    t-SimCNE (Böhm, Berens & Kobak, ICLR 2023): random resized crop, flips, colour jitter,
    greyscale; the microscopy default adds rotations and vertical flips (Nwabufo, Böhm,
    Berens & Kobak, 2024). Probabilities are per view. Ranges are sampled uniformly.
    Each field is described below; every field can be given by keyword.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    """Area of the crop as a fraction of the tile (random resized crop)."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Aspect ratio range of the crop (sampled log-uniformly)."""
    rotate_90: bool = True
    """Rotate by a random multiple of 90 degrees."""
    rotation_degrees: float = 180.0
    """Further rotation by an angle in [-d, d] degrees; 0 turns it off."""
    fill: str = "border"
    """What fills the corners a rotation uncovers: 'border' (mean colour of the tile's edge), 'reflection' or 'zeros'."""
    hflip: float = 0.5
    """Probability of a left-right flip."""
    vflip: float = 0.5
    """Probability of an upside-down flip (off in the ``"natural"`` preset)."""
    jitter_p: float = 0.8
    """Probability of applying brightness / contrast / saturation / hue jitter to a view."""
    brightness: float = 0.4
    """Brightness factor in [1 - b, 1 + b] (all channels together)."""
    contrast: float = 0.4
    """Contrast factor in [1 - c, 1 + c] around each channel's mean."""
    saturation: float = 0.4
    """Saturation factor (RGB tiles only)."""
    hue: float = 0.1
    """Hue shift in [-h, h] of a full turn (RGB tiles only)."""
    grayscale_p: float = 0.2
    """Probability of turning an RGB view grey (RGB tiles only)."""
    channel_gain: float = 0.0
    """Independent gain per channel in [1 - g, 1 + g], for multichannel fluorescence."""
    blur_p: float = 0.0
    """Probability of blurring a view with a Gaussian (0: never)."""
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    """Gaussian blur sigma range in pixels, applied with probability ``blur_p``."""
    noise_std: float = 0.0
    """Gaussian noise with a per-view standard deviation in [0, noise_std]."""
    neighbor_views: float = 0.0
    """Fraction of positive pairs whose second view shows one of the tile's nearest neighbours in
    intensity (the tiles with the most similar per-channel intensity profile, see
    ``napari_tsimcne.core.neighbors``) instead of the tile itself. 0 is the papers' method;
    above 0 the map keeps tiles with similar amounts of each stain together, in order."""
    neighbor_k: int = 10
    """How many nearest neighbours in intensity a second view may be drawn from."""
    rgb: bool | None = None
    """Whether the tiles are colour photographs (red, green, blue).

    Saturation, hue and greyscale mix the channels and apply to colour
    images only. ``None`` decides from the stack (``for_stack``):
    3-channel uint8 stacks are colour images; any other stack, including
    3-channel uint16 or float fluorescence, is a set of independent channels
    that are never mixed into one another. Left undecided, no channel is
    mixed.
    """

    @classmethod
    def preset(cls, name: str, **overrides) -> AugmentationSettings:
        """The settings of a named preset, with optional overrides.

        Parameters
        ----------
        name : str
            ``"microscopy"`` (rotations and both flips: orientation carries no meaning),
            ``"natural"`` (photographs: no rotation, no upside-down flip) or
            ``"quantitative"`` (intensities carry meaning: no colour jitter, little cropping,
            second views drawn from neighbours in intensity).
        **overrides
            Fields to change from the preset, e.g. ``noise_std=0.05``.

        Returns
        -------
        AugmentationSettings
            The preset's settings with the overrides applied.

        Raises
        ------
        ValueError
            If ``name`` is not a preset.
        """
        if name == "microscopy":
            base = cls()
        elif name == "natural":
            base = cls(rotate_90=False, rotation_degrees=0.0, vflip=0.0)
        elif PRESET_ALIASES.get(name, name) == "quantitative":
            base = cls(
                crop_scale=(0.8, 1.0),
                jitter_p=0.0,
                brightness=0.0,
                contrast=0.0,
                saturation=0.0,
                hue=0.0,
                grayscale_p=0.0,
                neighbor_views=0.75,
            )
        else:
            raise ValueError(
                f"Unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}."
            )
        return replace(base, **overrides)

    @classmethod
    def coerce(cls, value: str | AugmentationSettings | dict) -> AugmentationSettings:
        """Settings from a preset name, a settings object or a dict of fields.

        Parameters
        ----------
        value : str, AugmentationSettings or dict
            A preset name (see ``preset``), settings (returned as they are) or a dict of
            field names to values (lists become tuples, as read from JSON).

        Returns
        -------
        AugmentationSettings
            The settings.

        Raises
        ------
        ValueError
            If the preset name or a field name is unknown.
        TypeError
            If ``value`` is of another type.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls.preset(value)
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise ValueError(f"Unknown augmentation settings: {sorted(unknown)}")
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        raise TypeError(
            f"augmentations must be a preset name or AugmentationSettings, got {type(value).__name__}"
        )

    def for_stack(self, dtype: DTypeLike, n_channels: int) -> AugmentationSettings:
        """These settings with ``rgb`` decided for a stack of ``dtype`` with ``n_channels``.

        An explicit ``rgb`` is kept; ``None`` becomes True for 3-channel
        uint8 stacks (colour images) and False for everything else.

        Parameters
        ----------
        dtype : numpy dtype or str
            The data type of the tile stack.
        n_channels : int
            Its number of channels.

        Returns
        -------
        AugmentationSettings
            These settings, with ``rgb`` True or False.
        """
        if self.rgb is not None:
            return self
        return replace(self, rgb=bool(n_channels == 3 and np.dtype(dtype) == np.uint8))

    def to_dict(self) -> dict:
        """The fields as a plain dict (what a model file stores).

        Returns
        -------
        dict
            Field names to values; ``coerce`` turns it back into settings.
        """
        return asdict(self)

    def validate(self) -> None:
        """Check that every field is in its range.

        Raises
        ------
        ValueError
            Naming the first field out of range and what it accepts.
        """
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}."
            )
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must be positive and increasing, got {self.crop_ratio}.")
        for name in ("hflip", "vflip", "jitter_p", "grayscale_p", "blur_p"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"{name} is a probability and must lie in [0, 1], got {p}.")
        for name in ("brightness", "contrast", "saturation", "channel_gain"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {v}.")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must lie in [0, 0.5], got {self.hue}.")
        if self.fill not in ("border", "reflection", "zeros"):
            raise ValueError(f"fill must be 'border', 'reflection' or 'zeros', got {self.fill!r}.")
        if not 0 <= self.neighbor_views <= 1:
            raise ValueError(
                f"neighbor_views is a fraction and must lie in [0, 1], got {self.neighbor_views}."
            )
        if (
            isinstance(self.neighbor_k, bool)
            or not isinstance(self.neighbor_k, int)
            or self.neighbor_k < 1
        ):
            raise ValueError(
                f"neighbor_k must be a whole number of at least 1, got {self.neighbor_k!r}."
            )
        if self.rgb not in (None, True, False):
            raise ValueError(
                f"rgb must be True, False or None (decide from the stack), got {self.rgb!r}."
            )
        if self.noise_std < 0 or self.rotation_degrees < 0:
            raise ValueError("noise_std and rotation_degrees must not be negative.")


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (hi - lo) + lo


def _coin(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def affine_matrices(
    n: int,
    height: int,
    width: int,
    s: AugmentationSettings,
    gen: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Random (n, 2, 3) matrices mapping output to input coordinates, in ``affine_grid``'s normalised units.

    input = centre + D^-1 R D diag(w, h) F output, with D the pixel scaling
    (so rotations stay rotations on non-square tiles), R a rotation, F flips
    and (w, h) the crop's size as fractions of the tile.

    Parameters
    ----------
    n : int
        Number of views.
    height, width : int
        Tile size in pixels.
    s : AugmentationSettings
        Crop, flip and rotation settings.
    gen : torch.Generator
        Random generator on ``device``.
    device : torch.device
        Where the matrices are made.

    Returns
    -------
    torch.Tensor
        Shape ``(n, 2, 3)``, for ``warp``.
    """
    area = _uniform(n, *s.crop_scale, gen, device)
    log_ratio = _uniform(n, math.log(s.crop_ratio[0]), math.log(s.crop_ratio[1]), gen, device)
    ratio = log_ratio.exp()
    cw = (area * ratio).sqrt().clamp(max=1.0)
    ch = (area / ratio).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=gen, device=device) * 2 - 1) * (1 - cw)
    cy = (torch.rand(n, generator=gen, device=device) * 2 - 1) * (1 - ch)
    angle = torch.zeros(n, device=device)
    if s.rotate_90:
        angle = angle + torch.randint(0, 4, (n,), generator=gen, device=device).float() * (
            math.pi / 2
        )
    if s.rotation_degrees > 0:
        angle = angle + _uniform(n, -s.rotation_degrees, s.rotation_degrees, gen, device) * (
            math.pi / 180
        )
    fx = torch.where(_coin(n, s.hflip, gen, device), -1.0, 1.0)
    fy = torch.where(_coin(n, s.vflip, gen, device), -1.0, 1.0)
    cos, sin = angle.cos(), angle.sin()
    aspect = width / height  # D = diag(W/2, H/2); D^-1 R D = [[c, -s H/W], [s W/H, c]]
    m = torch.empty(n, 2, 3, device=device)
    m[:, 0, 0] = cos * cw * fx
    m[:, 0, 1] = -sin / aspect * ch * fy
    m[:, 1, 0] = sin * aspect * cw * fx
    m[:, 1, 1] = cos * ch * fy
    m[:, 0, 2] = cx
    m[:, 1, 2] = cy
    return m


def _border_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean colour of each tile's one-pixel frame, shape (B, C, 1, 1)."""
    top, bottom = x[:, :, 0, :], x[:, :, -1, :]
    left, right = x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]
    total = top.sum(-1) + bottom.sum(-1) + left.sum(-1) + right.sum(-1)
    count = 2 * x.shape[-1] + 2 * (x.shape[-2] - 2)
    return (total / count)[..., None, None]


def warp(x: torch.Tensor, matrices: torch.Tensor, fill: str = "border") -> torch.Tensor:
    """Apply per-view affine matrices with bilinear sampling; uncovered pixels get ``fill``.

    Parameters
    ----------
    x : torch.Tensor
        Tiles, shape ``(B, C, H, W)``.
    matrices : torch.Tensor
        One matrix per tile, shape ``(B, 2, 3)``, from ``affine_matrices``.
    fill : str
        ``"border"`` (mean colour of the tile's edge), ``"reflection"`` or ``"zeros"``.

    Returns
    -------
    torch.Tensor
        The warped tiles, same shape as ``x``.
    """
    grid = F.affine_grid(matrices.to(x.dtype), list(x.shape), align_corners=False)
    if fill == "reflection":
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
    if fill == "zeros":
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    colour = _border_mean(x)
    return (
        F.grid_sample(x - colour, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        + colour
    )


def _grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _per_view(values: torch.Tensor, apply: torch.Tensor, neutral: float) -> torch.Tensor:
    return torch.where(apply, values, torch.full_like(values, neutral)).view(-1, 1, 1, 1)


def _rotate_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` turns: a rotation of the chroma plane in YIQ space."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
        device=x.device,
        dtype=x.dtype,
    )
    from_yiq = torch.linalg.inv(to_yiq)
    theta = shift * 2 * math.pi
    cos, sin = theta.cos(), theta.sin()
    rot = torch.zeros(x.shape[0], 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mats = from_yiq @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", mats, x)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per view (sigma 0 leaves a view unchanged)."""
    b, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp(min=1e-3).view(b, 1)
    k = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    k = k / k.sum(1, keepdim=True)
    k = k.repeat_interleave(c, 0)  # (B*C, K)
    flat = x.reshape(1, b * c, h, w)
    flat = F.conv2d(
        F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k.view(b * c, 1, 1, -1), groups=b * c
    )
    flat = F.conv2d(
        F.pad(flat, (0, 0, radius, radius), mode="reflect"), k.view(b * c, 1, -1, 1), groups=b * c
    )
    return flat.view(b, c, h, w)


def augment(
    x: torch.Tensor, settings: AugmentationSettings, generator: torch.Generator
) -> torch.Tensor:
    """One random view of every tile in ``x`` (B, C, H, W) in [0, 1]; returns the same shape in [0, 1].

    Saturation, hue and greyscale apply to colour tiles only (3 channels
    and ``settings.rgb`` true, see ``AugmentationSettings.for_stack``);
    other tiles get brightness, contrast and the per-channel gain, each
    channel on its own.

    Parameters
    ----------
    x : torch.Tensor
        Normalised tiles, shape ``(B, C, H, W)``, values in [0, 1].
    settings : AugmentationSettings
        What to vary (with ``rgb`` decided, see ``AugmentationSettings.for_stack``).
    generator : torch.Generator
        Random generator on the device of ``x``; the same seed gives the same views.

    Returns
    -------
    torch.Tensor
        One augmented view per tile, same shape, values in [0, 1].
    """
    s = settings
    b, c, h, w = x.shape
    dev = x.device
    x = warp(x, affine_matrices(b, h, w, s, generator, dev), s.fill)
    rgb = bool(s.rgb) and c == 3
    jitter = _coin(b, s.jitter_p, generator, dev)
    if s.brightness > 0:
        f = _per_view(_uniform(b, 1 - s.brightness, 1 + s.brightness, generator, dev), jitter, 1.0)
        x = (x * f).clamp_(0, 1)
    if s.contrast > 0:
        f = _per_view(_uniform(b, 1 - s.contrast, 1 + s.contrast, generator, dev), jitter, 1.0)
        mean = _grey(x).mean((2, 3), keepdim=True) if rgb else x.mean((2, 3), keepdim=True)
        x = (mean + f * (x - mean)).clamp_(0, 1)
    if rgb and s.saturation > 0:
        f = _per_view(_uniform(b, 1 - s.saturation, 1 + s.saturation, generator, dev), jitter, 1.0)
        g = _grey(x)
        x = (g + f * (x - g)).clamp_(0, 1)
    if rgb and s.hue > 0:
        shift = torch.where(
            jitter, _uniform(b, -s.hue, s.hue, generator, dev), torch.zeros(b, device=dev)
        )
        x = _rotate_hue(x, shift).clamp_(0, 1)
    if rgb and s.grayscale_p > 0:
        grey = _coin(b, s.grayscale_p, generator, dev).view(-1, 1, 1, 1)
        x = torch.where(grey, _grey(x).expand_as(x), x)
    if s.channel_gain > 0:
        gain = _uniform(b * c, 1 - s.channel_gain, 1 + s.channel_gain, generator, dev).view(
            b, c, 1, 1
        )
        x = (x * gain).clamp_(0, 1)
    if s.blur_p > 0:
        sigma = torch.where(
            _coin(b, s.blur_p, generator, dev),
            _uniform(b, *s.blur_sigma, generator, dev),
            torch.zeros(b, device=dev),
        )
        x = _blur(x, sigma)
    if s.noise_std > 0:
        std = _uniform(b, 0, s.noise_std, generator, dev).view(-1, 1, 1, 1)
        x = (x + std * torch.randn(x.shape, generator=generator, device=dev)).clamp_(0, 1)
    return x


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A random generator on ``device`` seeded with ``seed``.

    Parameters
    ----------
    device : torch.device
        Where the random numbers are drawn (augmentations run on the model's device).
    seed : int
        The seed.

    Returns
    -------
    torch.Generator
        The generator.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
