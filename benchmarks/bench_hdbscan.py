"""HDBSCAN cluster proposals on 100,000 map points: fast-hdbscan against scikit-learn's.

Two point sets of ``--n-points`` 2-D points:

* ``pbc-pca2``: real tiles. The 17,092 blood-cell tiles of ``pbc28.npz`` under the eight
  rotations and flips of the square (136,736 distinct tiles), a random ``--n-points`` of them,
  projected onto the first two principal components of their pixels (PCA fitted on 20,000 of
  them). Skipped when the file is absent.
* ``gaussian-mixture``: a map-like layout of 40 islands of different sizes and spreads, plus 2 %
  of the points spread uniformly between them.

For each it times fast-hdbscan (its first call in this process, which loads or compiles numba's
code, and a second call) and scikit-learn's ``HDBSCAN``, both with ``min_cluster_size`` 20 (the
widget's default), and compares the labels with the adjusted Rand index (noise counted as one more
label). Then, on smaller mixtures (``--sizes``), where the two cross over, which sets the map size
from which the plugin prefers fast-hdbscan; and fast-hdbscan's cost on first use after installing
(a fresh process with an empty numba cache, where numba compiles its code). It prints one JSON
object and writes it with ``--out``. About 7 minutes on 2 cores::

    python benchmarks/bench_hdbscan.py --out benchmarks/results/hdbscan-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_tsimcne.core.sample import PBC_FILE, find_data_file  # noqa: E402


def pbc_pca2(n_points: int, seed: int = 0) -> np.ndarray | None:
    """PCA-2 of the pixels of ``n_points`` rotated or flipped PBC tiles (None without the file).

    Parameters
    ----------
    n_points : int
        How many points to return (at most 8 x 17,092).
    seed : int, default 0
        Seed of the random choice of tiles and of the PCA.

    Returns
    -------
    numpy.ndarray or None
        Shape (n_points, 2), float64.
    """
    path = find_data_file(PBC_FILE)
    if path is None:
        return None
    from sklearn.decomposition import PCA

    images = np.load(path)["images"]  # (N, 28, 28, 3) uint8
    n = len(images)
    rng = np.random.default_rng(seed)
    pick = rng.choice(8 * n, size=min(n_points, 8 * n), replace=False)
    which, tile = np.divmod(pick, n)  # which of the eight symmetries, which tile

    def pixels(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), images[0].size), dtype=np.float32)
        for j, (w, t) in enumerate(zip(which[rows], tile[rows], strict=True)):
            img = np.rot90(images[t], k=int(w) % 4)
            out[j] = (img[:, ::-1] if w >= 4 else img).ravel()
        return out

    pca = PCA(n_components=2, random_state=seed).fit(pixels(np.arange(min(20_000, len(pick)))))
    starts = range(0, len(pick), 10_000)
    chunks = [pca.transform(pixels(np.arange(i, min(i + 10_000, len(pick))))) for i in starts]
    return np.vstack(chunks).astype(np.float64)


def gaussian_mixture(n_points: int, seed: int = 0) -> np.ndarray:
    """A map-like layout: 40 islands of different sizes and spreads, and 2 % background points.

    Parameters
    ----------
    n_points : int
        How many points to return.
    seed : int, default 0
        Seed of the layout.

    Returns
    -------
    numpy.ndarray
        Shape (n_points, 2), float64.
    """
    rng = np.random.default_rng(seed)
    n_islands, n_background = 40, n_points // 50
    centres = rng.uniform(-50, 50, size=(n_islands, 2))
    weights = rng.dirichlet(np.full(n_islands, 2.0))
    spreads = rng.uniform(0.5, 3.0, size=n_islands)
    island = rng.choice(n_islands, size=n_points - n_background, p=weights)
    points = centres[island] + rng.normal(size=(len(island), 2)) * spreads[island, None]
    background = rng.uniform(-60, 60, size=(n_background, 2))
    return rng.permutation(np.vstack([points, background]))


def summary(labels: np.ndarray) -> dict:
    """Number of clusters and fraction of noise points of one labelling.

    Parameters
    ----------
    labels : numpy.ndarray
        Cluster labels, -1 for noise.

    Returns
    -------
    dict
        ``n_clusters`` and ``noise_fraction``.
    """
    return {
        "n_clusters": int(len(set(labels.tolist()) - {-1})),
        "noise_fraction": round(float(np.mean(labels == -1)), 4),
    }


def compare(points: np.ndarray, min_cluster_size: int) -> dict:
    """Time both implementations on ``points`` and compare their labels.

    Parameters
    ----------
    points : numpy.ndarray
        Shape (n_points, 2).
    min_cluster_size : int
        HDBSCAN's smallest cluster.

    Returns
    -------
    dict
        Seconds of each run, the adjusted Rand index, and each labelling's :func:`summary`.
    """
    from fast_hdbscan import HDBSCAN as FastHDBSCAN
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import adjusted_rand_score

    t0 = time.perf_counter()
    fast_first = FastHDBSCAN(min_cluster_size=min_cluster_size).fit_predict(points)
    t1 = time.perf_counter()
    fast = FastHDBSCAN(min_cluster_size=min_cluster_size).fit_predict(points)
    t2 = time.perf_counter()
    print(
        f"  fast-hdbscan: {t1 - t0:.1f} s (first call), {t2 - t1:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    sk = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(points)
    t3 = time.perf_counter()
    print(f"  scikit-learn: {t3 - t2:.1f} s", file=sys.stderr, flush=True)
    ari = adjusted_rand_score(sk, fast)
    both = (sk >= 0) & (fast >= 0)
    return {
        "n_points": len(points),
        "fast_hdbscan_first_call_s": round(t1 - t0, 2),
        "fast_hdbscan_s": round(t2 - t1, 2),
        "sklearn_s": round(t3 - t2, 2),
        "speedup": round((t3 - t2) / max(t2 - t1, 1e-9), 1),
        "adjusted_rand_index": round(float(ari), 4),
        "adjusted_rand_index_clustered_by_both": round(
            float(adjusted_rand_score(sk[both], fast[both])), 4
        ),
        "first_call_same_labels": bool(np.array_equal(fast_first, fast)),
        "fast_hdbscan": summary(fast),
        "sklearn": summary(sk),
    }


def first_use_s(n_points: int = 2000) -> float:
    """Seconds for a fresh process to import fast-hdbscan and cluster ``n_points`` with no numba cache.

    Parameters
    ----------
    n_points : int, default 2000
        Size of the small mixture clustered.

    Returns
    -------
    float
        Wall-clock seconds of the whole process, numba's compilation included.
    """
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from bench_hdbscan import gaussian_mixture\n"
        "from fast_hdbscan import HDBSCAN\n"
        f"HDBSCAN(min_cluster_size=20).fit_predict(gaussian_mixture({n_points}))"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent)], env=env, check=True
        )
        return time.perf_counter() - t0


def sweep(sizes: list[int], min_cluster_size: int) -> list[dict]:
    """Seconds of both implementations on mixtures of each size (fast-hdbscan already compiled).

    Parameters
    ----------
    sizes : list of int
        Numbers of points.
    min_cluster_size : int
        HDBSCAN's smallest cluster.

    Returns
    -------
    list of dict
        ``n_points``, ``fast_hdbscan_s`` and ``sklearn_s`` per size.
    """
    from fast_hdbscan import HDBSCAN as FastHDBSCAN
    from sklearn.cluster import HDBSCAN

    rows = []
    for n in sizes:
        points = gaussian_mixture(n)
        t0 = time.perf_counter()
        FastHDBSCAN(min_cluster_size=min_cluster_size).fit_predict(points)
        t1 = time.perf_counter()
        HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit_predict(points)
        t2 = time.perf_counter()
        rows.append(
            {"n_points": n, "fast_hdbscan_s": round(t1 - t0, 2), "sklearn_s": round(t2 - t1, 2)}
        )
        print(
            f"  {n:,} points: fast-hdbscan {t1 - t0:.2f} s, scikit-learn {t2 - t1:.2f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison on both point sets; print the result as JSON and write it with ``--out``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        ``machine``, ``versions``, ``import_fast_hdbscan_s``, one entry per point set,
        ``crossover`` and ``fast_hdbscan_first_use_s``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-points", type=int, default=100_000, help="points per set (default: %(default)s)"
    )
    parser.add_argument("--min-cluster-size", type=int, default=20, help="(default: %(default)s)")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[5_000, 10_000, 20_000, 50_000],
        help="mixture sizes for the crossover (default: %(default)s)",
    )
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import fast_hdbscan  # noqa: F401 - timed: numba comes with it

    import_s = time.perf_counter() - t0
    from importlib.metadata import version

    import sklearn

    result: dict = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_1min_start": round(os.getloadavg()[0], 2),
        },
        "versions": {
            "fast-hdbscan": version("fast-hdbscan"),
            "numba": version("numba"),
            "scikit-learn": sklearn.__version__,
        },
        "min_cluster_size": args.min_cluster_size,
        "import_fast_hdbscan_s": round(import_s, 2),
    }
    sets = {"gaussian-mixture": gaussian_mixture(args.n_points)}
    pbc = pbc_pca2(args.n_points)
    if pbc is None:
        print(f"{PBC_FILE} not found: the real-tile point set is skipped", file=sys.stderr)
    else:
        sets = {"pbc-pca2": pbc, **sets}
    for name, points in sets.items():
        print(f"{name}: {len(points):,} points", file=sys.stderr, flush=True)
        result[name] = compare(points, args.min_cluster_size)
    print("crossover (gaussian mixtures):", file=sys.stderr, flush=True)
    result["crossover"] = sweep(args.sizes, args.min_cluster_size)
    result["fast_hdbscan_first_use_s"] = round(first_use_s(), 1)
    print(f"first use: {result['fast_hdbscan_first_use_s']} s", file=sys.stderr, flush=True)
    result["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
