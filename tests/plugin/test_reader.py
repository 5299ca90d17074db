"""The reader contribution: a ``napari-tsimcne fit`` output folder opens as tiles, map and annotations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_tsimcne import cli
from napari_tsimcne.plugin.annotations import export_csv
from napari_tsimcne.plugin.crosslink import OUTLINE_NAME
from napari_tsimcne.plugin.gallery import open_gallery
from napari_tsimcne.plugin.layout import is_in_view
from napari_tsimcne.plugin.reader import TOKEN_KEY, get_reader, output_folder, read_output

N_TILES = 128
TINY = [
    "--epochs",
    "1",
    "0",
    "1",
    "--batch-size",
    "64",
    "--width",
    "8",
    "--backbone",
    "resnet10",
    "--device",
    "cpu",
    "--quiet",
]


def _fit(input_path: Path, outdir: Path, *options: str) -> Path:
    """Run ``napari-tsimcne fit`` in-process with a tiny network; return the output folder."""
    assert cli.main(["fit", str(input_path), "-o", str(outdir), *options, *TINY]) == 0
    assert "input" in json.loads((outdir / "summary.json").read_text())
    return outdir


@pytest.fixture(scope="module")
def stack_output(tmp_path_factory) -> Path:
    """The fit output of 128 histology tiles given as a stack (.npy)."""
    from napari_tsimcne.core.sample import load_histology

    base = tmp_path_factory.mktemp("stack")
    np.save(base / "cells.npy", load_histology().tiles[:N_TILES])
    return _fit(base / "cells.npy", base / "out")


@pytest.fixture(scope="module")
def tiled_output(tmp_path_factory) -> Path:
    """The fit output of one large image (.npy) cut with --tile-size 32 --stride 48 (121 tiles)."""
    from skimage import data

    base = tmp_path_factory.mktemp("tiled")
    np.save(base / "slide.npy", data.immunohistochemistry())
    return _fit(base / "slide.npy", base / "out", "--tile-size", "32", "--stride", "48")


@pytest.fixture
def autosave_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_TSIMCNE_AUTOSAVE_DIR", str(tmp_path / "autosave"))


def _by_type(layers) -> dict:
    return {kind: (data, kwargs) for data, kwargs, kind in layers}


# -- without a viewer -------------------------------------------------------------


def test_get_reader_accepts_output_folder_and_model(stack_output):
    assert get_reader(str(stack_output)) is read_output
    assert get_reader([str(stack_output)]) is read_output
    assert get_reader(str(stack_output / "model.tsimcne")) is read_output
    assert output_folder(stack_output / "model.tsimcne") == stack_output


def test_get_reader_declines_other_paths(stack_output, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "embedding.csv").write_text("tile_index,x,y\n0,1,2\n")  # no summary.json
    (tmp_path / "model.tsimcne").write_bytes(b"not beside an embedding")
    for path in (
        tmp_path,
        tmp_path / "folder",
        tmp_path / "model.tsimcne",
        stack_output / "map.png",
        stack_output.parent / "cells.npy",
        tmp_path / "missing",
    ):
        assert get_reader(str(path)) is None, path
    assert get_reader([str(stack_output), str(stack_output)]) is None


def test_read_output_layer_tuples(stack_output):
    layers = read_output(str(stack_output))
    assert [kind for *_, kind in layers] == ["image", "points"]
    (tiles, tkw), (coords, mkw) = _by_type(layers)["image"], _by_type(layers)["points"]
    assert tiles.shape == (N_TILES, 32, 32, 3) and tkw["rgb"] and tkw["name"] == "cells"
    assert coords.shape == (N_TILES, 2)
    assert mkw["name"] == "cells map"
    feats = mkw["features"]
    assert list(feats.columns[:6]) == ["tile_index", "x", "y", "annotation", "cluster", "outlier"]
    csv = np.loadtxt(stack_output / "embedding.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(feats[["x", "y"]].to_numpy(), csv[:, 1:3])
    assert mkw["metadata"]["tsimcne_tiles_layer"] == "cells"
    assert mkw["translate"][1] > 32  # beside the tiles
    assert tkw["metadata"][TOKEN_KEY] == mkw["metadata"][TOKEN_KEY]


def test_missing_input_gives_the_map_with_a_warning(stack_output, tmp_path):
    moved = shutil.copytree(stack_output, tmp_path / "moved")
    summary = json.loads((moved / "summary.json").read_text())
    summary["input"]["path"] = str(tmp_path / "gone.npy")
    (moved / "summary.json").write_text(json.dumps(summary))
    with pytest.warns(UserWarning, match="could not be read"):
        layers = read_output(str(moved))
    assert [kind for *_, kind in layers] == ["points"]
    assert layers[0][0].shape == (N_TILES, 2)


def test_input_moved_with_the_folder_is_found(stack_output, tmp_path):
    moved = shutil.copytree(stack_output, tmp_path / "moved")
    shutil.copy(stack_output.parent / "cells.npy", moved / "cells.npy")
    summary = json.loads((moved / "summary.json").read_text())
    summary["input"]["path"] = "/nonexistent/cells.npy"
    (moved / "summary.json").write_text(json.dumps(summary))
    assert [kind for *_, kind in read_output(str(moved))] == ["image", "points"]


def test_foreign_annotations_are_skipped_with_a_warning(stack_output, tmp_path):
    moved = shutil.copytree(stack_output, tmp_path / "moved")
    (moved / "annotations.csv").write_text("tile_index,annotation\n0,a\n1,b\n")
    with pytest.warns(UserWarning, match="Annotations not loaded"):
        layers = read_output(str(moved))
    assert (layers[-1][1]["features"]["annotation"] == "").all()


# -- in napari ---------------------------------------------------------------------


@pytest.mark.gui
def test_open_output_folder_in_napari(make_napari_viewer, stack_output, autosave_dir):
    viewer = make_napari_viewer()
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    viewer.open(str(stack_output), plugin="napari-tsimcne")
    tiles, layer = viewer.layers["cells"], viewer.layers["cells map"]
    assert tiles.data.shape == (N_TILES, 32, 32, 3)
    assert layer.data.shape == (N_TILES, 2)
    assert {"tile_index", "x", "y", "annotation", "cluster", "outlier"} <= set(
        layer.features.columns
    )
    assert annotate.map_combo.value == "cells map"
    assert is_in_view(viewer, layer)  # the map fills the canvas, not the first tile

    # linked: selected points show their tiles; the stack moves to the first
    layer.selected_data = {3, 10}
    gallery = open_gallery(viewer, create=False)
    assert list(gallery.shown_tiles()) == [3, 10]
    np.testing.assert_array_equal(gallery.model.source.planes(3), tiles.data[3])
    assert viewer.dims.current_step[0] == 3


@pytest.mark.gui
def test_a_folder_opened_before_the_docks_keeps_its_map_in_view(
    qtbot, make_napari_viewer, stack_output, autosave_dir
):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1000, 700)
    viewer.open(str(stack_output), plugin="napari-tsimcne")
    # the docks open afterwards and take width from the canvas
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    qtbot.wait(50)
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    layer = viewer.layers["cells map"]
    qtbot.waitUntil(lambda: is_in_view(viewer, layer), timeout=2000)


@pytest.mark.gui
def test_annotations_are_restored(make_napari_viewer, stack_output, tmp_path, autosave_dir):
    folder = shutil.copytree(stack_output, tmp_path / "annotated")
    feats = read_output(str(folder))[-1][1]["features"]
    feats.loc[[0, 5, 7], "annotation"] = "stroma"
    feats.loc[[1, 2], "annotation"] = "nuclei"
    feats["cluster"] = np.arange(N_TILES) % 3
    export_csv(feats, folder / "annotations.csv")

    viewer = make_napari_viewer()
    viewer.open(str(folder / "model.tsimcne"), plugin="napari-tsimcne")
    layer = viewer.layers["cells map"]
    assert list(layer.features.loc[[0, 5, 7], "annotation"]) == ["stroma"] * 3
    assert list(layer.features.loc[[1, 2], "annotation"]) == ["nuclei"] * 2
    assert (layer.features.loc[3:4, "annotation"] == "").all()
    np.testing.assert_array_equal(layer.features["cluster"], np.arange(N_TILES) % 3)
    assert layer.metadata["tsimcne_color_by"] == "annotation"
    assert not np.allclose(layer.face_color[0], layer.face_color[1])  # stroma and nuclei differ


@pytest.mark.gui
def test_open_twice_links_each_map_to_its_own_tiles(make_napari_viewer, stack_output, autosave_dir):
    viewer = make_napari_viewer()
    viewer.open(str(stack_output), plugin="napari-tsimcne")
    viewer.open(str(stack_output), plugin="napari-tsimcne")
    # the reader returns layer data only: the widget links the maps it finds when it opens
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    maps = [l for l in viewer.layers if "tsimcne_tiles_layer" in l.metadata]
    assert len(maps) == 2
    targets = [m.metadata["tsimcne_tiles_layer"] for m in maps]
    assert targets[0] != targets[1] and all(t in viewer.layers for t in targets)
    maps[1].selected_data = {4}
    assert viewer.dims.current_step[0] == 4
    gallery = open_gallery(viewer, create=False)
    assert list(gallery.shown_tiles()) == [4] and gallery.link.map_layer == maps[1]
    np.testing.assert_array_equal(gallery.model.source.planes(4), viewer.layers[targets[1]].data[4])


def test_reader_only_returns_layer_data(stack_output, monkeypatch):
    import napari

    monkeypatch.setattr(
        napari, "current_viewer", lambda: pytest.fail("the reader must not look for a viewer")
    )
    layers = read_output(str(stack_output))
    assert all(isinstance(t, tuple) and len(t) == 3 for t in layers)


@pytest.mark.gui
def test_tiles_cut_from_an_image_come_with_it(make_napari_viewer, tiled_output, autosave_dir):
    viewer = make_napari_viewer()
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    viewer.open(str(tiled_output), plugin="napari-tsimcne")
    tiles, layer, source = (
        viewer.layers["slide"],
        viewer.layers["slide map"],
        viewer.layers["slide image"],
    )
    assert tiles.data.shape == (121, 32, 32, 3)
    assert source.data.shape == (512, 512, 3)
    assert tiles.metadata["source_layer"] == "slide image"
    assert tiles.metadata["origins"].shape == (121, 2)
    layer.selected_data = {0, 12}
    outline = viewer.layers[OUTLINE_NAME]
    np.testing.assert_allclose(outline.data[1][0], tiles.metadata["origins"][12])


@pytest.mark.gui
@pytest.mark.parametrize("ndim", [2, 3])
def test_the_reader_and_the_train_widget_make_the_same_map(
    make_napari_viewer, stack_output, tmp_path, autosave_dir, ndim
):
    import pandas as pd

    from napari_tsimcne.core.io import read_embedding_csv, write_embedding_csv
    from napari_tsimcne.plugin.crosslink import link_map, link_opened_outputs
    from napari_tsimcne.plugin.map_guard import GUARDED_KEY
    from napari_tsimcne.plugin.map_layer import add_map_layer

    folder = shutil.copytree(stack_output, tmp_path / "out")
    if ndim == 3:  # a 3D map with known labels (coloured by category, not by outlier score)
        flat = read_embedding_csv(folder / "embedding.csv").embedding
        emb = np.column_stack([flat, flat[:, 0] * flat[:, 1]])
        write_embedding_csv(folder / "embedding.csv", emb, labels=np.arange(N_TILES) % 3)
    emb = read_embedding_csv(folder / "embedding.csv").embedding

    opened = make_napari_viewer()
    opened.open(str(folder), plugin="napari-tsimcne")
    link_opened_outputs(opened)  # what the dock widgets do when they see the layers
    read = opened.layers["cells map"]

    trained = make_napari_viewer()
    source = opened.layers["cells"]
    tiles = trained.add_image(source.data, name="cells", rgb=True, metadata=dict(source.metadata))
    made = add_map_layer(trained, tiles, emb)  # what the Train widget shows after training
    link_map(trained, made, tiles)

    assert made.name == read.name == "cells map"
    assert made.ndim == read.ndim == ndim
    assert trained.dims.ndisplay == opened.dims.ndisplay == ndim
    pd.testing.assert_frame_equal(made.features, read.features)
    assert ("label" in made.features) == (ndim == 3)
    np.testing.assert_allclose(made.size, read.size)
    np.testing.assert_allclose(made.face_color, read.face_color)
    assert len(np.unique(made.face_color, axis=0)) > 1
    np.testing.assert_allclose(made.data, read.data)  # the same square (placed beside other layers)
    for key in ("tsimcne_tiles_layer", "tsimcne_side", "tsimcne_color_by", GUARDED_KEY):
        assert made.metadata[key] == read.metadata[key], key
    assert made.metadata["tsimcne_color_by"] == ("label" if ndim == 3 else "outlier")
    for layer in (made, read):  # both guarded: a dragged point goes back
        before = layer.data.copy()
        moved = before.copy()
        moved[5] += 3.0
        layer.data = moved
        np.testing.assert_allclose(layer.data, before)
