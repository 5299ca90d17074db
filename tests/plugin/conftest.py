"""Fixtures of the plugin tests: a viewer with 256 histology tiles and the two dock widgets."""

from __future__ import annotations

import pytest

from napari_tsimcne.plugin.torch_runtime import preload_torch

# torch's optimizer imports triton, which crashes once napari's OpenGL (Mesa's LLVM) is loaded: load it first,
# whichever test (a widget's or the CLI's) trains first
preload_torch()

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
    train.form.apply(epochs=(2, 1, 1), batch_size=64, device="cpu", backbone="resnet10", width=8)


@pytest.fixture(autouse=True)
def autosave_dir(tmp_path, monkeypatch):
    """Every test autosaves into its own folder, never into the user's data folder."""
    folder = tmp_path / "autosave"
    monkeypatch.setenv("NAPARI_TSIMCNE_AUTOSAVE_DIR", str(folder))
    return folder


def pytest_collection_modifyitems(config, items):
    """Skip the GUI tests (instead of crashing Qt) where there is no display; run them under xvfb-run."""
    import os
    import sys

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        skip = pytest.mark.skip(reason="no display: run the GUI tests under xvfb-run -a")
        for item in items:
            if "gui" in item.keywords:
                item.add_marker(skip)
