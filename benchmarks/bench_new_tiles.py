"""New tiles: how well a map trained on some tiles places tiles it has never seen, for each finish.

On a labelled .npz (default: the 17,092 blood cells of ``pbc28.npz``) the tiles are split once,
stratified, into 80 % to train on and 20 % held out. For each ``--finish`` this trains
``TSimCNE(time_budget=M * 60, finish=...)`` (every other setting "auto": the CPU's choices) on the
80 %, maps the held-out tiles with ``transform`` (one forward pass), and scores:

* ``knn15_train``: the papers' 15-NN accuracy of the map of the training tiles (as ``bench_cpu.py``);
* ``knn15_new``: each held-out tile classified by its 15 nearest training tiles in the map.

Beside them, in the same run, what a user could do instead: openTSNE fitted to the pixels of the
80 % and its ``transform`` of the held-out pixels; and, with the t-SNE finish, openTSNE fitted to
the trained network's features of the 80 % and its ``transform`` of the held-out features (the
non-parametric way to place new tiles into the same kind of map). Prints one JSON line; ``--out``
appends it to a file under benchmarks/results/. About 25 minutes on 2 cores::

    python benchmarks/bench_new_tiles.py --minutes 10 \\
        --out benchmarks/results/new-tiles-cpu-2core_pbc17092.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import emit
from bench_cpu import DEFAULT_DATA, machine

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and (ROOT / "src").is_dir():
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from napari_tsimcne import TSimCNE, __version__, knn_accuracy  # noqa: E402
from napari_tsimcne.core.store import TileStore  # noqa: E402
from napari_tsimcne.core.tiles import as_tile_stack  # noqa: E402


def new_tile_accuracy(y_train, labels_train, y_new, labels_new) -> float:
    """Percent of new tiles whose 15 nearest training tiles in the map vote for their class."""
    knn = KNeighborsClassifier(15).fit(y_train, labels_train)
    return round(100.0 * knn.score(y_new, labels_new), 2)


@torch.no_grad()
def features(model: TSimCNE, tiles: np.ndarray) -> np.ndarray:
    """The trained network's backbone features of ``tiles``."""
    net = model.model_.eval()
    store = TileStore(as_tile_stack(tiles), model.normalization_, torch.device("cpu"))
    n = len(store)
    parts = [net.features(store.gather(torch.arange(i, min(n, i + 512)))) for i in range(0, n, 512)]
    return torch.cat(parts).float().numpy()


def opentsne_with_new(x_train: np.ndarray, x_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """openTSNE (defaults) fitted to ``x_train``; its ``transform`` of ``x_new``."""
    from openTSNE import TSNE

    embedding = TSNE(n_jobs=os.cpu_count(), random_state=0).fit(x_train)
    return np.asarray(embedding), np.asarray(embedding.transform(x_new))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--finish", nargs="+", default=["contrastive", "tsne"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-baseline", action="store_true", help="skip openTSNE of the pixels")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    with np.load(args.data) as d:
        tiles, labels = d["images"], d["labels"]
    train, new = train_test_split(
        np.arange(len(tiles)), test_size=0.2, stratify=labels, random_state=0
    )
    result = {
        "benchmark": "new-tiles",
        "package": f"napari-tsimcne {__version__}",
        "data": Path(args.data).name,
        "n_train": int(len(train)),
        "n_new": int(len(new)),
        "machine": machine(),
        "minutes": args.minutes,
        "seed": args.seed,
        "runs": [],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if not args.no_baseline:
        pixels = tiles.reshape(len(tiles), -1).astype(np.float32) / 255.0
        t0 = time.perf_counter()
        y_train, y_new = opentsne_with_new(pixels[train], pixels[new])
        run = {
            "method": "openTSNE of the pixels, transform of the new tiles",
            "seconds": round(time.perf_counter() - t0, 1),
            "knn15_train": round(knn_accuracy(y_train, labels[train]), 2),
            "knn15_new": new_tile_accuracy(y_train, labels[train], y_new, labels[new]),
        }
        print(run, file=sys.stderr, flush=True)
        result["runs"].append(run)
    for finish in args.finish:
        model = TSimCNE(
            time_budget=60.0 * args.minutes,
            finish=finish,
            random_state=args.seed,
            preview_every=0,
        )
        t0 = time.perf_counter()
        model.fit(tiles[train])
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        y_new = model.transform(tiles[new])
        run = {
            "method": f"ours, finish={finish}",
            "seconds": round(seconds, 1),
            "epochs": list(model.total_epochs_),
            "knn15_train": round(knn_accuracy(model.embedding_, labels[train]), 2),
            "knn15_new": new_tile_accuracy(model.embedding_, labels[train], y_new, labels[new]),
            "new_tiles_per_second": round(len(new) / (time.perf_counter() - t0), 1),
        }
        if finish == "tsne":  # the same network's features, new tiles placed by openTSNE instead
            f_train, f_new = features(model, tiles[train]), features(model, tiles[new])
            t_train, t_new = opentsne_with_new(f_train, f_new)
            run["opentsne_of_features"] = {
                "knn15_train": round(knn_accuracy(t_train, labels[train]), 2),
                "knn15_new": new_tile_accuracy(t_train, labels[train], t_new, labels[new]),
            }
        print(run, file=sys.stderr, flush=True)
        result["runs"].append(run)
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return emit(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
