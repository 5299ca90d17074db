"""Fixtures of the plugin tests: a viewer with 256 histology tiles and the two dock widgets."""

from __future__ import annotations

import pytest

N_TILES = 256


@pytest.fixture(scope="session")
def sample_layer_tuple():
    from napari_tsimcne.core.sample import load_histology

    s = load_histology()
    labels = (s.tiles[:N_TILES].mean(axis=(1, 2, 3)) > s.tiles[:N_TILES].mean()).astype(int)
    meta = {"labels": labels, "class_names": ("dark", "bright"), "origins": s.origins[:N_TILES]}
    return s.tiles[:N_TILES], {"name": "tiles", "rgb": True, "metadata": meta}


@pytest.fixture
def viewer_with_widgets(make_napari_viewer, sample_layer_tuple):
    """(viewer, train widget, annotate widget), both docked as napari would."""
    viewer = make_napari_viewer()
    data, kwargs = sample_layer_tuple
    viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    return viewer, train, annotate


def set_tiny(train) -> None:
    """Tiny network and budget: a fit takes seconds on 2 CPU cores."""
    for spin, value in zip(train.epoch_spins, (2, 1, 1)):
        spin.setValue(value)
    train.batch_spin.setValue(64)
    train.device_combo.setCurrentText("cpu")
    train.backbone_combo.setCurrentText("resnet10")
    train.width_spin.setValue(8)


def pytest_collection_modifyitems(config, items):
    """Skip the GUI tests (instead of crashing Qt) where there is no display; run them under xvfb-run."""
    import os
    import sys

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        skip = pytest.mark.skip(reason="no display: run the GUI tests under xvfb-run -a")
        for item in items:
            if "gui" in item.keywords:
                item.add_marker(skip)
