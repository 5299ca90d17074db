"""The README's main command with a display: napari with the sample tiles and both widgets docked."""

from __future__ import annotations

import napari
import pytest

from napari_tsimcne.core.device import CPU_DEFAULTS, resolve_device
from napari_tsimcne.plugin.demo import run_demo_viewer

pytestmark = pytest.mark.gui


def test_demo_viewer_docks_the_widgets_and_sizes_itself_for_the_device(qtbot, monkeypatch):
    monkeypatch.setattr(napari, "run", lambda *a, **k: None)  # do not block in the event loop
    run_demo_viewer()
    viewer = napari.current_viewer()
    try:
        (tiles,) = [layer for layer in viewer.layers if layer.ndim >= 3]
        docks = viewer.window.dock_widgets
        assert {"Train map (napari-tsimcne)", "Annotate map (napari-tsimcne)"} <= set(docks)
        train = docks["Train map (napari-tsimcne)"]
        assert train.form.layer_combo.value == tiles.name
        if (
            resolve_device("auto").type == "cpu"
        ):  # the CPU's settings and a time budget, for all tiles
            assert train.form.length_combo.value == "minutes"
            assert (
                train.form.minutes_spin.value == CPU_DEFAULTS.time_budget / 60
                and train.form.minutes_spin.native.isVisibleTo(train)
            )
            assert not train.form.epoch_spins[0].native.isVisibleTo(train)
            assert train.form.backbone_combo.value == CPU_DEFAULTS.backbone
            assert train.form.width_spin.value == CPU_DEFAULTS.width
            assert train.form.batch_spin.value == min(CPU_DEFAULTS.batch_size, len(tiles.data))
    finally:
        viewer.close()
