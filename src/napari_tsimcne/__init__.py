"""napari-tsimcne: interactive 2D maps of unlabelled image tiles with t-SimCNE.

The library core (no Qt) is importable on its own::

    from napari_tsimcne import TSimCNE
    Y = TSimCNE(total_epochs=(40, 4, 16)).fit_transform(tiles)
"""

__version__ = "0.1.0"

from .core import (
    AugmentationSettings,
    ChannelNormalization,
    ModelFileError,
    NotFittedError,
    TiledImage,
    TileStackError,
    TrainingDivergedError,
    TrainingEvent,
    TSimCNE,
    as_tile_stack,
    knn_accuracy,
    tile_image,
)

__all__ = [
    "AugmentationSettings", "ChannelNormalization", "ModelFileError", "NotFittedError", "TSimCNE",
    "TiledImage", "TileStackError", "TrainingDivergedError", "TrainingEvent", "__version__", "as_tile_stack",
    "knn_accuracy", "tile_image",
]
