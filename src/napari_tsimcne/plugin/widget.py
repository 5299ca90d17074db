"""Dock widgets: train a t-SimCNE map of a tile layer, and annotate the map."""

from __future__ import annotations

import sys

import numpy as np
from napari.layers import Image, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
    QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from napari_tsimcne.core import ModelFileError, NotFittedError, TileStackError, TSimCNE

from . import annotations as ann
from .crosslink import MapTileLink
from .map_layer import create_map_layer, map_layer_name, recolor, update_map_layer
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
        self.worker = create_worker(self._train_loop, events, _start_thread=False)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_returned)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self.worker.start()

    def _train_loop(self, events):
        """Runs in the worker thread; closing ``events`` stops training and maps the tiles."""
        try:
            for event in events:
                yield event
                if self._stop_requested:
                    break
        finally:
            events.close()
        return self.model.embedding_

    def stop_training(self) -> None:
        """Stop at the next epoch; the model keeps what it learned."""
        if self.worker is not None:
            self._stop_requested = True
            self.status.setText("Stopping after this epoch…")

    def _on_event(self, event) -> None:
        self.progress.setMaximum(max(1, event.total_epochs))
        self.progress.setValue(event.global_epoch)
        self.status.setText(
            f"Stage {event.stage} ({event.stage_name}), epoch {event.epoch}/{event.stage_epochs}, "
            f"loss {event.loss:.3f}, {event.views_per_second:,.0f} views/s"
        )
        if event.embedding is not None:
            self.show_map(self._training_layer, event.embedding)

    def _on_returned(self, embedding) -> None:
        if embedding is not None and self._training_layer is not None:
            self.show_map(self._training_layer, embedding)
        done = "stopped early" if self._stop_requested else "done"
        self.status.setText(f"Training {done} in {self.model.fit_seconds_:.1f} s. {self.status.text()}")

    def _on_error(self, exc) -> None:
        show_error(f"Training failed: {exc}")
        self.status.setText(f"Training failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.train_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    def show_map(self, tiles_layer, embedding: np.ndarray) -> Points:
        """Create or update the map layer of ``tiles_layer`` and link it to the stack."""
        name = map_layer_name(tiles_layer.name)
        if name in self.viewer.layers and len(self.viewer.layers[name].data) == len(embedding):
            layer = self.viewer.layers[name]
            update_map_layer(layer, embedding)
        else:
            color_by = "label" if "labels" in tiles_layer.metadata else "outlier"
            layer = create_map_layer(self.viewer, tiles_layer, embedding, color_by=color_by)
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


class AnnotateWidget(QWidget):
    """Name selected points, propose clusters, colour the map, export and import annotations."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._watched: dict[int, Points] = {}
        self.map_combo = QComboBox()
        self.color_combo = QComboBox()
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("class name, e.g. neutrophil")
        self.assign_button = QPushButton("Assign to selected")
        self.k_spin = QSpinBox()
        self.k_spin.setRange(2, 100)
        self.k_spin.setValue(8)
        self.cluster_button = QPushButton("Propose clusters")
        self.export_button = QPushButton("Export CSV…")
        self.import_button = QPushButton("Import CSV…")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Map", self.map_combo)
        form.addRow("Colour by", self.color_combo)
        box = QGroupBox("Annotate")
        box_form = QFormLayout(box)
        box_form.addRow(self.name_edit)
        box_form.addRow(self.assign_button)
        clusters = QHBoxLayout()
        clusters.addWidget(QLabel("k"))
        clusters.addWidget(self.k_spin)
        clusters.addWidget(self.cluster_button)
        box_form.addRow(clusters)
        files = QHBoxLayout()
        files.addWidget(self.export_button)
        files.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(box)
        layout.addLayout(files)
        layout.addWidget(self.status)
        layout.addStretch()

        self.map_combo.currentTextChanged.connect(self._refresh_columns)
        self.color_combo.textActivated.connect(self.color_by)
        self.assign_button.clicked.connect(lambda: self.assign(self.name_edit.text()))
        self.name_edit.returnPressed.connect(lambda: self.assign(self.name_edit.text()))
        self.cluster_button.clicked.connect(lambda: self.propose_clusters(self.k_spin.value()))
        self.export_button.clicked.connect(self._ask_export)
        self.import_button.clicked.connect(self._ask_import)
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
        _refill(self.map_combo, [l.name for l in maps])
        self._refresh_columns()

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

    def propose_clusters(self, k: int) -> None:
        """k-means on the map; writes the cluster column and colours by it."""
        layer = self._require_map()
        feats = layer.features.copy()
        feats["cluster"] = ann.propose_clusters(feats[["x", "y"]].to_numpy(), k)
        layer.features = feats
        self._refresh_columns()
        self.color_combo.setCurrentText("cluster")
        recolor(layer, "cluster")
        self.status.setText(f"{k} clusters proposed.")

    def _origins(self, layer):
        tiles_name = layer.metadata.get("tsimcne_tiles_layer")
        if tiles_name in self.viewer.layers:
            return self.viewer.layers[tiles_name].metadata.get("origins")
        return None

    def export_csv(self, path) -> None:
        """Write the annotations of the map to ``path`` (atomically)."""
        layer = self._require_map()
        ann.export_csv(layer.features, path, origins=self._origins(layer))
        self.status.setText(f"Exported {len(layer.features)} tiles to {path}.")

    def import_csv(self, path) -> None:
        """Read annotations and clusters from ``path``; refuses files of another tile stack."""
        layer = self._require_map()
        table = ann.import_csv(path, len(layer.features))
        feats = layer.features.copy()
        rows = feats["tile_index"].to_numpy()
        feats["annotation"] = table.loc[rows, "annotation"].to_numpy()
        feats["cluster"] = table.loc[rows, "cluster"].to_numpy().astype(int)
        layer.features = feats
        self._refresh_columns()
        recolor(layer, "annotation" if (feats["annotation"] != "").any() else None)
        self.status.setText(f"Imported annotations from {path}.")

    def _ask_export(self) -> None:
        _ask_path_then(self, "Export annotations", "annotations.csv", _CSV_FILTER, self.export_csv, (ValueError, OSError),
                       save=True)

    def _ask_import(self) -> None:
        _ask_path_then(self, "Import annotations", "", _CSV_FILTER, self.import_csv, (ValueError, OSError),
                       on_error=self.status.setText)
