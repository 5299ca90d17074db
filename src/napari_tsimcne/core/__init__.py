"""The Qt-free core of napari-tsimcne: tiles, augmentations, model, training, embedding, files."""

from .augment import AugmentationSettings
from .estimator import NotFittedError, TSimCNE
from .evaluation import knn_accuracy
from .normalization import ChannelNormalization
from .persistence import ModelFileError
from .tiles import TiledImage, TileStackError, as_tile_stack, tile_image
from .training import TrainingDivergedError, TrainingEvent

__all__ = [
    "AugmentationSettings", "ChannelNormalization", "ModelFileError", "NotFittedError", "TSimCNE",
    "TiledImage", "TileStackError", "TrainingDivergedError", "TrainingEvent", "as_tile_stack",
    "knn_accuracy", "tile_image",
]
