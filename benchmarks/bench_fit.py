"""Train t-SimCNE on a labelled .npz tile file with a given budget and print one JSON line of figures.

Example (GPU, full PBC set, the reference's short budget)::

    python benchmarks/bench_fit.py --data ../shared/data/pbc28.npz --epochs 40 4 16 --batch-size 1024

Figures: seconds per epoch in each stage, views per second, fit time, 15-NN
accuracy (stratified 90/10 split, seed 0) of the 2D map, of the 128-D
pre-training output and of the backbone features, and embedding (transform)
throughput. ``--out`` also appends the line to a file under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_tsimcne import TSimCNE, __version__, knn_accuracy
from napari_tsimcne.core.device import device_name, resolve_device


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/pbc28.npz", help="npz with 'images' and 'labels' (default: %(default)s)")
    p.add_argument("--subset", type=int, default=None, help="use a random subset of this many tiles (seed 0)")
    p.add_argument("--epochs", type=int, nargs=3, default=[40, 4, 16], metavar=("E1", "E2", "E3"))
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--augmentations", default="microscopy")
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--init-2d", default="pca", choices=["pca", "random"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default=None, help="append the JSON line to this file")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with np.load(args.data) as d:
        tiles, labels = d["images"], d["labels"]
    if args.subset:
        idx = np.sort(np.random.default_rng(0).choice(len(tiles), args.subset, replace=False))
        tiles, labels = tiles[idx], labels[idx]
    device = resolve_device(args.device)
    model = TSimCNE(total_epochs=tuple(args.epochs), batch_size=args.batch_size, augmentations=args.augmentations,
                    device=str(device), random_state=args.seed, backbone=args.backbone, width=args.width,
                    preview_every=0, init_2d=args.init_2d)
    acc128 = None
    side = 0.0  # time spent on measurements inside the loop, not counted as fitting
    t0 = time.perf_counter()
    for ev in model.fit_iter(tiles):
        if ev.stage == 1 and ev.epoch == ev.stage_epochs:
            s0 = time.perf_counter()
            acc128 = knn_accuracy(model.transform(tiles), labels)  # the head is still 128-D here
            side += time.perf_counter() - s0
    fit_seconds = time.perf_counter() - t0 - side
    per_stage: dict[int, list[float]] = {1: [], 2: [], 3: []}
    views: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for record in model.history_:  # the trainer's own timing of each epoch
        per_stage[record["stage"]].append(record["seconds"])
        views[record["stage"]].append(record["views_per_second"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    s0 = time.perf_counter()
    y, feats = model.transform(tiles, return_features=True)
    transform_seconds = time.perf_counter() - s0
    result = {
        "benchmark": "fit",
        "package": f"napari-tsimcne {__version__}",
        "data": Path(args.data).name,
        "n_tiles": int(len(tiles)),
        "tile_shape": list(tiles.shape[1:]),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "augmentations": args.augmentations,
        "backbone": args.backbone,
        "width": args.width,
        "init_2d": args.init_2d,
        "seed": args.seed,
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seconds_per_epoch": {f"stage{k}": round(float(np.median(v)), 4) for k, v in per_stage.items() if v},
        "views_per_second": {f"stage{k}": round(float(np.median(v)), 1) for k, v in views.items() if v},
        "fit_seconds": round(fit_seconds, 2),
        "knn15_map_2d": round(knn_accuracy(y, labels), 2),
        "knn15_pretrain_128d": None if acc128 is None else round(acc128, 2),
        "knn15_backbone_features": round(knn_accuracy(feats, labels), 2),
        "transform_tiles_per_second": round(len(tiles) / transform_seconds, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(line + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
