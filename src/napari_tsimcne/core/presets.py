"""The names of the augmentation presets (without importing torch, for the command line and the menus).

What each preset does is defined in :meth:`napari_tsimcne.core.augment.AugmentationSettings.preset`.
"""

PRESETS = ("microscopy", "natural", "quantitative")
"""The augmentation presets, the default first."""
PRESET_ALIASES = {"fluorescence": "quantitative"}
"""Older preset names, still accepted."""
