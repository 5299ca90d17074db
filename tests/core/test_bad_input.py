"""Bad input and bad settings are refused before training, with messages that say what to do."""

import numpy as np
import pytest

from napari_tsimcne import ModelFileError, NotFittedError, TileStackError, TSimCNE
from tests.conftest import TINY


@pytest.mark.parametrize(
    "params, message",
    [
        ({"batch_size": 1024}, "larger than the stack"),
        ({"total_epochs": (1, 2)}, "three"),
        ({"total_epochs": (-1, 2, 3)}, "non-negative"),
        ({"total_epochs": (0, 0, 0)}, "nothing would be trained"),
        ({"lr": -0.1}, "lr must be a positive"),
        ({"out_dim": 5}, "out_dim"),
        (
            {"device": "cuda"}
            if not __import__("torch").cuda.is_available()
            else {"device": "tpu"},
            "device",
        ),
        ({"augmentations": "cats"}, "Unknown augmentation preset"),
        ({"lr": None}, "lr must be a positive"),
        ({"lr": True}, "lr must be a positive"),
        ({"momentum": None}, "momentum must be"),
        ({"momentum": 1.0}, "momentum must be"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"grad_clip": "a"}, "grad_clip"),
        ({"preview_every": "x"}, "preview_every"),
        ({"random_state": "a"}, "random_state"),
        ({"embed_batch_size": 0}, "embed_batch_size"),
        ({"batch_size": 8.5}, "batch_size must be a whole number"),
    ],
)
def test_bad_settings_fail_before_training(rgb_tiles, params, message):
    with pytest.raises(ValueError, match=message):
        TSimCNE(**{**TINY, **params}).fit_iter(rgb_tiles)


def test_transform_checks_channels_and_tile_size(rgb_tiles, tmp_path):
    model = TSimCNE(**{**TINY, "total_epochs": (1, 0, 0)}).fit(rgb_tiles)
    with pytest.raises(TileStackError, match="trained on tiles with 3 channel"):
        model.transform(rgb_tiles[..., 0])
    with pytest.raises(TileStackError, match="32 x 32 tiles"):
        model.transform(rgb_tiles[:, :16, :16])


def test_transform_before_fit_is_explained(rgb_tiles):
    with pytest.raises(NotFittedError, match="call fit"):
        TSimCNE().transform(rgb_tiles)


def test_corrupt_missing_and_foreign_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="No model file"):
        TSimCNE.load(tmp_path / "nothing.tsimcne")
    bad = tmp_path / "bad.tsimcne"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ModelFileError, match="corrupt"):
        TSimCNE.load(bad)
    import torch

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="not a napari-tsimcne model"):
        TSimCNE.load(foreign)


def test_failed_save_leaves_no_partial_file(rgb_tiles, tmp_path, monkeypatch):
    model = TSimCNE(**{**TINY, "total_epochs": (1, 0, 0)}).fit(rgb_tiles)
    target = tmp_path / "model.tsimcne"
    model.save(target)
    before = target.read_bytes()
    import torch

    def broken_save(obj, f):
        open(f, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        model.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.tsimcne"]


def test_a_diverging_loss_stops_training_with_an_explanation(rgb_tiles):
    from napari_tsimcne import TrainingDivergedError

    model = TSimCNE(**{**TINY, "lr": 1e12, "grad_clip": None, "total_epochs": (2, 0, 0)})
    with pytest.raises(TrainingDivergedError, match="smaller learning rate"):
        list(model.fit_iter(rgb_tiles))
    assert (
        model.embedding_ is not None and np.isfinite(model.embedding_).all()
    )  # the last good weights, not NaNs
