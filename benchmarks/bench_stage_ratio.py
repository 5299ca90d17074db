"""Does giving the two 2D stages more of a CPU budget win back what the map loses? One fit of all
17,092 blood cells (``../shared/data/pbc28.npz``) with the CPU network and the given epochs per stage.

    python benchmarks/bench_stage_ratio.py 24,2,24 --out benchmarks/results/stage-ratio-cpu-2core_pbc17092.jsonl

Compare with the CLI's 10-minute run (the paper's ratio, 32/1/16 epochs in 590 s: 75.3 % 15-NN,
``cli-fit-10min-cpu-2core_pbc17092.json``) and with ``bench_feature_maps.py``.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("epochs", help="epochs of the three stages, e.g. 24,2,24")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    sample = load_pbc(None, 0)
    epochs = tuple(int(x) for x in args.epochs.split(","))
    started = time.perf_counter()
    model = TSimCNE(
        total_epochs=epochs,
        backbone="resnet18-s2",
        width=16,
        batch_size=256,
        device="cpu",
        random_state=0,
        preview_every=0,
    )
    embedding = model.fit_transform(sample.tiles)
    emit(
        {
            "benchmark": "cpu_stage_ratio",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": machine(),
            "n_tiles": int(len(sample.tiles)),
            "epochs": list(epochs),
            "seconds": round(time.perf_counter() - started, 1),
            "knn15": round(knn_accuracy(embedding, sample.labels), 2),
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
