"""Responsiveness of the napari plugin; run under a display: ``xvfb-run -a python benchmarks/bench_plugin.py``.

(a) selection -> gallery: a map of 100,000 points beside 100,000 tiles of 28 x 28 x 3; the time from setting
    1,000 selected points (as the box or lasso does) until the gallery dock lists their tiles and Qt has
    processed its events (painting the thumbnails in view). Also the lasso's point-in-polygon test on all
    points.
(a') a large selection: the same with 10,000 selected points (``--gallery-select``), and the time to scroll
    the gallery from top to bottom a page at a time (each page's thumbnails drawn).
(b) event-loop stalls during training: a 10 ms QTimer records the gaps between its ticks while the Train
    widget trains a small network in its worker thread (with live map refreshes).
(c) Stop: the CPU's network (``resnet18-s2``, width 16, batch 256) trains on all 17,092 blood cells
    (``--stop-tiles``); Stop is pressed half-way through its second epoch. Recorded: the epoch's length,
    the time from Stop to the end of training (the final map of all tiles computed and shown) and the
    epochs counted.

Prints one JSON line and appends it to benchmarks/results/plugin-<device>-<n>core.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch._dynamo  # noqa: F401  (load before napari's OpenGL; see plugin.torch_runtime.preload_torch)

# isort: split

import napari
import numpy as np
from qtpy.QtCore import QTimer

from napari_tsimcne.plugin.gallery import open_gallery
from napari_tsimcne.plugin.map_layer import outlier_scores
from napari_tsimcne.plugin.selection import points_in_polygon

RESULTS = Path(__file__).resolve().parent / "results"


def clustered_map(n: int, n_clusters: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-50, 50, (n_clusters, 2))
    which = rng.integers(0, n_clusters, n)
    return centres[which] + rng.normal(
        scale=rng.uniform(1, 4, n_clusters)[which, None], size=(n, 2)
    )


def process(app, seconds: float = 0.0) -> None:
    end = time.perf_counter() + seconds
    app.processEvents()
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def bench_large_selection(app, points, gallery, n_select: int, repeats: int) -> dict:
    """Selecting ``n_select`` points until the gallery lists them and paints its first screen; then
    scrolling through the whole list a page at a time."""
    rng = np.random.default_rng(2)
    n_points = len(points.data)
    n_select = min(n_select, n_points)
    times = []
    for _ in range(repeats):
        chosen = rng.choice(n_points, n_select, replace=False)
        t0 = time.perf_counter()
        points.selected_data = set(chosen.tolist())
        app.processEvents()
        times.append(time.perf_counter() - t0)
        assert gallery.model.rowCount() == n_select
        process(app, 0.05)
    bar = gallery.view.verticalScrollBar()
    bar.setValue(0)
    process(app, 0.05)
    drawn_before = gallery.model.rendered
    pages = 0
    t0 = time.perf_counter()
    while bar.value() < bar.maximum():
        bar.setValue(min(bar.value() + bar.pageStep(), bar.maximum()))
        app.processEvents()
        pages += 1
    scroll_s = time.perf_counter() - t0
    return {
        "n_selected": n_select,
        "repeats": repeats,
        "shown_text": gallery.count.text(),
        "select_to_gallery_ms_median": round(1000 * float(np.median(times)), 1),
        "select_to_gallery_ms_max": round(1000 * float(np.max(times)), 1),
        "scroll_pages": pages,
        "scroll_ms_per_page": round(1000 * scroll_s / max(pages, 1), 2),
        "thumbnails_drawn_while_scrolling": int(gallery.model.rendered - drawn_before),
    }


def bench_selection(
    viewer, train, app, n_points: int, n_select: int, repeats: int, n_large: int = 10_000
) -> dict:
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 256, (n_points, 28, 28, 3), dtype=np.uint8)
    layer = viewer.add_image(tiles, name="tiles", rgb=True)
    emb = clustered_map(n_points)
    t0 = time.perf_counter()
    points = train.show_map(layer, emb)
    create_s = time.perf_counter() - t0
    process(app, 0.5)
    times = []
    for i in range(repeats + 1):
        centre = points.data[rng.integers(n_points)]
        chosen = np.argsort(np.sum((points.data - centre) ** 2, axis=1))[
            :n_select
        ]  # a compact group
        t0 = time.perf_counter()
        points.selected_data = set(chosen.tolist())
        app.processEvents()
        elapsed = time.perf_counter() - t0
        gallery = open_gallery(viewer, create=False)
        assert set(gallery.shown_tiles().tolist()) == set(chosen.tolist())
        if i:  # the first one docks the gallery
            times.append(elapsed)
        process(app, 0.05)
    large = bench_large_selection(app, points, gallery, n_large, repeats=max(3, repeats // 4))
    # a live map refresh during training (outlier scores come from the worker thread)
    refresh = []
    for seed in range(3):
        new = clustered_map(n_points, seed=10 + seed)
        scores = outlier_scores(new)
        t0 = time.perf_counter()
        train.show_map(layer, new, outlier=scores)
        app.processEvents()
        refresh.append(time.perf_counter() - t0)
    # the lasso's geometry on all points: a 200-vertex loop
    angles = np.linspace(0, 2 * np.pi, 200)
    side = float(points.metadata["tsimcne_side"])
    loop = side / 2 + side / 4 * np.column_stack([np.sin(angles), np.cos(angles)])
    t0 = time.perf_counter()
    inside = points_in_polygon(points.data, loop)
    lasso_s = time.perf_counter() - t0
    viewer.layers.clear()
    return {
        "n_points": n_points,
        "n_selected": n_select,
        "repeats": repeats,
        "map_create_s": round(create_s, 3),
        "select_to_gallery_ms_median": round(1000 * float(np.median(times)), 1),
        "select_to_gallery_ms_max": round(1000 * float(np.max(times)), 1),
        "lasso_polygon_test_ms": round(1000 * lasso_s, 1),
        "lasso_inside": int(len(inside)),
        "map_refresh_ms_median": round(1000 * float(np.median(refresh)), 1),
        "large_selection": large,
    }


def bench_training_stalls(viewer, train, app, n_tiles: int, seconds: float, settings: dict) -> dict:
    from napari_tsimcne.core.sample import load_sample

    sample = load_sample(n_tiles=n_tiles)
    viewer.add_image(sample.tiles, name="train tiles", rgb=sample.tiles.ndim == 4)
    train.form.layer_combo.value = "train tiles"
    train.form.apply(**settings)
    train.session.checkpoint_dir = None  # no checkpoint files from a benchmark
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    refreshes = []
    seen: dict[str, float] = {}

    def first(name: str) -> None:
        seen.setdefault(name, time.perf_counter())

    train.session.planned.connect(lambda _plan: first("planned"))
    train.session.progressed.connect(lambda _u: first("epoch"))
    train.session.progressed.connect(lambda u: refreshes.append(u.event.embedding is not None))
    timer.start()
    process(app, 0.5)
    t0 = time.perf_counter()
    train.start_training()  # checks the stack on the main thread, then starts the worker
    start_s = time.perf_counter() - t0
    ticks.clear()
    while train.worker is not None and time.perf_counter() - t0 < seconds:
        process(app, 0.05)
    train_s = time.perf_counter() - t0
    if train.worker is not None:
        train.stop_training()
        while train.worker is not None:
            process(app, 0.05)
    timer.stop()
    gaps = np.diff(np.asarray(ticks)) * 1000
    return {
        "n_tiles": int(len(sample.tiles)),
        "tile_shape": list(sample.tiles.shape[1:]),
        "train_settings": settings,
        "start_training_call_ms": round(1000 * start_s, 1),
        # pressing Train -> the epochs are known and napari's progress bar counts them (tiles prepared)
        "press_to_planned_s": round(seen.get("planned", float("nan")) - t0, 2),
        # pressing Train -> the first epoch's loss, time left and progress are shown
        "press_to_first_epoch_s": round(seen.get("epoch", float("nan")) - t0, 2),
        "train_s": round(train_s, 1),
        "epochs_seen": len(refreshes),
        "map_refreshes": int(sum(refreshes)),
        "timer_ms": 10,
        "ticks": int(len(gaps)),
        "gap_ms_max": round(float(gaps.max()), 1),
        "gap_ms_p99": round(float(np.percentile(gaps, 99)), 1),
        "gap_ms_median": round(float(np.median(gaps)), 1),
        "gaps_over_100ms": int((gaps > 100).sum()),
    }


def bench_stop(viewer, train, app, n_tiles: int | None) -> dict:
    """Press Stop half-way through the second epoch; how long until training has ended and the map shows."""
    from napari_tsimcne.core.sample import load_sample

    sample = load_sample(n_tiles=n_tiles)
    viewer.add_image(sample.tiles, name="stop tiles", rgb=sample.tiles.ndim == 4)
    train.form.layer_combo.value = "stop tiles"
    settings = {
        "epochs": (30, 1, 1),
        "batch_size": 256,
        "device": "cpu",
        "backbone": "resnet18-s2",
        "width": 16,
    }
    train.form.apply(**settings)
    train.session.checkpoint_dir = None
    epochs: list[tuple[float, float]] = []  # (when it arrived, the run's seconds so far)
    train.session.progressed.connect(
        lambda u: epochs.append((time.perf_counter(), u.event.seconds))
    )
    train.start_training()
    while len(epochs) < 1:
        process(app, 0.02)
    epoch_s = float(epochs[0][1])  # the first epoch (with its live map)
    stop_at = epochs[0][0] + epoch_s / 2  # half-way through the second epoch
    while time.perf_counter() < stop_at:
        process(app, 0.02)
    t0 = time.perf_counter()
    train.stop_training()
    while train.worker is not None:
        process(app, 0.01)
    return {
        "n_tiles": int(len(sample.tiles)),
        "settings": settings,
        "epoch_s": round(epoch_s, 2),
        "stop_to_ended_s": round(time.perf_counter() - t0, 2),
        "epochs_counted": len(train.session.history),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--select", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--gallery-select", type=int, default=10_000)
    parser.add_argument(
        "--skip-training", action="store_true", help="only the selection and gallery timings"
    )
    parser.add_argument("--train-tiles", type=int, default=2_000)
    parser.add_argument("--train-seconds", type=float, default=30.0)
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument(
        "--stop-tiles", type=int, default=None, help="tiles of the Stop test (default: all 17,092)"
    )
    parser.add_argument("--skip-stop", action="store_true", help="leave out the Stop test")
    args = parser.parse_args()

    app = napari.qt.get_qapp()
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    _, annotate = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    process(app, 0.5)
    result = {
        "benchmark": "plugin",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "napari": napari.__version__,
            "load_avg_at_start": [round(v, 2) for v in os.getloadavg()],
        },
    }
    result["selection"] = bench_selection(
        viewer, train, app, args.points, args.select, args.repeats, args.gallery_select
    )
    settings = {
        "epochs": (6, 1, 2),
        "batch_size": 256,
        "device": "cpu",
        "backbone": "resnet10",
        "width": 8,
    }
    if not args.skip_training:
        result["training"] = bench_training_stalls(
            viewer, train, app, args.train_tiles, args.train_seconds, settings
        )
    if not args.skip_stop:
        result["stop"] = bench_stop(viewer, train, app, args.stop_tiles)
    result["machine"]["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    line = json.dumps(result)
    print(line)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / f"plugin-cpu-{os.cpu_count()}core.jsonl", "a") as fh:
            fh.write(line + "\n")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
