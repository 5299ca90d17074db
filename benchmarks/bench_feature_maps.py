"""What the 2D map keeps of what the network learned: 15-NN accuracy of a trained model's map, of its
backbone features and projection-head hidden layer, and of a t-SNE of the backbone features (openTSNE).

    python benchmarks/bench_feature_maps.py MODEL.tsimcne --out benchmarks/results/feature-maps-cpu-2core.jsonl

The model must have been trained on ``../shared/data/pbc28.npz`` (all tiles, as ``napari-tsimcne fit``
does). A gap between the features and the map is accuracy the 2D stages lose; the t-SNE of the features
shows how much of it another way to 2D would keep, and at what cost in time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import emit  # noqa: E402
from bench_cpu import _timed, machine, run_tsne  # noqa: E402

from napari_tsimcne import TSimCNE, knn_accuracy  # noqa: E402
from napari_tsimcne.core.sample import load_pbc  # noqa: E402


def head_hidden(model: TSimCNE, backbone: np.ndarray) -> np.ndarray:
    """The projection head's hidden activations for backbone features (CPU, eval mode)."""
    net = model.model_.eval()
    with torch.no_grad():
        return net.head.hidden(torch.from_numpy(backbone)).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sample = load_pbc(None, 0)
    model = TSimCNE.load(args.model, device="cpu")
    if len(sample.tiles) != (len(model.embedding_) if model.embedding_ is not None else -1):
        raise SystemExit(
            "The model's map is not of all pbc28 tiles; train it with `napari-tsimcne fit`."
        )
    t0 = time.perf_counter()
    _, backbone = model.transform(sample.tiles, return_features=True)
    hidden = head_hidden(model, backbone)
    features_s = time.perf_counter() - t0
    result = {
        "benchmark": "feature_maps",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "model": {
            "file": args.model.name,
            "backbone": model.backbone_,
            "width": int(model.width_),
            "epochs": list(model.total_epochs_),
            "fit_seconds": round(float(getattr(model, "fit_seconds_", float("nan"))), 1),
        },
        "n_tiles": int(len(sample.tiles)),
        "knn15": {
            "map_2d": round(knn_accuracy(model.embedding_, sample.labels), 2),
            f"backbone_{backbone.shape[1]}d": round(knn_accuracy(backbone, sample.labels), 2),
            f"head_hidden_{hidden.shape[1]}d": round(knn_accuracy(hidden, sample.labels), 2),
        },
        "features_seconds": round(features_s, 1),
    }
    try:
        y, seconds = _timed(lambda: run_tsne(backbone))
    except ImportError:
        result["tsne_of_backbone"] = None  # pip install openTSNE
    else:
        result["tsne_of_backbone"] = {
            "knn15": round(knn_accuracy(y, sample.labels), 2),
            "seconds": round(seconds, 1),
        }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
