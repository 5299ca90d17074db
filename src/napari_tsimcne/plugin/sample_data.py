"""Sample data contribution: the sample tile stack as an image layer."""

from __future__ import annotations

from napari_tsimcne.core.sample import SampleTiles, load_sample


def tiles_layer_data(sample: SampleTiles) -> tuple:
    """A napari layer data tuple (data, kwargs, "image") for a sample tile stack.

    Parameters
    ----------
    sample : SampleTiles
        The sample tiles.

    Returns
    -------
    tuple
        ``(data, kwargs, "image")`` for napari's sample-data menu.
    """
    metadata = {"description": sample.description}
    if sample.labels is not None:
        metadata["labels"] = sample.labels
        metadata["class_names"] = tuple(sample.class_names)
    if sample.origins is not None:
        metadata["origins"] = sample.origins
    rgb = sample.tiles.ndim == 4 and sample.tiles.shape[-1] in (3, 4)
    return (sample.tiles, {"name": sample.name, "rgb": rgb, "metadata": metadata}, "image")


def sample_tiles() -> list[tuple]:
    """Blood-cell tiles when the data file is present, else histology tiles cut from scikit-image's image.

    napari calls this for *File > Open Sample > napari-tsimcne*.

    Returns
    -------
    list of tuple
        One layer data tuple (see ``tiles_layer_data``).
    """
    return [tiles_layer_data(load_sample())]
