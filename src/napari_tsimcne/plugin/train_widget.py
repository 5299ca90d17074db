"""The Train map dock widget: choose a tile layer and augmentations, train in the background, watch the map form."""

from __future__ import annotations

import time

import numpy as np
from napari.layers import Image, Points
from napari.qt.threading import FunctionWorker, GeneratorWorker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_tsimcne.core import ModelFileError, NotFittedError, TileStackError
from napari_tsimcne.core.augment import AugmentationSettings
from napari_tsimcne.core.recommend import Recommendation

from .channels import companion_layers, training_tiles
from .crosslink import GALLERY_NAME, link_map, link_opened_outputs
from .loss_plot import LossPlot
from .map_layer import add_map_layer, map_layer_name, matches, recolor, update_map_layer
from .preset_advice import PresetAdvisor
from .preview import PREVIEW_NAME, show_augmentation_preview
from .qt_helpers import (
    ANNOTATE_WIDGET,
    MODEL_FILTER,
    PLUGIN_NAME,
    TRAIN_WIDGET,
    Collapsible,
    DockWidget,
    apply_tooltips,
    ask_path_then,
    dock_name,
    dock_of,
    keep_height,
    scroll_layout,
    set_choices,
)
from .thumbnails import CHANNEL_LAYERS_KEY, channel_layers
from .tiling import add_tiles_cut_from
from .torch_runtime import preload_torch, release_device_memory
from .training_form import TrainingForm
from .training_session import (
    Planned,
    TrainingResult,
    TrainingSession,
    TrainingSettings,
    TrainingUpdate,
)


def _tile_layers(viewer) -> list[Image]:
    return [
        l for l in viewer.layers if isinstance(l, Image) and l.ndim >= 3 and l.name != GALLERY_NAME
    ]


def _image_layers_2d(viewer) -> list[Image]:
    return [
        l
        for l in viewer.layers
        if isinstance(l, Image) and l.ndim == 2 and l.name not in (PREVIEW_NAME, GALLERY_NAME)
    ]


TOOLTIPS = {
    "train_button": "Train a map of the chosen tiles in the background; the map appears and sharpens "
    "while it trains.",
    "stop_button": "Stop training within a second or so. The map and the network keep what they learned, "
    "and Resume continues from the last whole epoch.",
    "resume_button": "Continue a run of these tiles that was stopped (or cut short when napari "
    "closed) from its last epoch, with its settings.",
    "progress": "Epochs done of all three stages.",
    "save_button": "Save the trained network to a file, to map more tiles of the same kind later.",
    "load_button": "Load a network saved before.",
    "embed_button": "Map the chosen tiles with the loaded network, without training.",
    "preview_button": "Show a few of your tiles beside augmented copies: how different the map will "
    "consider them the same.",
}
"""The dock's own controls (the settings' are in ``training_form.TOOLTIPS``)."""


class TrainWidget(DockWidget):
    """Choose a tile layer and augmentations, train, and watch the map form.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose layers the widget trains on and adds the map to (napari passes it).
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        # the state of training lives in a Qt-free model; this widget shows it and forwards the user's clicks
        self.session = TrainingSession()
        self.session.planned.connect(self._on_planned)
        self.session.progressed.connect(self._on_progress)
        self.session.finished.connect(self._on_result)
        self.session.failed.connect(self._on_failed)
        self.worker = None  # napari's worker thread running the session's steps
        self._training_layer = None
        self.pbar: progress | None = None  # napari's progress bar of the running training
        self._sized_for: str | None = None
        self._advisor = PresetAdvisor()  # what "auto" picks for the chosen tiles
        self._device_missing = False  # the status says the chosen device is not here

        self.form = TrainingForm()  # the settings: magicgui forms
        self.train_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setEnabled(False)
        self.progress = QProgressBar()
        self.loss_plot = LossPlot()
        self.status = QLabel("Not trained.")
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save model…")
        self.load_button = QPushButton("Load model…")
        self.embed_button = QPushButton("Embed with loaded model")
        self.preview_button = QPushButton("Preview augmentations")

        apply_tooltips(self, TOOLTIPS)
        form = self.form
        cut_content = form.cut_form.native
        cut_content.layout().setContentsMargins(12, 0, 0, 0)
        self.cut_section = Collapsible(
            "Cut a large image into tiles",
            cut_content,
            tooltip="For a slide or a field of view: cut it into a stack of tiles first.",
        )
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.resume_button)
        advanced_content = form.advanced_form.native
        advanced_content.layout().setContentsMargins(12, 0, 0, 0)
        self.advanced_section = Collapsible(
            "Advanced settings",
            advanced_content,
            tooltip="Batch size, device, network and seed. The defaults suit most data.",
        )
        files_content = QWidget()
        files = QVBoxLayout(files_content)
        files.setContentsMargins(12, 0, 0, 0)
        file_row = QHBoxLayout()
        file_row.addWidget(self.save_button)
        file_row.addWidget(self.load_button)
        files.addLayout(file_row)
        files.addWidget(self.embed_button)
        self.files_section = Collapsible(
            "Saved models",
            files_content,
            tooltip="Save the trained network, or map new tiles with a saved one.",
        )
        layout = scroll_layout(self)
        # where the tiles come from (a stack, or a large image cut here), what the map should
        # ignore, how long to train; Train / Stop; then the folded-away sections
        for widget in (
            form.source_form.native,
            form.channels_label,
            form.channels_list,
            self.cut_section,
            form.preset_form.native,
            form.preset_help,
            form.preset_advice,
            form.length_form.native,
        ):
            layout.addWidget(widget)
        layout.addWidget(self.preview_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.advanced_section)
        layout.addWidget(self.files_section)
        layout.addStretch()

        form.preset_combo.changed.connect(self._show_preset)
        form.device_combo.changed.connect(self.apply_device_defaults)
        self.apply_device_defaults(form.device_combo.value)
        form.layer_combo.changed.connect(self._on_layer_changed)
        form.channels_list.itemChanged.connect(lambda _item: self._show_preset())
        self.train_button.clicked.connect(self.start_training)
        self.stop_button.clicked.connect(self.stop_training)
        self.resume_button.clicked.connect(self.resume_training)
        self.save_button.clicked.connect(self._ask_save)
        self.load_button.clicked.connect(self._ask_load)
        self.embed_button.clicked.connect(self.embed_with_model)
        self.preview_button.clicked.connect(lambda: self.preview_augmentations())
        form.cut_button.changed.connect(lambda *_: self.cut_into_tiles())
        for ev in (
            self.viewer.layers.events.inserted,
            self.viewer.layers.events.removed,
            self.viewer.layers.events.reordered,
        ):
            ev.connect(self.refresh_layers)
        self.refresh_layers()

    # -- layer choice ---------------------------------------------------------
    def refresh_layers(self, event=None) -> None:
        """Update the lists of tile layers and images to cut after the viewer's layers changed.

        Maps opened from an output folder are linked to their tiles first; with no tile layer but
        an image to cut, the "cut into tiles" section is opened.

        Parameters
        ----------
        event : napari event, optional
            The layer event that triggered the refresh (not used).
        """
        link_opened_outputs(
            self.viewer
        )  # maps opened from an output folder: link them to their tiles
        form = self.form
        for layer in self.viewer.layers:  # renamed layers are listed by their new names
            layer.events.name.connect(self._on_layer_renamed)  # (a second connect is ignored)
        set_choices(form.layer_combo, [l.name for l in _tile_layers(self.viewer)])
        form.source_combo.choices = [l.name for l in _image_layers_2d(self.viewer)]
        if not form.layer_combo.choices and form.source_combo.choices:
            self.cut_section.set_expanded(True)  # only a large image so far: cutting it comes first
        self._on_layer_changed(form.layer_combo.value)

    def _on_layer_renamed(self, event) -> None:
        combo, new = self.form.layer_combo, event.source.name
        chosen = combo.value
        names = [l.name for l in _tile_layers(self.viewer)]
        if chosen is not None and chosen not in self.viewer.layers and new in names:
            # the chosen stack was renamed: it stays chosen, with the batch size chosen for it
            with combo.changed.blocked():
                combo.choices = names
                combo.value = new
            if chosen == self._sized_for:
                self._sized_for = new
        self.refresh_layers()

    def chosen_layers(self) -> list[Image]:
        """The layers whose channels make the tiles: the tile layer and the ticked channel layers.

        Returns
        -------
        list of napari.layers.Image
            The layers in the viewer's order; empty without a tile layer.
        """
        layer = self.tiles_layer()
        if layer is None:
            return []
        ticked = self.form.ticked_channels()
        # by name: napari hands plugins proxies of its layers, a new one on every access
        return [l for l in self.viewer.layers if l.name == layer.name or l.name in ticked]

    def training_tiles(self):
        """The chosen tiles as one stack, channels last: what the network trains on.

        Returns
        -------
        array-like or None
            (N, H, W) or (N, H, W, C), or None without a tile layer.

        Raises
        ------
        ValueError
            The ticked channel layers are not single-channel stacks of the tiles' shape.
        """
        layers = self.chosen_layers()
        return training_tiles(layers) if layers else None

    def _refresh_channels(self) -> None:
        """Offer the other single-channel layers of the same shape as channels, ticking those napari blends in."""
        layer = self.tiles_layer()
        candidates = (
            []
            if layer is None
            else companion_layers(self.viewer.layers, layer, exclude=(PREVIEW_NAME, GALLERY_NAME))
        )
        shown = {l.name for l in channel_layers(self.viewer.layers, layer)} if layer else set()
        self.form.offer_channels([l.name for l in candidates], shown)

    def recommendation(self) -> Recommendation | None:
        """The augmentation preset that suits the chosen tiles, and why ("auto" picks it).

        Judged on up to 500 tiles; the answer is kept until the chosen layers change.

        Returns
        -------
        Recommendation or None
            The preset and the reason, or None without a usable tile layer.
        """
        return self._advisor.advice(self.chosen_layers())

    def chosen_preset(self) -> str:
        """The preset training will use: the choice, with "auto" resolved for the chosen tiles.

        Returns
        -------
        str
            A preset name; "microscopy" when "auto" cannot judge the tiles.
        """
        return self._advisor.resolve(self.form.preset_combo.value, self.chosen_layers())

    def _show_preset(self, *_) -> None:
        self.form.show_preset_help(self.recommendation())

    def _on_layer_changed(self, name: str | None) -> None:
        self._refresh_channels()
        self._show_preset()
        self._update_buttons()
        # suggest a batch size for a newly chosen stack; adding or removing other layers keeps the user's choice
        if name == self._sized_for or name not in self.viewer.layers:
            return
        self._sized_for = name
        n_tiles = self.viewer.layers[name].data.shape[0]
        try:
            suited = TrainingSettings.for_device(self.form.device_combo.value, n_tiles)
        except ValueError:  # a device that is not here: size the batch as for the CPU
            suited = TrainingSettings.for_device("cpu", n_tiles)
        self.form.batch_spin.value = suited.batch_size

    def tiles_layer(self) -> Image | None:
        """The tile layer chosen in the widget.

        Returns
        -------
        napari.layers.Image or None
            The layer, or None when none is chosen or it was removed.
        """
        name = self.form.layer_combo.value
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # -- cutting and preview ----------------------------------------------------
    def cut_into_tiles(
        self,
        layer_name: str | None = None,
        tile_size: int | None = None,
        stride: int | None = None,
        min_foreground: float | None = None,
    ) -> Image | None:
        """Cut a 2D image layer into a new tile layer "<name> tiles" beside it.

        The new layer's metadata hold ``origins`` (where each tile was cut, row and column) and
        ``source_layer`` (the image's name); it becomes the chosen tile layer. Problems are shown
        to the user as napari errors, not raised.

        Parameters
        ----------
        layer_name : str, optional
            The image layer to cut (H x W or RGB); default: the one chosen in the widget.
        tile_size : int, optional
            Side of the square tiles in pixels; default: the widget's value.
        stride : int, optional
            Step between tiles in pixels (smaller than ``tile_size``: overlapping tiles);
            default: the widget's value.
        min_foreground : float, optional
            Fraction of a tile that must be foreground to keep it; default: the widget's value.

        Returns
        -------
        napari.layers.Image or None
            The new tile layer, or None when there was no image or it could not be cut.
        """
        form = self.form
        name = form.source_combo.value if layer_name is None else layer_name
        tile_size = form.tile_size_spin.value if tile_size is None else tile_size
        stride = form.stride_spin.value if stride is None else stride
        min_foreground = form.min_fg_spin.value if min_foreground is None else min_foreground
        try:
            layer = add_tiles_cut_from(self.viewer, name, tile_size, stride, min_foreground)
        except (TileStackError, ValueError) as exc:
            show_error(str(exc))
            return None
        form.layer_combo.value = layer.name
        show_info(f"Cut {name} into {len(layer.data)} tiles of {tile_size} x {tile_size}.")
        return layer

    def preview_augmentations(self, n_tiles: int = 8, n_views: int = 6) -> Image | None:
        """Show tiles beside augmented views of them, with the chosen preset and seed.

        The views are what training treats as the same cell; problems are shown to the user as
        napari errors, not raised.

        Parameters
        ----------
        n_tiles : int
            Most tiles shown (one per row).
        n_views : int
            Augmented views per tile.

        Returns
        -------
        napari.layers.Image or None
            The preview layer (it replaces an earlier one), or None when there are no tiles or the
            preview failed.
        """
        layers = self.chosen_layers()
        if not layers:
            show_error("Choose a tile layer first.")
            return None
        preset = self.chosen_preset()
        try:
            preview = show_augmentation_preview(
                self.viewer, layers, preset, self.form.seed_spin.value, n_tiles, n_views
            )
        except (ValueError, RuntimeError) as exc:
            show_error(f"Preview failed: {exc}")
            return None
        columns = "each row: a tile, then views of it the network sees as the same cell"
        if AugmentationSettings.preset(preset).neighbor_views > 0:
            columns += "; last: a view of its nearest neighbour in intensity, also pulled close"
        show_info(f"Augmentation preview ({preset}): {columns}.")
        return preview

    # -- training -------------------------------------------------------------
    @property
    def model(self):
        """The model being trained, or the last one trained or loaded (the session's)."""
        return self.session.model

    @model.setter
    def model(self, value) -> None:
        self.session.model = value

    def apply_device_defaults(self, device: str) -> None:
        """Set network, batch and training length to what suits ``device`` (the core's choices for it).

        With a CUDA GPU: the paper's network and a quick run of 40/4/16 epochs; without one: the CPU's
        network (a stride-2 stem, width 16), batch 256 and a time budget of about 10 minutes.
        A device that is not available leaves the controls unchanged.

        Parameters
        ----------
        device : str
            "auto", "cpu", "cuda" or "mps".
        """
        layer = self.tiles_layer()
        try:
            d = TrainingSettings.for_device(device, layer.data.shape[0] if layer else None)
        except ValueError:  # e.g. 'cuda' chosen on a machine without one: say so now, not at Train
            self.status.setText(
                f"There is no {device.upper()} device here: training would not start. "
                "'auto' takes a graphics card when there is one, else the CPU."
            )
            self._device_missing = True
            return
        if self._device_missing:  # the warning above, now out of date
            self._device_missing = False
            self.status.setText("Not trained." if self.model is None else "")
        self.form.show_defaults(d)

    def start_training(self) -> None:
        """Check the settings, then train in a background thread."""
        layer = self.tiles_layer()
        if layer is None:
            show_error("Add a tile stack (an image layer N x H x W or N x H x W x C) first.")
            return
        if self.worker is not None:
            return
        preload_torch()
        try:
            self.session.start(self.training_tiles(), self.form.settings())
        except (TileStackError, ValueError) as exc:
            show_error(str(exc))
            self.status.setText(f"Not started: {exc}")
            return
        self._remember_channels(layer)
        by_epochs = not self.form.by_time
        self._launch(
            layer,
            # with epochs, napari's progress bar (activity dock) counts them from the start; with a time
            # budget they are known once the first steps are timed
            sum(s.value for s in self.form.epoch_spins) if by_epochs else None,
            "Preparing the tiles…"
            if by_epochs
            else "Preparing the tiles and timing the first steps to plan the epochs…",
        )

    def resume_training(self) -> None:
        """Continue the stopped (or interrupted) run of the chosen tiles from its last epoch."""
        layer = self.tiles_layer()
        if layer is None or self.worker is not None:
            return
        preload_torch()
        try:
            self.session.start_resume(self.training_tiles(), device=self.form.device_combo.value)
        except (FileNotFoundError, ModelFileError, TileStackError, ValueError) as exc:
            show_error(f"Cannot resume: {exc}")
            self.status.setText(f"Cannot resume: {exc}")
            self._update_buttons()
            return
        self._remember_channels(layer)
        self._launch(layer, None, "Continuing the stopped run…")

    def _remember_channels(self, layer) -> None:
        """The gallery shows the tiles with the channels they were trained with."""
        if self.form.channels_list.count():
            layer.metadata[CHANNEL_LAYERS_KEY] = [l.name for l in self.chosen_layers()]

    def _launch(self, layer, total_epochs: int | None, message: str) -> None:
        """Run the session's steps in napari's worker thread and show their progress here."""
        self._training_layer = layer
        loop = self.session.steps()

        def run():
            return (yield from loop)

        self.worker = GeneratorWorker(run)
        # napari quits all workers when its window closes; the worker then leaves its loop without closing
        # ours. Close it right there, in the worker thread, so that training ends cleanly (and maps the tiles).
        self.worker.aborted.connect(loop.close, Qt.ConnectionType.DirectConnection)
        self.worker.yielded.connect(self.session.handle)
        self.worker.returned.connect(self.session.complete)
        self.worker.errored.connect(self.session.fail)
        self.worker.finished.connect(self._on_finished)
        self.pbar = (
            None if total_epochs is None else progress(total=total_epochs, desc="t-SimCNE epochs")
        )
        self.train_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setValue(0)
        self.loss_plot.set_history(self.session.history, 0)
        self.status.setText(message)
        self.worker.start()

    def stop_training(self) -> None:
        """Stop within one training step; the model keeps what it learned, and Resume continues."""
        if self.worker is not None:
            self.session.stop()
            self.status.setText("Stopping…")

    def _on_planned(self, plan: Planned) -> None:
        """Training is about to start: the epochs are known, show them and start the progress bars."""
        total = int(sum(plan.epochs))
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(plan.resumed_from)
        if self.pbar is None:
            self.pbar = progress(total=total, desc="t-SimCNE epochs")
        self._advance_pbar(plan.resumed_from, total)
        self.loss_plot.set_history(self.session.history, total)
        what = "Continuing" if plan.resumed_from else "Training"
        epochs = f"epochs {'/'.join(map(str, plan.epochs))}"
        if plan.time_budget is not None:
            epochs += f", chosen to finish in about {plan.time_budget / 60:.0f} min"
        self.status.setText(
            f"{what} ({epochs})… the map appears after a few epochs and sharpens until the end."
        )

    def _on_progress(self, update: TrainingUpdate) -> None:
        event = update.event
        # QProgressBar.setValue repaints at once (tens of ms beside an OpenGL canvas on a software renderer);
        # with updates paused it only schedules the repaint, merged with the map's in the next paint
        self.progress.setUpdatesEnabled(False)
        self.progress.setMaximum(max(1, event.total_epochs))
        self.progress.setValue(event.global_epoch)
        self.progress.setUpdatesEnabled(True)
        self.progress.update()
        self.loss_plot.set_history(self.session.history, event.total_epochs)
        left = (
            "" if update.seconds_left is None else f", about {_duration(update.seconds_left)} left"
        )
        early = " Early map: it sharpens until the end." if update.provisional else ""
        speed = event.views_per_second  # 0 where no views are trained on (a t-SNE, fitting the map)
        speed = f"; {speed:,.0f} views/s" if speed > 0 else ""
        self.status.setText(
            f"Stage {event.stage} of 3 ({event.stage_name}), epoch {event.epoch}/{event.stage_epochs}"
            f"{left}{speed}.{early}"
        )
        if event.message:  # e.g. GPU out of memory: the batch was halved and training goes on
            show_info(f"Training: {event.message}")
        if event.embedding is not None:
            self.show_map(self._training_layer, event.embedding, outlier=update.outliers)
        self._advance_pbar(event.global_epoch, event.total_epochs)

    def _advance_pbar(self, epochs_done: int, total: int | None = None) -> None:
        if self.pbar is not None and total is not None and total != self.pbar.total:
            self.pbar.total = total  # a time budget re-planned after its first epoch
        if self.pbar is not None and epochs_done > self.pbar.n:
            self.pbar.update(epochs_done - self.pbar.n)

    def _on_result(self, result: TrainingResult) -> None:
        self._advance_pbar(self.session.epochs_done)
        if result.embedding is not None and self._training_layer is not None:
            self.show_map(self._training_layer, result.embedding, outlier=result.outliers)
        if result.stopped:
            self.status.setText(
                f"Training stopped after epoch {self.session.epochs_done} ({result.seconds:.1f} s): the map "
                "shows what was learned so far; Resume continues the run."
            )
        else:
            part = f" (continued from epoch {result.resumed_from})" if result.resumed_from else ""
            self.status.setText(f"Training done in {result.seconds:.1f} s{part}. The map is final.")

    def _on_failed(self, exc, started: bool) -> None:
        what = "Training failed" if started else "Not started"
        show_error(f"{what}: {exc}")
        if not self.session.closing:
            self.status.setText(f"{what}: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None
        release_device_memory()
        if not self.session.closing:
            self.stop_button.setEnabled(False)
            self._update_buttons()

    def _update_buttons(self) -> None:
        """Train and Preview need a tile layer; Resume is offered for tiles whose run was stopped or cut short."""
        layer = self.tiles_layer()
        idle = self.worker is None
        self.train_button.setEnabled(idle and layer is not None)
        self.preview_button.setEnabled(layer is not None)
        can = layer is not None and idle and self.session.can_resume(self.training_tiles())
        self.resume_button.setEnabled(bool(can))

    # -- closing ----------------------------------------------------------------
    def shutdown(self, timeout: float = 0.0) -> bool:
        """Stop training within one training step (the model keeps what it learned).

        Called without waiting when the widget is closed or removed from its dock (napari stays
        responsive; the thread ends on its own), and with ``timeout`` = 10 s when napari closes.
        The widget no longer touches layers afterwards.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the training thread to end; 0 does not wait.

        Returns
        -------
        bool
            Whether the training thread has finished.
        """
        done = self.session.close(timeout)
        if done and self.worker is not None:
            release_device_memory()
        return done

    def _on_window_closing(self) -> None:
        # napari closing its window: stop training, waiting up to 10 s for the thread to end
        if self.worker is not None:
            self.shutdown(timeout=10.0)

    def _on_undocked(self) -> None:
        if self.worker is not None:
            self.shutdown()

    def show_map(
        self, tiles_layer, embedding: np.ndarray, outlier: np.ndarray | None = None
    ) -> Points:
        """Create or update the map layer of ``tiles_layer`` and link it to the stack.

        A map of the same tiles is updated in place; a new map is coloured by the tiles' labels
        when they have some, else by how atypical each tile is.

        Parameters
        ----------
        tiles_layer : napari.layers.Image
            The tile stack the map belongs to.
        embedding : numpy.ndarray
            The map coordinates, one row per tile (N, 2 or 3).
        outlier : numpy.ndarray, optional
            An outlier score per tile (high: unlike its neighbours); computed when None.

        Returns
        -------
        napari.layers.Points
            The map layer.
        """
        name = map_layer_name(tiles_layer.name)
        if name in self.viewer.layers and matches(self.viewer.layers[name], embedding):
            layer = self.viewer.layers[name]
            update_map_layer(layer, embedding, outlier=outlier)
        else:
            color_by = "label" if "labels" in tiles_layer.metadata else "outlier"
            layer = add_map_layer(
                self.viewer, tiles_layer, embedding, color_by=color_by, outlier=outlier
            )
            recolor(layer, color_by)
            self.show_legend()
        link_map(self.viewer, layer, tiles_layer)
        return layer

    def progress_height(self) -> int:
        """The height this dock needs to show everything down to the loss curve.

        Returns
        -------
        int
            Pixels, the dock's title bar included (0 when the widget is not docked).
        """
        dock = self.parent()
        overhead = dock.height() - self.height() if dock is not None else 0
        return overhead + self.loss_plot.geometry().bottom() + 12

    def show_legend(self) -> None:
        """Open the Annotate map dock below this one (when it is not open), so a new coloured map has its legend.

        This dock keeps the height that shows the progress and the loss curve; the Annotate map dock
        takes the rest of the column.
        """
        window = getattr(self.viewer, "window", None)
        if window is None or dock_name(ANNOTATE_WIDGET) in getattr(window, "dock_widgets", {}):
            return  # open already (docked, tabbed or floating)
        window.add_plugin_dock_widget(PLUGIN_NAME, ANNOTATE_WIDGET)
        train_dock, annotate_dock = dock_of(window, TRAIN_WIDGET), dock_of(window, ANNOTATE_WIDGET)
        if train_dock is not None and annotate_dock is not None and train_dock is self.parent():
            keep_height(train_dock, annotate_dock, self.progress_height)

    # -- files ----------------------------------------------------------------
    def save_model(self, path) -> None:
        """Write the trained model to ``path``.

        Parameters
        ----------
        path : str or os.PathLike
            The model file to write.

        Raises
        ------
        NotFittedError
            No model has been trained or loaded yet.
        """
        show_info(f"Model saved to {self.session.save(path)}")

    def load_model(self, path):
        """Read a model written by Save model; it is trained on no further but can map tiles.

        Parameters
        ----------
        path : str or os.PathLike
            The model file.

        Returns
        -------
        TSimCNE
            The loaded model (also the widget's ``model``), on the widget's device.
        """
        model = self.session.load(path, device=self.form.device_combo.value)
        self.status.setText(
            f"Loaded {path}: tiles of {model.tile_shape_}, {model.n_channels_} channel(s)."
        )
        return model

    def embed_with_model(self) -> FunctionWorker | None:
        """Map the chosen tile layer with the loaded (or trained) model, without training.

        The mapping runs in a background thread, so napari stays responsive; the map appears
        (or is updated) when it is done.

        Returns
        -------
        FunctionWorker or None
            The worker (its ``map_layer`` is set to the map when it is done), or None when there is
            no model or no tile layer to map.
        """
        layer = self.tiles_layer()
        if self.model is None or layer is None:
            show_error("Load or train a model and choose a tile layer first.")
            return None
        data = self.training_tiles()
        job = self.session.embed_job(data)
        started = time.perf_counter()
        self.embed_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy: the number of tiles mapped is not reported here
        self.status.setText(f"Mapping {len(data):,} tiles with the model...")

        def finish() -> None:
            self.progress.setRange(0, 100)
            self.embed_button.setEnabled(True)

        def done(mapped) -> None:
            embedding, outliers = mapped
            finish()
            self.status.setText(
                f"Mapped {len(embedding):,} tiles in {time.perf_counter() - started:.1f} s."
            )
            worker.map_layer = self.show_map(layer, embedding, outlier=outliers)

        def failed(exc: Exception) -> None:
            finish()
            self.status.setText("Mapping failed.")
            show_error(str(exc))

        worker = FunctionWorker(job)
        worker.map_layer = None
        worker.returned.connect(done)
        worker.errored.connect(failed)
        worker.start()
        return worker

    def _ask_save(self) -> None:
        ask_path_then(
            self,
            "Save model",
            "model.tsimcne",
            MODEL_FILTER,
            self.save_model,
            (NotFittedError, OSError),
            save=True,
        )

    def _ask_load(self) -> None:
        ask_path_then(
            self, "Load model", "", MODEL_FILTER, self.load_model, (ModelFileError, OSError)
        )


def _duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 20 min': how long, in words a person reads at a glance."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
