"""The training session: the plugin's training without any window (no Qt, no viewer)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_tsimcne.core import TileStackError
from napari_tsimcne.plugin.training_session import (
    TrainingSession,
    TrainingSettings,
    default_batch_size,
)

TINY = TrainingSettings(epochs=(3, 1, 1), batch_size=32, device="cpu", backbone="resnet10", width=8)


@pytest.fixture
def tiles():
    from napari_tsimcne.core.sample import load_histology

    return load_histology().tiles[:96]


@pytest.fixture
def session(tmp_path):
    return TrainingSession(tmp_path / "checkpoints")


def test_the_session_imports_no_qt():
    code = (
        "import sys, napari_tsimcne.plugin.training_session\n"
        "bad = [m for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_time_budget_counts_down_the_budget_not_the_epochs():
    from types import SimpleNamespace

    from napari_tsimcne.plugin.training_session import _seconds_left

    # ten epochs of pre-training took 100 s; the plan has 111 epochs in all
    event = SimpleNamespace(global_epoch=10, total_epochs=111, seconds=100.0)
    assert _seconds_left(event, 0, budget=600.0, elapsed=120.0) == pytest.approx(480.0)
    assert _seconds_left(event, 0) == pytest.approx(1010.0)  # without a budget: per epoch
    assert _seconds_left(event, 0, budget=600.0, elapsed=650.0) is None  # past it: no guess


def test_a_run_emits_plan_progress_and_result(session, tiles):
    seen = {"planned": [], "progressed": [], "finished": []}
    for name, items in seen.items():
        getattr(session, name).connect(items.append)
    result = session.run(tiles, TINY)
    assert [p.epochs for p in seen["planned"]] == [(3, 1, 1)]
    updates = seen["progressed"]
    assert [u.event.global_epoch for u in updates] == [1, 2, 3, 4, 5]
    assert [u.provisional for u in updates] == [True] * 4 + [False]
    assert updates[0].seconds_left > 0 and updates[-1].seconds_left == 0
    # every map that reaches the view comes with its outlier scores
    for u in updates:
        assert (u.event.embedding is None) == (u.outliers is None)
    assert seen["finished"] == [result] and not result.stopped
    assert result.embedding.shape == (96, 2) and result.outliers.shape == (96,)
    assert [(p.epoch, p.stage) for p in session.history] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 3)]
    assert not session.can_resume(tiles)  # a finished run leaves no checkpoint behind
    assert not list(session.checkpoint_dir.iterdir())


def test_stop_then_resume_continues_the_run(session, tiles):
    def stop_after_two(update):
        if update.event.global_epoch == 2:
            session.stop()

    session.progressed.connect(stop_after_two)
    first = session.run(tiles, TINY)
    session.progressed.disconnect(stop_after_two)
    assert first.stopped and session.epochs_done == 2
    assert first.embedding.shape == (96, 2)  # the map of what was learned so far
    assert session.can_resume(tiles)
    assert not session.can_resume(tiles[:80])  # other tiles: nothing to continue
    # a new session (napari restarted) finds the stopped run of these tiles
    again = TrainingSession(session.checkpoint_dir)
    planned = []
    again.planned.connect(planned.append)
    second = again.run(tiles, TINY, resume=True)
    assert planned[0].resumed_from == 2 and second.resumed_from == 2 and first.resumed_from == 0
    assert not second.stopped and len(again.model.history_) == 5
    assert [p.epoch for p in again.history] == [1, 2, 3, 4, 5]
    assert not again.can_resume(tiles)


def test_stop_takes_effect_before_the_next_training_step(session, tiles):
    # pressed as soon as the plan is shown: not one step is trained (not even the first epoch)
    session.planned.connect(lambda plan: session.stop())
    progressed = []
    session.progressed.connect(progressed.append)
    result = session.run(tiles, TINY)
    assert result.stopped and progressed == [] and session.epochs_done == 0
    assert result.embedding.shape == (96, 2) and np.isfinite(result.embedding).all()


def test_resume_without_a_stopped_run_says_so(session, tiles):
    with pytest.raises(FileNotFoundError, match="no stopped run"):
        session.start_resume(tiles)


def test_bad_tiles_are_refused_before_any_thread(session):
    with pytest.raises(TileStackError, match="boolean"):
        session.start(np.zeros((20, 8, 8), bool), TINY)
    assert not session.running


def test_a_failing_run_emits_failed(session, tiles, monkeypatch):
    failures = []
    session.failed.connect(lambda exc, started: failures.append((str(exc), started)))
    session.start(tiles, TINY)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(session.model, "fit_iter", broken)
    steps = session.steps()
    with pytest.raises(RuntimeError):
        next(steps)
    session.fail(RuntimeError("disk full"))
    assert failures == [("disk full", False)] and not session.running


def test_a_3d_map(session, tiles):
    from dataclasses import replace

    result = session.run(tiles, replace(TINY, dimensions=3, epochs=(1, 1, 1)))
    assert result.embedding.shape == (96, 3)


def test_settings_for_the_device():
    cpu = TrainingSettings.for_device("cpu", n_tiles=300)
    assert cpu.minutes == pytest.approx(10.0) and cpu.batch_size == 256
    assert cpu.backbone == "resnet18-s2" and cpu.width == 16
    assert TrainingSettings.for_device("cpu", n_tiles=100).batch_size == 64
    with pytest.raises(ValueError, match="device must be one of"):
        TrainingSettings.for_device("tpu")
    model = cpu.make_model()
    assert model.time_budget == 600.0 and model.total_epochs == "auto"
    assert TINY.make_model().total_epochs == (3, 1, 1)
    assert default_batch_size(1000) == 512 and default_batch_size(5000) == 1024


def test_only_the_newest_stopped_runs_are_kept(session, tiles):
    import os

    from napari_tsimcne.plugin.training_session import CHECKPOINT_SUFFIX, KEEP_CHECKPOINTS

    folder = session.checkpoint_dir
    folder.mkdir(parents=True)
    for i in range(KEEP_CHECKPOINTS + 3):  # stopped runs of other stacks, oldest first
        path = folder / f"{i:016x}{CHECKPOINT_SUFFIX}"
        path.write_bytes(b"x")
        os.utime(path, (1000 + i, 1000 + i))
    session.start(tiles, TINY)
    left = sorted(p.name for p in folder.iterdir())
    # the newest others, and room for this run's own checkpoint
    assert left == [f"{i:016x}{CHECKPOINT_SUFFIX}" for i in range(4, KEEP_CHECKPOINTS + 3)]


def test_save_load_and_map_new_tiles_without_a_window(session, tiles, tmp_path):
    from dataclasses import replace

    from napari_tsimcne.core import NotFittedError
    from napari_tsimcne.plugin.training_session import TrainingSession

    fresh = TrainingSession(checkpoint_dir=False)
    with pytest.raises(NotFittedError):
        fresh.save(tmp_path / "none.tsimcne")
    with pytest.raises(NotFittedError):
        fresh.embed_job(tiles)  # said before any thread starts
    result = session.run(tiles, replace(TINY, epochs=(1, 1, 1)))
    path = session.save(tmp_path / "model.tsimcne")
    assert path.is_file()
    loaded = fresh.load(path, device="cpu")
    assert fresh.model is loaded
    embedding, outliers = fresh.embed_job(tiles)()  # what the dock runs on a worker thread
    assert embedding.shape == (len(tiles), 2) and outliers.shape == (len(tiles),)
    np.testing.assert_allclose(embedding, result.embedding, atol=1e-4)  # the saved network
