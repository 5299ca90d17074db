"""Qt-free tests of the annotation, selection and map helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.core.config import default_batch_size
from napari_tsimcne.plugin import annotations as ann
from napari_tsimcne.plugin.map_layer import (
    categorical_colors,
    initial_features,
    map_coordinates,
    map_geometry,
    outlier_scores,
)
from napari_tsimcne.plugin.sample_data import sample_tiles, tiles_layer_data
from napari_tsimcne.plugin.selection import tile_to_point


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return initial_features(rng.normal(size=(20, 2)))


def test_initial_features_columns(features):
    assert list(features.columns[:6]) == [
        "tile_index",
        "x",
        "y",
        "annotation",
        "cluster",
        "outlier",
    ]
    assert (features["annotation"] == "").all() and (features["cluster"] == -1).all()


def test_initial_features_label_column():
    feats = initial_features(
        np.zeros((3, 2)) + np.arange(3)[:, None],
        {"labels": np.array([0, 1, 1]), "class_names": ("a", "b")},
    )
    assert feats["label"].tolist() == ["a", "b", "b"]


def test_outlier_score_finds_the_far_point():
    rng = np.random.default_rng(1)
    emb = np.vstack([rng.normal(size=(50, 2)), [[30.0, 30.0]]])
    scores = outlier_scores(emb)
    assert scores.argmax() == 50 and np.median(scores) == pytest.approx(1.0)


def test_outlier_score_finds_a_small_tight_island():
    """Twenty blank tiles that sit on top of each other, far from the cells: a small k calls them typical."""
    rng = np.random.default_rng(2)
    cells = rng.normal(size=(2000, 2)) * [4.0, 2.0]
    island = rng.normal(size=(20, 2)) * 0.01 + [15.0, 0.0]
    emb = np.vstack([cells, island])
    scores = outlier_scores(emb)
    assert scores[2000:].min() > np.percentile(scores[:2000], 99)
    assert (
        np.median(outlier_scores(emb, k=10)[2000:]) < 0.1
    )  # the island's own points are its 10 neighbours


def test_map_coordinates_fit_the_square():
    coords = map_coordinates(np.array([[0.0, 0.0], [2.0, 1.0], [1.0, 2.0]]), side=10.0)
    assert coords.min() >= 0 and coords.max() <= 10.0
    side, offset = map_geometry((28, 28))
    assert side == 56 and offset[1] > 28  # beside the tile, not on it


def test_assign_annotation_copies(features):
    out = ann.assign_annotation(features, {1, 3}, " neutrophil ")
    assert out.loc[[1, 3], "annotation"].tolist() == ["neutrophil", "neutrophil"]
    assert (features["annotation"] == "").all()
    with pytest.raises(IndexError):
        ann.assign_annotation(features, {25}, "x")


def test_propose_clusters_separates_blobs():
    rng = np.random.default_rng(2)
    pts = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 20])
    labels = ann.propose_clusters(pts, 2)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[-1]
    with pytest.raises(ValueError):
        ann.propose_clusters(pts, 0)


def test_csv_round_trip(tmp_path, features):
    feats = ann.assign_annotation(features, [0, 5], "blast")
    feats["cluster"] = np.arange(20) % 3
    path = tmp_path / "a.csv"
    ann.export_csv(feats, path, origins=np.arange(40).reshape(20, 2))
    header = path.read_text().splitlines()[0].split(",")
    assert header == [c for c in ann.CSV_COLUMNS if c not in ("z", "label")]  # a 2D map, no labels
    back = ann.import_csv(path, 20)
    assert back["annotation"].tolist() == feats["annotation"].tolist()
    assert back["cluster"].tolist() == feats["cluster"].tolist()
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize("n_rows", [19, 21])
def test_csv_import_refuses_other_stacks(tmp_path, n_rows):
    path = tmp_path / "b.csv"
    pd.DataFrame({"tile_index": np.arange(n_rows), "annotation": ""}).to_csv(path, index=False)
    with pytest.raises(ann.AnnotationFileError, match="map has 20"):
        ann.import_csv(path, 20)


def test_csv_import_refuses_bad_indices_and_files(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame({"tile_index": [0, 0, 2], "annotation": "a"}).to_csv(path, index=False)
    with pytest.raises(ann.AnnotationFileError, match="exactly once"):
        ann.import_csv(path, 3)
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(ann.AnnotationFileError, match="tile_index"):
        ann.import_csv(path, 1)


def test_tile_to_point():
    assert tile_to_point(np.array([3, 1, 2]), 2) == 2
    assert tile_to_point(np.array([3, 1, 2]), 7) is None


def test_categorical_colors_grey_for_unassigned():
    colors = categorical_colors(np.array(["", "a", "b", "a"], dtype=object))
    np.testing.assert_allclose(colors[0, :3], 0x80 / 255)
    np.testing.assert_array_equal(colors[1], colors[3])
    assert not np.array_equal(colors[1], colors[2])


def test_no_category_colour_looks_like_napari_s_selection_highlight():
    import colorsys

    from napari.settings import get_settings

    from napari_tsimcne.plugin.map_layer import PALETTE

    highlight = get_settings().appearance.highlight.highlight_color[:3]
    hue = colorsys.rgb_to_hsv(*highlight)[0]
    for color in PALETTE:
        rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        h, saturation, _ = colorsys.rgb_to_hsv(*rgb)
        distance = min(abs(h - hue), 1 - abs(h - hue))
        assert distance > 0.12 or saturation < 0.15, color  # hue at least ~43 degrees away


def test_default_batch_size():
    assert (
        default_batch_size(256) == 256
        and default_batch_size(300) == 256
        and default_batch_size(5000) == 1024
    )


def test_sample_data_layer_tuple():
    from napari_tsimcne.core.sample import load_histology

    data, kwargs, kind = tiles_layer_data(load_histology())
    assert kind == "image" and kwargs["rgb"] and data.ndim == 4 and data.shape[-1] == 3
    ((data, kwargs, kind),) = sample_tiles()
    assert kwargs["rgb"] and data.ndim == 4


def test_manifest_is_valid():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-tsimcne")
    assert manifest.display_name == "t-SimCNE"
    assert {w.display_name for w in manifest.contributions.widgets} == {
        "Train map",
        "Annotate map",
        "Selected tiles",
    }
    assert manifest.contributions.sample_data[0].key == "tiles"


def test_hdbscan_finds_blobs_and_noise():
    rng = np.random.default_rng(3)
    blobs = [rng.normal(scale=0.5, size=(60, 2)) + c for c in ((0, 0), (15, 0), (0, 15))]
    far = np.array([[40.0, 40.0], [-30.0, 25.0], [30.0, -30.0]])
    labels = ann.propose_hdbscan(np.vstack(blobs + [far]), min_cluster_size=10)
    groups = [set(labels[i * 60 : (i + 1) * 60]) for i in range(3)]
    assert all(len(g) == 1 and -1 not in g for g in groups)  # each blob is one cluster ...
    assert len(set.union(*groups)) == 3  # ... of its own
    assert (labels[-3:] == -1).all()  # isolated points are noise
    with pytest.raises(ValueError, match="minimum cluster size"):
        ann.propose_hdbscan(np.zeros((5, 2)), min_cluster_size=10)


def test_points_in_polygon():
    from napari_tsimcne.plugin.selection import points_in_polygon

    pts = np.array([[1.0, 1.0], [6.0, 6.0], [2.0, 7.0], [8.0, 1.0]])
    triangle = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0]])  # below the anti-diagonal
    assert points_in_polygon(pts, triangle).tolist() == [0, 2, 3]
    assert points_in_polygon(pts, triangle[:2]).size == 0


def test_stack_fingerprint_tells_stacks_apart():
    from napari_tsimcne.plugin.autosave import stack_fingerprint

    tiles = np.random.default_rng(0).integers(0, 255, (50, 8, 8, 3), dtype=np.uint8)
    fp = stack_fingerprint(tiles)
    assert len(fp) == 16 and fp == stack_fingerprint(tiles.copy())
    other = tiles.copy()
    other[0, 0, 0, 0] ^= 1
    assert stack_fingerprint(other) != fp
    assert stack_fingerprint(tiles[:49]) != fp
    assert stack_fingerprint(tiles.astype(np.float32)) != fp


def test_autosaver_writes_changes_only_and_atomically(tmp_path, features, monkeypatch):
    from napari_tsimcne.plugin.autosave import AnnotationAutosaver

    saver = AnnotationAutosaver(tmp_path / "t-0123456789abcdef.autosave.csv")
    feats = ann.assign_annotation(features, [2], "blast")
    assert saver.save(feats)
    saver.flush()
    assert not saver.save(feats)  # nothing changed: no write
    first = saver.path.read_text()
    assert ann.import_csv(saver.path, 20)["annotation"][2] == "blast"

    # a crash half-way through a write leaves the previous file whole and no temporary file
    def half_then_crash(self, path, **kw):
        with open(path, "w") as fh:
            fh.write("tile_index,x,y,annot")
        raise OSError("disk gone")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_crash)
    assert saver.save(ann.assign_annotation(feats, [3], "lymphocyte"))
    saver.flush()
    assert isinstance(saver.error, OSError)
    assert saver.path.read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == [saver.path.name]
    saver.close()


def test_load_autosave_refuses_another_stack(tmp_path, features):
    from napari_tsimcne.plugin.autosave import load_autosave

    path = tmp_path / "tiles-00000000000000aa.autosave.csv"
    ann.export_csv(features, path)
    with pytest.raises(ann.AnnotationFileError, match="another tile stack"):
        load_autosave(path, "00000000000000bb", 20)
    assert len(load_autosave(path, "00000000000000aa", 20)) == 20


def test_a_3d_maps_autosave_keeps_its_third_axis(tmp_path):
    from napari_tsimcne.core.table import read_embedding
    from napari_tsimcne.plugin.autosave import AnnotationAutosaver

    emb = np.random.default_rng(0).normal(size=(20, 3))
    feats = ann.assign_annotation(initial_features(emb, outlier=np.ones(20)), [4], "blast")
    saver = AnnotationAutosaver(tmp_path / "t-0123456789abcdef.autosave.csv")
    assert saver.save(feats)
    saver.flush()
    saver.close()
    np.testing.assert_array_equal(read_embedding(saver.path).embedding, emb)
    assert ann.import_csv(saver.path, 20, "0123456789abcdef")["annotation"][4] == "blast"
