"""Cluster proposals with HDBSCAN: fast-hdbscan when installed, scikit-learn's otherwise."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_tsimcne.plugin import annotations as ann


def _blobs() -> np.ndarray:
    """Three separated blobs of 60 points each, then three isolated points."""
    rng = np.random.default_rng(3)
    blobs = [rng.normal(scale=0.5, size=(60, 2)) + c for c in ((0, 0), (15, 0), (0, 15))]
    far = np.array([[40.0, 40.0], [-30.0, 25.0], [30.0, -30.0]])
    return np.vstack(blobs + [far])


def _check_blobs(labels: np.ndarray) -> None:
    assert labels.shape == (183,) and np.issubdtype(labels.dtype, np.integer)
    groups = [set(labels[i * 60 : (i + 1) * 60]) for i in range(3)]
    assert all(len(g) == 1 and -1 not in g for g in groups)  # each blob is one cluster ...
    assert len(set.union(*groups)) == 3  # ... of its own
    assert (labels[-3:] == -1).all()  # isolated points are noise


@pytest.mark.parametrize("implementation", ["sklearn", "fast_hdbscan", "auto"])
def test_each_implementation_finds_blobs_and_noise(implementation):
    if implementation == "fast_hdbscan":
        pytest.importorskip("fast_hdbscan", reason="fast-hdbscan is not installed")
    _check_blobs(ann.propose_hdbscan(_blobs(), min_cluster_size=10, implementation=implementation))


def test_auto_takes_fast_hdbscan_on_large_maps(monkeypatch):
    fast = pytest.importorskip("fast_hdbscan", reason="fast-hdbscan is not installed")
    used = []

    class Spy(fast.HDBSCAN):
        def fit_predict(self, X, y=None):
            used.append(len(X))
            return super().fit_predict(X)

    monkeypatch.setattr(fast, "HDBSCAN", Spy)
    monkeypatch.setattr(ann, "FAST_HDBSCAN_MIN_POINTS", 100)
    _check_blobs(ann.propose_hdbscan(_blobs(), min_cluster_size=10))
    assert used == [183]
    monkeypatch.setattr(ann, "FAST_HDBSCAN_MIN_POINTS", 1000)  # a small map stays with scikit-learn
    _check_blobs(ann.propose_hdbscan(_blobs(), min_cluster_size=10))
    assert used == [183]


def test_falls_back_to_sklearn_without_fast_hdbscan(monkeypatch):
    monkeypatch.setitem(sys.modules, "fast_hdbscan", None)  # makes `import fast_hdbscan` fail
    monkeypatch.setattr(ann, "FAST_HDBSCAN_MIN_POINTS", 2)
    _check_blobs(ann.propose_hdbscan(_blobs(), min_cluster_size=10))
    with pytest.raises(ImportError, match="pip install fast-hdbscan"):
        ann.propose_hdbscan(_blobs(), min_cluster_size=10, implementation="fast_hdbscan")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="minimum cluster size"):
        ann.propose_hdbscan(np.zeros((5, 2)), min_cluster_size=10)
    with pytest.raises(ValueError, match="implementation must be"):
        ann.propose_hdbscan(_blobs(), min_cluster_size=10, implementation="hdbscan")
