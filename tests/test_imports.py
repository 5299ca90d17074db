"""Cheap imports: the package, the napari manifest, the reader and ``--help`` skip PyTorch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

NO_TORCH = (
    "import sys; assert 'torch' not in sys.modules, "
    "sorted(m for m in sys.modules if m.startswith('torch'))"
)


def _run(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter and return the finished process.

    Parameters
    ----------
    code : str
        Python source for ``python -c``.

    Returns
    -------
    subprocess.CompletedProcess
        The process, with its output captured as text.
    """
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "statement",
    [
        "import napari_tsimcne",
        "import napari_tsimcne.core",
        "import napari_tsimcne.plugin.reader",
        "from napari_tsimcne import __version__",
    ],
)
def test_import_does_not_import_torch(statement):
    result = _run(f"{statement}\n{NO_TORCH}")
    assert result.returncode == 0, result.stderr


def test_manifest_does_not_import_torch():
    if importlib.util.find_spec("npe2") is None:
        pytest.skip("npe2 is not installed")
    result = _run(
        "from npe2 import PluginManifest\n"
        "manifest = PluginManifest.from_distribution('napari-tsimcne')\n"
        "assert manifest.contributions.readers\n" + NO_TORCH
    )
    assert result.returncode == 0, result.stderr


def test_cli_help_does_not_import_torch():
    result = _run(
        "from napari_tsimcne.cli import main\n"
        "assert main(['--help']) == 0\n"
        "assert main(['fit', '--help']) == 0\n" + NO_TORCH
    )
    assert result.returncode == 0, result.stderr
    assert "napari-tsimcne" in result.stdout


def test_public_names_still_importable():
    import napari_tsimcne

    for name in napari_tsimcne.__all__:
        assert getattr(napari_tsimcne, name) is not None
    assert set(napari_tsimcne.__all__) <= set(dir(napari_tsimcne))
    from napari_tsimcne import TSimCNE
    from napari_tsimcne.core import TSimCNE as CoreTSimCNE

    assert TSimCNE is CoreTSimCNE
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        napari_tsimcne.nonexistent  # noqa: B018
