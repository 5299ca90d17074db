"""The Qt-free core of napari-tsimcne: tiles, augmentations, model, training, embedding, files.

The public names are imported on first use (PEP 562): importing a torch-free submodule such as
``napari_tsimcne.core.tiles`` or ``napari_tsimcne.core.sample`` does not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "AugmentationSettings": ".augment",
    "ChannelNormalization": ".normalization",
    "ModelFileError": ".persistence",
    "NotFittedError": ".estimator",
    "ParameterError": ".parameters",
    "TSimCNE": ".estimator",
    "TiledImage": ".tiles",
    "TileStackError": ".tiles",
    "TrainingDivergedError": ".training",
    "TrainingEvent": ".training",
    "as_tile_stack": ".tiles",
    "knn_accuracy": ".evaluation",
    "tile_image": ".tiles",
}
"""Public name -> the submodule that defines it."""

__all__ = [
    "AugmentationSettings",
    "ChannelNormalization",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "TSimCNE",
    "TileStackError",
    "TiledImage",
    "TrainingDivergedError",
    "TrainingEvent",
    "as_tile_stack",
    "knn_accuracy",
    "tile_image",
]

if TYPE_CHECKING:  # static tools and IDEs see the names as ordinary imports
    from .augment import AugmentationSettings
    from .estimator import NotFittedError, TSimCNE
    from .evaluation import knn_accuracy
    from .normalization import ChannelNormalization
    from .parameters import ParameterError
    from .persistence import ModelFileError
    from .tiles import TiledImage, TileStackError, as_tile_stack, tile_image
    from .training import TrainingDivergedError, TrainingEvent


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first access (PEP 562).

    Parameters
    ----------
    name : str
        The attribute asked for.

    Returns
    -------
    Any
        The class or function of that name; it is cached in the package namespace.

    Raises
    ------
    AttributeError
        If ``name`` is neither a public name nor an already imported submodule.
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, including those not imported yet, for ``dir()`` and tab completion.

    Returns
    -------
    list of str
        The names of ``__all__``.
    """
    return list(__all__)
