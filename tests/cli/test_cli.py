"""The napari-tsimcne command line, run in-process with tiny settings on real tiles."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from napari_tsimcne.cli import main
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
    "--quiet",
]
"""A network small enough that a fit on 64 tiles takes a few seconds on 2 CPU cores."""
ONE_EPOCH = ["--epochs", "1", "0", "0"]
"""Pre-training only: enough to check that files are read and written."""


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def histology():
    return load_histology()


@pytest.fixture(scope="module")
def tiles16(histology):
    """96 real 16 x 16 RGB tiles (the top-left quarter of the histology tiles)."""
    return np.ascontiguousarray(histology.tiles[:96, :16, :16])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiles16):
    """One full three-stage fit on an .npz with labels; reused by embed and evaluate."""
    tmp = tmp_path_factory.mktemp("fit")
    labels = (tiles16.mean(axis=(1, 2, 3)) > np.median(tiles16.mean(axis=(1, 2, 3)))).astype(int)
    np.savez(tmp / "tiles.npz", images=tiles16, labels=labels)
    code = main(
        ["fit", str(tmp / "tiles.npz"), "-o", str(tmp / "out"), "--epochs", "1", "1", "1", *TINY]
    )
    assert code == 0
    return tmp, labels


def test_fit_writes_all_outputs(fitted):
    tmp, labels = fitted
    out = tmp / "out"
    for name in ("model.tsimcne", "embedding.csv", "map.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    rows = _rows(out / "embedding.csv")
    assert len(rows) == 96
    assert list(rows[0]) == ["tile_index", "x", "y", "label"]
    assert [int(r["label"]) for r in rows] == labels.tolist()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_tiles"] == 96 and summary["settings"]["epochs"] == [1, 1, 1]
    assert 0 <= summary["knn_accuracy"] <= 100
    assert not list(out.glob(".*.tmp")), "atomic writes leave no temporary files"


def test_map_png_is_an_image(fitted):
    import imageio.v3 as iio

    img = iio.imread(fitted[0] / "out" / "map.png")
    assert img.ndim == 3 and min(img.shape[:2]) > 100


def test_embed_with_saved_model(fitted, tiles16, tmp_path, capsys):
    tmp, _ = fitted
    np.save(tmp_path / "new.npy", tiles16[:40])
    code = main(
        [
            "embed",
            str(tmp / "out" / "model.tsimcne"),
            str(tmp_path / "new.npy"),
            "-o",
            str(tmp_path / "new.csv"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert "embedding: 100%" in err and "40/40" in err  # the progress bar, on stderr
    rows = _rows(tmp_path / "new.csv")
    assert len(rows) == 40
    # the same tiles map to the same points as in training
    train = _rows(tmp / "out" / "embedding.csv")[:40]
    np.testing.assert_allclose(
        [float(r["x"]) for r in rows], [float(r["x"]) for r in train], rtol=1e-3, atol=1e-3
    )


def test_evaluate_label_column_and_labels_file(fitted, tmp_path, capsys):
    tmp, labels = fitted
    assert main(["evaluate", str(tmp / "out")]) == 0
    first = capsys.readouterr().out
    assert "15-NN accuracy" in first
    np.save(tmp_path / "labels.npy", labels)
    assert (
        main(
            [
                "evaluate",
                str(tmp / "out" / "embedding.csv"),
                "--labels",
                str(tmp_path / "labels.npy"),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == first


def test_fit_tiff_stack(tiles16, tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", tiles16[:64])
    not_quiet = [a for a in TINY if a != "--quiet"]
    assert (
        main(
            [
                "fit",
                str(tmp_path / "stack.tif"),
                "-o",
                str(tmp_path / "out"),
                *ONE_EPOCH,
                *not_quiet,
            ]
        )
        == 0
    )
    assert len(_rows(tmp_path / "out" / "embedding.csv")) == 64
    err = capsys.readouterr().err
    assert (
        "1/1" in err and "mapping: 100%" in err and "64/64" in err
    )  # bars for the epochs, then the mapping


def test_fit_folder_of_pngs(tiles16, tmp_path):
    import imageio.v3 as iio

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, tile in enumerate(tiles16[:64]):
        iio.imwrite(folder / f"tile_{i:03d}.png", tile)
    assert main(["fit", str(folder), "-o", str(tmp_path / "out"), *ONE_EPOCH, *TINY]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_tiles"] == 64 and summary["tile_shape"] == [16, 16, 3]


def test_fit_large_image_with_tile_size(histology, tmp_path):
    import tifffile

    image = histology.source_image[:128, :128]
    tifffile.imwrite(tmp_path / "slide.tif", image)
    code = main(
        [
            "fit",
            str(tmp_path / "slide.tif"),
            "-o",
            str(tmp_path / "out"),
            "--tile-size",
            "16",
            "--stride",
            "16",
            *ONE_EPOCH,
            *TINY,
        ]
    )
    assert code == 0
    rows = _rows(tmp_path / "out" / "embedding.csv")
    assert len(rows) == 64
    assert list(rows[0])[-2:] == ["origin_row", "origin_col"]
    origins = {(int(r["origin_row"]), int(r["origin_col"])) for r in rows}
    assert origins == {(r, c) for r in range(0, 128, 16) for c in range(0, 128, 16)}


def test_missing_file(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope.npy"), "-o", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "No such file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_2d_image_without_tile_size(histology, tmp_path, capsys):
    np.save(tmp_path / "image.npy", histology.source_image[:, :, 0])
    assert main(["fit", str(tmp_path / "image.npy"), "-o", str(tmp_path / "out")]) == 3
    assert "--tile-size" in capsys.readouterr().err


def test_rgb_image_without_tile_size(histology, tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "slide.tif", histology.source_image)
    assert main(["fit", str(tmp_path / "slide.tif"), "-o", str(tmp_path / "out")]) == 3
    assert "--tile-size" in capsys.readouterr().err


def test_embed_wrong_channel_count(fitted, tiles16, tmp_path, capsys):
    np.save(tmp_path / "grey.npy", tiles16[:20, :, :, 0])
    code = main(
        [
            "embed",
            str(fitted[0] / "out" / "model.tsimcne"),
            str(tmp_path / "grey.npy"),
            "-o",
            str(tmp_path / "e.csv"),
            "--device",
            "cpu",
        ]
    )
    assert code == 3
    assert "channel" in capsys.readouterr().err
    assert not (tmp_path / "e.csv").exists()


def test_corrupt_model_file(tiles16, tmp_path, capsys):
    (tmp_path / "bad.tsimcne").write_bytes(b"not a model at all")
    np.save(tmp_path / "t.npy", tiles16[:10])
    code = main(
        [
            "embed",
            str(tmp_path / "bad.tsimcne"),
            str(tmp_path / "t.npy"),
            "-o",
            str(tmp_path / "e.csv"),
        ]
    )
    assert code == 4
    err = capsys.readouterr().err
    assert "not a readable napari-tsimcne model" in err and "Traceback" not in err


def test_evaluate_without_labels(tmp_path, capsys):
    from napari_tsimcne.core.io import write_embedding_csv

    write_embedding_csv(tmp_path / "e.csv", np.random.default_rng(0).normal(size=(50, 2)))
    assert main(["evaluate", str(tmp_path / "e.csv")]) == 3
    assert "--labels" in capsys.readouterr().err


def test_bad_usage_exit_code(capsys):
    assert main(["fit"]) == 2
    assert main(["no-such-command"]) == 2


@pytest.mark.parametrize("argv", [[], ["fit"], ["embed"], ["evaluate"], ["demo"]])
def test_help(argv, capsys):
    assert main([*argv, "--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: napari-tsimcne" in text
    if argv in (["fit"], ["demo"]):
        assert "--epochs" in text and "default" in text and "130" in text


def test_interrupt_saves_partial_model(tiles16, tmp_path, monkeypatch, capsys):
    import napari_tsimcne.cli as cli

    real_progress = cli._progress

    def interrupt_after_first(events, total, quiet):
        for i, event in enumerate(real_progress(events, total, quiet)):
            yield event
            if i == 0:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_progress", interrupt_after_first)
    np.save(tmp_path / "t.npy", tiles16[:64])
    code = main(
        [
            "fit",
            str(tmp_path / "t.npy"),
            "-o",
            str(tmp_path / "out"),
            "--epochs",
            "2",
            "0",
            "0",
            *TINY,
        ]
    )
    assert code == 130
    assert (tmp_path / "out" / "model.partial.tsimcne").stat().st_size > 0
    assert not (tmp_path / "out" / "model.tsimcne").exists()
    assert "model.partial.tsimcne" in capsys.readouterr().err


def test_demo_headless(tmp_path, monkeypatch, capsys):
    import imageio.v3 as iio

    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "demo",
            "--headless",
            "-o",
            str(tmp_path / "demo"),
            "--n-tiles",
            "96",
            "--epochs",
            "1",
            "1",
            "1",
            "--backbone",
            "resnet10",
            "--width",
            "8",
            "--batch-size",
            "32",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    out = tmp_path / "demo"
    assert (out / "model.tsimcne").stat().st_size > 0
    assert len(_rows(out / "embedding.csv")) > 0
    assert (out / "map.png").stat().st_size > 0
    assert iio.imread(out / "map.png").ndim == 3
    assert str(out / "map.png") in capsys.readouterr().out


def test_headless_demo_without_gpu_uses_the_cpu_settings_and_a_time_budget(
    tmp_path, monkeypatch, capsys
):
    import dataclasses
    import json

    import napari_tsimcne.core.device as device

    # the CPU's automatic settings, with a budget of 6 s instead of 10 minutes
    monkeypatch.setattr(
        device, "CPU_DEFAULTS", dataclasses.replace(device.CPU_DEFAULTS, time_budget=6.0, width=8)
    )
    out = tmp_path / "demo"
    assert main(["demo", "--headless", "-o", str(out), "--device", "cpu", "--n-tiles", "96"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["n_tiles"] == 96 and summary["input"]["n_tiles"] == 96
    )  # the reader rebuilds the same tiles
    settings = summary["settings"]
    assert settings["backbone"] == "resnet18-s2" and settings["width"] == 8  # the CPU's network
    assert settings["batch_size"] == 64  # 256 on a CPU, lowered to fit the 96 tiles
    assert settings["time_budget_seconds"] == 6.0 and min(settings["epochs"]) >= 1
    printed = capsys.readouterr().out
    assert "No CUDA GPU here" in printed and "about 6 s" in printed and "Measured" in printed


def test_fit_for_some_minutes_reports_the_chosen_epochs(tiles16, tmp_path, capsys):
    import json

    np.save(tmp_path / "t.npy", tiles16[:64])
    assert (
        main(
            [
                "fit",
                str(tmp_path / "t.npy"),
                "-o",
                str(tmp_path / "out"),
                "--minutes",
                "0.1",
                "--width",
                "4",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["time_budget_seconds"] == 6.0
    printed = capsys.readouterr().out
    assert "about 6 s" in printed and "Measured" in printed
    # without a GPU a time budget ends with a t-SNE of the features, and the start says so
    assert "epochs of pre-training, then a t-SNE of the learned features" in printed
    assert summary["settings"]["finish"] == "tsne"
    assert (
        min(summary["settings"]["epochs"]) >= 1
    )  # what was trained (after planning again from the first epoch)


def test_finish_contrastive_keeps_the_papers_stages_for_a_time_budget(tiles16, tmp_path, capsys):
    import json

    np.save(tmp_path / "t.npy", tiles16[:64])
    args = ["fit", str(tmp_path / "t.npy"), "-o", str(tmp_path / "out"), "--minutes", "0.1"]
    assert main([*args, "--width", "4", "--device", "cpu", "--finish", "contrastive"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["finish"] == "contrastive"
    assert "views/s: training epochs" in capsys.readouterr().out


def test_epochs_and_minutes_together_are_a_usage_error(tiles16, tmp_path, capsys):
    np.save(tmp_path / "t.npy", tiles16[:64])
    code = main(
        [
            "fit",
            str(tmp_path / "t.npy"),
            "-o",
            str(tmp_path / "out"),
            "--minutes",
            "1",
            "--epochs",
            "1",
            "1",
            "1",
        ]
    )
    assert code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_tile_size_on_a_stack_is_refused(tiles16, tmp_path, capsys):
    np.save(tmp_path / "grey.npy", tiles16[:40, :, :, 0])
    assert (
        main(
            [
                "fit",
                str(tmp_path / "grey.npy"),
                "-o",
                str(tmp_path / "out"),
                "--tile-size",
                "8",
                *ONE_EPOCH,
                *TINY,
            ]
        )
        == 3
    )
    assert "leave out --tile-size" in capsys.readouterr().err


def test_demo_opens_the_viewer_when_a_display_is_there(monkeypatch, tmp_path):
    import napari_tsimcne.cli as cli

    calls = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cli, "_run_viewer", lambda: calls.append(1) or True)
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 0
    assert calls == [1] and not (tmp_path / "demo").exists()


def test_viewer_falls_back_when_napari_is_missing(monkeypatch, capsys):
    import sys

    import napari_tsimcne.cli as cli

    monkeypatch.setitem(sys.modules, "napari_tsimcne.plugin.demo", None)  # makes the import fail
    assert cli._run_viewer() is False
    assert "headless" in capsys.readouterr().err


def test_python_m_help():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "napari_tsimcne", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "fit" in result.stdout and "demo" in result.stdout


def test_resume_after_interrupt_matches_an_uninterrupted_run(
    tiles16, tmp_path, monkeypatch, capsys
):
    import napari_tsimcne.cli as cli

    np.save(tmp_path / "t.npy", tiles16[:64])
    args = ["--epochs", "2", "1", "1", "--checkpoint-every", "1", *TINY]
    assert main(["fit", str(tmp_path / "t.npy"), "-o", str(tmp_path / "whole"), *args]) == 0
    assert not (tmp_path / "whole" / "checkpoint.tsimcne").exists()  # removed once finished

    real_progress = cli._progress

    def interrupt_in_stage_2(events, total, quiet):
        for event in real_progress(events, total, quiet):
            yield event
            if event.global_epoch == 3:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_progress", interrupt_in_stage_2)
    out = tmp_path / "cut"
    assert main(["fit", str(tmp_path / "t.npy"), "-o", str(out), *args]) == 130
    assert (out / "checkpoint.tsimcne").exists() and "--resume" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_progress", real_progress)
    assert main(["fit", str(tmp_path / "t.npy"), "-o", str(out), "--resume", *args]) == 0
    whole = np.array(
        [[float(r["x"]), float(r["y"])] for r in _rows(tmp_path / "whole" / "embedding.csv")]
    )
    resumed = np.array([[float(r["x"]), float(r["y"])] for r in _rows(out / "embedding.csv")])
    np.testing.assert_array_equal(resumed, whole)
    assert not (out / "checkpoint.tsimcne").exists()


def test_resume_without_checkpoint_is_a_usage_error(tiles16, tmp_path, capsys):
    np.save(tmp_path / "t.npy", tiles16[:64])
    assert (
        main(["fit", str(tmp_path / "t.npy"), "-o", str(tmp_path / "none"), "--resume", *TINY]) == 2
    )
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow  # starts two training processes under torchrun
def test_fit_under_torchrun_writes_the_outputs_once(tiles16, tmp_path):
    import os
    import subprocess
    import sys

    np.save(tmp_path / "t.npy", tiles16[:64])
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "napari_tsimcne",
        "fit",
        str(tmp_path / "t.npy"),
        "-o",
        str(tmp_path / "out"),
        "--epochs",
        "1",
        "1",
        "1",
        "--batch-size",
        "16",
        "--backbone",
        "resnet10",
        "--width",
        "8",
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["processes"] == 2 and summary["settings"]["batch_size"] == 16
    assert len(_rows(tmp_path / "out" / "embedding.csv")) == 64
    assert done.stdout.count("Trained in") == 1  # only the first process reports


def test_fit_refuses_a_batch_too_large_for_memory_before_it_says_or_writes_anything(
    tmp_path, tiles16, monkeypatch, capsys
):
    from napari_tsimcne.core import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 16 * 2**20)
    np.save(tmp_path / "tiles.npy", np.repeat(tiles16, 22, axis=0))  # 2,112 tiles
    args = ["fit", str(tmp_path / "tiles.npy"), "-o", str(tmp_path / "out"), *ONE_EPOCH]
    code = main([*args, "--backbone", "resnet10", "--width", "8", "--batch-size", "2048"])
    captured = capsys.readouterr()
    assert code != 0
    assert "--batch-size 2048 needs about" in captured.err
    assert "Training on" not in captured.out + captured.err
    assert not (tmp_path / "out").exists()
