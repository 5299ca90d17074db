"""Maps of quantitative fluorescence: do they keep what a user measures?

On the synthetic cells of ``synthetic_cells.py`` (three uint16 channels; DNA content orders
G1 -> S -> G2 -> mitosis; a morphology-only class that intensities cannot separate), this runs in
one process, on the same stack:

* PCA of the pixels (2 components), each channel scaled to its own range as the network sees it,
  and of the raw values (one scale for all channels); the first 50 components (a reference, not
  a map),
  t-SNE (openTSNE) and UMAP of the 50 components, and the per-channel integrated intensity
  (one number per channel): what a user would run instead;
* ours, once per ``--method`` (presets and settings named in ``METHODS``), for fixed epochs.

Each map is scored by

* ``knn15``: the papers' protocol (15-NN, stratified 90/10 split, seed 0), in percent;
* ``recall``: per-class recall of the rare classes, from 10-fold cross-validated 15-NN
  predictions on all cells;
* ``dna_spearman_knn``: Spearman correlation between the true DNA content and its 15-NN
  regression from the map (cross-validated): whether neighbours on the map have similar DNA
  content, for a straight or a curved order alike;
* ``dna_spearman_linear``: Spearman correlation between the DNA content and the best straight
  direction through the map (least squares on the ranks).

Prints one JSON line per map; ``--out`` appends them to a file under benchmarks/results/.
Example::

    python benchmarks/bench_quantitative.py --n 4000 --epochs 15 1 5 \
        --method microscopy fluorescence quantitative --out benchmarks/results/quantitative-cpu-2core.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import emit
from bench_cpu import machine
from synthetic_cells import CLASSES, RARE, make_cells

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and (ROOT / "src").is_dir():
    sys.path.insert(0, str(ROOT / "src"))

from napari_tsimcne import TSimCNE, __version__, knn_accuracy  # noqa: E402
from napari_tsimcne.core.augment import AugmentationSettings  # noqa: E402
from napari_tsimcne.core.normalization import ChannelNormalization  # noqa: E402

# no change of brightness, contrast or colour: what the old fluorescence preset and the
# quantitative one share
_NO_INTENSITY_CHANGE = {
    "jitter_p": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,
    "grayscale_p": 0.0,
}

# ours: the keyword arguments of TSimCNE for each method benchmarked
METHODS: dict[str, dict] = {
    "auto": {"augmentations": "auto"},
    "microscopy": {"augmentations": "microscopy"},
    "quantitative": {"augmentations": "quantitative"},
    # the "fluorescence" preset before the quantitative one replaced it: no intensity jitter,
    # a 5 % gain per channel, the microscopy crops
    "old-fluorescence": {"augmentations": {**_NO_INTENSITY_CHANGE, "channel_gain": 0.05}},
    # the quantitative preset's parts on their own
    "quantitative, no neighbours": {
        "augmentations": AugmentationSettings.preset("quantitative", neighbor_views=0.0)
    },
    "microscopy + neighbours": {"augmentations": {"neighbor_views": 1.0}},
}


BASELINES = ["pca2", "pca2_raw", "pca50", "intensity", "tsne", "umap"]


def pixels(images: np.ndarray) -> np.ndarray:
    """Each channel scaled by the stack's own percentiles (as the network sees it), flattened."""
    norm = ChannelNormalization.fit(images)
    lo, hi = np.asarray(norm.low), np.asarray(norm.high)
    x = np.clip((images.astype(np.float32) - lo) / (hi - lo), 0, 1)
    return x.reshape(len(x), -1)


def scores(y: np.ndarray, labels: np.ndarray, dna: np.ndarray) -> dict:
    """15-NN accuracy, rare-class recall and DNA-order correlations of the map ``y``."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    folds = list(StratifiedKFold(10, shuffle=True, random_state=0).split(y, labels))
    pred = cross_val_predict(KNeighborsClassifier(15), y, labels, cv=folds)
    recall = {
        name: round(100.0 * float(np.mean(pred[labels == k] == k)), 1)
        for k, name in enumerate(CLASSES)
        if name in RARE
    }
    dna_knn = cross_val_predict(KNeighborsRegressor(15), y, dna, cv=folds)
    ranks = np.argsort(np.argsort(dna))
    linear = LinearRegression().fit(y, ranks).predict(y)
    return {
        "knn15": round(knn_accuracy(y, labels), 2),
        "recall": recall,
        "dna_spearman_knn": round(float(spearmanr(dna_knn, dna)[0]), 3),
        "dna_spearman_linear": round(float(spearmanr(linear, dna)[0]), 3),
    }


def _timed(fn):
    t0 = time.perf_counter()
    y = fn()
    return y, round(time.perf_counter() - t0, 1)


def baselines(images: np.ndarray, which: list[str]) -> dict[str, tuple[np.ndarray, float]]:
    """Maps a user would make without us, each with its wall time in seconds."""
    from sklearn.decomposition import PCA

    x = pixels(images)
    out: dict[str, tuple[np.ndarray, float]] = {}
    pca50, t50 = _timed(lambda: PCA(50, random_state=0).fit_transform(x))
    if "pca2" in which:
        out["pca2"] = _timed(lambda: PCA(2, random_state=0).fit_transform(x))
    if "pca2_raw" in which:  # the raw values, one scale for all channels
        raw = images.reshape(len(images), -1).astype(np.float32)
        out["pca2_raw"] = _timed(lambda: PCA(2, random_state=0).fit_transform(raw))
    if "pca50" in which:
        out["pca50"] = (pca50, t50)
    if "intensity" in which:
        out["intensity"] = _timed(lambda: (images.astype(np.float64) - images.min()).sum((1, 2)))
    if "tsne" in which:
        from openTSNE import TSNE

        y, t = _timed(lambda: np.asarray(TSNE(n_jobs=os.cpu_count(), random_state=0).fit(pca50)))
        out["tsne"] = (y, round(t + t50, 1))
    if "umap" in which:
        import umap

        y, t = _timed(lambda: umap.UMAP(random_state=0).fit_transform(pca50))
        out["umap"] = (y, round(t + t50, 1))
    return out


def run_ours(
    images: np.ndarray, method: str, epochs, seed: int, width: int
) -> tuple[np.ndarray, float, TSimCNE]:
    kwargs = dict(METHODS[method])
    model = TSimCNE(
        total_epochs=tuple(epochs),
        random_state=seed,
        preview_every=0,
        device="cpu",
        width=width,
        **kwargs,
    )
    y, seconds = _timed(lambda: model.fit_transform(images))
    return y, seconds, model


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=4000, help="cells in the synthetic stack")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seed", type=int, nargs="*", default=[0], help="training seeds")
    p.add_argument("--epochs", type=int, nargs=3, default=(15, 1, 5))
    p.add_argument("--width", type=int, default=16)
    p.add_argument(
        "--method", nargs="*", default=["microscopy", "quantitative"], choices=list(METHODS)
    )
    p.add_argument(
        "--baseline",
        nargs="*",
        default=BASELINES,
        choices=BASELINES,
    )
    p.add_argument("--out", help="append the JSON lines to this .jsonl file")
    p.add_argument("--save-maps", help="a folder to save every map (.npy) and the ground truth in")
    args = p.parse_args(argv)

    cells = make_cells(args.n, args.size, args.data_seed)
    common = {
        "data": f"synthetic_cells n={args.n} size={args.size} seed={args.data_seed}",
        "version": __version__,
        "cores": os.cpu_count(),
        "machine": machine(),
    }
    results = []
    if args.save_maps:
        Path(args.save_maps).mkdir(parents=True, exist_ok=True)
        np.savez(Path(args.save_maps) / "truth.npz", labels=cells.labels, dna=cells.dna)
    for name, (y, seconds) in baselines(cells.images, args.baseline).items():
        if args.save_maps:
            np.save(Path(args.save_maps) / f"{name}.npy", y)
        results.append(
            emit(
                {
                    **common,
                    "map": name,
                    "wall_seconds": seconds,
                    **scores(y, cells.labels, cells.dna),
                },
                args.out,
            )
        )
    for method in args.method:
        for seed in args.seed:
            y, seconds, model = run_ours(cells.images, method, args.epochs, seed, args.width)
            settings = {
                "epochs": list(args.epochs),
                "width": args.width,
                "backbone": model.backbone_,
                "batch_size": model.batch_size_,
                "seed": seed,
                "preset": model.preset_,
                "augmentations": model.augmentations_.to_dict(),
            }
            results.append(
                emit(
                    {
                        **common,
                        "map": f"ours, {method}",
                        "settings": settings,
                        "wall_seconds": seconds,
                        **scores(y, cells.labels, cells.dna),
                    },
                    args.out,
                )
            )
            if args.save_maps:
                np.save(Path(args.save_maps) / f"ours_{method}_seed{seed}.npy", y)
    return results


if __name__ == "__main__":
    main()
