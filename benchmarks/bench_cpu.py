"""Maps without a GPU: ours for a time budget beside what a user would run instead, in one run.

On all tiles of a labelled .npz (default: the 17,092 blood cells of ``pbc28.npz``) this runs, each
timed from its input array to its 2-D map (wall clock, this machine's threads):

* PCA of the pixels (2 components), t-SNE of the pixels (openTSNE, its defaults) and UMAP of the
  pixels (umap-learn, its defaults): what a user without a GPU would run instead;
* ours, ``TSimCNE(time_budget=M * 60)`` with every other setting left to "auto" (the CPU's
  choices), once per ``--minutes`` value: the accuracy-against-time curve;
* mapping speed: ``transform`` of all tiles with the trained model, with the CPU's automatic
  tiles per pass and with 2048 (the GPU's).

Each map is scored with the papers' protocol (15-NN, stratified 90/10 split, seed 0). Prints one
JSON line with the machine (CPU, cores, threads, load) and every figure; ``--out`` appends it to a
file under benchmarks/results/. Example (about 17 minutes on 2 cores)::

    python benchmarks/bench_cpu.py --minutes 3 10 --out benchmarks/results/cpu-2core_pbc17092.jsonl
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from bench_common import emit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and (ROOT / "src").is_dir():
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from napari_tsimcne import TSimCNE, __version__, knn_accuracy  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pbc28.npz"


def machine() -> dict:
    """The CPU, its cores, torch's threads and the load when asked."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def _timed(fn):
    t0 = time.perf_counter()
    y = fn()
    return y, time.perf_counter() - t0


def run_pca(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(2, random_state=0).fit_transform(x)


def run_tsne(x: np.ndarray) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(n_jobs=os.cpu_count(), random_state=0).fit(x))


def run_umap(x: np.ndarray) -> np.ndarray:
    import umap

    return umap.UMAP(n_jobs=os.cpu_count()).fit_transform(x)


BASELINES = {"pca": run_pca, "tsne": run_tsne, "umap": run_umap}


def run_ours(
    tiles: np.ndarray,
    labels: np.ndarray,
    minutes: float,
    seed: int,
    variant: str | None = None,
    finish: str = "auto",
) -> tuple[dict, TSimCNE]:
    """``variant``: "BACKBONE:WIDTH" instead of the automatic network (for comparing choices)."""
    network = {}
    if variant:
        backbone, width = variant.split(":")
        network = {"backbone": backbone, "width": int(width)}
    model = TSimCNE(
        time_budget=60.0 * minutes, random_state=seed, preview_every=0, finish=finish, **network
    )
    _, seconds = _timed(lambda: model.fit(tiles))
    costs = model.step_costs_
    result = {
        "method": "ours" if not variant else f"ours, {variant}",
        "minutes": minutes,
        "wall_seconds": round(seconds, 1),
        "knn15": round(knn_accuracy(model.embedding_, labels), 2),
        "epochs": list(model.total_epochs_),
        "finish": model.finish_,
        "stage_seconds": [
            round(sum(h["seconds"] for h in model.history_ if h["stage"] == st), 1)
            for st in (1, 2, 3)
        ],
        "backbone": model.backbone_,
        "width": model.width_,
        "batch_size": model.batch_size_,
        "measured": {
            "full_step_s": round(costs.full_step, 4),
            "last_layer_step_s": round(costs.last_layer_step, 4),
            "embed_tile_ms": round(1000 * costs.embed_tile, 4),
            "train_views_per_second": round(2 * model.batch_size_ / costs.full_step, 1),
        },
        "views_per_second_median": {
            f"stage{s}": round(
                float(
                    np.median([h["views_per_second"] for h in model.history_ if h["stage"] == s])
                ),
                1,
            )
            for s in (1, 2, 3)
            if any(h["stage"] == s for h in model.history_)
        },
    }
    return result, model


def mapping_speed(model: TSimCNE, tiles: np.ndarray) -> dict:
    """Tiles per second of ``transform`` with the automatic tiles per pass and with 2048."""
    out = {}
    for name, batch in (("auto", "auto"), ("2048", 2048)):
        model.embed_batch_size = batch
        _, seconds = _timed(lambda: model.transform(tiles))
        out[f"embed_batch_{name}"] = round(len(tiles) / seconds, 1)
    model.embed_batch_size = "auto"
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="npz with 'images' and 'labels' (default: %(default)s)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        nargs="+",
        default=[3.0, 10.0],
        help="our time budgets (default: 3 10)",
    )
    p.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=list(BASELINES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="BACKBONE:WIDTH",
        help="also run ours with this network instead of the automatic one (repeatable)",
    )
    p.add_argument("--no-auto", action="store_true", help="run only the --variant networks")
    p.add_argument(
        "--finish",
        nargs="+",
        default=["auto"],
        choices=["auto", "contrastive", "tsne"],
        help="how our maps are finished (default: auto; several: one run of each per budget)",
    )
    p.add_argument("--out", default=None, help="append the JSON line to this file")
    args = p.parse_args(argv)
    with np.load(args.data) as d:
        tiles, labels = d["images"], d["labels"]
    pixels = tiles.reshape(len(tiles), -1).astype(np.float32) / (
        255.0 if tiles.dtype == np.uint8 else 1.0
    )
    result = {
        "benchmark": "cpu-maps",
        "package": f"napari-tsimcne {__version__}",
        "data": Path(args.data).name,
        "n_tiles": int(len(tiles)),
        "tile_shape": list(tiles.shape[1:]),
        "machine": machine(),
        "runs": [],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    for name in args.baselines:
        y, seconds = _timed(lambda: BASELINES[name](pixels))
        run = {
            "method": f"{name} of the pixels",
            "wall_seconds": round(seconds, 1),
            "knn15": round(knn_accuracy(y, labels), 2),
        }
        print(run, file=sys.stderr, flush=True)
        result["runs"].append(run)
    model = None
    variants = ([] if args.no_auto else [None]) + args.variant
    for variant in variants:
        for minutes in args.minutes:
            for finish in args.finish:
                run, trained = run_ours(tiles, labels, minutes, args.seed, variant, finish)
                print(run, file=sys.stderr, flush=True)
                result["runs"].append(run)
                model = trained if variant is None else model
    if model is not None:  # the automatic network's last model
        result["mapping_tiles_per_second"] = mapping_speed(model, tiles)
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return emit(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
