"""One map's annotations without any window: naming, undo, clusters, files, autosave and restore."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from napari.layers import Image, Points

from napari_tsimcne.plugin.annotation_session import MapAnnotations
from napari_tsimcne.plugin.map_layer import map_layer_data


def make_map(seed: int = 0, n: int = 60):
    rng = np.random.default_rng(seed)
    tiles = Image(rng.random((n, 8, 8)).astype(np.float32), name="cells")
    embedding = np.concatenate([rng.normal(0, 1, (n // 2, 2)), rng.normal(8, 1, (n - n // 2, 2))])
    data, kwargs, _ = map_layer_data(embedding, (8, 8), "cells")
    return Points(data, **kwargs), tiles


@pytest.fixture
def session(tmp_path):
    layer, tiles = make_map()
    return MapAnnotations(layer, lambda: tiles, folder=tmp_path)


def test_the_model_imports_no_qt():
    code = (
        "import sys, napari_tsimcne.plugin.annotation_session\n"
        "print([m for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_naming_undo_and_groups(session):
    changes = []
    session.changed.connect(changes.append)
    assert session.assign("debris", {0, 1, 2}) == 3
    assert session.assign("cell", {2, 3}) == 2
    feats = session.layer.features
    assert list(feats["annotation"][:5]) == ["debris", "debris", "cell", "cell", ""]
    assert session.rows_of("annotation", "cell") == {2, 3}
    assert session.layer.metadata["tsimcne_color_by"] == "annotation"
    assert session.undo() and session.rows_of("annotation", "debris") == {0, 1, 2}
    assert session.undo() and not session.can_undo and not session.undo()
    assert changes == ["annotation"] * 4
    with pytest.raises(ValueError, match="class name"):
        session.assign("  ", {1})


def test_kmeans_finds_the_two_islands(session):
    labels = session.propose_kmeans(2)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[-1]
    assert session.layer.metadata["tsimcne_color_by"] == "cluster"
    with pytest.raises(ValueError, match="cluster numbers"):
        session.set_clusters(np.zeros(3, int))


def test_hdbscan_runs_as_a_job_and_applies_only_to_the_same_map(session):
    with pytest.raises(ValueError):
        session.hdbscan_job(1000)  # refused before anything runs
    job = session.hdbscan_job(10)
    changes = []
    session.changed.connect(changes.append)
    labels = job()  # what the view runs on a worker thread
    assert session.layer.features["cluster"].eq(-1).all() and changes == []  # nothing written yet
    message = session.apply_hdbscan(labels)
    assert message.startswith("HDBSCAN: 2 clusters") and changes == ["cluster"]
    assert len(set(labels[:30]) - {-1}) == 1 and labels[0] != labels[-1]
    assert session.apply_hdbscan(labels[:-1]) is None  # the map changed meanwhile: left alone


def test_autosave_restore_round_trip_and_no_file_for_unnamed_maps(session, tmp_path):
    assert not session.autosave(wait=True)  # nothing named: no file
    assert not list(tmp_path.glob("*.autosave.csv"))
    session.assign("debris", {4, 5})
    assert session.saver.status() is None  # nothing written yet: nothing to say
    assert session.autosave(wait=True) and session.saver.path.is_file()
    assert session.saver.status().startswith(f"Autosaved to {session.saver.path} at ")
    assert not session.autosave(wait=True)  # unchanged: not written again
    # a fresh map of the same tiles (napari restarted) finds and restores it
    fresh = MapAnnotations(make_map()[0], session.tiles_layer, folder=tmp_path)
    path, other = fresh.autosave_to_restore()
    assert path == session.saver.path and other is None
    restored, n = fresh.restore()
    assert n == 2 and fresh.rows_of("annotation", "debris") == {4, 5}
    assert fresh.describe() == "2 annotated tiles"
    fresh.propose_kmeans(2)
    assert fresh.describe() == "2 annotated tiles and 2 clusters"
    # a map of other tiles under the same name is not given these annotations
    layer, tiles = make_map(seed=1)
    stranger = MapAnnotations(layer, lambda: tiles, folder=tmp_path)
    path, other = stranger.autosave_to_restore()
    assert path is None and other == session.saver.path
    with pytest.raises(ValueError, match="another tile stack"):
        stranger.restore(session.saver.path)
    assert (stranger.layer.features["annotation"] == "").all()  # unchanged


def test_a_failed_autosave_says_why_and_tries_again(session, tmp_path, monkeypatch):
    from napari_tsimcne.plugin import annotations as ann

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    session.assign("debris", {4})
    monkeypatch.setattr(ann, "export_csv", full_disk)
    assert session.autosave(wait=True)
    assert session.saver.status() == "Autosave failed: [Errno 28] No space left on device"
    monkeypatch.undo()
    assert session.autosave(wait=True)  # the same annotations are written at the next try
    assert session.saver.status().startswith("Autosaved to ")


def test_export_import_and_no_overwrite(session, tmp_path):
    session.assign("debris", {7})
    path = session.export_csv(tmp_path / "a.csv")
    with pytest.raises(FileExistsError):
        session.export_csv(path)
    fresh = MapAnnotations(make_map()[0], session.tiles_layer, folder=tmp_path)
    fresh.import_csv(path)
    assert fresh.rows_of("annotation", "debris") == {7}


def test_without_its_tile_layer_nothing_is_autosaved(tmp_path):
    layer, _ = make_map()
    orphan = MapAnnotations(layer, lambda: None, folder=tmp_path)
    orphan.assign("debris", {1})
    assert orphan.fingerprint() is None and not orphan.autosave(wait=True)
    with pytest.raises(ValueError, match="tile layer is gone"):
        orphan.restore()


def test_every_map_of_a_viewer_gets_annotations_without_a_window(tmp_path):
    from napari.components import ViewerModel

    from napari_tsimcne.plugin.annotation_session import ViewerAnnotations, is_map

    viewer = ViewerModel()
    layer, tiles = make_map()
    viewer.add_layer(tiles)
    viewer.add_image(np.zeros((8, 8)), name="not a map")
    annotations = ViewerAnnotations(viewer, folder=tmp_path)
    added, removed = [], []
    annotations.added.connect(added.append)
    annotations.removed.connect(removed.append)
    assert annotations.refresh() == [] and len(annotations) == 0
    viewer.add_layer(layer)
    assert is_map(layer) and not is_map(tiles)
    assert annotations.refresh() == [layer] and len(added) == 1
    session = annotations.get(layer)
    assert session.tiles_layer() is not None  # found through the viewer
    annotations.refresh()
    assert len(added) == 1  # a map gets its annotations once
    session.assign("debris", {1, 2})
    [(saved, queued)] = annotations.autosave(wait=True)
    assert saved is session and queued and session.saver.path.is_file()
    session.assign("cell", {3})
    viewer.layers.remove(layer)
    annotations.refresh()
    assert removed == [session] and annotations.get(layer) is None
    # the last change before the map left reached its file
    assert "cell" in session.saver.path.read_text()


def test_clusters_of_an_earlier_map_are_not_put_on_a_new_one(session, tmp_path):
    session.assign("debris", {4, 5})
    session.propose_kmeans(2)
    assert session.autosave(wait=True)
    # the same map opened again (same coordinates): names and clusters come back
    same = MapAnnotations(make_map()[0], session.tiles_layer, folder=tmp_path)
    same.restore()
    assert not same.clusters_left_out
    assert same.describe() == "2 annotated tiles and 2 clusters"
    # a map trained again on the same tiles (other coordinates): the names only
    layer = make_map()[0]
    moved = layer.features.copy()
    moved[["x", "y"]] = moved[["x", "y"]].to_numpy()[::-1]
    layer.features = moved
    again = MapAnnotations(layer, session.tiles_layer, folder=tmp_path)
    again.restore()
    assert again.clusters_left_out and again.describe() == "2 annotated tiles"
    assert again.rows_of("annotation", "debris") == {4, 5}
