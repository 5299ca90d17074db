"""The Annotate map dock widget: select, name and cluster points of the map; export, import and autosave."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, SpinBox
from napari.layers import Points
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from . import export as export_mod
from .annotation_session import MapAnnotations, ViewerAnnotations
from .crosslink import link_opened_outputs
from .lasso import LassoTool
from .legend_widget import LegendView
from .map_layer import AXES, is_3d, legend, recolor
from .qt_helpers import (
    CSV_FILTER,
    DockWidget,
    align_labels,
    apply_tooltips,
    ask_path_then,
    keep_narrow,
    label_of,
    refill,
    scroll_layout,
    set_choices,
)
from .selection import group_choices

AUTOSAVE_DELAY_MS = 1000
"""Annotations are written this long after the first change (later changes in that second join the write)."""

CLUSTER_METHODS = ("k-means", "HDBSCAN")
LEFT_OUT = " Its clusters were proposed on an earlier map of these tiles and were left out."


TOOLTIPS = {
    "map_combo": "The map to work on (one per tile stack).",
    "color_combo": "What the colours of the points show: your names (annotation), proposed clusters, "
    "known labels, or how unusual each tile is (outlier).",
    "name_edit": "A name for the selected tiles, e.g. a cell type. Press Enter to assign it.",
    "assign_button": "Give the selected points (tiles) this name. Select with a box in select mode, "
    "or with the lasso.",
    "method_combo": "How to propose groups: k-means makes exactly k groups; HDBSCAN finds the islands "
    "itself and leaves stragglers in none.",
    "k_spin": "k-means: how many groups to propose.",
    "cluster_button": "Propose groups of nearby points. They are only suggestions: select a cluster "
    "and name it.",
    "export_button": "Save every tile's number, map position, name, cluster, label (if known) and "
    "outlier score to a CSV file (opens in a spreadsheet). An existing file is never replaced "
    "without asking.",
    "selection_layer_button": "Copy the selected tiles into a new image stack, with all their "
    "channels and the same colours and contrast.",
    "group_layer_button": "Copy the tiles of the class or cluster chosen above into a new "
    "image stack.",
    "labels_button": "For tiles cut from a large image: colour each tile's place on that image "
    "by its class (or cluster, whichever the map is coloured by), as a Labels layer.",
    "import_button": "Read names and clusters from a CSV file exported for these tiles.",
    "lasso_button": "Drag on the map to draw a free-hand outline; the points inside are selected. "
    "Shift or Ctrl adds to the selection.",
    "group_combo": "A named class or a proposed cluster of the map, with its number of tiles.",
    "select_group_button": "Select all tiles of the class or cluster on the left.",
    "undo_button": "Give the tiles back the names they had before the last 'Assign'.",
    "restore_button": "Replace the map's annotations by the last autosave of this tile stack.",
    "min_size_spin": (
        "HDBSCAN: the smallest group of points that counts as a cluster. "
        "Points in no cluster get -1 (grey)."
    ),
}
"""What each control does, in a biologist's words (attribute name -> tooltip)."""


class AnnotateWidget(DockWidget):
    """Name selected points, propose clusters, colour the map, export and import annotations.

    Annotations are autosaved (see ``napari_tsimcne.plugin.autosave``) about a second after every change
    and when the widget or napari closes; a fresh map of a stack with an autosave gets its annotations back.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose maps the widget annotates (napari passes it).
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        # the annotations of every map (Qt-free models, made and dropped as maps come and go)
        self.annotations = ViewerAnnotations(napari_viewer)
        self.annotations.added.connect(self._on_map_added)
        self.annotations.removed.connect(self._on_map_removed)
        self._lasso: LassoTool | None = None
        self._cluster_worker = None
        # which map, coloured by what: a magicgui form
        self.map_combo = ComboBox(label="Map", choices=[])
        self.color_combo = ComboBox(label="Colour by", choices=[])
        self.map_form = Container(widgets=[self.map_combo, self.color_combo])
        self.map_form.margins = (0, 0, 0, 0)
        align_labels(self.map_form)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("class name, e.g. neutrophil")
        self.assign_button = QPushButton("Assign to selected")
        self.lasso_button = QPushButton("Lasso select")
        self.lasso_button.setCheckable(True)
        # how clusters are proposed: a magicgui form in one row
        self.method_combo = ComboBox(label="", choices=list(CLUSTER_METHODS))
        self.k_spin = SpinBox(label="k", min=2, max=100, value=8)
        self.min_size_spin = SpinBox(label="min size", min=2, max=100_000, value=20)
        self.cluster_form = Container(
            widgets=[self.method_combo, self.k_spin, self.min_size_spin], layout="horizontal"
        )
        self.cluster_form.native.layout().setContentsMargins(0, 0, 0, 0)
        label_of(self.method_combo).hide()  # no label: the method starts where the buttons do
        self.cluster_button = QPushButton("Propose clusters")
        self.group_combo = QComboBox()
        for combo in (self.group_combo, self.map_combo.native, self.color_combo.native):
            keep_narrow(combo)  # long class or map names must not widen the dock
        self.group_combo.setPlaceholderText("named class or cluster")
        self.select_group_button = QPushButton("Select")
        self.undo_button = QPushButton("Undo naming")
        self.undo_button.setEnabled(False)
        self.export_button = QPushButton("Export CSV…")
        self.import_button = QPushButton("Import CSV…")
        self.selection_layer_button = QPushButton("Selection as layer")
        self.group_layer_button = QPushButton("Class/cluster as layer")
        self.labels_button = QPushButton("Paint classes on the image")
        self.restore_button = QPushButton("Restore autosave")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.autosave_label = QLabel("")
        self.autosave_label.setWordWrap(True)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setSingleShot(True)
        self._autosave_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)
        # looks again whether a background write is done (a timer of this widget: it dies with it)
        self._autosave_check = lambda: None
        self._autosave_check_timer = QTimer(self)
        self._autosave_check_timer.setSingleShot(True)
        self._autosave_check_timer.setInterval(100)
        self._autosave_check_timer.timeout.connect(lambda: self._autosave_check())

        box = QGroupBox("Annotate")
        box_form = QFormLayout(box)
        box_form.addRow(self.lasso_button)
        box_form.addRow(self.name_edit)
        assign_row = QHBoxLayout()
        assign_row.addWidget(self.assign_button)
        assign_row.addWidget(self.undo_button)
        box_form.addRow(assign_row)
        select_row = QHBoxLayout()
        select_row.addWidget(self.group_combo, 1)
        select_row.addWidget(self.select_group_button)
        box_form.addRow(select_row)
        box_form.addRow(self.cluster_form.native)
        box_form.addRow(self.cluster_button)
        files_box = QGroupBox("Export")
        files_form = QVBoxLayout(files_box)
        as_layers = QHBoxLayout()
        as_layers.addWidget(self.selection_layer_button)
        as_layers.addWidget(self.group_layer_button)
        files_form.addLayout(as_layers)
        files_form.addWidget(self.labels_button)
        files = QHBoxLayout()
        files.addWidget(self.export_button)
        files.addWidget(self.import_button)
        files_form.addLayout(files)
        self.legend = LegendView()
        legend_box = QGroupBox("Legend")
        QVBoxLayout(legend_box).addWidget(self.legend)
        layout = scroll_layout(self)
        layout.addWidget(self.map_form.native)
        layout.addWidget(legend_box)
        layout.addWidget(box)
        layout.addWidget(files_box)
        layout.addWidget(self.restore_button)
        layout.addWidget(self.status)
        layout.addWidget(self.autosave_label)
        layout.addStretch()
        self._on_method_changed(self.method_combo.value)
        apply_tooltips(self, TOOLTIPS)

        self.map_combo.changed.connect(self._refresh_columns)
        self.color_combo.changed.connect(self.color_by)
        self.assign_button.clicked.connect(lambda: self.assign(self.name_edit.text()))
        self.name_edit.returnPressed.connect(lambda: self.assign(self.name_edit.text()))
        self.lasso_button.toggled.connect(self.set_lasso)
        self.undo_button.clicked.connect(lambda: self.undo_annotation())
        self.select_group_button.clicked.connect(self._on_select_group_clicked)
        self.method_combo.changed.connect(self._on_method_changed)
        self.cluster_button.clicked.connect(self._on_cluster_clicked)
        self.export_button.clicked.connect(self._ask_export)
        self.selection_layer_button.clicked.connect(self._on_selection_layer_clicked)
        self.group_layer_button.clicked.connect(self._on_group_layer_clicked)
        self.labels_button.clicked.connect(self._on_labels_clicked)
        self.import_button.clicked.connect(self._ask_import)
        self.restore_button.clicked.connect(self._on_restore_clicked)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self.refresh_layers)
        self.refresh_layers()

    def refresh_layers(self, event=None) -> None:
        """Update the list of maps after the viewer's layers changed.

        New maps get an annotations model (and their stack's autosave, if any); removed maps have
        their last changes written to their autosave file and are forgotten.

        Parameters
        ----------
        event : napari event, optional
            The layer event that triggered the refresh (not used).
        """
        link_opened_outputs(
            self.viewer
        )  # maps opened from an output folder: link them to their tiles
        maps = self.annotations.refresh()
        for layer in maps:  # a renamed map is listed by its new name
            layer.events.name.connect(self._on_map_renamed)  # (a second connect is ignored)
        set_choices(self.map_combo, [l.name for l in maps])
        self._refresh_columns()

    def _on_map_renamed(self, event) -> None:
        chosen, new = self.map_combo.value, event.source.name
        if chosen is not None and chosen not in self.viewer.layers:  # the chosen map: keep it
            with self.map_combo.changed.blocked():
                self.map_combo.choices = [*self.map_combo.choices, new]
                self.map_combo.value = new
        self.refresh_layers()

    def _on_map_added(self, session: MapAnnotations) -> None:
        layer = session.layer
        session.changed.connect(self._on_session_changed)
        # keep "Colour by" in step when the map's colouring or columns change elsewhere
        layer.events.face_color.connect(self._refresh_columns)
        layer.events.features.connect(self._refresh_columns)
        layer.events.features.connect(self._on_features_changed)
        # after the code that made the map has finished with it (e.g. coloured it)
        QTimer.singleShot(0, lambda: self._restore_fresh_map(layer))

    def _on_map_removed(self, session: MapAnnotations) -> None:
        layer = session.layer
        layer.events.face_color.disconnect(self._refresh_columns)
        layer.events.features.disconnect(self._refresh_columns)
        layer.events.features.disconnect(self._on_features_changed)
        session.changed.disconnect(self._on_session_changed)

    def session(self, layer=None) -> MapAnnotations | None:
        """The annotations model of a map.

        Parameters
        ----------
        layer : napari.layers.Points, optional
            The map; default: the map chosen in the widget.

        Returns
        -------
        MapAnnotations or None
            Its annotations, or None when there is no such map.
        """
        layer = layer if layer is not None else self.map_layer()
        return None if layer is None else self.annotations.get(layer)

    def _require_session(self, layer=None) -> MapAnnotations:
        layer = layer if layer is not None else self._require_map()
        session = self.annotations.get(layer)
        if session is None:  # a map added since the last refresh
            self.refresh_layers()
            session = self.annotations.get(layer)
        if session is None:
            raise ValueError(f"{layer.name!r} is not a map of tiles.")
        return session

    def _on_session_changed(self, column: str) -> None:
        self._refresh_columns()
        with self.color_combo.changed.blocked():
            self.color_combo.value = column

    def _refresh_columns(self, *_) -> None:
        layer = self.map_layer()
        self._refresh_groups(layer)
        self.legend.set_legend({"kind": "none"} if layer is None else legend(layer))
        columns = (
            []
            if layer is None
            else [c for c in layer.features.columns if c not in ("tile_index", *AXES)]
        )
        set_choices(self.color_combo, columns)
        if layer is not None and layer.metadata.get("tsimcne_color_by") in columns:
            with self.color_combo.changed.blocked():
                self.color_combo.value = layer.metadata["tsimcne_color_by"]

    def _refresh_groups(self, layer) -> None:
        choices = [] if layer is None else group_choices(layer.features)
        self._group_choices = {text: (column, value) for text, column, value, _ in choices}
        refill(self.group_combo, list(self._group_choices))
        session = None if layer is None else self.annotations.get(layer)
        self.undo_button.setEnabled(session is not None and session.can_undo)

    def _on_select_group_clicked(self) -> None:
        choice = self._group_choices.get(self.group_combo.currentText())
        if choice is not None:
            self.select_group(*choice)

    def select_group(self, column: str, value) -> set[int]:
        """Select the map's points whose ``column`` is ``value``; the map becomes the active layer.

        Parameters
        ----------
        column : str
            "annotation" or "cluster".
        value : str or int
            A class name or a cluster number.

        Returns
        -------
        set of int
            The selected points (rows of the map).

        Raises
        ------
        ValueError
            There is no map yet.
        """
        layer = self._require_map()
        rows = self._require_session().rows_of(column, value)
        self.viewer.layers.selection.active = layer
        layer.selected_data = rows
        self.status.setText(f"{len(rows)} tiles selected.")
        return rows

    def select_cluster(self, number: int) -> set[int]:
        """Select the points of proposed cluster ``number`` (see ``select_group``).

        Parameters
        ----------
        number : int
            The cluster number (-1: points in no cluster).

        Returns
        -------
        set of int
            The selected points.
        """
        return self.select_group("cluster", int(number))

    def select_annotation(self, name: str) -> set[int]:
        """Select the points named ``name`` (see ``select_group``).

        Parameters
        ----------
        name : str
            The class name.

        Returns
        -------
        set of int
            The selected points.
        """
        return self.select_group("annotation", str(name))

    def undo_annotation(self) -> bool:
        """Undo the last naming of the current map.

        Returns
        -------
        bool
            Whether there was a naming to undo.
        """
        session = self.session()
        if session is None or not session.undo():
            self.status.setText("Nothing to undo.")
            self.undo_button.setEnabled(False)
            return False
        self.status.setText("Last naming undone.")
        return True

    def map_layer(self) -> Points | None:
        """The map chosen in the widget.

        Returns
        -------
        napari.layers.Points or None
            The map, or None when there is none or it was removed.
        """
        name = self.map_combo.value
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _require_map(self) -> Points:
        layer = self.map_layer()
        if layer is None:
            raise ValueError("No map yet: train a map in the 'Train map' widget first.")
        return layer

    def color_by(self, column: str) -> None:
        """Colour the current map's points by a column of its table.

        Parameters
        ----------
        column : str
            E.g. "annotation", "cluster", "label" or "outlier"; nothing happens when empty or
            when there is no map.
        """
        layer = self.map_layer()
        if layer is not None and column:
            recolor(layer, column)

    def assign(self, name: str) -> int:
        """Give the points selected in the map the class ``name`` (can be undone).

        Without a map, a selection or a name, an error is shown to the user instead.

        Parameters
        ----------
        name : str
            The class name, e.g. "mitotic".

        Returns
        -------
        int
            How many points were named (0 when nothing was named).
        """
        layer = self.map_layer()
        if layer is None or not name.strip() or not layer.selected_data:
            show_error("Select points in the map and type a class name first.")
            return 0
        selected = set(layer.selected_data)
        self._require_session().assign(name, selected)
        layer.selected_data = selected
        self.status.setText(f"{len(selected)} tiles named {name.strip()!r}.")
        return len(selected)

    # -- lasso --------------------------------------------------------------------
    def set_lasso(self, on: bool) -> None:
        """Turn free-hand lasso selection on the current map on or off.

        The lasso works on 2D maps only; without a map or on a 3D map an error is shown instead.

        Parameters
        ----------
        on : bool
            True to start the lasso, False to stop it.
        """
        if not on:
            if self._lasso is not None:
                lasso, self._lasso = self._lasso, None
                lasso.disable()
            return
        layer = self.map_layer()
        if layer is None or is_3d(layer):
            show_error(
                "No map yet: train a map in the 'Train map' widget first."
                if layer is None
                else "The lasso draws on a flat map. In a 3D map, click points (Shift adds) or "
                "select a class or cluster with 'Select'."
            )
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
        self.k_spin.visible = kmeans
        self.min_size_spin.visible = not kmeans

    def _on_cluster_clicked(self) -> None:
        try:
            if self.method_combo.value == "HDBSCAN":
                self.propose_hdbscan(self.min_size_spin.value)
            else:
                self.propose_clusters(self.k_spin.value)
        except ValueError as exc:
            show_error(str(exc))
            self.status.setText(str(exc))

    def propose_clusters(self, k: int) -> None:
        """Propose clusters by k-means on the map; writes the cluster column and colours by it.

        Parameters
        ----------
        k : int
            The number of clusters.

        Raises
        ------
        ValueError
            There is no map, or ``k`` is not between 1 and the number of points.
        """
        self._require_session().propose_kmeans(k)
        self.status.setText(f"{k} clusters proposed.")

    def propose_hdbscan(self, min_cluster_size: int):
        """HDBSCAN on the map in a background thread (seconds on 100,000 points with fast-hdbscan).

        HDBSCAN finds the number of clusters itself; points in no cluster (noise) get -1. The
        cluster column is written, and the map coloured by it, when the worker finishes.

        Parameters
        ----------
        min_cluster_size : int
            Fewest points a cluster may have.

        Returns
        -------
        FunctionWorker
            The started worker.

        Raises
        ------
        ValueError
            There is no map, clustering is already running, or ``min_cluster_size`` does not fit
            the number of points.
        """
        layer = self._require_map()
        if self._cluster_worker is not None:
            raise ValueError("Clustering is already running.")
        session = self._require_session()
        job = session.hdbscan_job(min_cluster_size)  # checks the size before the worker starts

        def done(labels):
            if self.annotations.get(layer) is session and (
                message := session.apply_hdbscan(labels)
            ):
                self.status.setText(message)

        def failed(exc):
            show_error(f"Clustering failed: {exc}")

        def finished():
            self._cluster_worker = None
            self.cluster_button.setEnabled(True)

        worker = FunctionWorker(job)
        worker.returned.connect(done)
        worker.errored.connect(failed)
        worker.finished.connect(finished)
        self._cluster_worker = worker
        self.cluster_button.setEnabled(False)
        self.status.setText(f"HDBSCAN on {len(layer.data):,} points…")
        worker.start()
        return worker

    # -- files ------------------------------------------------------------------------
    def export_csv(self, path, overwrite: bool = False) -> None:
        """Write the map's table to a CSV file (atomically).

        Columns: tile_index, x, y, (z, origins,) label if known, annotation, cluster, outlier.

        Parameters
        ----------
        path : str or os.PathLike
            The CSV file to write.
        overwrite : bool
            Replace an existing file; without it an existing file is refused.

        Raises
        ------
        ValueError
            There is no map.
        ExistingFileError
            ``path`` exists and ``overwrite`` is False.
        """
        layer = self._require_map()
        path = self._require_session().export_csv(path, overwrite)
        self.status.setText(f"Exported {len(layer.features)} tiles to {path}.")

    def import_csv(self, path) -> None:
        """Read annotations and clusters into the current map from a CSV file.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by ``export_csv``.

        Raises
        ------
        ValueError
            There is no map, or the file cannot be read or belongs to another tile stack
            (``AnnotationFileError``; the map is then unchanged).
        """
        session = self._require_session()
        session.import_csv(path)
        left_out = LEFT_OUT.replace("Its", "The file's") if session.clusters_left_out else ""
        self.status.setText(f"Imported {session.describe()} from {path}.{left_out}")

    def _ask_export(self) -> None:
        # Qt's save dialog has already asked whether to replace an existing file
        ask_path_then(
            self,
            "Export annotations",
            "annotations.csv",
            CSV_FILTER,
            lambda path: self.export_csv(path, overwrite=True),
            (ValueError, OSError),
            save=True,
            on_error=self.status.setText,
        )

    # -- tiles as layers ---------------------------------------------------------------
    def export_tiles_layer(self, tile_indices, name: str) -> list:
        """Copy the tiles ``tile_indices`` of the map's stack into new image layers (one per channel layer).

        See ``export.add_tiles_layers``: the copies look like the stack and lie right of everything.

        Parameters
        ----------
        tile_indices : iterable of int
            The tile numbers (in the stack) to copy; repeats are dropped.
        name : str
            Name of the new layer (with several channel layers: prefixed by each one's name).

        Returns
        -------
        list of napari.layers.Image
            The new layers.

        Raises
        ------
        ValueError
            There is no map, or its tile layer is gone.
        """
        return self._added(
            export_mod.add_tiles_layers(self.viewer, self._require_map(), tile_indices, name)
        )

    def export_selection_layer(self) -> list:
        """The selected tiles as a new image stack (see ``export_tiles_layer``).

        Returns
        -------
        list of napari.layers.Image
            The new layers.

        Raises
        ------
        ValueError
            There is no map or no point is selected.
        """
        return self._added(export_mod.add_selection_layers(self.viewer, self._require_map()))

    def export_group_layer(self, column: str, value) -> list:
        """The tiles of one class or cluster as a new image stack (see ``export_tiles_layer``).

        Parameters
        ----------
        column : str
            "annotation" for a class, "cluster" for a cluster.
        value : str or int
            The class name or cluster number.

        Returns
        -------
        list of napari.layers.Image
            The new layers.

        Raises
        ------
        ValueError
            There is no map, or no tile has that class or cluster.
        """
        return self._added(
            export_mod.add_group_layers(self.viewer, self._require_map(), column, value)
        )

    def export_cluster_layer(self, number: int) -> list:
        """The tiles of proposed cluster ``number`` as a new image stack.

        Parameters
        ----------
        number : int
            The cluster number.

        Returns
        -------
        list of napari.layers.Image
            The new layers.

        Raises
        ------
        ValueError
            There is no map, or the cluster has no tiles.
        """
        return self.export_group_layer("cluster", int(number))

    def _added(self, layers: list) -> list:
        n = len(layers[0].metadata["tile_indices"])
        self.status.setText(f"{n} tiles copied into a new layer {layers[0].name!r}.")
        return layers

    def export_labels_layer(self, column: str | None = None):
        """Paint the map's classes (or clusters) onto the image its tiles were cut from, as a Labels layer.

        See ``export.add_labels_layer``; ``column`` defaults to the one the map is coloured by, else
        "annotation" when some tiles are named, else "cluster".

        Parameters
        ----------
        column : str, optional
            "annotation", "cluster" or "label".

        Returns
        -------
        napari.layers.Labels
            The painted layer, placed over the image.

        Raises
        ------
        ValueError
            There is no map, its tiles were not cut from an image open in napari, or the map has
            no such column.
        """
        labels = export_mod.add_labels_layer(self.viewer, self._require_map(), column)
        source, column = labels.metadata["source_layer"], labels.metadata["painted_column"]
        self.status.setText(f"{source!r} painted by {column} ({len(labels.features) - 1} kinds).")
        return labels

    def _run_export(self, action) -> None:
        try:
            action()
        except (ValueError, IndexError, OSError) as exc:
            show_error(str(exc))
            self.status.setText(str(exc))

    def _on_selection_layer_clicked(self) -> None:
        self._run_export(self.export_selection_layer)

    def _on_group_layer_clicked(self) -> None:
        choice = self._group_choices.get(self.group_combo.currentText())
        if choice is None:
            self.status.setText("Choose a class or cluster in the list above first.")
            return
        self._run_export(lambda: self.export_group_layer(*choice))

    def _on_labels_clicked(self) -> None:
        self._run_export(self.export_labels_layer)

    def _ask_import(self) -> None:
        ask_path_then(
            self,
            "Import annotations",
            "",
            CSV_FILTER,
            self.import_csv,
            (ValueError, OSError),
            on_error=self.status.setText,
        )

    # -- autosave -----------------------------------------------------------------------
    def autosave_path(self, layer=None) -> Path | None:
        """The autosave file of a map.

        Parameters
        ----------
        layer : napari.layers.Points, optional
            The map; default: the map chosen in the widget.

        Returns
        -------
        Path or None
            The file (it may not exist yet), or None when there is no map or its tile stack cannot
            be identified.
        """
        session = self.session(layer)
        saver = None if session is None else session.saver
        return None if saver is None else saver.path

    def _on_features_changed(self, event=None) -> None:
        # at most AUTOSAVE_DELAY_MS after the first unsaved change, also while changes keep coming
        if not self._autosave_timer.isActive():
            self._autosave_timer.start()

    def autosave_now(self, wait: bool = False) -> None:
        """Queue a write of every map's annotations that changed to its autosave file.

        Parameters
        ----------
        wait : bool
            Return only once the files are on disk.
        """
        self._autosave_timer.stop()
        for session, queued in self.annotations.autosave(wait=wait):
            if session.saver is not None:
                self._show_autosave(session.saver, queued and not wait)

    def _show_autosave(self, saver, pending: bool = False) -> None:
        """Say under the buttons where the annotations were saved (or why not), once the write is done."""
        if pending and saver.pending:  # written in the background: look again shortly
            self._autosave_check = lambda: self._show_autosave(saver, True)
            self._autosave_check_timer.start()
            return
        if (text := saver.status()) is not None:
            self.autosave_label.setText(text)

    def flush_autosave(self) -> None:
        """Write pending changes now and wait for them (on close)."""
        self._autosave_timer.stop()
        self.annotations.flush()

    def _restore_fresh_map(self, key) -> None:
        """A new map without annotations gets those of its stack's autosave; a notification says so."""
        session = self.annotations.get(key)
        if session is None or key not in self.viewer.layers:
            return
        path, other = session.autosave_to_restore()
        if path is None:
            if other is not None:
                show_info(
                    f"Not restored: the autosave {other.name} belongs to another tile stack of the "
                    f"same name (different shape or pixels)."
                )
            return
        try:
            self.restore_autosave(key, path)
        except (ValueError, OSError) as exc:
            show_error(f"Autosave not restored: {exc}")

    def restore_autosave(self, layer=None, path=None) -> Path:
        """Replace the map's annotations and clusters by its stack's autosave (or ``path``).

        Parameters
        ----------
        layer : napari.layers.Points, optional
            The map; default: the map chosen in the widget.
        path : str or os.PathLike, optional
            The autosave file to read; default: the autosave of the map's tile stack.

        Returns
        -------
        Path
            The file the annotations came from.

        Raises
        ------
        ValueError
            There is no map or no autosave, the tile layer is gone, or the file belongs to another
            tile stack (``AnnotationFileError``; the map is then unchanged).
        """
        layer = layer if layer is not None else self._require_map()
        session = self._require_session(layer)
        path, _ = session.restore(path)
        message = f"Restored {session.describe()} of {layer.name!r} from the autosave {path}."
        if session.clusters_left_out:
            message += LEFT_OUT
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

    def _on_window_closing(self) -> None:
        # napari closing its window: save first (harmless if the close is then cancelled)
        self.flush_autosave()
