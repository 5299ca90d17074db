"""Do artefacts get a high outlier score? AUROC of the map's outlier scores on blood cells with planted artefacts.

Trains t-SimCNE on PBC tiles (``--data``, a labelled .npz) plus four kinds of planted artefacts, 20 tiles each
(by default): uniform noise, near-blank background, histology tiles (another tissue, from scikit-image's
bundled image) and out-of-focus cells (Gaussian blur, sigma 2). Then scores every tile with

* ``outlier (plugin)``: what the map layer's ``outlier`` column holds (kNN distance in the map, k = 2 % of the
  tiles, 10 to 50), and the same with a fixed k (10, 25, 50, 100);
* the distance from the map's centre, and the norm of the backbone features,

and prints one JSON line with the AUROC (1 = every artefact above every cell, 0.5 = chance) over all
artefacts and per kind. CPU default: about 4 minutes on 2 cores.

    python benchmarks/bench_outliers.py --out benchmarks/results/outliers-cpu-2core.jsonl
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import emit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from napari_tsimcne import TSimCNE, __version__  # noqa: E402
from napari_tsimcne.core.sample import PBC_FILE, find_data_file, load_histology  # noqa: E402
from napari_tsimcne.plugin.map_layer import outlier_neighbours, outlier_scores  # noqa: E402


def planted_artefacts(cells: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` artefact tiles of each kind, shaped like ``cells`` (N, H, W, 3) uint8."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = (n, *cells.shape[1:])
    histology = load_histology().tiles
    h, w = cells.shape[1:3]
    blur_src = cells[rng.choice(len(cells), n, replace=False)].astype(float)
    return {
        "noise": rng.integers(0, 256, shape, dtype=np.uint8),
        "blank": np.clip(rng.normal(225, 4, shape), 0, 255).astype(np.uint8),
        "histology": histology[rng.choice(len(histology), n, replace=False), :h, :w, :3],
        "blur": np.clip(gaussian_filter(blur_src, sigma=(0, 2, 2, 0)), 0, 255).astype(np.uint8),
    }


def auroc(is_artefact: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(is_artefact, score)), 3)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        default=None,
        help=f"labelled .npz (default: {PBC_FILE} in the shared data folder)",
    )
    p.add_argument("--n-cells", type=int, default=2000)
    p.add_argument("--n-artefacts", type=int, default=20, help="per kind")
    p.add_argument("--epochs", type=int, nargs=3, default=[15, 2, 4])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    path = Path(args.data) if args.data else find_data_file(PBC_FILE)
    if path is None or not path.is_file():
        sys.exit(
            f"{path} not found: pass --data with a labelled .npz of RGB tiles (e.g. pbc28.npz)."
        )
    with np.load(path) as f:
        images = f["images"]
    rng = np.random.default_rng(args.seed)
    cells = images[np.sort(rng.choice(len(images), args.n_cells, replace=False))]
    artefacts = planted_artefacts(cells, args.n_artefacts, args.seed)
    tiles = np.concatenate([cells, *artefacts.values()])
    is_artefact = np.r_[np.zeros(len(cells)), np.ones(len(tiles) - len(cells))]

    model = TSimCNE(
        total_epochs=tuple(args.epochs),
        batch_size=args.batch_size,
        width=args.width,
        device=args.device,
        random_state=args.seed,
        preview_every=0,
    )
    t0 = time.perf_counter()
    model.fit(tiles)
    fit_s = time.perf_counter() - t0
    y, feats = model.transform(tiles, return_features=True)

    scores = {"outlier (plugin)": outlier_scores(y)}
    for k in (10, 25, 50, 100):
        scores[f"knn map k={k}"] = outlier_scores(y, k=k)
    centred = (y - np.median(y, 0)) / y.std(0)
    scores["distance from map centre"] = np.linalg.norm(centred, axis=1)
    scores["backbone feature norm"] = np.linalg.norm(feats, axis=1)

    table = {}
    for name, score in scores.items():
        row = {"all": auroc(is_artefact, score)}
        start = len(cells)
        for kind, block in artefacts.items():
            keep = np.r_[np.arange(len(cells)), np.arange(start, start + len(block))]
            row[kind] = auroc(is_artefact[keep], score[keep])
            start += len(block)
        table[name] = row
    for name, row in table.items():
        print(f"{name:26s} " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()), file=sys.stderr)
    result = {
        "benchmark": "outliers",
        "package": f"napari-tsimcne {__version__}",
        "data": path.name,
        "n_cells": len(cells),
        "n_artefacts_per_kind": args.n_artefacts,
        "kinds": list(artefacts),
        "plugin_k": outlier_neighbours(len(tiles)),
        "auroc": table,
        "settings": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "width": args.width,
            "seed": args.seed,
            "device": str(model.device_),
        },
        "fit_seconds": round(fit_s, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return emit(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
