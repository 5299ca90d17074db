"""The documentation site builds without warnings, with an API reference generated from the docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip(
        "mkdocs", reason="mkdocs is not installed; the documentation build is not checked"
    )
    pytest.importorskip(
        "mkdocstrings", reason="mkdocstrings is not installed (the testing extra installs it)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "cli" / "index.html").is_file()
    # the API reference is generated from the code, not copied by hand
    api = (tmp_path / "api" / "index.html").read_text()
    assert 'id="napari_tsimcne.TSimCNE"' in api and "total_epochs" in api
    assert 'id="napari_tsimcne.plugin.training_session.TrainingSession"' in api
    assert (tmp_path / "architecture" / "index.html").is_file()
