"""A small live plot of the training loss for the *Train map* dock, with the three stages marked."""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from .loss_curve import loss_curves, stage_starts
from .training_session import LossPoint

STAGE_NAMES = {1: "learn", 2: "to 2D", 3: "fine-tune"}
STAGE_COLORS = {1: "#5aa9e6", 2: "#f4a259", 3: "#8cc084"}


class LossPlot(QWidget):
    """The mean loss of every epoch so far, one colour per stage, the planned end at the right edge.

    The loss of pre-training (in 128 dimensions) and of the map (in 2D) are on different scales, so
    pre-training and the map (stages 2 and 3) are scaled on their own: the curve shows whether
    training still improves, not how the stages compare.

    Parameters
    ----------
    parent : QWidget, optional
        The Qt parent.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[LossPoint] = []
        self.total_epochs = 0
        self.setMinimumHeight(70)
        self.setMaximumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "The training loss of every epoch: it falls while the network learns. Each stage "
            "(learn, to 2D, fine-tune) has its own colour and scale. A curve that has flattened "
            "means more epochs of that stage would change little."
        )

    def set_history(self, points: list[LossPoint], total_epochs: int) -> None:
        """Show ``points`` on an axis of ``total_epochs`` epochs and repaint.

        Parameters
        ----------
        points : list of LossPoint
            The loss of every epoch so far.
        total_epochs : int
            The planned number of epochs (at least the last epoch shown).
        """
        self.points = list(points)
        self.total_epochs = max(int(total_epochs), self.points[-1].epoch if self.points else 0)
        self.update()

    def clear(self) -> None:
        """Forget the curve (a new run starts)."""
        self.set_history([], 0)

    def polylines(self, rect: QRectF) -> dict[int, list[QPointF]]:
        """The curve of each stage in widget coordinates inside ``rect`` (see ``.loss_curve.loss_curves``).

        Parameters
        ----------
        rect : QRectF
            The plot's area in the widget.

        Returns
        -------
        dict
            {stage: [QPointF, ...]}.
        """
        return {
            stage: [
                QPointF(rect.left() + rect.width() * x, rect.bottom() - rect.height() * y)
                for x, y in curve
            ]
            for stage, curve in loss_curves(self.points, self.total_epochs).items()
        }

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Draw the stage boundaries, the curves and the latest loss.

        Parameters
        ----------
        event : QPaintEvent
            Qt's paint event.
        """
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(4, 14, -4, -4)
        text = self.palette().text().color()
        faint = QColor(text)
        faint.setAlpha(90)
        painter.setPen(QPen(faint, 1))
        painter.drawRect(rect)
        if not self.points:
            painter.setPen(text)
            painter.drawText(
                rect, Qt.AlignmentFlag.AlignCenter, "The loss appears here after the first epoch."
            )
            return
        n = max(1, self.total_epochs)
        # stage boundaries: where the next stage begins
        starts = stage_starts(self.points)
        painter.setPen(QPen(faint, 1, Qt.PenStyle.DashLine))
        for first in starts.values():
            if first > 1:
                x = rect.left() + rect.width() * (first - 1) / n
                painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        for stage, line in self.polylines(rect).items():
            color = QColor(STAGE_COLORS.get(stage, "#cccccc"))
            painter.setPen(QPen(color, 2))
            if len(line) == 1:
                painter.drawEllipse(line[0], 2.0, 2.0)
            else:
                painter.drawPolyline(QPolygonF(line))
        last = self.points[-1]
        painter.setPen(text)
        painter.drawText(
            QRectF(self.rect()).adjusted(4, 0, -4, 0),
            Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft,
            f"loss {last.loss:.3f} ({STAGE_NAMES.get(last.stage, last.stage)}), "
            f"epoch {last.epoch} of {n}",
        )
        painter.end()
