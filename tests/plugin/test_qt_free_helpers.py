"""Helpers of the dock widgets that need no Qt: they import none, and their maths is tested without a window."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from napari_tsimcne.plugin.loss_curve import HIGH, LOW, loss_curves, scale_of, stage_starts
from napari_tsimcne.plugin.selection import tile_description
from napari_tsimcne.plugin.training_session import LossPoint

QT_FREE = [
    "annotations",
    "autosave",
    "channels",
    "crosslink",
    "export",
    "lasso",
    "layout",
    "loss_curve",
    "map_guard",
    "map_layer",
    "preset_advice",
    "preview",
    "reader",
    "selection",
    "thumbnails",
    "tiling",
    "training_session",
]


def test_the_helper_modules_import_no_qt():
    code = (
        "import sys\n"
        + "".join(f"import napari_tsimcne.plugin.{m}\n" for m in QT_FREE)
        + "qt = [m for m in sys.modules if m.split('.')[0] in "
        "('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt')]\n"
        "assert not qt, qt\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def _points(losses_by_stage):
    points, epoch = [], 0
    for stage, losses in losses_by_stage:
        for loss in losses:
            epoch += 1
            points.append(LossPoint(epoch=epoch, stage=stage, loss=loss))
    return points


def test_pre_training_and_the_map_are_scaled_on_their_own():
    points = _points([(1, [9.0, 7.0, 5.0]), (2, [3.0, 2.5]), (3, [2.0])])
    curves = loss_curves(points, total_epochs=10)
    assert sorted(curves) == [1, 2, 3]
    assert [y for _, y in curves[1]] == pytest.approx([HIGH, (LOW + HIGH) / 2, LOW])
    # stages 2 and 3 share one scale: 3.0 at the top, 2.0 at the bottom
    assert curves[2][0][1] == pytest.approx(HIGH) and curves[3][0][1] == pytest.approx(LOW)
    assert [x for x, _ in curves[1]] == pytest.approx([0.05, 0.15, 0.25])  # epoch middles of 10
    assert stage_starts(points) == {1: 1, 2: 4, 3: 6}
    assert scale_of(1) != scale_of(2) == scale_of(3)
    assert len({scale_of(s, "tsne") for s in (1, 2, 3)}) == 3  # three kinds of loss


def test_with_the_tsne_finish_the_fit_of_the_map_uses_the_whole_height():
    points = [
        LossPoint(p.epoch, p.stage, p.loss, "tsne")
        for p in _points([(1, [9.0, 5.0]), (2, [3.5]), (3, [0.8, 0.4, 0.1])])
    ]
    curves = loss_curves(points, total_epochs=6)
    # the t-SNE's KL divergence (3.5) does not squeeze the squared error of the fit (0.8 to 0.1)
    assert [y for _, y in curves[3]] == pytest.approx([HIGH, LOW + 0.8 * 3 / 7, LOW])


def test_small_changes_stay_flat_and_non_finite_losses_are_left_out():
    curves = loss_curves(_points([(1, [5.0, 5.001, float("nan"), 5.0005])]), total_epochs=4)
    ys = [y for _, y in curves[1]]
    assert len(ys) == 3 and max(ys) - min(ys) < 0.02
    assert loss_curves(_points([(1, [float("inf")])]), total_epochs=1) == {}


def test_tile_description():
    feats = pd.DataFrame(
        {
            "tile_index": [0, 1, 2],
            "annotation": ["stroma", "", ""],
            "cluster": [2, -1, 0],
            "label": ["A", "B", "C"],
        }
    )
    assert tile_description(feats, 0) == "Tile 0\nannotation: stroma\ncluster: 2\nlabel: A"
    assert tile_description(feats, 1) == "Tile 1\nannotation: (none)\nlabel: B"
    assert tile_description(feats, 7) == "Tile 7"
    assert tile_description(None, 3) == "Tile 3"


def test_cutting_and_the_preview_work_on_a_viewer_model_without_a_window():
    import numpy as np
    from napari.components import ViewerModel

    from napari_tsimcne.core.tiles import TileStackError
    from napari_tsimcne.plugin.preview import PREVIEW_NAME, show_augmentation_preview
    from napari_tsimcne.plugin.tiling import add_tiles_cut_from

    viewer = ViewerModel()
    image = np.random.default_rng(0).random((64, 96)).astype(np.float32)
    viewer.add_image(image, name="slide")
    tiles = add_tiles_cut_from(viewer, "slide", 16)
    assert tiles.name == "slide tiles" and tiles.data.shape == (24, 16, 16)
    assert tiles.metadata["source_layer"] == "slide"
    assert tuple(tiles.metadata["origins"][7]) == (16, 16)  # row-major: the 8th tile
    assert tiles.translate[2] >= 96  # beside the image, not over it
    with pytest.raises(TileStackError, match="2D image"):
        add_tiles_cut_from(viewer, "no such layer", 16)
    preview = show_augmentation_preview(viewer, [tiles], "microscopy", n_tiles=4, n_views=3)
    assert preview.name == PREVIEW_NAME and preview.data.shape[0] > 4 * 16  # 4 rows of tiles
    again = show_augmentation_preview(viewer, [tiles], "microscopy", n_tiles=2, n_views=3)
    assert [l.name for l in viewer.layers].count(PREVIEW_NAME) == 1 and again is not preview


def test_the_preset_advice_is_kept_until_the_tiles_change(monkeypatch):
    import numpy as np
    from napari.layers import Image

    from napari_tsimcne.plugin import preset_advice

    calls = []
    real = preset_advice.recommend_preset
    monkeypatch.setattr(
        preset_advice, "recommend_preset", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    advisor = preset_advice.PresetAdvisor(max_tiles=50)
    rng = np.random.default_rng(0)
    tiles = Image(rng.integers(0, 255, (60, 12, 12, 3), dtype=np.uint8), name="cells", rgb=True)
    first = advisor.advice([tiles])
    assert first is not None and advisor.resolve("auto", [tiles]) == first.preset
    assert advisor.resolve("natural", [tiles]) == "natural" and len(calls) == 1  # judged once
    tiles.data = rng.integers(0, 255, (60, 12, 12, 3), dtype=np.uint8)  # new pixels, same shape
    advisor.advice([tiles])
    assert len(calls) == 2
    assert advisor.advice([]) is None and advisor.resolve("auto", []) == "microscopy"
