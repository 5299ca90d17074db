"""The command line never loses finished work, never overwrites silently, and answers every bad input itself.

Training is replaced by a no-op where it is not the point (the checks all happen before it), so these
tests take seconds; one real tiny run checks the demo end to end.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_tsimcne.cli as cli
from napari_tsimcne.cli import main
from napari_tsimcne.core import training
from napari_tsimcne.core.sample import load_histology

TINY = [
    "--backbone",
    "resnet10",
    "--width",
    "8",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--epochs",
    "1",
    "0",
    "0",
]
RESULTS = ("model.tsimcne", "embedding.csv", "map.png", "summary.json")


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """64 real 16 x 16 RGB tiles."""
    return np.ascontiguousarray(load_histology().tiles[:64, :16, :16])


@pytest.fixture
def no_training(monkeypatch):
    """Training that does nothing: the model is built and the tiles mapped, so every output is written."""
    calls = []

    def run(self, stop=None):
        calls.append(1)
        return iter(())

    monkeypatch.setattr(training.Trainer, "run", run)
    return calls


@pytest.fixture
def work(tmp_path, tiles, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "t.npy", tiles)
    return tmp_path


def _fit(*extra: str, src: str = "t.npy", out: str = "out") -> int:
    return main(["fit", src, "-o", out, *TINY, *extra])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert lines, err
    assert "Traceback" not in err
    return lines[-1]


# -- 1. finished work is saved first ---------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        np.r_[np.zeros(32), np.ones(31), np.nan],  # a missing label
        np.r_[np.zeros(63), 1],  # a class with one member
        np.arange(64),  # unique ids
        np.arange(64) // 2,  # 32 classes: more than the 10 % test split can hold
    ],
    ids=["nan", "single-member", "unique-ids", "too-many-classes"],
)
def test_unscorable_labels_are_a_warning_and_null(work, tiles, labels, no_training, capsys):
    np.savez(work / "lab.npz", images=tiles, labels=labels)
    assert _fit(src="lab.npz") == 0
    for name in RESULTS:
        assert (work / "out" / name).stat().st_size > 0, name
    summary = json.loads((work / "out" / "summary.json").read_text())
    assert summary["knn_accuracy"] is None and summary["knn_k"] is None
    assert "cannot be computed" in summary["knn_note"]
    assert "warning:" in capsys.readouterr().err


def test_demo_with_40_tiles_succeeds(tmp_path, monkeypatch, capsys):
    """A real (tiny) run: 40 tiles cannot be scored with 15 neighbours; the map is written all the same."""
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "demo",
            "--headless",
            "--n-tiles",
            "40",
            "-o",
            "demo",
            "--epochs",
            "1",
            "0",
            "0",
            "--backbone",
            "resnet10",
            "--width",
            "8",
            "--batch-size",
            "16",
            "--device",
            "cpu",
        ]
    )
    assert code == 0, capsys.readouterr().err
    for name in RESULTS:
        assert (tmp_path / "demo" / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["n_tiles"] == 40 and summary["input"]["n_tiles"] == 40


def test_demo_states_the_real_tile_count(tmp_path, monkeypatch, no_training, capsys):
    """The histology fallback holds 961 tiles: asking for more trains on those, and says so."""
    from napari_tsimcne.core import sample

    monkeypatch.setattr(sample, "find_data_file", lambda name: None)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--headless", "--n-tiles", "5000", "-o", "demo", *TINY]) == 0
    out = capsys.readouterr().out
    assert "fewer than the 5,000 asked for" in out and "Training on 961 tiles" in out
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["n_tiles"] == 961 and summary["input"]["n_tiles"] == 961


# -- 2. no silent overwrite ------------------------------------------------------------


@pytest.mark.parametrize("target", ["t.npy", "out/model.tsimcne"])
def test_embed_never_replaces_its_inputs(work, target, no_training, capsys):
    assert _fit() == 0
    before = (work / target).read_bytes()
    assert main(["embed", "out", "t.npy", "-o", target, "--device", "cpu", "--quiet"]) == 2
    assert "input of this command" in _error_line(capsys)
    assert (work / target).read_bytes() == before


def test_fit_into_results_needs_overwrite(work, no_training, capsys):
    assert _fit() == 0
    before = (work / "out" / "model.tsimcne").read_bytes()
    assert _fit() == 2
    assert "--overwrite" in _error_line(capsys)
    assert (work / "out" / "model.tsimcne").read_bytes() == before
    assert _fit("--overwrite") == 0


def test_checkpoint_needs_resume_or_overwrite_and_is_never_deleted_unfinished(
    work, no_training, capsys
):
    (work / "out").mkdir()
    (work / "out" / "checkpoint.tsimcne").write_bytes(b"an unfinished run")
    assert _fit() == 2
    line = _error_line(capsys)
    assert "--resume" in line and "--overwrite" in line
    assert (
        _fit("--overwrite", "--checkpoint-every", "0") == 0
    )  # this run writes no checkpoint of its own
    assert (work / "out" / "checkpoint.tsimcne").read_bytes() == b"an unfinished run"


def test_outputs_among_the_input_tiles_are_refused(work, tiles, no_training, capsys):
    import imageio.v3 as iio

    (work / "tiles").mkdir()
    for i in range(40):
        iio.imwrite(work / "tiles" / f"{i:02d}.png", tiles[i])
    assert main(["fit", "tiles", "-o", "tiles", *TINY]) == 2
    assert "input folder" in _error_line(capsys)
    assert sorted(p.suffix for p in (work / "tiles").iterdir()) == [".png"] * 40


# -- 4. outputs as a set -----------------------------------------------------------------


def test_outputs_get_the_umask_permissions_and_no_temporaries_stay(work, no_training):
    old = os.umask(0o002)
    try:
        assert _fit() == 0
    finally:
        os.umask(old)
    for name in RESULTS:
        assert (work / "out" / name).stat().st_mode & 0o777 == 0o664, name
    assert sorted(p.name for p in (work / "out").iterdir()) == sorted(RESULTS)


def test_stale_temporaries_of_killed_writers_are_removed(work, no_training):
    out = work / "out"
    out.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (out / f".model.tsimcne.{dead}-abc123.tmp").write_bytes(b"half a model")
    (out / f".tsimcne-staging-{dead}-xyz").mkdir()
    (out / f".tsimcne-staging-{dead}-xyz" / "map.png").write_bytes(b"x")
    live = out / f".checkpoint.tsimcne.{os.getpid()}-def456.tmp"  # a writer that still runs: kept
    live.write_bytes(b"in progress")
    assert _fit("--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*RESULTS, live.name])


def test_a_failed_write_leaves_no_partial_set(work, no_training, monkeypatch, capsys):
    from matplotlib.figure import Figure

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    assert _fit() == 5
    assert "disk is full" in _error_line(capsys)
    assert not (work / "out").exists() or not any((work / "out").iterdir())


# -- 5. bad inputs answered by our code ----------------------------------------------------


def test_full_disk_while_saving_the_model_is_exit_5(work, no_training, monkeypatch, capsys):
    def enforce_fail(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 123 vs 45")

    monkeypatch.setattr(torch, "save", enforce_fail)
    assert _fit() == 5
    line = _error_line(capsys)
    assert "Cannot write" in line and "inline_container" not in line


def test_output_problems_are_found_before_training(work, no_training, monkeypatch, capsys):
    (work / "afile").write_text("x")
    assert _fit(out="afile/sub") == 5  # a path through a file: cannot be created
    assert "Cannot write" in _error_line(capsys)
    import shutil

    monkeypatch.setattr(
        shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20)
    )
    assert _fit() == 5
    assert "MiB are free" in _error_line(capsys)
    assert no_training == []  # refused before any training


@pytest.mark.parametrize(
    "array, flags, words",
    [
        (np.arange(10), [], "not images"),
        (np.zeros((3, 256, 256), np.uint8), [], "--channel-axis"),
        (np.zeros((64, 3, 16, 16), np.uint8), ["--channel-axis", "7"], "out of range"),
    ],
    ids=["1-D", "channels-first-image", "channel-axis-7"],
)
def test_bad_arrays_get_one_line_exit_3(work, array, flags, words, no_training, capsys):
    np.save(work / "bad.npy", array)
    assert _fit(*flags, src="bad.npy") == 3
    assert words in _error_line(capsys)


def test_corrupt_and_empty_pngs_get_one_line(work, tiles, no_training, capsys):
    import imageio.v3 as iio

    (work / "pngs").mkdir()
    for i in range(8):
        iio.imwrite(work / "pngs" / f"{i}.png", tiles[i])
    (work / "pngs" / "9.png").write_bytes(b"")
    assert _fit(src="pngs") == 3
    assert "is empty" in _error_line(capsys)
    (work / "pngs" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert _fit(src="pngs") == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt" in err


def test_evaluate_on_a_binary_file(work, capsys):
    assert main(["evaluate", "t.npy"]) == 3
    assert "not a CSV" in _error_line(capsys)


def test_seed_2_63_is_our_message(work, capsys):
    assert _fit("--seed", str(2**63)) == 1
    assert "--seed must be" in _error_line(capsys)  # the option, not the Python parameter


def test_demo_with_negative_tiles_is_a_usage_error(capsys):
    assert main(["demo", "--headless", "--n-tiles", "-5"]) == 2


def test_one_tile_can_be_embedded(work, tiles, no_training):
    assert _fit() == 0
    np.save(work / "one.npy", tiles[:1])
    assert main(["embed", "out", "one.npy", "-o", "one.csv", "--device", "cpu", "--quiet"]) == 0
    assert len((work / "one.csv").read_text().splitlines()) == 2


def test_start_line_names_the_device_used(work, no_training, capsys):
    assert (
        main(["fit", "t.npy", "-o", "out", *[a for a in TINY if a != "cpu" and a != "--device"]])
        == 0
    )
    out = capsys.readouterr().out
    assert "device auto" not in out and (
        "device cpu" in out or "device cuda" in out or "device mps" in out
    )


def _damage(path: Path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    torch.save(payload, path)


@pytest.mark.parametrize(
    "changes",
    [
        {"normalization": {"low": [0.0]}},
        {"normalization": {"low": [0.0], "high": [1.0]}},  # one channel for a 3-channel network
        {"tile_shape": "16x16"},
        {"tile_shape": [16]},
        {"format_version": "one"},
        {"n_channels": 99},
        {"params": None},
        {"pca": [torch.zeros(3)]},
        {"fingerprint": {"n_tiles": "many"}},
    ],
    ids=lambda c: ",".join(c),
)
def test_damaged_model_fields_are_exit_4(work, changes, no_training, capsys):
    assert _fit() == 0
    _damage(work / "out" / "model.tsimcne", **changes)
    assert main(["embed", "out", "t.npy", "-o", "e.csv", "--device", "cpu", "--quiet"]) == 4
    assert "damaged" in _error_line(capsys)


def test_nan_weights_are_refused(work, no_training, capsys):
    assert _fit() == 0
    payload = torch.load(work / "out" / "model.tsimcne", weights_only=True)
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = torch.full_like(payload["state_dict"][key], float("nan"))
    torch.save(payload, work / "out" / "model.tsimcne")
    assert main(["embed", "out", "t.npy", "-o", "e.csv", "--device", "cpu", "--quiet"]) == 4
    assert "NaN" in _error_line(capsys)


# -- 3. data identity --------------------------------------------------------------------------


def test_resume_on_other_tiles_is_refused(work, tiles, monkeypatch, capsys):
    real_progress = cli._progress

    def interrupt(events, total, quiet):
        for event in real_progress(events, total, quiet):
            yield event
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_progress", interrupt)
    assert (
        main(
            [
                "fit",
                "t.npy",
                "-o",
                "out",
                *TINY[:-4],
                "--epochs",
                "2",
                "0",
                "0",
                "--checkpoint-every",
                "1",
            ]
        )
        == 130
    )
    monkeypatch.setattr(cli, "_progress", real_progress)
    np.save(work / "other.npy", tiles[::-1].copy())  # same count and shape, other order
    assert main(["fit", "other.npy", "-o", "out", "--resume", "--device", "cpu", "--quiet"]) == 3
    assert "other tiles" in _error_line(capsys)
    assert (work / "out" / "checkpoint.tsimcne").exists()


def test_evaluate_on_unscorable_labels_says_why(work, capsys):
    from napari_tsimcne.core.io import write_embedding_csv

    write_embedding_csv(
        work / "e.csv", np.random.default_rng(0).normal(size=(50, 2)), labels=np.arange(50)
    )
    assert main(["evaluate", "e.csv"]) == 3
    assert _error_line(capsys).endswith(
        "Cannot score this map: 50 class(es) have a single tile; a stratified "
        "split needs 2 per class."
    )


def test_demo_replaces_its_own_results_but_not_others(tmp_path, monkeypatch, no_training, capsys):
    monkeypatch.chdir(tmp_path)
    demo = [
        "demo",
        "--headless",
        "--n-tiles",
        "40",
        "-o",
        "d",
        *TINY[:-4],
        "--epochs",
        "1",
        "0",
        "0",
        "--batch-size",
        "16",
    ]
    assert main(demo) == 0
    assert main(demo) == 0
    assert "replacing the results of the previous demo" in capsys.readouterr().out
    np.save(tmp_path / "t.npy", load_histology().tiles[:64, :16, :16])
    assert main(["fit", "t.npy", "-o", "d", *TINY, "--overwrite"]) == 0
    assert main(demo) == 2  # the folder now holds the results of a fit
    assert "--overwrite" in _error_line(capsys)


@pytest.mark.parametrize(
    "code, words", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only")]
)
def test_an_unwritable_output_folder_is_exit_5_before_training(
    work, no_training, monkeypatch, capsys, code, words
):
    import tempfile

    (work / "out").mkdir()

    def refuse(
        *args, **kwargs
    ):  # what a folder without write permission or on a read-only mount gives
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert _fit() == 5
    assert words in _error_line(capsys)
    assert no_training == []
