"""Dock widgets: train a t-SimCNE map of a tile layer, and annotate the map."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
    QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from napari_tsimcne.core import ModelFileError, NotFittedError, TileStackError, TSimCNE

from . import annotations as ann
from . import autosave as autosave_mod
from .crosslink import MapTileLink
from .lasso import LassoTool
from .map_layer import create_map_layer, map_layer_name, outlier_scores, recolor, update_map_layer
from .preview import augmentation_mosaic, preview_indices
from .tiling import cut_layer_into_tiles

PREVIEW_NAME = "augmentation preview"

PRESET_HELP = {
    "microscopy": "Rotations by any angle, flips, crops, colour jitter, blur. The map ignores orientation "
                  "and moderate staining/brightness differences. Good for cells and tissue.",
    "natural": "SimCLR's set: crops, horizontal flips, colour jitter, greyscale. No rotations: the map "
               "keeps 'up'. For photographs and objects with an orientation.",
    "fluorescence": "Rotations, flips, crops, at most a 5 % gain per channel. No brightness or contrast jitter, "
                    "so intensity (DNA content, marker levels) stays visible in the map.",
}

_LINKS: dict[int, MapTileLink] = {}


def _unwrap(obj):
    """The object behind napari's PublicOnlyProxy (what plugins get), for identity checks."""
    return getattr(obj, "__wrapped__", obj)


def link_map(viewer, map_layer, tiles_layer) -> MapTileLink:
    """Connect the map and the tile stack (once per map layer)."""
    key = _unwrap(map_layer)
    link = _LINKS.get(id(key))
    if link is None or _unwrap(link.map_layer) is not key:
        link = _LINKS[id(key)] = MapTileLink(viewer, map_layer, tiles_layer)
    link.tiles_layer = _unwrap(tiles_layer)
    return link


def default_batch_size(n_tiles: int) -> int:
    """min(1024, the largest power of two <= n_tiles)."""
    return int(min(1024, 1 << (max(2, n_tiles).bit_length() - 1)))


def _preload_torch() -> None:
    """Load torch's lazily imported modules on the main thread, before training starts.

    The optimizer imports torch._dynamo, which imports triton. triton bundles its own LLVM; in a process
    whose OpenGL is Mesa's software renderer (llvmpipe, e.g. on a virtual display) the system LLVM is
    already loaded and importing triton then crashes the process. There triton is hidden from torch
    (nothing here needs it); elsewhere it is imported normally.
    """
    if "torch._dynamo" in sys.modules or "triton" in sys.modules:
        return
    if _system_llvm_loaded():
        sys.modules["triton"] = None  # makes "import triton" raise ImportError, which torch handles
    import torch._dynamo  # noqa: F401


def _release_device_memory() -> None:
    """Give cached GPU memory back to the driver (the trainer and the tile store are gone by now)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except RuntimeError:
        pass


def _system_llvm_loaded() -> bool:
    try:
        with open("/proc/self/maps") as fh:
            return "libLLVM" in fh.read()
    except OSError:
        return False


_MODEL_FILTER = "napari-tsimcne model (*.tsimcne *.pt);;All files (*)"
_CSV_FILTER = "CSV (*.csv);;All files (*)"


def _ask_path_then(parent, title: str, default: str, name_filter: str, action, errors: tuple, *,
                   save: bool = False, on_error=None) -> None:
    """Ask for a file path; call ``action(path)``; show the listed errors in napari's notifications."""
    ask = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
    path, _ = ask(parent, title, default, name_filter)
    if not path:
        return
    try:
        action(path)
    except errors as exc:
        show_error(str(exc))
        if on_error is not None:
            on_error(str(exc))


def _tile_layers(viewer) -> list[Image]:
    return [l for l in viewer.layers if isinstance(l, Image) and l.ndim >= 3 and l.name != "selected tiles"]


def _image_layers_2d(viewer) -> list[Image]:
    return [l for l in viewer.layers if isinstance(l, Image) and l.ndim == 2 and l.name != PREVIEW_NAME]


def _refill(combo: QComboBox, names: list[str]) -> None:
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


class TrainWidget(QWidget):
    """Choose a tile layer and augmentations, train, and watch the map form."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.model: TSimCNE | None = None
        self.worker = None
        self._stop_requested = False
        self._training_layer = None
        self._closing = False
        self._loop_done = threading.Event()
        self._loop_done.set()
        self._task_id = None

        self.layer_combo = QComboBox()
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESET_HELP))
        self.preset_help = QLabel(PRESET_HELP["microscopy"])
        self.preset_help.setWordWrap(True)
        self.epoch_spins = []
        for default in (40, 4, 16):
            spin = QSpinBox()
            spin.setRange(0, 5000)
            spin.setValue(default)
            self.epoch_spins.append(spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(2, 65536)
        self.batch_spin.setValue(1024)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cuda", "mps", "cpu"])
        self.backbone_combo = QComboBox()
        self.backbone_combo.addItems(["resnet18", "resnet10"])
        self.width_spin = QSpinBox()
        self.width_spin.setRange(4, 256)
        self.width_spin.setValue(64)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.train_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel("Not trained.")
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.embed_button = QPushButton("Embed with loaded model")
        self.preview_button = QPushButton("Preview augmentations")
        self.source_combo = QComboBox()
        self.tile_size_spin = QSpinBox()
        self.tile_size_spin.setRange(4, 4096)
        self.tile_size_spin.setValue(32)
        self.stride_spin = QSpinBox()
        self.stride_spin.setRange(1, 4096)
        self.stride_spin.setValue(32)
        self.min_fg_spin = QDoubleSpinBox()
        self.min_fg_spin.setRange(0.0, 1.0)
        self.min_fg_spin.setSingleStep(0.05)
        self.min_fg_spin.setValue(0.0)
        self.min_fg_spin.setToolTip("Skip tiles with less than this fraction of foreground (0 keeps all).")
        self.cut_button = QPushButton("Cut")

        form = QFormLayout()
        form.addRow("Tiles", self.layer_combo)
        form.addRow("Augmentations", self.preset_combo)
        form.addRow(self.preset_help)
        epochs = QHBoxLayout()
        for spin in self.epoch_spins:
            epochs.addWidget(spin)
        form.addRow("Epochs (1/2/3)", epochs)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Device", self.device_combo)
        form.addRow("Network", self.backbone_combo)
        form.addRow("Width", self.width_spin)
        form.addRow("Seed", self.seed_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        cut_box = QGroupBox("Cut image into tiles")
        cut_form = QFormLayout(cut_box)
        cut_form.addRow("Image", self.source_combo)
        cut_form.addRow("Tile size", self.tile_size_spin)
        cut_form.addRow("Stride", self.stride_spin)
        cut_form.addRow("Skip background", self.min_fg_spin)
        cut_form.addRow(self.cut_button)
        layout = QVBoxLayout(self)
        layout.addWidget(cut_box)
        layout.addLayout(form)
        layout.addWidget(self.preview_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(files)
        layout.addWidget(self.embed_button)
        layout.addStretch()

        self.preset_combo.currentTextChanged.connect(lambda p: self.preset_help.setText(PRESET_HELP[p]))
        self.layer_combo.currentTextChanged.connect(self._on_layer_changed)
        self.train_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        self.save_button.clicked.connect(self._ask_save)
        self.load_button.clicked.connect(self._ask_load)
        self.embed_button.clicked.connect(self.embed_with_model)
        self.preview_button.clicked.connect(lambda: self.preview_augmentations())
        self.cut_button.clicked.connect(lambda: self.cut_into_tiles())
        self.tile_size_spin.valueChanged.connect(self._on_tile_size_changed)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed,
                   self.viewer.layers.events.reordered):
            ev.connect(self.refresh_layers)
        self.refresh_layers()

    # -- layer choice ---------------------------------------------------------
    def refresh_layers(self, event=None) -> None:
        _refill(self.layer_combo, [l.name for l in _tile_layers(self.viewer)])
        _refill(self.source_combo, [l.name for l in _image_layers_2d(self.viewer)])
        self._on_layer_changed(self.layer_combo.currentText())

    def _on_layer_changed(self, name: str) -> None:
        if name in self.viewer.layers:
            self.batch_spin.setValue(default_batch_size(self.viewer.layers[name].data.shape[0]))

    def tiles_layer(self) -> Image | None:
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # -- cutting and preview ----------------------------------------------------
    def _on_tile_size_changed(self, value: int) -> None:
        # keep the stride equal to the tile size unless the user chose another stride
        if self.stride_spin.value() == getattr(self, "_last_tile_size", 32):
            self.stride_spin.setValue(value)
        self._last_tile_size = value

    def cut_into_tiles(self, layer_name: str | None = None, tile_size: int | None = None,
                       stride: int | None = None, min_foreground: float | None = None) -> Image | None:
        """Cut a 2D image layer into a new tile layer "<name> tiles" with metadata origins and source_layer."""
        name = self.source_combo.currentText() if layer_name is None else layer_name
        if name not in self.viewer.layers:
            show_error("Add a 2D image layer (H x W or RGB) to cut first.")
            return None
        source = self.viewer.layers[name]
        tile_size = self.tile_size_spin.value() if tile_size is None else tile_size
        stride = self.stride_spin.value() if stride is None else stride
        min_foreground = self.min_fg_spin.value() if min_foreground is None else min_foreground
        rgb = bool(getattr(source, "rgb", False))
        try:
            tiles, origins = cut_layer_into_tiles(np.asarray(source.data), rgb, tile_size, stride, min_foreground)
        except (TileStackError, ValueError) as exc:
            show_error(str(exc))
            return None
        layer = self.viewer.add_image(
            tiles, name=f"{name} tiles", rgb=rgb,
            metadata={"origins": np.asarray(origins, dtype=np.int64), "source_layer": name},
        )
        self.layer_combo.setCurrentText(layer.name)
        show_info(f"Cut {name} into {len(tiles)} tiles of {tile_size} x {tile_size}.")
        return layer

    def preview_augmentations(self, n_tiles: int = 8, n_views: int = 6) -> Image | None:
        """Show up to ``n_tiles`` tiles and ``n_views`` augmented views each, with the chosen preset and seed."""
        layer = self.tiles_layer()
        if layer is None:
            show_error("Choose a tile layer first.")
            return None
        data = np.asarray(layer.data)
        try:
            tiles = data[preview_indices(len(data), n_tiles)]
            mosaic = augmentation_mosaic(tiles, self.preset_combo.currentText(), n_views=n_views,
                                         seed=self.seed_spin.value())
        except (ValueError, RuntimeError) as exc:
            show_error(f"Preview failed: {exc}")
            return None
        rgb = mosaic.ndim == 3
        if PREVIEW_NAME in self.viewer.layers:
            self.viewer.layers.remove(PREVIEW_NAME)
        return self.viewer.add_image(mosaic, name=PREVIEW_NAME, rgb=rgb,
                                     contrast_limits=None if rgb else (0.0, 1.0))

    # -- training -------------------------------------------------------------
    def make_model(self) -> TSimCNE:
        """A TSimCNE with the settings shown in the widget."""
        return TSimCNE(
            total_epochs=tuple(s.value() for s in self.epoch_spins), batch_size=self.batch_spin.value(),
            augmentations=self.preset_combo.currentText(), device=self.device_combo.currentText(),
            random_state=self.seed_spin.value(), backbone=self.backbone_combo.currentText(),
            width=self.width_spin.value(),
        )

    def apply_settings(self, *, epochs: tuple[int, int, int] | None = None, batch_size: int | None = None,
                       device: str | None = None, backbone: str | None = None, width: int | None = None,
                       preset: str | None = None, seed: int | None = None) -> None:
        """Set the training controls (as a user would); None leaves a control as it is."""
        if epochs is not None:
            if len(epochs) != 3:
                raise ValueError(f"epochs needs three numbers (one per stage), got {epochs!r}.")
            for spin, value in zip(self.epoch_spins, epochs):
                spin.setValue(int(value))
        if batch_size is not None:
            self.batch_spin.setValue(int(batch_size))
        for combo, value in ((self.device_combo, device), (self.backbone_combo, backbone),
                             (self.preset_combo, preset)):
            if value is not None:
                if combo.findText(value) < 0:
                    raise ValueError(f"{value!r} is not one of {[combo.itemText(i) for i in range(combo.count())]}.")
                combo.setCurrentText(value)
        if width is not None:
            self.width_spin.setValue(int(width))
        if seed is not None:
            self.seed_spin.setValue(int(seed))

    def start_training(self) -> None:
        """Check the settings, then train in a background thread."""
        layer = self.tiles_layer()
        if layer is None:
            show_error("Add a tile stack (an image layer N x H x W or N x H x W x C) first.")
            return
        if self.worker is not None:
            return
        model = self.make_model()
        _preload_torch()
        try:
            events = model.fit_iter(np.asarray(layer.data))
        except (TileStackError, ValueError, RuntimeError) as exc:
            show_error(str(exc))
            self.status.setText(f"Not started: {exc}")
            return
        self.model = model
        self._training_layer = layer
        self._stop_requested = False
        self._loop_done.clear()
        loop = self._train_loop(events)

        def run():
            return (yield from loop)

        self.worker = create_worker(run, _start_thread=False)
        # napari quits all workers when its window closes; the worker then leaves its loop without closing
        # ours. Close it right there, in the worker thread, so that training ends cleanly (and maps the tiles).
        self.worker.aborted.connect(loop.close, Qt.ConnectionType.DirectConnection)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self._register_task()
        self.worker.start()

    def _train_loop(self, events):
        """Runs in the worker thread; closing ``events`` stops training and maps the tiles."""
        try:
            for event in events:
                if event.embedding is not None:
                    # the map's outlier scores (a kNN search) here, off the main thread
                    self._outliers = (event.embedding, outlier_scores(event.embedding))
                yield event
                if self._stop_requested:
                    break
        finally:
            try:
                events.close()
            finally:
                del events
                self._loop_done.set()
        return self.model.embedding_

    def stop_training(self) -> None:
        """Stop at the next epoch; the model keeps what it learned."""
        if self.worker is not None:
            self._stop_requested = True
            self.status.setText("Stopping after this epoch…")

    def _on_event(self, event) -> None:
        if self._closing:
            return
        # QProgressBar.setValue repaints at once (tens of ms beside an OpenGL canvas on a software renderer);
        # with updates paused it only schedules the repaint, merged with the map's in the next paint
        self.progress.setUpdatesEnabled(False)
        self.progress.setMaximum(max(1, event.total_epochs))
        self.progress.setValue(event.global_epoch)
        self.progress.setUpdatesEnabled(True)
        self.progress.update()
        self.status.setText(
            f"Stage {event.stage} ({event.stage_name}), epoch {event.epoch}/{event.stage_epochs}, "
            f"loss {event.loss:.3f}, {event.views_per_second:,.0f} views/s"
        )
        if event.embedding is not None:
            cached = getattr(self, "_outliers", None)
            outlier = cached[1] if cached is not None and cached[0] is event.embedding else None
            self.show_map(self._training_layer, event.embedding, outlier=outlier)

    def _on_returned(self, embedding) -> None:
        if self._closing:
            return
        if embedding is not None and self._training_layer is not None:
            self.show_map(self._training_layer, embedding)
        done = "stopped early" if self._stop_requested else "done"
        self.status.setText(f"Training {done} in {self.model.fit_seconds_:.1f} s. {self.status.text()}")

    def _on_error(self, exc) -> None:
        show_error(f"Training failed: {exc}")
        if not self._closing:
            self.status.setText(f"Training failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self._finish_task()
        _release_device_memory()
        if not self._closing:
            self.train_button.setEnabled(True)
            self.stop_button.setEnabled(False)

    # -- closing ----------------------------------------------------------------
    def shutdown(self, timeout: float = 0.0) -> bool:
        """Stop training at the end of the current epoch (the model keeps what it learned).

        Called without waiting when the widget is closed or removed from its dock (napari stays
        responsive; the thread ends on its own), and with ``timeout`` = 10 s when napari closes.
        The widget no longer touches layers afterwards. Returns whether the training thread has finished.
        """
        self._closing = True
        if self.worker is None:
            return True
        self._stop_requested = True
        done = self._loop_done.wait(timeout) if timeout > 0 else self._loop_done.is_set()
        if done:
            _release_device_memory()
        return done

    def _register_task(self) -> None:
        # napari's task list: closing the window asks first, then calls our cancel callback
        register = getattr(getattr(_unwrap(self.viewer), "window", None), "_register_task_status", None)
        if register is None:
            return
        try:
            from napari.utils.task_status import Status

            self._task_id = register("napari-tsimcne", Status.BUSY, "training a t-SimCNE map",
                                     cancel_callback=lambda: self.shutdown(timeout=10.0))
        except Exception:  # noqa: BLE001 - a private napari API: training works without it
            self._task_id = None

    def _finish_task(self) -> None:
        update = getattr(getattr(_unwrap(self.viewer), "window", None), "_update_task_status", None)
        if self._task_id is None or update is None:
            return
        try:
            from napari.utils.task_status import Status

            update(self._task_id, Status.COMPLETED, "")
        except Exception:  # noqa: BLE001
            pass
        self._task_id = None

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    def event(self, ev) -> bool:
        # napari's dock "x" (remove_dock_widget) takes the widget out of its dock with setParent(None)
        if ev.type() == QEvent.Type.ParentChange and self.parent() is None and self.worker is not None:
            self.shutdown()
        return super().event(ev)

    def show_map(self, tiles_layer, embedding: np.ndarray, outlier: np.ndarray | None = None) -> Points:
        """Create or update the map layer of ``tiles_layer`` and link it to the stack."""
        name = map_layer_name(tiles_layer.name)
        if name in self.viewer.layers and len(self.viewer.layers[name].data) == len(embedding):
            layer = self.viewer.layers[name]
            update_map_layer(layer, embedding, outlier=outlier)
        else:
            color_by = "label" if "labels" in tiles_layer.metadata else "outlier"
            layer = create_map_layer(self.viewer, tiles_layer, embedding, color_by=color_by, outlier=outlier)
            recolor(layer, color_by)
        link_map(self.viewer, layer, tiles_layer)
        return layer

    # -- files ----------------------------------------------------------------
    def save_model(self, path) -> None:
        """Write the trained model to ``path``."""
        if self.model is None:
            raise NotFittedError("Train or load a model first.")
        self.model.save(path)
        show_info(f"Model saved to {path}")

    def load_model(self, path) -> TSimCNE:
        """Read a model written by Save model."""
        self.model = TSimCNE.load(path, device=self.device_combo.currentText())
        self.status.setText(f"Loaded {path}: tiles of {self.model.tile_shape_}, {self.model.n_channels_} channel(s).")
        return self.model

    def embed_with_model(self) -> Points | None:
        """Map the chosen tile layer with the loaded (or trained) model, without training."""
        layer = self.tiles_layer()
        if self.model is None or layer is None:
            show_error("Load or train a model and choose a tile layer first.")
            return None
        try:
            embedding = self.model.transform(np.asarray(layer.data))
        except (TileStackError, ValueError, NotFittedError) as exc:
            show_error(str(exc))
            return None
        return self.show_map(layer, embedding)

    def _ask_save(self) -> None:
        _ask_path_then(self, "Save model", "model.tsimcne", _MODEL_FILTER, self.save_model, (NotFittedError, OSError), save=True)

    def _ask_load(self) -> None:
        _ask_path_then(self, "Load model", "", _MODEL_FILTER, self.load_model, (ModelFileError, OSError))


AUTOSAVE_DELAY_MS = 1000
"""Annotations are written this long after the first change (later changes in that second join the write)."""

CLUSTER_METHODS = ("k-means", "HDBSCAN")


class AnnotateWidget(QWidget):
    """Name selected points, propose clusters, colour the map, export and import annotations.

    Annotations are autosaved (see :mod:`napari_tsimcne.plugin.autosave`) about a second after every change
    and when the widget or napari closes; a fresh map of a stack with an autosave gets its annotations back.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._watched: dict[int, Points] = {}
        self._savers: dict[int, autosave_mod.AnnotationAutosaver] = {}
        self._fingerprints: dict[int, str] = {}
        self._lasso: LassoTool | None = None
        self._cluster_worker = None
        self._filtered_windows: set[int] = set()
        self.map_combo = QComboBox()
        self.color_combo = QComboBox()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("class name, e.g. neutrophil")
        self.assign_button = QPushButton("Assign to selected")
        self.lasso_button = QPushButton("Lasso select")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("Drag on the map to draw a free-hand outline; the points inside are selected. "
                                     "Shift or Ctrl adds to the selection.")
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(CLUSTER_METHODS))
        self.k_spin = QSpinBox()
        self.k_spin.setRange(2, 100)
        self.k_spin.setValue(8)
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(2, 100_000)
        self.min_size_spin.setValue(20)
        self.min_size_spin.setToolTip("HDBSCAN: the smallest group of points that counts as a cluster. "
                                      "Points in no cluster get -1 (grey).")
        self.k_label = QLabel("k")
        self.min_size_label = QLabel("min size")
        self.cluster_button = QPushButton("Propose clusters")
        self.export_button = QPushButton("Export CSV…")
        self.import_button = QPushButton("Import CSV…")
        self.restore_button = QPushButton("Restore autosave")
        self.restore_button.setToolTip("Replace the map's annotations by the last autosave of this tile stack.")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.autosave_label = QLabel("")
        self.autosave_label.setWordWrap(True)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)

        form = QFormLayout()
        form.addRow("Map", self.map_combo)
        form.addRow("Colour by", self.color_combo)
        box = QGroupBox("Annotate")
        box_form = QFormLayout(box)
        box_form.addRow(self.lasso_button)
        box_form.addRow(self.name_edit)
        box_form.addRow(self.assign_button)
        clusters = QHBoxLayout()
        clusters.addWidget(self.method_combo)
        clusters.addWidget(self.k_label)
        clusters.addWidget(self.k_spin)
        clusters.addWidget(self.min_size_label)
        clusters.addWidget(self.min_size_spin)
        box_form.addRow(clusters)
        box_form.addRow(self.cluster_button)
        files = QHBoxLayout()
        files.addWidget(self.export_button)
        files.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(box)
        layout.addLayout(files)
        layout.addWidget(self.restore_button)
        layout.addWidget(self.status)
        layout.addWidget(self.autosave_label)
        layout.addStretch()
        self._on_method_changed(self.method_combo.currentText())

        self.map_combo.currentTextChanged.connect(self._refresh_columns)
        self.color_combo.textActivated.connect(self.color_by)
        self.assign_button.clicked.connect(lambda: self.assign(self.name_edit.text()))
        self.name_edit.returnPressed.connect(lambda: self.assign(self.name_edit.text()))
        self.lasso_button.toggled.connect(self.set_lasso)
        self.method_combo.currentTextChanged.connect(self._on_method_changed)
        self.cluster_button.clicked.connect(self._on_cluster_clicked)
        self.export_button.clicked.connect(self._ask_export)
        self.import_button.clicked.connect(self._ask_import)
        self.restore_button.clicked.connect(self._on_restore_clicked)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self.refresh_layers)
        self.refresh_layers()

    def refresh_layers(self, event=None) -> None:
        maps = [l for l in self.viewer.layers if isinstance(l, Points) and "tsimcne_tiles_layer" in l.metadata]
        for layer in maps:
            key = _unwrap(layer)
            if id(key) not in self._watched:
                self._watched[id(key)] = key
                # keep "Colour by" in step when the map's colouring or columns change elsewhere
                layer.events.face_color.connect(self._refresh_columns)
                layer.events.features.connect(self._refresh_columns)
                layer.events.features.connect(self._on_features_changed)
                # after the code that made the map has finished with it (e.g. coloured it)
                QTimer.singleShot(0, lambda key=key: self._restore_fresh_map(key))
        alive = {id(_unwrap(l)) for l in maps}
        for gone in [k for k in self._watched if k not in alive]:
            self._forget(gone)
        _refill(self.map_combo, [l.name for l in maps])
        self._refresh_columns()

    def _forget(self, key: int) -> None:
        layer = self._watched.pop(key)
        layer.events.face_color.disconnect(self._refresh_columns)
        layer.events.features.disconnect(self._refresh_columns)
        layer.events.features.disconnect(self._on_features_changed)
        self._fingerprints.pop(key, None)
        saver = self._savers.pop(key, None)
        if saver is not None:
            # the removed map's last changes still reach its file
            saver.close()

    def _refresh_columns(self, *_) -> None:
        layer = self.map_layer()
        columns = [] if layer is None else [c for c in layer.features.columns if c not in ("tile_index", "x", "y")]
        _refill(self.color_combo, columns)
        if layer is not None and layer.metadata.get("tsimcne_color_by") in columns:
            self.color_combo.blockSignals(True)
            self.color_combo.setCurrentText(layer.metadata["tsimcne_color_by"])
            self.color_combo.blockSignals(False)

    def map_layer(self) -> Points | None:
        name = self.map_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _require_map(self) -> Points:
        layer = self.map_layer()
        if layer is None:
            raise ValueError("No map yet: train a map in the 'Train map' widget first.")
        return layer

    def color_by(self, column: str) -> None:
        layer = self.map_layer()
        if layer is not None and column:
            recolor(layer, column)

    def assign(self, name: str) -> int:
        """Give the selected points the class ``name``; returns how many were named."""
        layer = self.map_layer()
        if layer is None or not name.strip() or not layer.selected_data:
            show_error("Select points in the map and type a class name first.")
            return 0
        selected = set(layer.selected_data)
        layer.features = ann.assign_annotation(layer.features, selected, name)
        layer.selected_data = selected
        self._refresh_columns()
        self.color_combo.setCurrentText("annotation")
        recolor(layer, "annotation")
        self.status.setText(f"{len(selected)} tiles named {name.strip()!r}.")
        return len(selected)

    # -- lasso --------------------------------------------------------------------
    def set_lasso(self, on: bool) -> None:
        """Turn free-hand lasso selection on the current map on or off."""
        if not on:
            if self._lasso is not None:
                lasso, self._lasso = self._lasso, None
                lasso.disable()
            return
        layer = self.map_layer()
        if layer is None:
            show_error("No map yet: train a map in the 'Train map' widget first.")
            self._sync_lasso_button()
            return
        if self._lasso is not None:
            self._lasso.disable()
        self._lasso = LassoTool(self.viewer, layer, on_disabled=self._on_lasso_disabled)
        self._lasso.enable()
        self._sync_lasso_button()

    def _on_lasso_disabled(self) -> None:
        self._lasso = None
        self._sync_lasso_button()

    def _sync_lasso_button(self) -> None:
        self.lasso_button.blockSignals(True)
        self.lasso_button.setChecked(self._lasso is not None and self._lasso.active)
        self.lasso_button.blockSignals(False)

    # -- clusters -------------------------------------------------------------------
    def _on_method_changed(self, method: str) -> None:
        kmeans = method == "k-means"
        for w in (self.k_label, self.k_spin):
            w.setVisible(kmeans)
        for w in (self.min_size_label, self.min_size_spin):
            w.setVisible(not kmeans)

    def _on_cluster_clicked(self) -> None:
        try:
            if self.method_combo.currentText() == "HDBSCAN":
                self.propose_hdbscan(self.min_size_spin.value())
            else:
                self.propose_clusters(self.k_spin.value())
        except ValueError as exc:
            show_error(str(exc))
            self.status.setText(str(exc))

    def _set_clusters(self, layer, labels: np.ndarray, message: str) -> None:
        feats = layer.features.copy()
        feats["cluster"] = labels
        layer.features = feats
        self._refresh_columns()
        self.color_combo.setCurrentText("cluster")
        recolor(layer, "cluster")
        self.status.setText(message)

    def propose_clusters(self, k: int) -> None:
        """k-means on the map; writes the cluster column and colours by it."""
        layer = self._require_map()
        labels = ann.propose_clusters(layer.features[["x", "y"]].to_numpy(), k)
        self._set_clusters(layer, labels, f"{k} clusters proposed.")

    def propose_hdbscan(self, min_cluster_size: int):
        """HDBSCAN on the map in a background thread (it takes a minute on 100,000 points); noise gets -1.

        Returns the worker; the cluster column is written when it finishes.
        """
        layer = self._require_map()
        if self._cluster_worker is not None:
            raise ValueError("Clustering is already running.")
        coords = layer.features[["x", "y"]].to_numpy()
        if min_cluster_size < 2 or min_cluster_size > len(coords):
            raise ValueError(f"The minimum cluster size must lie between 2 and the number of points "
                             f"({len(coords)}), got {min_cluster_size}.")
        key = _unwrap(layer)

        def done(labels):
            if key in self.viewer.layers and len(key.data) == len(labels):
                n = len(set(labels.tolist()) - {-1})
                noise = int((labels == -1).sum())
                self._set_clusters(key, labels, f"HDBSCAN: {n} clusters, {noise} points in none (-1).")

        def failed(exc):
            show_error(f"Clustering failed: {exc}")

        def finished():
            self._cluster_worker = None
            self.cluster_button.setEnabled(True)

        worker = create_worker(ann.propose_hdbscan, coords, min_cluster_size, _start_thread=False)
        worker.returned.connect(done)
        worker.errored.connect(failed)
        worker.finished.connect(finished)
        self._cluster_worker = worker
        self.cluster_button.setEnabled(False)
        self.status.setText(f"HDBSCAN on {len(coords):,} points…")
        worker.start()
        return worker

    # -- files ------------------------------------------------------------------------
    def _tiles_layer_of(self, layer):
        tiles_name = layer.metadata.get("tsimcne_tiles_layer")
        return self.viewer.layers[tiles_name] if tiles_name in self.viewer.layers else None

    def _origins(self, layer):
        tiles = self._tiles_layer_of(layer)
        return None if tiles is None else tiles.metadata.get("origins")

    def export_csv(self, path) -> None:
        """Write the annotations of the map to ``path`` (atomically)."""
        layer = self._require_map()
        ann.export_csv(layer.features, path, origins=self._origins(layer))
        self.status.setText(f"Exported {len(layer.features)} tiles to {path}.")

    def _apply_table(self, layer, table) -> None:
        feats = layer.features.copy()
        rows = feats["tile_index"].to_numpy()
        feats["annotation"] = table.loc[rows, "annotation"].to_numpy()
        feats["cluster"] = table.loc[rows, "cluster"].to_numpy().astype(int)
        layer.features = feats
        self._refresh_columns()
        recolor(layer, "annotation" if (feats["annotation"] != "").any() else None)

    def import_csv(self, path) -> None:
        """Read annotations and clusters from ``path``; refuses files of another tile stack."""
        layer = self._require_map()
        self._apply_table(layer, ann.import_csv(path, len(layer.features)))
        self.status.setText(f"Imported annotations from {path}.")

    def _ask_export(self) -> None:
        _ask_path_then(self, "Export annotations", "annotations.csv", _CSV_FILTER, self.export_csv, (ValueError, OSError),
                       save=True)

    def _ask_import(self) -> None:
        _ask_path_then(self, "Import annotations", "", _CSV_FILTER, self.import_csv, (ValueError, OSError),
                       on_error=self.status.setText)

    # -- autosave -----------------------------------------------------------------------
    def _fingerprint(self, layer) -> str | None:
        key = id(_unwrap(layer))
        if key not in self._fingerprints:
            tiles = self._tiles_layer_of(layer)
            if tiles is None or len(tiles.data) != len(layer.data):
                return None
            self._fingerprints[key] = autosave_mod.stack_fingerprint(tiles.data)
        return self._fingerprints[key]

    def _saver(self, layer) -> autosave_mod.AnnotationAutosaver | None:
        key = id(_unwrap(layer))
        if key not in self._savers:
            fingerprint = self._fingerprint(layer)
            if fingerprint is None:
                return None
            tiles_name = layer.metadata.get("tsimcne_tiles_layer", layer.name)
            self._savers[key] = autosave_mod.AnnotationAutosaver(autosave_mod.autosave_path(tiles_name, fingerprint))
        return self._savers[key]

    def autosave_path(self, layer=None) -> Path | None:
        """The autosave file of ``layer`` (the current map by default)."""
        layer = layer if layer is not None else self.map_layer()
        saver = None if layer is None else self._saver(layer)
        return None if saver is None else saver.path

    def _on_features_changed(self, event=None) -> None:
        # at most AUTOSAVE_DELAY_MS after the first unsaved change, also while changes keep coming
        if not self._autosave_timer.isActive():
            self._autosave_timer.start()

    def autosave_now(self, wait: bool = False) -> None:
        """Queue a write of every map's annotations that changed (``wait``: until they are on disk)."""
        self._autosave_timer.stop()
        for layer in list(self._watched.values()):
            if layer not in self.viewer.layers:
                continue
            saver = self._saver(layer)
            if saver is None:
                continue
            feats = layer.features
            if saver.writes == 0 and not saver.path.exists() and not autosave_mod.has_annotations(feats):
                saver.mark_saved(feats)  # nothing to keep yet: no file for every stack ever opened
                continue
            saver.save(feats, origins=self._origins(layer))
            if wait:
                saver.flush()
            if saver.error is not None:
                self.autosave_label.setText(f"Autosave failed: {saver.error}")
            elif saver.writes:
                self.autosave_label.setText(f"Autosaved to {saver.path} at {time.strftime('%H:%M:%S')}.")

    def flush_autosave(self) -> None:
        """Write pending changes now and wait for them (on close)."""
        self.autosave_now(wait=True)
        for saver in self._savers.values():
            saver.flush()

    def _restore_fresh_map(self, key) -> None:
        """A new map without annotations gets those of its stack's autosave; a notification says so."""
        if key not in self.viewer.layers or autosave_mod.has_annotations(key.features):
            return
        fingerprint = self._fingerprint(key)
        if fingerprint is None:
            return
        path = autosave_mod.find_autosave(fingerprint)
        if path is None:
            others = autosave_mod.autosaves_of_other_stacks(key.metadata.get("tsimcne_tiles_layer", ""), fingerprint)
            if others:
                show_info(f"Not restored: the autosave {others[0].name} belongs to another tile stack of the "
                          f"same name (different shape or pixels).")
            return
        try:
            self.restore_autosave(key, path)
        except (ValueError, OSError) as exc:
            show_error(f"Autosave not restored: {exc}")

    def restore_autosave(self, layer=None, path=None) -> Path:
        """Replace the map's annotations and clusters by its stack's autosave (or ``path``).

        Raises AnnotationFileError (a ValueError) for a file of another tile stack, leaving the map unchanged.
        """
        layer = _unwrap(layer if layer is not None else self._require_map())
        fingerprint = self._fingerprint(layer)
        if fingerprint is None:
            raise ValueError("The map's tile layer is gone; cannot check which stack an autosave belongs to.")
        path = Path(path) if path is not None else autosave_mod.find_autosave(fingerprint)
        if path is None:
            raise ValueError("No autosave for this tile stack.")
        table = autosave_mod.load_autosave(path, fingerprint, len(layer.features))
        self._apply_table(layer, table)
        saver = self._saver(layer)
        if saver is not None:
            saver.mark_saved(layer.features)
        n = int((layer.features["annotation"] != "").sum())
        message = f"Restored {n} annotated tiles of {layer.name!r} from the autosave {path}."
        show_info(message)
        self.status.setText(message)
        return path

    def _on_restore_clicked(self) -> None:
        try:
            self.restore_autosave()
        except (ValueError, OSError) as exc:
            show_error(str(exc))
            self.status.setText(str(exc))

    # -- closing ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Write the last changes and stop the lasso (widget closed or removed, or napari closing)."""
        if self._lasso is not None:
            self.set_lasso(False)
        try:
            self.flush_autosave()
        except Exception as exc:  # noqa: BLE001 - closing must not fail
            show_error(f"Autosave failed: {exc}")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # napari closing its window: save first (harmless if the close is then cancelled)
        window = self.window()
        if window is not self and id(window) not in self._filtered_windows:
            window.installEventFilter(self)
            self._filtered_windows.add(id(window))
        super().showEvent(event)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        if ev.type() == QEvent.Type.Close:
            self.flush_autosave()
        return False

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.shutdown()
        super().closeEvent(event)

    def event(self, ev) -> bool:
        if ev.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.shutdown()
        return super().event(ev)
