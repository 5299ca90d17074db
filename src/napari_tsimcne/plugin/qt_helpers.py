"""Small Qt helpers shared by the dock widgets: their closing, file dialogs, combo boxes and foldable sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from collections.abc import Callable

MODEL_FILTER = "napari-tsimcne model (*.tsimcne *.pt);;All files (*)"
PLUGIN_NAME = "napari-tsimcne"
TRAIN_WIDGET, ANNOTATE_WIDGET, GALLERY_WIDGET = "Train map", "Annotate map", "Selected tiles"
"""The docks' display names (napari.yaml); napari names a dock "<display name> (<plugin>)"."""
QWIDGETSIZE_MAX = (1 << 24) - 1
"""Qt's largest widget size (QWIDGETSIZE_MAX), a maximum height that does not limit."""
CSV_FILTER = "CSV (*.csv);;All files (*)"


def ask_path_then(
    parent: QWidget,
    title: str,
    default: str,
    name_filter: str,
    action: Callable[[str], object],
    errors: tuple[type[BaseException], ...],
    *,
    save: bool = False,
    on_error: Callable[[str], object] | None = None,
) -> None:
    """Ask for a file path; call ``action(path)``; show the listed errors in napari's notifications.

    Parameters
    ----------
    parent : QWidget
        The dialog's parent.
    title : str
        The dialog's title.
    default : str
        Path proposed first.
    name_filter : str
        File types offered, e.g. ``"CSV (*.csv)"``.
    action : callable
        Called with the chosen path (nothing happens when the user cancels).
    errors : tuple of type
        Exceptions of ``action`` shown to the user instead of raised.
    save : bool
        A save dialog instead of an open dialog.
    on_error : callable, optional
        Also called with the message of such an error (e.g. to show it in the widget).
    """
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
    """Replace the items of a combo box, keeping the current one when it is still there.

    No change signal is sent.

    Parameters
    ----------
    combo : QComboBox
        The combo box.
    names : list of str
        The new items.
    """
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


def apply_tooltips(owner, tooltips: dict[str, str]) -> None:
    """Give the controls of ``owner`` their tooltips, Qt widgets and magicgui widgets alike.

    Parameters
    ----------
    owner : object
        A dock widget or form whose attributes are the controls.
    tooltips : dict of str to str
        Attribute name -> tooltip.
    """
    for name, tip in tooltips.items():
        widget = getattr(owner, name)
        if hasattr(widget, "native"):  # a magicgui widget
            widget.tooltip = tip
        else:
            widget.setToolTip(tip)


def keep_narrow(combo: QComboBox, characters: int = 12) -> None:
    """Let a combo box with long item names (layers, classes) stay as narrow as its dock.

    Parameters
    ----------
    combo : QComboBox
        The combo box (``.native`` of a magicgui ``ComboBox``).
    characters : int
        Characters it shows at least; longer names are cut in the box, whole in its list.
    """
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)


def label_of(widget) -> QLabel:
    """The label magicgui shows beside ``widget`` in a labelled ``Container``.

    Parameters
    ----------
    widget : magicgui.widgets.Widget
        A widget inside a labelled container.

    Returns
    -------
    QLabel
        Its label (the first item of the row magicgui made for it).
    """
    return widget.native.parentWidget().layout().itemAt(0).widget()


def align_labels(*forms) -> None:
    """One label column for magicgui forms stacked in one dock: every label as wide as the widest.

    Parameters
    ----------
    *forms : magicgui.widgets.Container
        Labelled containers.
    """
    labels = [label_of(widget) for form in forms for widget in form]

    def align() -> None:
        try:
            for label in labels:
                label.ensurePolished()  # in napari's window: its theme's font, not the default one
            width = max((label.sizeHint().width() for label in labels), default=0)
            for label in labels:
                label.setMinimumWidth(width)
        except RuntimeError:  # the dock was closed (deleted) in the meantime
            pass

    align()
    QTimer.singleShot(0, align)  # again once the dock is in napari's window and styled


def set_choices(combo, names: list[str]) -> None:
    """Replace the choices of a magicgui ``ComboBox``, keeping the current one when it is still there.

    No change signal is sent.

    Parameters
    ----------
    combo : magicgui.widgets.ComboBox
        The combo box.
    names : list of str
        The new choices.
    """
    with combo.changed.blocked():
        combo.choices = names


class DockWidget(QWidget):
    """A dock widget that hears when napari's window closes and when it is taken out of its dock.

    Subclasses define ``shutdown()``; ``_on_window_closing()`` (default: nothing) runs when
    napari's main window closes, ``_on_undocked()`` (default: ``shutdown()``) when the dock's
    "x" takes the widget out of its dock, and closing the widget itself calls ``shutdown()``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._filtered_windows: set[int] = set()
        QTimer.singleShot(0, self._watch_window)  # once docked in napari's window

    def shutdown(self) -> None:
        """Stop what the widget runs (training, timers) and disconnect it from the viewer.

        Subclasses must define it; it is called when the widget is closed or undocked.

        Raises
        ------
        NotImplementedError
            In this base class.
        """
        raise NotImplementedError

    def _on_window_closing(self) -> None:
        """napari's main window is closing (a close that may still be cancelled)."""

    def _on_undocked(self) -> None:
        self.shutdown()

    def _watch_window(self) -> None:
        window = self.window()
        if window is not self and id(window) not in self._filtered_windows:
            window.installEventFilter(self)
            self._filtered_windows.add(id(window))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Start listening to napari's main window once the widget is shown in it.

        Parameters
        ----------
        event : QShowEvent
            Qt's show event.
        """
        self._watch_window()
        super().showEvent(event)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt's name
        """Notice napari's main window closing; the event itself always goes on.

        Parameters
        ----------
        obj : QObject
            The watched window.
        ev : QEvent
            An event of that window.

        Returns
        -------
        bool
            Always False: the window handles the event as usual.
        """
        if ev.type() == QEvent.Type.Close:
            self._on_window_closing()
        return False

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Fit maps opened moments ago to the canvas again, whose width changed with the dock.

        Parameters
        ----------
        event : QResizeEvent
            Qt's resize event.
        """
        # the dock column changed width, so did the canvas: a map opened moments ago is fitted again,
        # once the layout has settled
        super().resizeEvent(event)
        viewer = getattr(self, "viewer", None)
        if viewer is not None:
            from .crosslink import refit_new_maps

            if getattr(self, "_refit_timer", None) is None:  # the widget's own timer dies with it
                self._refit_timer = QTimer(self)
                self._refit_timer.setSingleShot(True)
                self._refit_timer.setInterval(0)
                self._refit_timer.timeout.connect(lambda: refit_new_maps(viewer))
            self._refit_timer.start()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Call ``shutdown()`` when the widget itself is closed.

        Parameters
        ----------
        event : QCloseEvent
            Qt's close event.
        """
        self.shutdown()
        super().closeEvent(event)

    def event(self, ev) -> bool:
        """Notice the widget being taken out of its dock (its parent removed).

        Parameters
        ----------
        ev : QEvent
            Any event of the widget.

        Returns
        -------
        bool
            Whether Qt handled the event, as in ``QWidget.event``.
        """
        # napari's dock "x" (remove_dock_widget) takes the widget out of its dock with setParent(None)
        if ev.type() == QEvent.Type.ParentChange and self.parent() is None:
            self._on_undocked()
        return super().event(ev)


class WrappedLabel(QLabel):
    """A word-wrapped label that always gets the height its text needs at its width.

    Form layouts in a scroll area do not grow a wrapped label when its text gets longer; this one
    asks for its height itself, on every new text and width (shrinking when it gets wider), and
    takes no room when its text is empty.

    Parameters
    ----------
    text : str
        The first text.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self._fit_height()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Show ``text`` and grow or shrink to the height it needs.

        Parameters
        ----------
        text : str
            The new text.
        """
        super().setText(text)
        self._fit_height()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Take the height the text needs at the new width.

        Parameters
        ----------
        event : QResizeEvent
            Qt's resize event.
        """
        super().resizeEvent(event)
        self._fit_height()

    def _fit_height(self) -> None:
        if not self.text():  # an empty text takes no room (not a blank line or its old height)
            self.setMinimumHeight(0)
            self.setMaximumHeight(0)
            return
        self.setMaximumHeight(QWIDGETSIZE_MAX)
        old = self.minimumHeight()
        # Qt's heightForWidth never answers less than the minimum height: without lifting it, a label
        # that got wider (the dock widened) would keep the height of its narrower self, a blank gap
        self.setMinimumHeight(0)
        need = self.heightForWidth(max(1, self.width()))
        self.setMinimumHeight(need if need > 0 else old)


class Collapsible(QWidget):
    """A titled section that folds away (closed by default): a toggle with an arrow, then its content.

    Parameters
    ----------
    title : str
        Text of the toggle.
    content : QWidget
        What folds away.
    expanded : bool
        Whether it starts open.
    tooltip : str
        Tooltip of the toggle (default: "Show or hide: <title>").
    """

    def __init__(
        self, title: str, content: QWidget, expanded: bool = False, tooltip: str = ""
    ) -> None:
        super().__init__()
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.toggle.setToolTip(tooltip or f"Show or hide: {title.lower()}")
        self.content = content
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(content)
        self.toggle.toggled.connect(self.set_expanded)
        self.toggle.setChecked(expanded)
        self.set_expanded(expanded)

    def set_expanded(self, expanded: bool) -> None:
        """Open or fold the section.

        Parameters
        ----------
        expanded : bool
            True shows the content.
        """
        self.toggle.blockSignals(True)
        self.toggle.setChecked(expanded)
        self.toggle.blockSignals(False)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.content.setVisible(expanded)

    def is_expanded(self) -> bool:
        """Whether the section is open.

        Returns
        -------
        bool
            True when the content is shown.
        """
        return self.toggle.isChecked()


MIN_VISIBLE_HEIGHT = 200
"""Pixels of a dock widget's content that stay in view however little room the dock gets."""


class _VerticalScrollArea(QScrollArea):
    """Scrolls up and down only: as wide as its content needs (so nothing is cut at the right)."""

    def minimumSizeHint(self):  # noqa: N802 - Qt's name
        hint = super().minimumSizeHint()
        if self.widget() is not None:
            width = (
                self.widget().minimumSizeHint().width()
                + self.verticalScrollBar().sizeHint().width()
            )
            hint.setWidth(max(hint.width(), width))
            # docks stacked in one column share its height: each keeps a useful part of its content in view
            hint.setHeight(
                max(hint.height(), min(self.widget().sizeHint().height(), MIN_VISIBLE_HEIGHT))
            )
        return hint

    def sizeHint(self):  # noqa: N802 - Qt's name
        # as tall as the content wants (a plain scroll area asks for little, and its dock gets squeezed)
        hint = super().sizeHint()
        if self.widget() is not None:
            hint.setHeight(self.widget().sizeHint().height() + 2 * self.frameWidth())
            hint.setWidth(max(hint.width(), self.minimumSizeHint().width()))
        return hint

    def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
        # the content's layout changed (widgets added, a section unfolded): ask the dock for room again
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(obj, event)


def scroll_layout(owner: QWidget) -> QVBoxLayout:
    """The layout to fill ``owner`` with, inside a scroll area.

    A dock that gets little room scrolls instead of squeezing (and clipping) its labels.

    Parameters
    ----------
    owner : QWidget
        The dock widget.

    Returns
    -------
    QVBoxLayout
        The layout to add the widget's rows to.
    """
    content = QWidget()
    layout = QVBoxLayout(content)
    scroll = _VerticalScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(content)
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return layout


def dock_name(display_name: str) -> str:
    """The name napari gives the dock of this plugin's widget ``display_name`` (its key in ``dock_widgets``).

    Parameters
    ----------
    display_name : str
        The widget's display name, e.g. ``ANNOTATE_WIDGET``.

    Returns
    -------
    str
        E.g. "Annotate map (napari-tsimcne)".
    """
    return f"{display_name} ({PLUGIN_NAME})"


def dock_of(window, display_name: str, shown: bool = True) -> QDockWidget | None:
    """The dock in napari's main window that holds this plugin's widget ``display_name``.

    Parameters
    ----------
    window : napari.window.Window or None
        The viewer's window.
    display_name : str
        The widget's display name, e.g. ``TRAIN_WIDGET``.
    shown : bool
        Only a dock beside the canvas and in view; False also finds one behind another tab,
        floating or hidden.

    Returns
    -------
    QDockWidget or None
        The dock; None when the widget is not open (or, with ``shown``, floating or hidden).
    """
    widget = getattr(window, "dock_widgets", {}).get(dock_name(display_name))
    dock = None if widget is None else widget.parent()
    if not isinstance(dock, QDockWidget):
        return None
    if shown and (dock.isFloating() or not dock.isVisible()):
        return None
    return dock


def keep_height(upper: QDockWidget, lower: QDockWidget, height: int | Callable[[], int]) -> None:
    """Give ``upper`` (above ``lower`` in the same column of docks) ``height`` pixels, ``lower`` the rest.

    Done on the next turn of the event loop, once a dock just added has its place.

    Parameters
    ----------
    upper, lower : QDockWidget
        Two docks, one above the other.
    height : int or callable
        The height ``upper`` should keep (Qt leaves ``lower`` at least its minimum height), or a
        function that tells it then (the docks' widths may still change until then).
    """

    def wanted() -> int:
        return height() if callable(height) else height

    def resize(tries: int = 6) -> None:
        try:
            main = upper.parent()
            if main is None or not hasattr(main, "resizeDocks") or lower.parent() is not main:
                return
            total = upper.height() + lower.height()
            want = wanted()
            keep = max(1, min(want, total - 1))
            main.resizeDocks([upper, lower], [keep, total - keep], Qt.Orientation.Vertical)
        except RuntimeError:  # a dock was closed (deleted) in the meantime
            return
        if tries > 1:
            # a dock just added may not have its full height yet (a busy machine lays out late),
            # and a shorter dock may show a scroll bar and re-wrap its texts taller: look again
            QTimer.singleShot(100, lambda: again(want, tries - 1))

    def again(asked: int, tries: int) -> None:
        try:
            want = wanted()
            room = upper.height() + lower.height() - 1
            short = upper.height() < min(want, room) - 2  # Qt gave it less than it can have
        except RuntimeError:  # the dock was closed (deleted) in the meantime
            return
        if want != asked or short:
            resize(tries)

    QTimer.singleShot(0, resize)
