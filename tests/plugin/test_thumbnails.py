"""Thumbnails drawn as napari draws the layers, export helpers and 3D map coordinates (no window needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.plugin import export
from napari_tsimcne.plugin.map_layer import (
    embedding_columns,
    initial_features,
    map_coordinates,
    outlier_scores,
)
from napari_tsimcne.plugin.thumbnails import (
    ChannelDisplay,
    TileSource,
    default_colormaps,
    render_rgb,
    render_thumbnail,
)

GREEN = ChannelDisplay.from_colormap("green", (0, 1000))
MAGENTA = ChannelDisplay.from_colormap("magenta", (0, 1000))


def _two_channel_tile(c0: int, c1: int) -> np.ndarray:
    tile = np.zeros((6, 5, 2), dtype=np.uint16)
    tile[..., 0], tile[..., 1] = c0, c1
    return tile


@pytest.mark.parametrize(
    ("c0", "c1", "rgb"),
    [
        (0, 1000, (255, 0, 255)),  # bright only in channel 1: magenta
        (1000, 0, (0, 255, 0)),  # only in channel 0: green
        (1000, 1000, (255, 255, 255)),  # both: added up to white
        (500, 0, (0, 128, 0)),  # half way between the contrast limits: half green
        (0, 0, (0, 0, 0)),
        (4000, 0, (0, 255, 0)),  # above the upper limit: clipped
    ],
)
def test_channels_blend_additively_in_their_colormaps(c0, c1, rgb):
    thumb = render_thumbnail(_two_channel_tile(c0, c1), [GREEN, MAGENTA])
    assert thumb.dtype == np.uint8 and thumb.shape == (6, 5, 3)
    assert np.all(np.abs(thumb.astype(int) - rgb) <= 1), thumb[0, 0]


def test_contrast_limits_gamma_and_opacity_are_applied():
    grey = ChannelDisplay.from_colormap("gray", (100, 300), gamma=2.0)
    thumb = render_thumbnail(np.array([[100, 200, 300]], dtype=np.uint16), [grey])
    np.testing.assert_allclose(thumb[0, :, 0], [0, 64, 255], atol=1)  # (0.5 ** 2) * 255
    faint = ChannelDisplay.from_colormap("gray", (0, 1), opacity=0.5)
    assert render_thumbnail(np.ones((2, 2)), [faint])[0, 0, 0] == 128


def test_rgb_tiles_keep_their_colours_and_large_tiles_shrink():
    tile = np.zeros((200, 100, 3), dtype=np.uint8)
    tile[..., 0] = 255
    tile[..., 2] = 128
    thumb = render_thumbnail(tile, [ChannelDisplay.from_colormap("gray", (0, 255))], rgb=True)
    assert tuple(thumb[0, 0]) == (255, 0, 128)
    small = render_thumbnail(
        tile, [ChannelDisplay.from_colormap("gray", (0, 255))], rgb=True, max_side=50
    )
    assert max(small.shape[:2]) <= 50 and tuple(small[3, 3]) == (255, 0, 128)
    dark = render_rgb(np.full((2, 2, 4), [255, 255, 255, 0], dtype=np.uint8), (0, 255))
    assert dark.max() == 0  # fully transparent pixels are black


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match="2 channels"):
        render_thumbnail(np.zeros((4, 4, 3)), [GREEN, MAGENTA])


class _Layer:
    """The parts of a napari image layer a TileSource reads."""

    def __init__(self, data, colormap="gray", limits=(0, 1000), rgb=False):
        self.data = data
        self.colormap = colormap
        self.contrast_limits = limits
        self.gamma, self.opacity, self.rgb = 1.0, 1.0, rgb


def test_tile_source_of_one_multichannel_layer_and_of_channel_layers():
    stack = np.zeros((3, 4, 4, 2), dtype=np.uint16)
    stack[1, ..., 1] = 1000
    source = TileSource([_Layer(stack)])
    assert default_colormaps(2) == ("magenta", "green") and len(source.channels()) == 2
    assert tuple(source.thumbnail(1)[0, 0]) == (
        0,
        255,
        0,
    )  # channel 1 of a 2-channel layer is green
    split = TileSource(
        [_Layer(stack[..., 0], "green"), _Layer(stack[..., 1], "magenta")]
    )  # one layer per channel, as napari opens a file with channel_axis
    assert split.planes(1).shape == (4, 4, 2)
    assert tuple(split.thumbnail(1)[0, 0]) == (255, 0, 255)
    assert len(split) == 3


def test_export_helpers():
    stack = np.arange(5 * 2 * 2 * 3).reshape(5, 2, 2, 3)
    np.testing.assert_array_equal(export.stack_subset(stack, [4, 1, 1]), stack[[1, 4]])
    with pytest.raises(ValueError, match="select points"):
        export.stack_subset(stack, [])
    codes, names = export.label_codes(np.array(["b", "", "a", "b"], dtype=object), "annotation")
    assert codes.tolist() == [2, 0, 1, 2] and names == ["", "a", "b"]
    codes, names = export.label_codes(np.array([2, -1, 0]), "cluster")
    assert codes.tolist() == [3, 0, 1] and names == ["", "cluster 0", "cluster 1", "cluster 2"]
    painted = export.labels_image((5, 7), [[0, 0], [0, 4], [3, 4]], (3, 4), [1, 2, 3])
    assert painted[0, 0] == 1 and painted[0, 5] == 2 and painted[4, 6] == 3 and painted[4, 0] == 0
    assert painted.shape == (5, 7)
    colors = export.label_colors(["", "a", "b"], "annotation", {})
    assert colors[0] == "transparent" and colors[1] != colors[2]


def test_existing_files_are_not_overwritten(tmp_path):
    path = tmp_path / "a.csv"
    assert export.refuse_existing(path) == path
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        export.refuse_existing(path)
    assert export.refuse_existing(path, overwrite=True) == path
    assert path.read_text() == "keep me"


def test_3d_embeddings_give_3d_map_coordinates_and_features():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 3)) * [1.0, 2.0, 4.0]
    coords = map_coordinates(emb, 10.0)
    assert coords.shape == (50, 3)
    assert coords.min() >= 0 and coords.max() <= 10.0 + 1e-9
    assert np.ptp(coords[:, 0]) == pytest.approx(10.0)  # z spans the widest: aspect kept
    np.testing.assert_allclose(np.corrcoef(coords[:, 0], emb[:, 2])[0, 1], 1.0)  # plane = z
    np.testing.assert_allclose(np.corrcoef(coords[:, 1], emb[:, 1])[0, 1], -1.0)  # row = -y
    feats = initial_features(emb)
    assert embedding_columns(feats) == ["x", "y", "z"]
    np.testing.assert_allclose(feats["z"], emb[:, 2])
    assert embedding_columns(pd.DataFrame(columns=["x", "y", "annotation"])) == ["x", "y"]
    # the outlier score sees all three dimensions: a point far off only in z stands out
    emb[0] = [0.0, 0.0, 40.0]
    assert np.argmax(outlier_scores(emb)) == 0
