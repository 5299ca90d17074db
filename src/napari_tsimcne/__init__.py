"""napari-tsimcne: interactive 2D maps of unlabelled image tiles with t-SimCNE.

The library core (no Qt) is importable on its own::

    from napari_tsimcne import TSimCNE
    Y = TSimCNE(total_epochs=(40, 4, 16)).fit_transform(tiles)

The public names are imported on first use (PEP 562), so that ``import napari_tsimcne``, the napari
manifest, the reader and ``napari-tsimcne --help`` do not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "AugmentationSettings": ".core.augment",
    "ChannelNormalization": ".core.normalization",
    "ModelFileError": ".core.persistence",
    "NotFittedError": ".core.estimator",
    "TSimCNE": ".core.estimator",
    "TiledImage": ".core.tiles",
    "TileStackError": ".core.tiles",
    "TrainingDivergedError": ".core.training",
    "TrainingEvent": ".core.training",
    "as_tile_stack": ".core.tiles",
    "knn_accuracy": ".core.evaluation",
    "tile_image": ".core.tiles",
}
"""Public name -> the module (relative to this package) that defines it."""

__all__ = [
    "AugmentationSettings",
    "ChannelNormalization",
    "ModelFileError",
    "NotFittedError",
    "TSimCNE",
    "TileStackError",
    "TiledImage",
    "TrainingDivergedError",
    "TrainingEvent",
    "__version__",
    "as_tile_stack",
    "knn_accuracy",
    "tile_image",
]

if TYPE_CHECKING:  # static tools and IDEs see the names as ordinary imports
    from .core.augment import AugmentationSettings
    from .core.estimator import NotFittedError, TSimCNE
    from .core.evaluation import knn_accuracy
    from .core.normalization import ChannelNormalization
    from .core.persistence import ModelFileError
    from .core.tiles import TiledImage, TileStackError, as_tile_stack, tile_image
    from .core.training import TrainingDivergedError, TrainingEvent


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access (PEP 562).

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
        If ``name`` is not a public name of the package.
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
