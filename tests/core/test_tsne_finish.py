"""The t-SNE finish: a t-SNE of the pre-trained features, fitted into the network as its 2-D head."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_tsimcne import TSimCNE, knn_accuracy
from napari_tsimcne.core.budget import StepCosts, epochs_for_budget
from napari_tsimcne.core.parameters import ParameterError
from napari_tsimcne.core.schedule import make_stages
from napari_tsimcne.core.tsne_finish import (
    DISTILL_EPOCHS,
    MapHead,
    is_map_head,
    tsne_seconds,
)
from tests.conftest import TINY

FINISHED_BY_TSNE = {**TINY, "finish": "tsne", "total_epochs": (2, 1, 6)}


def _fake(kind: str) -> torch.device:
    return torch.device(kind)


@pytest.mark.parametrize(
    ("kind", "settings", "n_tiles", "expected"),
    [
        ("cpu", {}, 17_092, "tsne"),  # the CPU's 10-minute map
        ("cuda", {}, 17_092, "contrastive"),  # the paper's epochs
        ("mps", {}, 17_092, "contrastive"),
        (
            "cpu",
            {"total_epochs": (5, 1, 2)},
            17_092,
            "contrastive",
        ),  # epochs mean the paper's stages
        ("cpu", {"out_dim": 3}, 17_092, "contrastive"),
        ("cpu", {}, 200_000, "contrastive"),  # its t-SNE would take most of the 10 minutes
        ("cpu", {"time_budget": 60}, 17_092, "contrastive"),  # ... or of one minute
        ("cuda", {"finish": "tsne"}, 17_092, "tsne"),  # asked for
        ("cpu", {"finish": "contrastive"}, 17_092, "contrastive"),
    ],
)
def test_auto_finish_is_the_tsne_one_for_a_cpu_time_budget(kind, settings, n_tiles, expected):
    assert TSimCNE(**settings).plan_for(_fake(kind), n_tiles).finish == expected


def test_tsne_finish_in_several_processes_is_refused_by_name():
    with pytest.raises(ParameterError, match="finish='tsne' trains in one process") as error:
        TSimCNE(finish="tsne").plan_for(_fake("cuda"), 17_092, processes=2)
    assert error.value.parameters == ("finish",)
    assert TSimCNE().plan_for(_fake("cpu"), 17_092, processes=2).finish == "contrastive"


def test_a_bad_finish_is_refused_with_the_choices():
    with pytest.raises(ParameterError, match="'auto', 'contrastive' or 'tsne'"):
        TSimCNE(finish="umap").plan_for(_fake("cpu"), 1000)


def test_the_budget_gives_pretraining_what_the_tsne_and_the_fit_leave():
    costs = StepCosts(full_step=0.15, last_layer_step=0.05, embed_tile=8e-5)
    epochs, every = epochs_for_budget(600, costs, 17_092, 256, finish="tsne", distill_epoch=9.0)
    assert epochs[1:] == (1, DISTILL_EPOCHS)
    epoch = costs.full_step * (17_092 // 256)
    fixed = tsne_seconds(17_092) + DISTILL_EPOCHS * 9.0 + costs.embed_tile * 17_092
    previews = sum(epochs) // every
    spent = epochs[0] * epoch + fixed + costs.embed_tile * 17_092 * (1 + previews)
    assert 600 - 2 * epoch < spent <= 600  # the previews may take less than they were given
    # a slow fit gets at most a quarter of the budget
    slow, _ = epochs_for_budget(600, costs, 17_092, 256, finish="tsne", distill_epoch=30.0)
    assert slow[2] == 5


def test_tsne_stages_are_named_for_the_user():
    stages = make_stages((4, 1, 20), 0.03, finish="tsne")
    assert [s.name for s in stages] == [
        "pre-training",
        "t-SNE of the features",
        "fitting the network to the map",
    ]
    assert [s.epochs for s in stages] == [4, 1, 20]
    assert make_stages((4, 0, 0), 0.03, finish="tsne")[1].epochs == 0


@pytest.fixture(scope="module")
def blood_cells(pbc):
    tiles, labels = pbc
    idx = np.sort(np.random.default_rng(1).choice(len(tiles), 1200, replace=False))
    return tiles[idx], labels[idx]


@pytest.fixture(scope="module")
def finished_on_blood_cells(blood_cells):
    tiles, _ = blood_cells
    model = TSimCNE(
        **{
            **TINY,
            "finish": "tsne",
            "backbone": "resnet18-s2",
            "width": 8,
            "batch_size": 128,
            "total_epochs": (6, 1, 4),
            "preview_every": 10,
        }
    )
    events = list(model.fit_iter(tiles))
    tsne_map = next(e.embedding for e in events if e.stage == 2)  # the preview after the t-SNE
    return model, events, tsne_map


def test_the_network_keeps_the_neighbourhoods_of_the_tsne_of_its_features(
    finished_on_blood_cells, blood_cells
):
    model, _, tsne_map = finished_on_blood_cells
    _, labels = blood_cells
    tsne_acc = knn_accuracy(tsne_map, labels)
    map_acc = knn_accuracy(model.embedding_, labels)
    print(f"t-SNE of the features {tsne_acc:.1f} %, the network's map {map_acc:.1f} %")
    assert tsne_acc > 30, f"the t-SNE of the features is at {tsne_acc:.1f} % (chance: 12.5 %)"
    assert map_acc >= tsne_acc - 4, f"the network's map {map_acc:.1f} %, its t-SNE {tsne_acc:.1f} %"
    # one network: a forward pass maps the training tiles where the map shows them
    tiles, _ = blood_cells
    np.testing.assert_allclose(model.transform(tiles), model.embedding_, atol=1e-4)
    assert is_map_head(model.model_.head) and model.finish_ == "tsne"


def test_tsne_finish_events_name_each_stage_and_show_the_map_early(finished_on_blood_cells):
    _, events, tsne_map = finished_on_blood_cells
    assert [(e.stage, e.stage_name) for e in events[5:8]] == [
        (1, "pre-training"),
        (2, "t-SNE of the features"),
        (3, "fitting the network to the map"),
    ]
    assert [e.global_epoch for e in events] == list(range(1, 12))
    assert tsne_map.shape == (1200, 2)  # the map appears as soon as the t-SNE is done
    fit_losses = [e.loss for e in events if e.stage == 3]
    assert fit_losses[-1] < 0.5 * fit_losses[0]


def test_a_tsne_finished_model_saves_and_loads(finished_on_blood_cells, blood_cells, tmp_path):
    model, _, _ = finished_on_blood_cells
    tiles, _ = blood_cells
    model.save(tmp_path / "m.tsimcne")
    loaded = TSimCNE.load(tmp_path / "m.tsimcne")
    assert isinstance(loaded.model_.head, MapHead) and loaded.finish == "tsne"
    np.testing.assert_allclose(loaded.transform(tiles[:50]), model.embedding_[:50], atol=1e-4)


def test_a_run_resumed_while_fitting_the_map_matches_an_uninterrupted_one(rgb_tiles, tmp_path):
    full = TSimCNE(**FINISHED_BY_TSNE).fit_transform(rgb_tiles)
    ckpt = tmp_path / "run.tsimcne"
    gen = TSimCNE(**FINISHED_BY_TSNE).fit_iter(rgb_tiles, checkpoint=ckpt)
    for _ in range(5):  # pre-training, the t-SNE and two epochs of the fit
        next(gen)
    gen.close()
    resumed = TSimCNE.load(ckpt, device="cpu")
    events = list(resumed.resume_iter(rgb_tiles))
    assert [e.global_epoch for e in events] == [6, 7, 8, 9]
    np.testing.assert_allclose(resumed.embedding_, full, atol=1e-5)


def test_stop_during_the_tsne_ends_training_with_a_usable_model(rgb_tiles):
    stop = threading.Event()
    model = TSimCNE(**FINISHED_BY_TSNE)
    events = []
    for event in model.fit_iter(rgb_tiles, stop=stop):
        events.append(event)
        if event.stage == 1 and event.epoch == 2:
            stop.set()  # the t-SNE starts next and sees it at once
    assert [e.stage for e in events] == [1, 1]
    assert model.embedding_.shape == (256, 2)  # the pre-trained output's two principal axes
    assert model.transform(rgb_tiles[:3]).shape == (3, 2)
