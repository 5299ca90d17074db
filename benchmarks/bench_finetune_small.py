"""Is fine-tuning at a high rate safe on a small stack and a short run? Two seeds of a fit of 1,000
blood cells (``../shared/data/pbc28.npz``, ResNet-10 at width 16, batch 128, 10 / 3 / 3 epochs: the
test suite's run) at several stage-3 learning rates, scored with 15-NN accuracy.

    python benchmarks/bench_finetune_small.py --out benchmarks/results/finetune-small-cpu-2core_pbc1000.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import emit  # noqa: E402
from bench_cpu import machine  # noqa: E402

from napari_tsimcne import TSimCNE, knn_accuracy  # noqa: E402
from napari_tsimcne.core.sample import load_pbc  # noqa: E402
from napari_tsimcne.core.schedule import default_lr  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", default="0.001,0.5,1,1.5", help="stage 3's rate / stage 1's")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sample = load_pbc(1000, 0)
    lr = default_lr(128)
    for ratio in (float(r) for r in args.ratios.split(",")):
        for seed in (0, 1):
            started = time.perf_counter()
            model = TSimCNE(
                total_epochs=(10, 3, 3),
                batch_size=128,
                backbone="resnet10",
                width=16,
                random_state=seed,
                device="cpu",
                preview_every=0,
                finetune_lr=ratio * lr,
            ).fit(sample.tiles)
            emit(
                {
                    "benchmark": "finetune_small",
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "machine": machine(),
                    "n_tiles": 1000,
                    "epochs": [10, 3, 3],
                    "lr": lr,
                    "finetune_ratio": ratio,
                    "seed": seed,
                    "seconds": round(time.perf_counter() - started, 1),
                    "knn15": round(knn_accuracy(model.embedding_, sample.labels), 2),
                },
                args.out,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
