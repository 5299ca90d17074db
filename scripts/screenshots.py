"""Take the screenshots of docs/plugin.md: run under a display, e.g. ``xvfb-run -a python scripts/screenshots.py``.

Opens napari with the sample tiles, trains a short t-SimCNE run on the CPU, selects a cluster and names it,
and writes PNGs of the whole window to docs/images/.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch._dynamo  # noqa: F401  (load before napari's OpenGL; see plugin.torch_runtime.preload_torch)

# isort: split

import napari
import numpy as np
from PIL import Image as PILImage

from napari_tsimcne.core.sample import load_sample
from napari_tsimcne.plugin.sample_data import tiles_layer_data

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait(condition, timeout: float = 600.0) -> None:
    app = napari.qt.get_qapp()
    start = time.time()
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            raise TimeoutError("gave up waiting")


def shot(viewer, name: str) -> None:
    app = napari.qt.get_qapp()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    img = viewer.screenshot(canvas_only=False, flash=False)
    path = OUT / f"{name}.png"
    PILImage.fromarray(img).save(path, optimize=True)
    if path.stat().st_size > 500_000:
        PILImage.fromarray(img).convert("P", palette=PILImage.ADAPTIVE, colors=256).save(
            path, optimize=True
        )
    print(f"{path}: {img.shape[1]} x {img.shape[0]}, {path.stat().st_size // 1024} KB")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(
        "NAPARI_TSIMCNE_AUTOSAVE_DIR", tempfile.mkdtemp(prefix="tsimcne-autosave-")
    )
    viewer = napari.Viewer(title="t-SimCNE")
    viewer.window.resize(1500, 900)
    data, kwargs, _ = tiles_layer_data(load_sample(n_tiles=1000))
    viewer.add_image(data, **kwargs)
    train_dock, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    train.apply_settings(
        epochs=(8, 1, 3), batch_size=256, device="auto", backbone="resnet10", width=8
    )

    first_preview = {}

    def on_event(update):
        event = update.event
        if event.embedding is not None and event.global_epoch >= 4 and "done" not in first_preview:
            first_preview["done"] = True
            shot(viewer, "training")  # the camera is where the plugin put it: on the new map

    train.start_training()
    train.session.progressed.connect(on_event)
    wait(lambda: train.worker is None)
    shot(viewer, "trained_map")

    layer = viewer.layers[f"{data_name(kwargs)} map"]
    annotate_dock, annotate = viewer.window.add_plugin_dock_widget(
        "napari-tsimcne", "Annotate map", tabify=True
    )
    annotate.propose_clusters(8)
    clusters = layer.features["cluster"].to_numpy()
    biggest = np.bincount(clusters).argmax()
    layer.selected_data = set(np.flatnonzero(clusters == biggest)[:100].tolist())
    viewer.layers.selection.active = layer
    shot(viewer, "selection_gallery")  # the gallery dock opens as a tab over Train map

    # the lasso, caught while the outline is drawn around the second-largest cluster
    annotate.set_lasso(True)
    second = np.argsort(np.bincount(clusters))[-2]
    outline = lasso_around(layer.data[clusters == second])
    annotate._lasso._draw(list(outline))
    annotate._lasso.select(outline)
    shot(viewer, "lasso")
    annotate.set_lasso(False)
    layer.selected_data = set(np.flatnonzero(clusters == biggest)[:100].tolist())

    label = layer.features.get("label")
    name = str(label[list(layer.selected_data)].mode()[0]) if label is not None else "cluster A"
    annotate.name_edit.setText(name)
    annotate.assign(name)
    annotate.color_by("annotation")
    wait(
        lambda: annotate.autosave_label.text().startswith("Autosaved"), timeout=10
    )  # within about a second
    shot(viewer, "annotation")
    viewer.close()
    return 0


def lasso_around(points: np.ndarray, n: int = 60) -> np.ndarray:
    """A hand-drawn-looking closed outline around a cloud of (row, col) points."""
    centre = np.median(points, axis=0)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rel = points - centre
    theta = np.arctan2(rel[:, 0], rel[:, 1])
    radius = np.hypot(rel[:, 0], rel[:, 1])
    reach = np.array(
        [
            np.percentile(radius[np.abs(np.angle(np.exp(1j * (theta - a)))) < 0.4], 90)
            if np.any(np.abs(np.angle(np.exp(1j * (theta - a)))) < 0.4)
            else np.median(radius)
            for a in angles
        ]
    )
    reach = 1.15 * np.convolve(np.r_[reach[-2:], reach, reach[:2]], np.ones(5) / 5, mode="valid")
    return centre + np.column_stack([reach * np.sin(angles), reach * np.cos(angles)])


def data_name(kwargs: dict) -> str:
    return kwargs["name"]


if __name__ == "__main__":
    sys.exit(main())
