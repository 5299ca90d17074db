"""Small Qt helpers shared by the dock widgets: file dialogs and combo boxes."""

from __future__ import annotations

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QComboBox, QFileDialog

MODEL_FILTER = "napari-tsimcne model (*.tsimcne *.pt);;All files (*)"
CSV_FILTER = "CSV (*.csv);;All files (*)"


def ask_path_then(parent, title: str, default: str, name_filter: str, action, errors: tuple, *,
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


def refill(combo: QComboBox, names: list[str]) -> None:
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)
