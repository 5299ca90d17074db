"""Data identity, safe writes and our own errors in the library (no command line)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch

from napari_tsimcne import TSimCNE
from napari_tsimcne.core.evaluation import EvaluationError, knn_accuracy
from napari_tsimcne.core.fingerprint import TileMismatchError, fingerprint
from napari_tsimcne.core.persistence import (
    ModelFileError,
    OutputFileError,
    atomic_write,
    remove_stale_temporaries,
    save_payload,
)
from napari_tsimcne.core.tiles import TileStackError, as_tile_stack, tile_image

SMALL = dict(
    backbone="resnet10",
    width=8,
    batch_size=16,
    total_epochs=(2, 0, 0),
    random_state=0,
    device="cpu",
    preview_every=0,
)


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    from napari_tsimcne.core.sample import load_histology

    return np.ascontiguousarray(load_histology().tiles[:32, :16, :16])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiles):
    """A checkpoint after the first of two epochs."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.tsimcne"
    events = TSimCNE(**SMALL).fit_iter(tiles, checkpoint=path)
    next(events)
    events.close()
    return path


def test_checkpoint_carries_the_fingerprint(checkpoint, tiles):
    model = TSimCNE.load(checkpoint, device="cpu")
    assert model.fingerprint_ == fingerprint(tiles)
    assert model.fingerprint_.n_tiles == 32 and model.fingerprint_.shape == (16, 16, 3)


@pytest.mark.parametrize(
    "other",
    [
        lambda t: t[::-1].copy(),  # same count and shape, other order
        lambda t: np.concatenate([t, t[:8]]),  # another count
    ],
    ids=["same-shape", "other-count"],
)
def test_resume_on_other_tiles_is_refused(checkpoint, tiles, other):
    model = TSimCNE.load(checkpoint, device="cpu")
    with pytest.raises(TileMismatchError, match="other tiles"):
        model.resume_iter(other(tiles))


def test_other_tiles_can_be_allowed_explicitly(checkpoint, tiles):
    model = TSimCNE.load(checkpoint, device="cpu")
    other = tiles.astype(np.float32)  # the same pixels read as another dtype
    model.resume_iter(other, allow_other_tiles=True).close()
    assert model.fingerprint_ == fingerprint(other)


def test_resume_on_the_same_tiles_and_an_old_file_without_fingerprint(checkpoint, tiles, tmp_path):
    TSimCNE.load(checkpoint, device="cpu").resume_iter(tiles).close()
    payload = torch.load(checkpoint, weights_only=True)
    del payload["fingerprint"]  # written before fingerprints existed
    torch.save(payload, tmp_path / "old.tsimcne")
    old = TSimCNE.load(tmp_path / "old.tsimcne", device="cpu")
    assert old.fingerprint_ is None
    old.resume_iter(tiles[::-1].copy()).close()  # nothing to check against: accepted


def test_one_tile_can_be_mapped(checkpoint, tiles):
    model = TSimCNE(**SMALL).fit(tiles)
    assert model.transform(tiles[:1]).shape == (1, 2)
    # a checkpoint from the middle of pre-training has no map yet: it can be resumed, not used to map
    from napari_tsimcne import NotFittedError

    with pytest.raises(NotFittedError, match="resume_iter"):
        TSimCNE.load(checkpoint, device="cpu").transform(tiles[:1])
    with pytest.raises(TileStackError, match="single tile"):
        TSimCNE(**SMALL).fit_iter(tiles[:1])


def test_nan_weights_and_mismatched_normalisation_are_refused(checkpoint, tmp_path):
    payload = torch.load(checkpoint, weights_only=True)
    bad = dict(
        payload,
        state_dict={
            k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
            for k, v in payload["state_dict"].items()
        },
    )
    torch.save(bad, tmp_path / "nan.tsimcne")
    with pytest.raises(ModelFileError, match="NaN"):
        TSimCNE.load(tmp_path / "nan.tsimcne")
    torch.save(
        dict(payload, normalization={"low": [0.0], "high": [1.0]}), tmp_path / "norm.tsimcne"
    )
    with pytest.raises(ModelFileError, match="normalisation"):
        TSimCNE.load(tmp_path / "norm.tsimcne")


def test_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / "f.txt"
        target.write_text("old")
        os.chmod(target, 0o664)
        atomic_write(target, lambda tmp: open(tmp, "w").write("new"))
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644 and target.read_text() == "new"


def test_full_disk_is_our_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.tsimcne"
    target.write_bytes(b"old")

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputFileError, match="disk is full"):
        atomic_write(target, full)

    def enforce_fail(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos")

    monkeypatch.setattr(torch, "save", enforce_fail)
    with pytest.raises(OutputFileError, match="Cannot write"):
        save_payload(target, {})
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tsimcne"]


def test_stale_temporaries_only(tmp_path):
    dead = 2**22 + 7
    stale = tmp_path / f".map.png.{dead}-x1.tmp"
    stale.write_bytes(b"")
    mine = tmp_path / f".map.png.{os.getpid()}-x2.tmp"
    mine.write_bytes(b"")
    kept = [tmp_path / "map.png", tmp_path / ".hidden.tmp", tmp_path / f".x.{dead}.tmp"]
    for p in kept:
        p.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert all(p.exists() for p in [mine, *kept])


@pytest.mark.parametrize("axis", [4, -5, 1.5, "1"])
def test_channel_axis_out_of_range(tiles, axis):
    with pytest.raises(TileStackError, match="channel_axis"):
        as_tile_stack(tiles, channel_axis=axis)
    with pytest.raises(TileStackError, match="channel_axis"):
        tile_image(tiles[0], 8, channel_axis=axis if axis != 4 else 3)


def test_seed_beyond_int64_is_refused(tiles):
    with pytest.raises(ValueError, match="random_state"):
        TSimCNE(**{**SMALL, "random_state": 2**63}).fit_iter(tiles)


@pytest.mark.parametrize(
    "labels",
    [
        np.r_[np.zeros(50), np.nan * np.ones(50)],
        np.arange(100),
        np.repeat(np.arange(20), 5),
        np.r_[np.zeros(99), 1],
        np.zeros(100),
    ],
)
def test_unscorable_labels_are_an_evaluation_error(labels):
    with pytest.raises(EvaluationError, match="cannot be computed"):
        knn_accuracy(np.random.default_rng(0).normal(size=(100, 2)), labels)


def test_a_set_cut_short_has_no_summary(tmp_path, monkeypatch):
    from napari_tsimcne.core.persistence import StagedOutputs

    names = ["model.tsimcne", "embedding.csv", "summary.json"]
    for name in names:
        (tmp_path / name).write_text("old")
    real_replace, moved = os.replace, []

    def replace(src, dst):  # the process "dies" after the first move
        if moved:
            raise OSError(errno.EIO, "killed")
        moved.append(dst)
        real_replace(src, dst)

    staged = StagedOutputs(tmp_path)
    for name in names:
        staged.path(name).write_text("new")
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputFileError):
        staged.commit(names)
    assert (tmp_path / "model.tsimcne").read_text() == "new"
    assert not (tmp_path / "summary.json").exists()  # no marker over a mixed folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedding.csv", "model.tsimcne"]
