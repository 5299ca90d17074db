"""A small legend of the map's colours: name -> swatch (with counts) for names and clusters, a colour bar for
scores. A thin view: what to show comes from ``.map_layer.legend`` (no Qt there)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

MAX_ENTRIES = 24
"""Names listed at most (the rest are summed up in one line)."""
TWO_COLUMNS_FROM = 7
"""From this many names on, short names are listed in two columns (half as tall: the legend stays in
view below a training's progress on a laptop screen)."""
SHORT_NAME = 14
"""Names up to this many characters fit two columns in a dock of napari's usual width."""
LONGEST_SHOWN = 28
"""Longer names are shortened with "…" (the whole name is in the tooltip): a long class name
must not widen the dock and squeeze the map."""


def shown_name(name: str) -> str:
    """``name`` as the legend lists it: cut to ``LONGEST_SHOWN`` characters with "…".

    Parameters
    ----------
    name : str
        A class name or cluster number.

    Returns
    -------
    str
        The name, or its start and "…".
    """
    return name if len(name) <= LONGEST_SHOWN else name[: LONGEST_SHOWN - 1].rstrip() + "…"


def legend_columns(names: list[str]) -> int:
    """How many columns a legend of ``names`` takes: two for many short names, else one.

    Parameters
    ----------
    names : list of str
        The names listed.

    Returns
    -------
    int
        1 or 2.
    """
    many = len(names) >= TWO_COLUMNS_FROM
    return 2 if many and max(len(n) for n in names) <= SHORT_NAME else 1


def _hex(rgba) -> str:
    r, g, b = (int(round(float(v) * 255)) for v in np.asarray(rgba)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def gradient_css(colormap: str = "viridis", stops: int = 9) -> str:
    """A Qt style sheet gradient running through ``colormap`` from left to right.

    Parameters
    ----------
    colormap : str
        A napari colormap name.
    stops : int
        Colours sampled along the colormap.

    Returns
    -------
    str
        A ``qlineargradient(...)`` for a style sheet.
    """
    from napari.utils.colormaps import ensure_colormap

    colors = ensure_colormap(colormap).map(np.linspace(0, 1, stops))
    parts = ", ".join(f"stop:{i / (stops - 1):.3f} {_hex(c)}" for i, c in enumerate(colors))
    return f"background: qlineargradient(x1:0, y1:0, x2:1, y2:0, {parts}); border: 1px solid #555;"


class LegendView(QWidget):
    """Shows one legend (see ``.map_layer.legend``); ``set_legend`` replaces it.

    Parameters
    ----------
    parent : QWidget, optional
        The parent widget.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self._rows = QGridLayout()
        self._rows.setHorizontalSpacing(6)
        self._rows.setVerticalSpacing(2)
        self.bar = QLabel()
        self.bar.setFixedHeight(12)
        self.bar.setToolTip("Colours from the lowest score (left) to the highest (right).")
        self.low = QLabel("")
        self.high = QLabel("")
        self.high.setAlignment(Qt.AlignmentFlag.AlignRight)
        ends = QHBoxLayout()
        ends.addWidget(self.low)
        ends.addStretch()
        ends.addWidget(self.high)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(self._rows)
        layout.addWidget(self.bar)
        layout.addLayout(ends)
        self.entries: list[tuple[str, str, int]] = []
        self.set_legend({"kind": "none"})

    def _clear_rows(self) -> None:
        while self._rows.count():
            item = self._rows.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()  # at once: deleteLater() only removes it on the next event loop turn
                item.widget().deleteLater()

    def set_legend(self, legend: dict) -> None:
        """Show ``legend``, replacing what was shown.

        Parameters
        ----------
        legend : dict
            As from ``napari_tsimcne.plugin.map_layer.legend``: ``kind`` is
            ``"categories"`` (with ``entries``), ``"scale"`` or ``"none"``.
        """
        self._clear_rows()
        kind = legend.get("kind")
        scale = kind == "scale"
        for w in (self.bar, self.low, self.high):
            w.setVisible(scale)
        self.entries = list(legend.get("entries", [])) if kind == "categories" else []
        if kind == "none":
            self.title.setText("No map yet.")
            return
        column = legend["column"]
        if scale:
            self.title.setText(f"Colour: {column} (dark = low, yellow = high)")
            self.bar.setStyleSheet(gradient_css(legend.get("colormap", "viridis")))
            self.low.setText(f"{legend['low']:.3g}")
            self.high.setText(
                f"≥ {legend['high']:.3g}" if column == "outlier" else f"{legend['high']:.3g}"
            )
            return
        self.title.setText(f"Colour: {column}")
        shown = self.entries[:MAX_ENTRIES]
        columns = legend_columns([name for name, *_ in shown])
        per_column = -(-len(shown) // columns)  # down the first column, then the second
        for i, (name, color, count) in enumerate(shown):
            row, first = i % per_column, 4 * (i // per_column)  # 4: swatch, name, count, gap
            swatch = QLabel()
            swatch.setFixedSize(14, 14)
            swatch.setStyleSheet(f"background: {color}; border: 1px solid #222;")
            label = QLabel(shown_name(name))
            label.setToolTip(f"{name}: {count} tiles")
            number = QLabel(str(count))
            number.setAlignment(Qt.AlignmentFlag.AlignRight)
            self._rows.addWidget(swatch, row, first)
            self._rows.addWidget(label, row, first + 1)
            self._rows.addWidget(number, row, first + 2)
        if columns == 2:
            self._rows.setColumnMinimumWidth(3, 12)  # a gap between the two columns
        if len(self.entries) > MAX_ENTRIES:
            rest = self.entries[MAX_ENTRIES:]
            more = QLabel(f"… {len(rest)} more ({sum(c for *_, c in rest)} tiles)")
            self._rows.addWidget(more, per_column, 1, 1, 4 * columns - 2)
