"""Synthetic quantitative fluorescence cells: a stack where intensity and size are the signal.

A development benchmark for maps of quantitative microscopy (the kind of
data where a cell's DNA content orders the cell-cycle phases). Each tile is
one cell, imaged in three uint16 channels the way a widefield camera
records them: a dark offset, shot noise and read noise.

Channels
--------
0. DNA stain (Hoechst-like). A nucleus whose *integrated* intensity is
   proportional to the DNA content ``c`` (1 = G1, 2 = G2) and whose area grows
   as ``c ** (2/3)`` (a volume that doubles), with chromatin texture.
1. Cytoplasm stain. The cell body around the nucleus, its brightness varies
   from cell to cell (a nuisance the map should ignore); mitotic cells round
   up and look brighter.
2. An S-phase marker (EdU-like): bright in nuclei that replicate, faint
   otherwise.

Classes (label, share)
----------------------
``G1`` (0.34), ``S`` (0.22), ``G2`` (0.14)
    Interphase along a continuous DNA content: G1 around 1, S between 1.15
    and 1.85, G2 around 2. The class follows from ``c``; the boundaries are
    fuzzy as in real data.
``lobed`` (0.14)
    The morphology-only class: a nucleus in 3 to 4 lobes, with the DNA
    content, sizes and marker levels of G1 and S cells. Intensities alone
    cannot separate it; its shape can.
``prophase`` (0.07), ``metaphase`` (0.06), ``telophase`` (0.03)
    Mitosis at the top of the DNA scale (``c`` = 2): condensed chromatin in
    spots, a bright plate, and two daughter nuclei (each ``c`` = 1) in an
    elongated cell. The last two are the rare classes.

Every cell gets a random orientation, position offset, eccentricity and
texture. ``make_cells`` is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

CLASSES = ("G1", "S", "G2", "lobed", "prophase", "metaphase", "telophase")
SHARES = (0.34, 0.22, 0.14, 0.14, 0.07, 0.06, 0.03)
RARE = ("lobed", "prophase", "metaphase", "telophase")
CHANNELS = ("DNA", "cytoplasm", "S-phase marker")


@dataclass(frozen=True)
class Camera:
    """A widefield camera: offset and read noise in ADU, gain in ADU per photon."""

    offset: float = 100.0
    read_noise: float = 3.0
    gain: float = 0.5


@dataclass
class SyntheticCells:
    """A generated stack with its ground truth."""

    images: np.ndarray
    """(N, H, W, 3) uint16."""
    labels: np.ndarray
    """(N,) int, an index into ``classes``."""
    dna: np.ndarray
    """(N,) float, the true DNA content (1 = G1, 2 = G2 and mitosis)."""
    classes: tuple[str, ...] = CLASSES
    channels: tuple[str, ...] = CHANNELS


def _interphase_dna(rng: np.random.Generator, label: str) -> float:
    if label == "G1":
        return float(np.clip(rng.normal(1.0, 0.06), 0.8, 1.15))
    if label == "S":
        return float(rng.uniform(1.15, 1.85))
    if label == "G2":
        return float(np.clip(rng.normal(2.0, 0.06), 1.85, 2.25))
    # lobed: the DNA content of G1 and S cells
    return float(rng.choice([np.clip(rng.normal(1.0, 0.06), 0.8, 1.15), rng.uniform(1.15, 1.85)]))


def _rotated(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, angle: float):
    dy, dx = yy - cy, xx - cx
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * dx + sin * dy, -sin * dx + cos * dy


def _ellipse(yy, xx, cy, cx, ry, rx, angle, soft: float = 0.8) -> np.ndarray:
    """A filled ellipse with a soft edge, values in [0, 1]."""
    u, v = _rotated(yy, xx, cy, cx, angle)
    r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    return 1.0 / (1.0 + np.exp((r - 1.0) * min(rx, ry) / soft))


def _texture(rng: np.random.Generator, shape, sigma: float, strength: float) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=shape), sigma)
    field /= field.std() + 1e-9
    return np.clip(1.0 + strength * field, 0.2, None)


def _nucleus(rng, yy, xx, label: str, c: float, cy: float, cx: float, angle: float, size: int):
    """DNA density map of one cell (before scaling to its integrated intensity)."""
    base_r = 0.16 * size * c ** (1 / 3)
    ecc = rng.uniform(1.0, 1.35)
    if label in ("G1", "S", "G2"):
        shape = _ellipse(yy, xx, cy, cx, base_r / np.sqrt(ecc), base_r * np.sqrt(ecc), angle)
        return shape * _texture(rng, yy.shape, 1.2, 0.25)
    if label == "lobed":
        n = int(rng.integers(3, 5))
        shape = np.zeros_like(yy, dtype=float)
        r_lobe = base_r / np.sqrt(n) * 1.25
        for k in range(n):
            a = angle + 2 * np.pi * k / n + rng.normal(0, 0.25)
            d = base_r * rng.uniform(0.6, 0.8)
            shape = np.maximum(
                shape,
                _ellipse(
                    yy, xx, cy + d * np.sin(a), cx + d * np.cos(a), r_lobe, r_lobe * 1.2, a, 0.6
                ),
            )
        return shape * _texture(rng, yy.shape, 1.2, 0.25)
    if label == "prophase":
        shape = _ellipse(yy, xx, cy, cx, base_r * 1.05, base_r * 1.1, angle)
        spots = gaussian_filter((rng.random(yy.shape) < 0.12).astype(float), 0.7)
        return shape * (0.25 + 3.0 * spots / (spots.max() + 1e-9))
    if label == "metaphase":
        u, v = _rotated(yy, xx, cy, cx, angle)
        plate = np.exp(-0.5 * (u / 1.2) ** 2) * (1.0 / (1.0 + np.exp((np.abs(v) - base_r) / 0.8)))
        return plate * _texture(rng, yy.shape, 0.8, 0.3)
    # telophase: two daughter nuclei apart along the cell's long axis
    gap = base_r * rng.uniform(1.3, 1.7)
    r = 0.16 * size * 1.0 ** (1 / 3) * 0.85
    shape = np.zeros_like(yy, dtype=float)
    for sign in (-1, 1):
        shape += _ellipse(
            yy,
            xx,
            cy + sign * gap * np.sin(angle),
            cx + sign * gap * np.cos(angle),
            r * 0.8,
            r,
            angle,
        )
    return shape * _texture(rng, yy.shape, 1.0, 0.25)


def _cell_body(rng, yy, xx, label: str, c: float, cy, cx, angle, size: int) -> np.ndarray:
    r = 0.3 * size * c ** (1 / 6)
    if label in ("prophase", "metaphase"):
        body = _ellipse(yy, xx, cy, cx, r * 0.9, r * 0.9, angle, 1.0) * 1.6
    elif label == "telophase":
        body = _ellipse(yy, xx, cy, cx, r * 0.75, r * 1.45, angle, 1.0) * 1.3
    else:
        ecc = rng.uniform(1.0, 1.6)
        body = _ellipse(
            yy, xx, cy, cx, r / np.sqrt(ecc), r * np.sqrt(ecc), angle + rng.normal(0, 0.5), 1.2
        )
    return body * _texture(rng, yy.shape, 2.0, 0.3)


def _marker_level(rng, label: str, c: float) -> float:
    if label == "S" or (label == "lobed" and 1.15 < c < 1.85):
        return float(rng.lognormal(np.log(1.0), 0.3))
    return float(rng.lognormal(np.log(0.08), 0.4))


def make_cells(
    n: int = 5000, size: int = 32, seed: int = 0, camera: Camera = Camera()
) -> SyntheticCells:
    """Generate ``n`` cells as (n, size, size, 3) uint16 tiles with labels and DNA content.

    Parameters
    ----------
    n
        Number of cells; class shares are ``SHARES`` (rounded, at least one per class).
    size
        Tile height and width in pixels.
    seed
        Seed of the random generator; the same seed gives the same stack.
    camera
        Offset, read noise and gain of the simulated camera.
    """
    rng = np.random.default_rng(seed)
    counts = np.maximum(1, np.round(np.asarray(SHARES) * n).astype(int))
    counts[0] += n - counts.sum()
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES)), counts))
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    images = np.empty((n, size, size, 3), dtype=np.uint16)
    dna = np.empty(n)
    # photons at 1 x DNA content, summed over the nucleus; the cytoplasm's and the marker's scale
    dna_photons, body_photons, marker_photons = 6.0e5, 2.5e5, 1.5e5
    for i, lab in enumerate(labels):
        label = CLASSES[lab]
        c = 2.0 if label in ("prophase", "metaphase", "telophase") else _interphase_dna(rng, label)
        dna[i] = c
        angle = rng.uniform(0, np.pi)
        cy, cx = size / 2 + rng.normal(0, 1.5, 2)
        nucleus = _nucleus(rng, yy, xx, label, c, cy, cx, angle, size)
        nucleus *= dna_photons * c / (nucleus.sum() + 1e-9)
        body = _cell_body(rng, yy, xx, label, c, cy, cx, angle, size)
        body *= body_photons * rng.lognormal(0.0, 0.35) / (body.sum() + 1e-9)
        body *= 1.0 - 0.6 * (nucleus > nucleus.max() * 0.2)  # the nucleus excludes cytoplasm
        marker = nucleus / (nucleus.sum() + 1e-9) * marker_photons * _marker_level(rng, label, c)
        photons = np.stack([nucleus, body, marker], axis=-1) / 10.0 + 2.0  # + autofluorescence
        counts_adu = rng.poisson(photons) * camera.gain
        adu = camera.offset + counts_adu + rng.normal(0, camera.read_noise, photons.shape)
        images[i] = np.clip(np.round(adu), 0, 65535).astype(np.uint16)
    return SyntheticCells(images=images, labels=labels.astype(np.int64), dna=dna)


if __name__ == "__main__":  # a quick look: counts and intensity ranges
    cells = make_cells(700)
    print(cells.images.shape, cells.images.dtype, cells.images.min(), cells.images.max())
    for k, name in enumerate(CLASSES):
        m = cells.labels == k
        total = (cells.images[m].astype(float) - 100).sum((1, 2))
        print(
            f"{name:10s} n={m.sum():4d} dna={cells.dna[m].mean():.2f} integrated={total.mean(0).round(-3)}"
        )
