"""Packaging: one version, a license file, a citation, no Qt binding forced on users."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

import napari_tsimcne

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_home():
    project = PYPROJECT["project"]
    assert "version" in project["dynamic"] and "version" not in project
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "src/napari_tsimcne/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+(\w+\d*)?", napari_tsimcne.__version__)
    try:
        installed = version("napari-tsimcne")
    except PackageNotFoundError:
        pytest.skip("napari-tsimcne is not installed, only importable")
    assert installed == napari_tsimcne.__version__


def test_license_file_matches_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "napari-tsimcne developers" in text
    assert PYPROJECT["project"]["license"] == {"text": "BSD-3-Clause"}
    assert "License :: OSI Approved :: BSD License" in PYPROJECT["project"]["classifiers"]


def test_citation_cites_the_t_simcne_papers():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "BSD-3-Clause"
    titles = [cff["preferred-citation"]["title"]] + [r["title"] for r in cff["references"]]
    assert "Unsupervised visualization of image datasets using contrastive learning" in titles
    assert "Self-supervised visualisation of medical image datasets" in titles
    assert "version" not in cff  # the version lives in __init__.py only


def test_napari_extra_leaves_the_qt_binding_to_the_user():
    extras = PYPROJECT["project"]["optional-dependencies"]
    qt_bindings = ("pyqt5", "pyqt6", "pyside2", "pyside6")
    assert not [r for r in extras["napari"] if r.lower().startswith(qt_bindings)]
    assert any(r.lower().startswith("pyqt6") for r in extras["pyqt6"])
    assert set(PYPROJECT["project"]["urls"]) >= {"Homepage", "Documentation", "Source", "Issues"}
