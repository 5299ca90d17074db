"""The README's main command with a display: napari with the sample tiles and both widgets docked."""

from __future__ import annotations

import napari
import pytest

from napari_tsimcne.core.device import resolve_device
from napari_tsimcne.core.sample import CPU_DEMO
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
        assert train.layer_combo.currentText() == tiles.name
        if resolve_device("auto").type == "cpu":
            assert len(tiles.data) <= CPU_DEMO["n_tiles"]
            assert tuple(s.value() for s in train.epoch_spins) == tuple(CPU_DEMO["epochs"])
            assert train.batch_spin.value() == CPU_DEMO["batch_size"] and train.width_spin.value() == CPU_DEMO["width"]
    finally:
        viewer.close()
