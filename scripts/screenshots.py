"""Take the screenshots of docs/plugin.md: run under a display, e.g.
``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshots.py --trained OUT``.

Opens napari (1280 x 800) with 4,000 sample tiles and photographs the Train dock while a map forms
(``training.png``). With ``--trained``, an output folder of ``napari-tsimcne fit`` on the blood cells,
it opens that map coloured by cell type with the basophils selected (``trained_map.png``, the README's
picture), proposes eight k-means clusters and selects one (``selection_gallery.png``), lassos the
eosinophils (``lasso.png``) and names them (``annotation.png``).
PNGs of the whole window go to docs/images/.
"""

from __future__ import annotations

import argparse
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
from napari_tsimcne.plugin.layout import fit_camera
from napari_tsimcne.plugin.sample_data import tiles_layer_data

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def wait(condition, timeout: float = 600.0, give_up: bool = True) -> None:
    app = napari.qt.get_qapp()
    start = time.time()
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            if give_up:
                raise TimeoutError("gave up waiting")
            return


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trained",
        type=Path,
        help="an output folder of 'napari-tsimcne fit' on the blood cells (e.g. --minutes 30): the lasso "
        "and annotation pictures are taken on that map",
    )
    parser.add_argument("--skip-training", action="store_true", help="no training.png")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(
        "NAPARI_TSIMCNE_AUTOSAVE_DIR", tempfile.mkdtemp(prefix="tsimcne-autosave-")
    )
    if not args.skip_training:
        training_picture()
    if args.trained is not None:
        map_pictures(args.trained)
        annotation_pictures(args.trained)
    return 0


def training_picture() -> None:
    """The Train dock while a map of 4,000 sample tiles forms: progress, time left, the loss curve."""
    viewer = napari.Viewer(title="t-SimCNE")
    viewer.window.resize(1280, 800)
    data, kwargs, _ = tiles_layer_data(load_sample(n_tiles=4000))
    viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    train.form.apply(epochs=(16, 1, 6), device="cpu")  # the CPU network, in epochs
    taken = {}

    def on_progress(update):
        if update.event.global_epoch >= 12 and "done" not in taken:
            taken["done"] = True
            shot(viewer, "training")  # the camera is where the plugin put it: on the new map

    train.session.checkpoint_dir = None
    train.session.progressed.connect(on_progress)
    train.start_training()
    wait(lambda: train.worker is None)
    viewer.close()


def open_trained(folder: Path, with_train_dock: bool = True):
    """napari with the map of ``folder`` and the docks, coloured by cell type, the map in view.

    Without the Train map dock (a finished map opened to look at and name) the gallery docks below
    the Annotate map dock, so the legend and the gallery show together.
    """
    # each picture starts from the map as trained, not from what an earlier picture autosaved
    os.environ["NAPARI_TSIMCNE_AUTOSAVE_DIR"] = tempfile.mkdtemp(prefix="tsimcne-autosave-")
    viewer = napari.Viewer(title="t-SimCNE")
    viewer.window.resize(1280, 800)
    viewer.open(str(folder), plugin="napari-tsimcne")
    if with_train_dock:
        viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    layer = annotate.map_layer()
    annotate.color_by("label")
    wait(
        lambda: False, timeout=1.0, give_up=False
    )  # let the docks settle before the view is fitted
    fit_camera(viewer, [layer])
    viewer.layers.selection.active = layer
    return viewer, annotate, layer


def map_pictures(folder: Path) -> None:
    """The README's picture (cell types, basophils selected) and proposed clusters with one selected."""
    viewer, annotate, layer = open_trained(folder, with_train_dock=False)
    annotate.select_group("label", "basophil")
    shot(viewer, "trained_map")
    annotate.propose_clusters(8)
    annotate.select_group("cluster", 3)
    shot(viewer, "selection_gallery")
    viewer.close()


def annotation_pictures(folder: Path) -> None:
    """The lasso and a named class, on a properly trained map of the blood cells."""
    viewer, annotate, layer = open_trained(folder)
    labels = layer.features["label"].astype(str).to_numpy()
    # the lasso, caught while the outline is drawn around the eosinophils
    viewer.layers.selection.active = layer
    annotate.set_lasso(True)
    outline = lasso_around(layer.data[labels == "eosinophil"])
    annotate._lasso._draw(list(outline))
    annotate._lasso.select(outline)
    shot(viewer, "lasso")
    annotate.set_lasso(False)
    annotate.name_edit.setText("eosinophil")
    annotate.assign("eosinophil")
    annotate.color_by("annotation")
    layer.selected_data = set()  # the named tiles in their new colour, not in the selection's ring
    wait(lambda: annotate.autosave_label.text().startswith("Autosaved"), timeout=30)
    print(annotate.autosave_label.text())
    shot(viewer, "annotation")
    viewer.close()


def lasso_around(points: np.ndarray, n: int = 60) -> np.ndarray:
    """A hand-drawn-looking closed outline around the main cloud of (row, col) points.

    Points far from the cloud's middle (a class's strays elsewhere on the map) are left outside.
    """
    centre = np.median(points, axis=0)
    far = np.hypot(*(points - centre).T)
    points = points[far <= 2 * np.median(far)]
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


if __name__ == "__main__":
    sys.exit(main())
