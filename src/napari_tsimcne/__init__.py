"""napari-tsimcne: interactive 2D maps of unlabelled image tiles with t-SimCNE.

The library core (no Qt) is importable on its own::

    from napari_tsimcne import TSimCNE
    Y = TSimCNE(total_epochs=(40, 4, 16)).fit_transform(tiles)

The public names are imported on first use (PEP 562), so that ``import napari_tsimcne``, the napari
manifest, the reader and ``napari-tsimcne --help`` do not import PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import core  # torch-free itself: its public names are imported on first use too

__version__ = "0.1.0"

__all__ = ["__version__", *core.__all__]

if TYPE_CHECKING:  # static tools and IDEs see the names as ordinary imports
    from .core import (
        AugmentationSettings as AugmentationSettings,
    )
    from .core import (
        ChannelNormalization as ChannelNormalization,
    )
    from .core import (
        ModelFileError as ModelFileError,
    )
    from .core import (
        NotFittedError as NotFittedError,
    )
    from .core import (
        ParameterError as ParameterError,
    )
    from .core import (
        TiledImage as TiledImage,
    )
    from .core import (
        TileStackError as TileStackError,
    )
    from .core import (
        TrainingDivergedError as TrainingDivergedError,
    )
    from .core import (
        TrainingEvent as TrainingEvent,
    )
    from .core import (
        TSimCNE as TSimCNE,
    )
    from .core import (
        as_tile_stack as as_tile_stack,
    )
    from .core import (
        knn_accuracy as knn_accuracy,
    )
    from .core import (
        tile_image as tile_image,
    )


def __getattr__(name: str) -> Any:
    """The public names of ``napari_tsimcne.core``, imported on first access (PEP 562).

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
    if name not in core.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(core, name)
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
