"""Training behaviour: on real blood-cell tiles, on multichannel uint16, early stops and determinism."""

import threading

import numpy as np
import pytest

from napari_tsimcne import TSimCNE, knn_accuracy
from tests.conftest import TINY


@pytest.fixture(scope="module")
def pbc_subset(pbc):
    tiles, labels = pbc
    idx = np.sort(np.random.default_rng(0).choice(len(tiles), 1000, replace=False))
    return tiles[idx], labels[idx]


@pytest.fixture(scope="module")
def trained_on_pbc(pbc_subset):
    tiles, _ = pbc_subset
    model = TSimCNE(
        total_epochs=(10, 3, 3),
        batch_size=128,
        backbone="resnet10",
        width=16,
        random_state=0,
        device="cpu",
        preview_every=0,
    )
    events = list(model.fit_iter(tiles))
    return model, events


@pytest.mark.slow  # trains 1,000 real tiles for 16 epochs
def test_training_on_real_blood_cells_lowers_the_loss_and_separates_classes(
    trained_on_pbc, pbc_subset
):
    model, events = trained_on_pbc
    _, labels = pbc_subset
    stage1 = [e.loss for e in events if e.stage == 1]
    assert np.mean(stage1[-3:]) < stage1[0] - 0.1
    assert model.embedding_.shape == (1000, 2)
    acc = knn_accuracy(model.embedding_, labels)
    assert acc > 35.0, f"15-NN accuracy {acc:.1f} % is not well above chance (12.5 %)"


@pytest.mark.slow  # trains 1,000 real tiles for 16 epochs
def test_events_cover_every_epoch_of_every_stage(trained_on_pbc):
    _, events = trained_on_pbc
    assert [(e.stage, e.epoch) for e in events] == [(1, i) for i in range(1, 11)] + [
        (2, i) for i in range(1, 4)
    ] + [(3, i) for i in range(1, 4)]
    assert [e.global_epoch for e in events] == list(range(1, 17))
    assert events[-1].embedding is not None and events[-1].embedding.shape == (1000, 2)
    assert all(e.views_per_second > 0 and e.lr >= 0 for e in events)
    # on the CPU stage 3 fine-tunes at stage 1's rate ("auto"; the paper's lr / 1000 is for CUDA)
    peak1 = max(e.lr for e in events if e.stage == 1)
    assert peak1 / 10 < max(e.lr for e in events if e.stage == 3) <= peak1


@pytest.mark.slow  # trains 1,000 real tiles for 16 epochs
def test_transform_of_training_tiles_reproduces_the_embedding(trained_on_pbc, pbc_subset):
    model, _ = trained_on_pbc
    y, feats = model.transform(pbc_subset[0], return_features=True)
    np.testing.assert_allclose(y, model.embedding_, rtol=1e-4, atol=1e-4)
    assert feats.shape == (1000, 128)  # resnet10 at width 16: 8 * 16 features


def test_fit_reports_the_final_mapping(rgb_tiles):
    calls = []
    model = TSimCNE(**{**TINY, "embed_batch_size": 24})
    for _ in model.fit_iter(rgb_tiles, progress=lambda done, total: calls.append((done, total))):
        pass
    n = len(rgb_tiles)
    assert calls[-1] == (n, n) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) == -(-n // 24)  # one call per batch, only for the final mapping


@pytest.mark.slow  # trains 1,000 real tiles for 16 epochs
def test_transform_reports_progress_per_batch(trained_on_pbc, pbc_subset):
    model, _ = trained_on_pbc
    calls = []
    model.embed_batch_size = 300
    try:
        model.transform(pbc_subset[0], progress=lambda done, total: calls.append((done, total)))
    finally:
        model.embed_batch_size = 2048
    assert calls == [(300, 1000), (600, 1000), (900, 1000), (1000, 1000)]


@pytest.mark.slow  # trains 1,000 real tiles for 16 epochs
def test_save_and_load_give_the_same_embedding(trained_on_pbc, pbc_subset, tmp_path):
    model, _ = trained_on_pbc
    path = tmp_path / "model.tsimcne"
    model.save(path)
    loaded = TSimCNE.load(path, device="cpu")
    np.testing.assert_allclose(
        loaded.transform(pbc_subset[0][:200]), model.transform(pbc_subset[0][:200]), atol=1e-5
    )
    assert loaded.get_params()["total_epochs"] == (10, 3, 3)
    np.testing.assert_array_equal(loaded.embedding_, model.embedding_)


def test_multichannel_uint16_stack_trains_end_to_end():
    rng = np.random.default_rng(0)
    n = 128
    bright = rng.random(n) < 0.5  # two populations differing only in channel-2 intensity
    x = rng.normal(800, 60, (n, 24, 24, 4))
    x[bright, :, :, 2] += 2500
    x = np.clip(x, 0, 65535).astype(np.uint16)
    model = TSimCNE(**{**TINY, "augmentations": "quantitative", "batch_size": 32})
    y = model.fit_transform(x)
    assert y.shape == (n, 2) and np.isfinite(y).all()
    assert model.n_channels_ == 4
    assert model.transform(x[:10]).shape == (10, 2)


def test_same_seed_on_cpu_gives_the_same_embedding(rgb_tiles):
    a = TSimCNE(**TINY).fit_transform(rgb_tiles)
    b = TSimCNE(**TINY).fit_transform(rgb_tiles)
    c = TSimCNE(**{**TINY, "random_state": 1}).fit_transform(rgb_tiles)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_stopping_early_keeps_a_usable_model_and_map(rgb_tiles):
    model = TSimCNE(**{**TINY, "total_epochs": (3, 1, 1)})
    gen = model.fit_iter(rgb_tiles)
    first = next(gen)
    assert first.stage == 1
    gen.close()  # the user pressed Stop during pre-training
    assert model.embedding_.shape == (256, 2) and np.isfinite(model.embedding_).all()
    assert model.transform(rgb_tiles[:8]).shape == (8, 2)


class _StopAfterChecks(threading.Event):
    """Reads as set from its (n + 1)-th check on: Stop pressed part-way through an epoch."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.checks = n, 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > self.n


def test_stop_ends_training_within_a_step_and_resume_repeats_the_unfinished_epoch(
    rgb_tiles, tmp_path
):
    path = tmp_path / "run.tsimcne"
    model = TSimCNE(**{**TINY, "total_epochs": (3, 1, 1)})  # 256 tiles, batch 64: 4 steps an epoch
    stop = _StopAfterChecks(4 + 2)  # all of epoch 1, then 2 steps of epoch 2
    events = list(model.fit_iter(rgb_tiles, checkpoint=path, stop=stop))
    assert [e.global_epoch for e in events] == [1]
    assert stop.checks == 7  # checked before every step; the third step of epoch 2 never ran
    assert len(model.history_) == 1  # the unfinished epoch is not counted
    assert model.embedding_.shape == (256, 2) and np.isfinite(model.embedding_).all()
    rest = list(TSimCNE.load(path, device="cpu").resume_iter(rgb_tiles))
    assert [e.global_epoch for e in rest] == [2, 3, 4, 5]


def test_preview_embeddings_arrive_during_training(rgb_tiles):
    model = TSimCNE(**{**TINY, "preview_every": 1})
    events = list(model.fit_iter(rgb_tiles))
    assert all(e.embedding is not None and e.embedding.shape == (256, 2) for e in events)


def test_three_dimensional_output(rgb_tiles):
    y = TSimCNE(**{**TINY, "out_dim": 3}).fit_transform(rgb_tiles)
    assert y.shape == (256, 3)


def test_resumed_run_matches_an_uninterrupted_one(rgb_tiles, tmp_path):
    settings = {**TINY, "total_epochs": (3, 1, 2)}
    full = TSimCNE(**settings).fit_transform(rgb_tiles)

    ckpt = tmp_path / "run.ckpt.tsimcne"
    model = TSimCNE(**settings)
    gen = model.fit_iter(rgb_tiles, checkpoint=ckpt)
    for _ in range(2):  # interrupted in the middle of pre-training
        next(gen)
    gen.close()
    resumed = TSimCNE.load(ckpt, device="cpu")
    events = list(resumed.resume_iter(rgb_tiles))
    assert [e.global_epoch for e in events] == [3, 4, 5, 6]
    np.testing.assert_array_equal(resumed.embedding_, full)


def test_a_checkpoint_is_also_a_usable_model(rgb_tiles, tmp_path):
    ckpt = tmp_path / "c.tsimcne"
    list(TSimCNE(**TINY).fit_iter(rgb_tiles, checkpoint=ckpt))
    assert TSimCNE.load(ckpt).transform(rgb_tiles[:4]).shape == (4, 2)


def test_out_of_memory_halves_the_batch_and_tells_the_user(rgb_tiles, out_of_memory_once):
    events = list(TSimCNE(**TINY).fit_iter(rgb_tiles))
    assert "batch size halved to 32" in events[0].message
    assert events[0].batch_size == 32 and len(events) == 4


@pytest.mark.parametrize("backbone", ["resnet18", "resnet10", "resnet18-s2"])
def test_every_backbone_trains_and_maps(backbone):
    from napari_tsimcne.core.backbones import BACKBONES

    assert backbone in BACKBONES  # a new backbone: add it to this list
    tiles = np.random.default_rng(0).random((64, 16, 16, 2), dtype=np.float32)
    model = TSimCNE(backbone=backbone, width=4, total_epochs=(1, 1, 1), batch_size=32, device="cpu")
    emb = model.fit_transform(tiles)
    assert emb.shape == (64, 2) and np.isfinite(emb).all()
    assert model.backbone_ == backbone


def test_the_backbone_list_is_tested():
    from napari_tsimcne.core.backbones import BACKBONES

    tested = test_every_backbone_trains_and_maps.pytestmark[0].args[1]
    assert sorted(tested) == sorted(BACKBONES)


def test_make_stages_fine_tunes_at_the_papers_rate_unless_told():
    from napari_tsimcne.core.schedule import make_stages

    assert make_stages((10, 1, 5), 0.12)[2].lr == pytest.approx(0.12 / 1000)
    assert make_stages((10, 1, 5), 0.12, finetune_lr=0.3)[2].lr == 0.3
    assert [s.lr for s in make_stages((10, 1, 5), 0.12, finetune_lr=0.3)[:2]] == [0.12, 0.12]
