"""The names of the augmentation presets (without importing torch, for the command line and the menus).

What each preset does is defined in ``napari_tsimcne.core.augment.AugmentationSettings.preset``.
"""

PRESETS = ("microscopy", "natural", "quantitative")
"""The augmentation presets, the default first."""
PRESET_ALIASES = {"fluorescence": "quantitative"}
"""Older preset names, still accepted."""

PRESET_SUMMARIES = {
    "auto": "Chosen from the tiles: 'quantitative' for camera images of bright cells on a dark "
    "background whose intensity differs between tiles, 'microscopy' otherwise.",
    "microscopy": "Rotations by any angle, flips, crops, brightness and contrast jitter (and colour "
    "jitter for colour images). The map ignores orientation and moderate staining or brightness "
    "differences. Good for stained cells and tissue, brightfield, blood smears.",
    "natural": "SimCLR's set: crops, horizontal flips, colour jitter, greyscale. No rotations: the map "
    "keeps 'up'. For photographs and objects with an orientation.",
    "quantitative": "Rotations, flips, mild crops, no change of intensity; most pairs are cells with "
    "similar intensity profiles. The map keeps cells in order of intensity and size (DNA content, "
    "marker levels). For fluorescence acquired with the same settings.",
}
"""One or two sentences per choice, in a biologist's words (the widget's help, the docs)."""
