"""TSimCNE is a scikit-learn estimator; its parameters are checked from one table, in Python's words."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import sklearn.exceptions
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from napari_tsimcne import NotFittedError, ParameterError, TSimCNE
from napari_tsimcne.cli import main, with_flags
from napari_tsimcne.core.augment import AugmentationSettings
from napari_tsimcne.core.config import TrainingConfig, default_batch_size
from napari_tsimcne.core.model import TSimCNENet
from napari_tsimcne.core.normalization import ChannelNormalization
from napari_tsimcne.core.parameters import RULES
from napari_tsimcne.core.schedule import make_stages
from napari_tsimcne.core.store import TileStore
from napari_tsimcne.core.training import Trainer

SMALL = dict(
    backbone="resnet10",
    width=4,
    batch_size=32,
    total_epochs=(1, 0, 0),
    random_state=0,
    device="cpu",
    preview_every=0,
)
"""One epoch of a tiny network: a fit takes about a second."""


@pytest.fixture(scope="module")
def tiles():
    return np.random.default_rng(0).random((64, 12, 12), dtype=np.float32)


@pytest.fixture(scope="module")
def fitted(tiles):
    return TSimCNE(**SMALL).fit(tiles, np.zeros(len(tiles)))  # y is accepted and ignored


# -- scikit-learn conventions ---------------------------------------------------------


def test_get_params_reads_every_init_parameter_and_returns_it_unchanged():
    settings = AugmentationSettings.preset("natural")
    params = {**SMALL, "augmentations": settings, "total_epochs": (3, 1, 2), "lr": 0.01}
    model = TSimCNE(**params)
    got = model.get_params()
    assert list(got) == sorted(inspect.signature(TSimCNE).parameters)
    for name, value in params.items():
        assert got[name] is value, name  # stored as given: what clone() relies on


def test_set_params_changes_parameters_and_refuses_unknown_names():
    model = TSimCNE()
    assert model.set_params(width=8, lr=0.1) is model
    assert (model.width, model.lr) == (8, 0.1)
    assert repr(model) == "TSimCNE(lr=0.1, width=8)"  # only what differs from the defaults
    with pytest.raises(ValueError, match="Invalid parameter 'widht'"):
        model.set_params(widht=8)


def test_clone_gives_an_equal_unfitted_copy(fitted):
    copy = clone(fitted)
    assert copy is not fitted and copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_") and not hasattr(copy, "embedding_")
    with pytest.raises(NotFittedError):
        copy.transform(np.zeros((4, 12, 12), np.float32))
    unfitted = TSimCNE(**SMALL, lr=0.05)
    assert clone(unfitted).get_params() == unfitted.get_params()


def test_check_is_fitted_tells_fitted_from_unfitted_models(fitted, tiles):
    check_is_fitted(fitted)
    checked = TSimCNE(**SMALL).validate(tiles)  # checking the settings trains nothing
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(checked)


def test_not_fitted_error_is_scikit_learns_and_still_a_runtime_error():
    with pytest.raises(NotFittedError, match="call fit") as info:
        TSimCNE().transform(np.zeros((4, 12, 12), np.float32))
    assert isinstance(info.value, sklearn.exceptions.NotFittedError)
    assert isinstance(info.value, RuntimeError)  # what callers caught before


def test_fit_transform_accepts_y_and_returns_the_map(tiles):
    y = TSimCNE(**SMALL).fit_transform(tiles, np.arange(len(tiles)))
    assert y.shape == (len(tiles), 2) and np.isfinite(y).all()


# -- the parameter table --------------------------------------------------------------


def test_the_table_has_a_rule_for_every_parameter_and_accepts_the_defaults():
    assert list(RULES) == list(inspect.signature(TSimCNE).parameters)
    for name, value in TSimCNE().get_params().items():
        assert RULES[name].accepts(value), name


@pytest.mark.parametrize(
    "params, name",
    [
        ({"batch_size": 1}, "batch_size"),
        ({"batch_size": 1024}, "batch_size"),  # larger than the 64 tiles
        ({"width": 2}, "width"),
        ({"total_epochs": (1, -1, 0)}, "total_epochs"),
        ({"total_epochs": (0, 0, 0)}, "total_epochs"),
        ({"device": "tpu"}, "device"),
        ({"random_state": -1}, "random_state"),
        ({"momentum": 1.5}, "momentum"),
        ({"out_dim": 2.0}, "out_dim"),
        ({"time_budget": 0, "total_epochs": "auto"}, "time_budget"),
        ({"time_budget": 60}, "time_budget"),  # given together with total_epochs
        ({"augmentations": 3}, "augmentations"),
        ({"init_2d": "tsne"}, "init_2d"),
    ],
)
def test_a_bad_parameter_is_named_as_in_python(tiles, params, name):
    with pytest.raises(ParameterError) as info:
        TSimCNE(**{**SMALL, **params}).validate(tiles)
    message = str(info.value)
    assert name in info.value.parameters and name in message
    assert "--" not in message  # no option of the command line
    assert isinstance(info.value, ValueError)  # what callers caught before


def test_core_messages_name_no_command_line_option():
    """String literals of the modules behind TSimCNE's parameters hold no '--option'."""
    core = Path(__file__).resolve().parents[2] / "src" / "napari_tsimcne" / "core"
    for module in ("estimator", "training", "parameters", "config", "device", "budget"):
        tree = ast.parse((core / f"{module}.py").read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) not in docstrings:
                    assert " --" not in node.value and not node.value.startswith("--"), (
                        module,
                        node.value,
                    )


# -- the command line names its options --------------------------------------------------


def test_with_flags_writes_python_names_as_options():
    exc = ParameterError(
        "batch_size=1024 is larger than the stack. Use batch_size <= 64; "
        "embed_batch_size stays. Use device='cpu'.",
        "batch_size",
        "device",
    )
    assert with_flags(exc) == (
        "--batch-size 1024 is larger than the stack. Use --batch-size <= 64; "
        "embed_batch_size stays. Use --device cpu."
    )


def test_the_command_line_names_its_option_for_a_bad_value(tmp_path, tiles, capsys):
    np.save(tmp_path / "tiles.npy", tiles)
    argv = ["fit", str(tmp_path / "tiles.npy"), "-o", str(tmp_path / "out"), "--quiet"]
    code = main([*argv, "--width", "2", "--epochs", "1", "0", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "--width must be a whole number of at least 4" in err and "width=" not in err
    code = main([*argv, "--overwrite", "--device", "tpu"])
    err = capsys.readouterr().err
    assert code == 1 and "--device" in err and "device=" not in err


# -- the Trainer's settings -------------------------------------------------------------


def test_training_config_is_frozen_and_holds_the_estimators_defaults():
    config = TrainingConfig(batch_size=32, seed=0, embed_batch_size=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.momentum = 0.5
    defaults = TSimCNE().get_params()
    for name in ("out_dim", "momentum", "weight_decay", "grad_clip", "init_2d"):
        assert defaults[name] == getattr(config, name), name


def test_the_trainer_trains_with_its_config(tiles):
    stack = tiles[..., None]
    store = TileStore(stack, ChannelNormalization.fit(stack), torch.device("cpu"))
    net = TSimCNENet(1, "resnet10", 4, out_dim=16)
    config = TrainingConfig(
        batch_size=16, seed=3, embed_batch_size=64, momentum=0.5, weight_decay=0.01
    )
    trainer = Trainer(
        net, store, make_stages((1, 0, 0), 0.01), AugmentationSettings.preset("microscopy"), config
    )
    events = list(trainer.run())
    assert len(events) == 1 and events[0].batch_size == 16
    group = trainer.optimizer.param_groups[0]
    assert (group["momentum"], group["weight_decay"]) == (0.5, 0.01)


@pytest.mark.parametrize(
    "n_tiles, largest, expected",
    [(300, 1024, 256), (5000, 1024, 1024), (5000, 256, 256), (1, 1024, 2), (64, 1024, 64)],
)
def test_default_batch_size_is_the_largest_power_of_two_the_stack_holds(n_tiles, largest, expected):
    assert default_batch_size(n_tiles, largest) == expected


def test_a_model_stopped_before_its_first_epoch_says_it_has_no_map():
    import numpy as np

    from napari_tsimcne import NotFittedError, TSimCNE

    tiles = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    model = TSimCNE(backbone="resnet10", width=4, batch_size=4, total_epochs=(1, 0, 0))
    model.fit_iter(tiles).close()  # closed before training began
    with pytest.raises(NotFittedError, match="before it made a map"):
        model.transform(tiles[:1])
    model.fit(tiles)
    assert model.transform(tiles[:1]).shape == (1, 2)


def test_stage_three_trains_at_the_fine_tuning_rate_and_the_model_file_keeps_it(tiles, tmp_path):
    model = TSimCNE(
        **{**SMALL, "total_epochs": (1, 1, 2), "warmup": 0, "lr": 0.01, "finetune_lr": 0.002}
    ).fit(tiles)
    stage3 = [h["lr"] for h in model.history_ if h["stage"] == 3]
    # cosine decay from 0.002: the first epoch of two ends above half of it, the second at 0
    assert 0.001 < stage3[0] <= 0.002 and stage3[1] < 0.001
    assert max(h["lr"] for h in model.history_ if h["stage"] < 3) > 0.004
    model.save(tmp_path / "m.tsimcne")
    loaded = TSimCNE.load(tmp_path / "m.tsimcne", device="cpu")
    assert loaded.finetune_lr_ == loaded.get_params()["finetune_lr"] == 0.002
    auto = TSimCNE(**{**SMALL, "total_epochs": (1, 1, 1), "batch_size": 32}).fit(tiles)
    assert auto.finetune_lr_ == pytest.approx(0.03 * 32 / 256)  # on this CPU


def test_a_model_file_from_before_finetune_lr_keeps_the_papers_rate(fitted, tmp_path):
    from napari_tsimcne.core.persistence import load_payload, save_payload

    fitted.save(tmp_path / "m.tsimcne")
    payload = load_payload(tmp_path / "m.tsimcne")
    del payload["params"]["finetune_lr"]
    save_payload(tmp_path / "old.tsimcne", payload)
    old = TSimCNE.load(tmp_path / "old.tsimcne", device="cpu")
    assert old.finetune_lr_ == pytest.approx(0.03 * 32 / 256 / 1000)  # lr "auto" at batch 32
