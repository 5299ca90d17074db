"""The annotations of one map, without Qt: naming, undo, clusters, files, autosave and restore.

The *Annotate map* dock (``.annotate_widget``) keeps one ``MapAnnotations`` per map layer and is
its view: it forwards the user's clicks here and redraws its lists and legend when ``changed`` fires.
Everything here works on a napari Points layer and its ``features`` table, so it is tested without a
window.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from psygnal import Signal

from . import annotations as ann
from . import autosave as autosave_mod
from . import export as export_mod
from .map_layer import embedding_columns, recolor
from .selection import AnnotationHistory, rows_where


class MapAnnotations:
    """One map's annotations: the names and clusters in its features table, their history and files.

    Parameters
    ----------
    layer : napari.layers.Points
        The map (features ``tile_index``, ``annotation``, ``cluster``, ...).
    tiles_layer : callable
        Returns the map's tile layer, or None when it is gone (its data identify the stack of an
        autosave or an exported file; its metadata may hold ``origins``).
    folder : path, optional
        The autosave folder (default: ``autosave_dir``).
    """

    changed = Signal(str)
    """Emitted with the column that changed ("annotation" or "cluster"), after the map was recoloured."""

    def __init__(
        self, layer, tiles_layer: Callable[[], object], folder: Path | None = None
    ) -> None:
        self.layer = layer
        self._tiles_layer = tiles_layer
        self._folder = folder
        self.history = AnnotationHistory()
        self._fingerprint: str | None = None
        self._saver: autosave_mod.AnnotationAutosaver | None = None
        self.clusters_left_out = False
        """Whether the last file read had clusters of another map of these tiles (not taken)."""

    # -- naming ------------------------------------------------------------------
    def assign(self, name: str, rows) -> int:
        """Give the points ``rows`` the class ``name`` (the naming can be undone).

        Parameters
        ----------
        name : str
            The class name, e.g. "mitotic".
        rows : iterable of int
            The points (rows of the map) to name.

        Returns
        -------
        int
            How many points were named.

        Raises
        ------
        ValueError
            No name or no points.
        """
        rows = set(int(r) for r in rows)
        if not str(name).strip() or not rows:
            raise ValueError("Select points in the map and type a class name first.")
        self.history.record(self.layer.features)
        self.layer.features = ann.assign_annotation(self.layer.features, rows, name)
        self._changed("annotation")
        return len(rows)

    @property
    def can_undo(self) -> bool:
        """Whether a naming can be undone."""
        return bool(self.history)

    def undo(self) -> bool:
        """Give the tiles back the names they had before the last naming.

        Returns
        -------
        bool
            Whether there was a naming to undo.
        """
        feats = self.history.undo(self.layer.features)
        if feats is None:
            return False
        self.layer.features = feats
        self._changed("annotation")
        return True

    def rows_of(self, column: str, value) -> set[int]:
        """The points whose ``column`` is ``value``.

        Parameters
        ----------
        column : str
            "annotation" or "cluster".
        value : str or int
            A class name or a cluster number.

        Returns
        -------
        set of int
            The rows of the map with that value.
        """
        return rows_where(self.layer.features, column, value)

    # -- clusters -------------------------------------------------------------------
    def coordinates(self) -> np.ndarray:
        """The map coordinates that clusters are proposed on.

        Returns
        -------
        numpy.ndarray
            One row per point, (N, 2) or (N, 3).
        """
        feats = self.layer.features
        return feats[embedding_columns(feats)].to_numpy()

    def set_clusters(self, labels: np.ndarray) -> None:
        """Write proposed clusters and colour the map by them.

        Parameters
        ----------
        labels : numpy.ndarray
            One cluster number per point, -1 for points in no cluster.

        Raises
        ------
        ValueError
            The number of labels differs from the number of points.
        """
        labels = np.asarray(labels)
        if len(labels) != len(self.layer.features):
            raise ValueError(
                f"{len(labels)} cluster numbers for a map of {len(self.layer.features)} points."
            )
        feats = self.layer.features.copy()
        feats["cluster"] = labels
        self.layer.features = feats
        self._changed("cluster")

    def propose_kmeans(self, k: int) -> np.ndarray:
        """Propose clusters by k-means on the map coordinates and colour the map by them.

        Parameters
        ----------
        k : int
            The number of clusters.

        Returns
        -------
        numpy.ndarray
            The cluster number of each point (also written to the ``cluster`` column).

        Raises
        ------
        ValueError
            ``k`` is not between 1 and the number of points.
        """
        labels = ann.propose_clusters(self.coordinates(), k)
        self.set_clusters(labels)
        return labels

    def describe(self) -> str:
        """What the map holds, in words: "12 annotated tiles and 3 clusters".

        Returns
        -------
        str
            The number of named tiles, and of clusters when there are any.
        """
        feats = self.layer.features
        named = int((feats["annotation"] != "").sum())
        clusters = len(set(feats["cluster"].tolist()) - {-1})
        return f"{named} annotated tiles" + (f" and {clusters} clusters" if clusters else "")

    def hdbscan_job(self, min_cluster_size: int) -> Callable[[], np.ndarray]:
        """HDBSCAN of the map as it is now, as a function to run in a background thread.

        The coordinates are copied here (the map may change while the job runs); hand the labels it
        returns to ``apply_hdbscan``, on the thread that owns the layer.

        Parameters
        ----------
        min_cluster_size : int
            Fewest points a cluster may have.

        Returns
        -------
        callable
            Takes no arguments and returns one cluster number per point (-1: in no cluster).

        Raises
        ------
        ValueError
            ``min_cluster_size`` does not fit the number of points (said before anything runs).
        """
        coords = self.coordinates().copy()
        ann.check_min_cluster_size(min_cluster_size, len(coords))
        return lambda: ann.propose_hdbscan(coords, min_cluster_size)

    def apply_hdbscan(self, labels: np.ndarray) -> str | None:
        """Write the clusters HDBSCAN found and colour the map by them, if they still fit it.

        Parameters
        ----------
        labels : numpy.ndarray
            What the function of ``hdbscan_job`` returned.

        Returns
        -------
        str or None
            What was found ("HDBSCAN: 7 clusters, 120 points in none (-1)."), or None when the
            map got another number of points meanwhile (nothing is written then).
        """
        labels = np.asarray(labels)
        if len(labels) != len(self.layer.features):
            return None
        self.set_clusters(labels)
        n = len(set(labels.tolist()) - {-1})
        noise = int((labels == -1).sum())
        return f"HDBSCAN: {n} clusters, {noise} points in none (-1)."

    # -- files ------------------------------------------------------------------------
    def tiles_layer(self):
        """The map's tile layer.

        Returns
        -------
        napari.layers.Image or None
            The layer, or None when it is gone.
        """
        return self._tiles_layer()

    def origins(self):
        """Where each tile was cut from its image.

        Returns
        -------
        numpy.ndarray or None
            The (row, column) of each tile's corner in its image, or None when the tiles were not
            cut in napari or their layer is gone.
        """
        tiles = self.tiles_layer()
        return None if tiles is None else tiles.metadata.get("origins")

    def fingerprint(self) -> str | None:
        """The tile stack's fingerprint, which ties autosaves and exported files to the stack.

        Returns
        -------
        str or None
            The fingerprint, or None when the tile layer is gone or does not match the map.
        """
        if self._fingerprint is None:
            tiles = self.tiles_layer()
            if tiles is None or len(tiles.data) != len(self.layer.data):
                return None
            self._fingerprint = autosave_mod.stack_fingerprint(tiles.data)
        return self._fingerprint

    def export_csv(self, path, overwrite: bool = False) -> Path:
        """Write the map's table (names, clusters, tile origins) to a CSV file, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The CSV file to write.
        overwrite : bool
            Replace an existing file; without it an existing file is refused.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        ExistingFileError
            ``path`` exists and ``overwrite`` is False.
        """
        path = export_mod.refuse_existing(path, overwrite)
        ann.export_csv(
            self.layer.features, path, origins=self.origins(), fingerprint=self.fingerprint()
        )
        return Path(path)

    def apply_table(self, table) -> None:
        """Take the annotations of ``table`` for every point, and its clusters if they are of this map.

        Clusters are regions of the map they were proposed on. A file written from another map of
        the same tiles (trained again: other coordinates) gives its names only, and
        ``clusters_left_out`` says so.

        Parameters
        ----------
        table : pandas.DataFrame
            Indexed by tile number, with columns ``annotation`` and ``cluster`` and, optionally,
            the coordinates ``x``, ``y`` (``z``) of the map it was written from.
        """
        feats = self.layer.features.copy()
        rows = feats["tile_index"].to_numpy()
        feats["annotation"] = table.loc[rows, "annotation"].to_numpy()
        clusters = table.loc[rows, "cluster"].to_numpy().astype(int)
        # clusters are regions of the map they were proposed on: on another map of the same tiles
        # (trained again) they would mark arbitrary points, so only the names are taken then
        self.clusters_left_out = bool((clusters != -1).any()) and not _same_map(feats, table, rows)
        feats["cluster"] = -1 if self.clusters_left_out else clusters
        self.layer.features = feats
        self._changed("annotation" if (feats["annotation"] != "").any() else "cluster")

    def import_csv(self, path) -> None:
        """Read annotations and clusters from a CSV file written by ``export_csv``.

        Parameters
        ----------
        path : str or os.PathLike
            The CSV file to read.

        Raises
        ------
        AnnotationFileError
            The file cannot be read, or it belongs to another tile stack (the map is then
            unchanged).
        """
        self.apply_table(ann.import_csv(path, len(self.layer.features), self.fingerprint()))

    # -- autosave ---------------------------------------------------------------------
    @property
    def saver(self) -> autosave_mod.AnnotationAutosaver | None:
        """The writer of this map's autosave file (None when the stack cannot be identified)."""
        if self._saver is None:
            fingerprint = self.fingerprint()
            if fingerprint is None:
                return None
            name = self.layer.metadata.get("tsimcne_tiles_layer", self.layer.name)
            self._saver = autosave_mod.AnnotationAutosaver(
                autosave_mod.autosave_path(name, fingerprint, self._folder)
            )
        return self._saver

    def autosave(self, wait: bool = False) -> bool:
        """Queue a write of the annotations to the autosave file if they changed.

        A stack nobody has annotated yet gets no file.

        Parameters
        ----------
        wait : bool
            Return only once the file is on disk.

        Returns
        -------
        bool
            Whether a write was queued.
        """
        saver = self.saver
        if saver is None:
            return False
        feats = self.layer.features
        if (
            saver.writes == 0
            and not saver.path.exists()
            and not autosave_mod.has_annotations(feats)
        ):
            saver.mark_saved(feats)  # nothing to keep yet: no file for every stack ever opened
            return False
        queued = saver.save(feats, origins=self.origins())
        if wait:
            saver.flush()
        return queued

    def restore(self, path=None) -> tuple[Path, int]:
        """Replace the annotations and clusters by the stack's autosave (or ``path``).

        Parameters
        ----------
        path : str or os.PathLike, optional
            The autosave file to read; default: this tile stack's autosave.

        Returns
        -------
        tuple of (Path, int)
            The file and the number of named tiles.

        Raises
        ------
        ValueError
            No autosave, the tile layer is gone, or the file belongs to another stack (the map is
            then unchanged).
        """
        fingerprint = self.fingerprint()
        if fingerprint is None:
            raise ValueError(
                "The map's tile layer is gone; cannot check which stack an autosave belongs to."
            )
        path = (
            Path(path)
            if path is not None
            else autosave_mod.find_autosave(fingerprint, self._folder)
        )
        if path is None:
            raise ValueError("No autosave for this tile stack.")
        table = autosave_mod.load_autosave(path, fingerprint, len(self.layer.features))
        self.apply_table(table)
        if self.saver is not None:
            self.saver.mark_saved(self.layer.features)
        return path, int((self.layer.features["annotation"] != "").sum())

    def autosave_to_restore(self) -> tuple[Path | None, Path | None]:
        """The autosave a fresh map (no names yet) should get its annotations from.

        Returns
        -------
        tuple of (Path or None, Path or None)
            This stack's autosave, or None; when there is none, an autosave of another stack of
            the same name (to tell the user why nothing was restored), or None.
        """
        if autosave_mod.has_annotations(self.layer.features):
            return None, None
        fingerprint = self.fingerprint()
        if fingerprint is None:
            return None, None
        path = autosave_mod.find_autosave(fingerprint, self._folder)
        if path is not None:
            return path, None
        others = autosave_mod.autosaves_of_other_stacks(
            self.layer.metadata.get("tsimcne_tiles_layer", ""), fingerprint, self._folder
        )
        return None, (others[0] if others else None)

    def flush(self) -> None:
        """Wait for queued autosave writes."""
        if self._saver is not None:
            self._saver.flush()

    def close(self) -> None:
        """Finish the autosave writes (the map was removed)."""
        if self._saver is not None:
            self._saver.close()

    def _changed(self, column: str) -> None:
        recolor(self.layer, column)
        self.changed.emit(column)


def _same_map(feats, table, rows) -> bool:
    """Whether ``table`` (read from a file) was written from a map with the coordinates of ``feats``."""
    axes = [a for a in ("x", "y", "z") if a in table.columns and a in feats.columns]
    if not axes or len(axes) != len([a for a in ("x", "y", "z") if a in feats.columns]):
        return not axes  # a file without coordinates cannot tell: its clusters are trusted
    saved = table.loc[rows, axes].to_numpy(float)
    now = feats[axes].to_numpy(float)
    scale = max(1.0, float(np.nanmax(np.abs(now)))) if now.size else 1.0
    return bool(np.allclose(saved, now, rtol=0.0, atol=1e-3 * scale, equal_nan=False))


def is_map(layer) -> bool:
    """Whether ``layer`` is a map of tiles (a Points layer that names its tile layer).

    Parameters
    ----------
    layer : napari.layers.Layer
        Any layer.

    Returns
    -------
    bool
        True for maps made by the plugin or opened from an output folder.
    """
    from napari.layers import Points

    return isinstance(layer, Points) and "tsimcne_tiles_layer" in layer.metadata


class ViewerAnnotations:
    """The annotations of every map in one viewer: made when a map appears, closed when it leaves.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (its tile layers identify each map's stack).
    folder : path, optional
        The autosave folder (default: ``autosave_dir``).
    """

    added = Signal(object)
    """Emitted with the ``MapAnnotations`` of a map that appeared."""
    removed = Signal(object)
    """Emitted with the ``MapAnnotations`` of a map that left the viewer (its last changes are saved)."""

    def __init__(self, viewer, folder: Path | None = None) -> None:
        self.viewer = viewer
        self._folder = folder
        self._sessions: dict = {}  # map layer -> its annotations (napari's proxies hash as the layer)

    def refresh(self) -> list:
        """Follow the viewer's layers: new maps get annotations, removed maps are saved and dropped.

        Returns
        -------
        list of napari.layers.Points
            The maps, in the viewer's order.
        """
        maps = [layer for layer in self.viewer.layers if is_map(layer)]
        for layer in maps:
            if layer not in self._sessions:
                session = MapAnnotations(
                    layer,
                    lambda layer=layer: export_mod.tiles_layer_of(self.viewer, layer),
                    folder=self._folder,
                )
                self._sessions[layer] = session
                self.added.emit(session)
        alive = set(maps)
        for gone in [layer for layer in self._sessions if layer not in alive]:
            session = self._sessions.pop(gone)
            session.autosave()  # changes made since the last autosave (less than a second ago)
            session.close()  # and the writes still queued reach the file
            self.removed.emit(session)
        return maps

    def get(self, layer) -> MapAnnotations | None:
        """The annotations of a map, or None for a layer that is no map of this viewer.

        Parameters
        ----------
        layer : napari.layers.Points
            A map.

        Returns
        -------
        MapAnnotations or None
            Its annotations.
        """
        return self._sessions.get(layer)

    def __iter__(self):
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def autosave(self, wait: bool = False) -> list[tuple[MapAnnotations, bool]]:
        """Queue a write of every map's changed annotations to its autosave file.

        Parameters
        ----------
        wait : bool
            Return only once the files are on disk.

        Returns
        -------
        list of (MapAnnotations, bool)
            Each map still in the viewer, and whether a write was queued for it.
        """
        return [
            (session, session.autosave(wait=wait))
            for layer, session in list(self._sessions.items())
            if layer in self.viewer.layers
        ]

    def flush(self) -> None:
        """Write every pending change now and wait for it (napari closing)."""
        self.autosave(wait=True)
        for session in self:
            session.flush()
