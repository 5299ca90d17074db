"""The legend of the map's colours: many short names in two columns, long names in one."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QLabel

from napari_tsimcne.plugin.legend_widget import LegendView, legend_columns

pytestmark = pytest.mark.gui

CELLS = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil"]


def _legend(qtbot, names):
    view = LegendView()
    qtbot.addWidget(view)
    view.resize(380, 400)
    entries = [(name, "#ff7f0e", 100 + i) for i, name in enumerate(names)]
    view.set_legend({"column": "label", "kind": "categories", "entries": entries})
    view.show()
    qtbot.wait(20)
    return view


def _name_labels(view, names):
    return {l.text(): l for l in view.findChildren(QLabel) if l.text() in names and l.isVisible()}


def test_many_short_names_take_two_columns_half_as_tall(qtbot):
    names = [*CELLS, "platelet"]
    assert legend_columns(names) == 2 and legend_columns(names[:6]) == 1
    two = _legend(qtbot, names)
    labels = _name_labels(two, names)
    assert len(labels) == 8  # every class is listed
    # down the first column, then the second
    assert labels["ig"].x() == labels["basophil"].x() < labels["lymphocyte"].x()
    assert labels["lymphocyte"].y() == labels["basophil"].y()
    one = _legend(qtbot, [f"{n} from the second slide" for n in names])  # long names: one column
    assert two.sizeHint().height() < 0.7 * one.sizeHint().height()


def test_a_long_name_is_shortened_not_widening_the_dock(qtbot):
    name = "CD4-positive T helper lymphocyte (activated, cluster 3)"
    view = _legend(qtbot, ["debris", name])
    shown = [l for l in view.findChildren(QLabel) if l.toolTip().startswith(name)]
    assert len(shown) == 1 and shown[0].text().endswith("…") and len(shown[0].text()) <= 28
    short = _legend(qtbot, ["debris", "cell"])
    assert view.minimumSizeHint().width() < short.minimumSizeHint().width() + 200
