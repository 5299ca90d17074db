"""Train t-SimCNE on a labelled .npz tile file with a given budget and print one JSON line of figures.

Example (GPU, full PBC set, the reference's short budget)::

    python benchmarks/bench_fit.py --data .data/pbc28.npz --epochs 40 4 16 --batch-size 1024

Figures: seconds per epoch in each stage, views per second, fit time, 15-NN
accuracy (stratified 90/10 split, seed 0) of the 2D map, of the 128-D
pre-training output and of the backbone features, and embedding (transform)
throughput. ``--out`` also appends the line to a file under benchmarks/results/.

Also:

* ``--reference``: afterwards run the published package (tsimcne 0.3.12,
  benchmarks/reference_runner.py) in a subprocess on the same tiles, budget,
  batch size and seed; the JSON line then holds both results under "ours"
  and "reference", and a side-by-side table goes to stderr.
* ``--curve-every N``: evaluate the model every N epochs (and at the end of
  each stage) during training; the evaluation time is not counted as
  training time. Gives "curve": 15-NN against training seconds within one run.
* ``--budgets 40/4/16 80/8/32 ...``: train once per budget, each a complete
  run with its own schedule; gives "curve": final 15-NN against fit time
  per budget (the honest accuracy-versus-time curve).

See benchmarks/README.md for every field.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import emit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and (ROOT / "src").is_dir():
    sys.path.insert(
        0, str(ROOT / "src")
    )  # run from a plain checkout (the device machine) without installing

from napari_tsimcne import TSimCNE, __version__, knn_accuracy  # noqa: E402
from napari_tsimcne.core.device import device_name, resolve_device  # noqa: E402

DEFAULT_DATA = (
    ROOT / ".data" / "pbc28.npz"
    if (ROOT / ".data" / "pbc28.npz").exists()
    else ROOT.parent / "shared" / "data" / "pbc28.npz"
)
# our augmentation preset -> the reference runner's closest set
REFERENCE_AUGMENTATIONS = {
    "microscopy": "rotation",
    "fluorescence": "rotation",
    "natural": "natural",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="npz with 'images' and 'labels' (default: %(default)s)",
    )
    p.add_argument(
        "--subset", type=int, default=None, help="use a random subset of this many tiles (seed 0)"
    )
    p.add_argument("--epochs", type=int, nargs=3, default=[40, 4, 16], metavar=("E1", "E2", "E3"))
    p.add_argument(
        "--budgets",
        nargs="+",
        default=None,
        metavar="E1/E2/E3",
        help="train once per budget (overrides --epochs) and report the curve of 15-NN vs fit time",
    )
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--augmentations", default="microscopy")
    p.add_argument("--device", default="auto")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--init-2d", default="pca", choices=["pca", "random"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--curve-every",
        type=int,
        default=0,
        metavar="N",
        help="evaluate every N epochs and at each stage's end (0: only after stage 1 and at the end)",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="also run tsimcne 0.3.12 on the same data (subprocess)",
    )
    p.add_argument("--reference-only", action="store_true", help="run only the reference")
    p.add_argument(
        "--reference-epochs",
        type=int,
        nargs=3,
        default=None,
        metavar=("E1", "E2", "E3"),
        help="the reference's budget (default: --epochs)",
    )
    p.add_argument(
        "--reference-augmentations",
        default=None,
        choices=["rotation", "natural"],
        help="default: rotation for microscopy/fluorescence, natural for natural",
    )
    p.add_argument(
        "--reference-workers",
        type=int,
        default=16,
        help="the reference's DataLoader workers (default 16)",
    )
    p.add_argument(
        "--reference-timeout",
        type=float,
        default=None,
        help="seconds before the reference run is stopped",
    )
    p.add_argument("--out", default=None, help="append the JSON line to this file")
    return p.parse_args(argv)


def load_tiles(path, subset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tiles and labels of an npz file; ``subset``: a random subset (seed 0, kept in file order)."""
    with np.load(path) as d:
        tiles, labels = d["images"], d["labels"]
    if subset and subset < len(tiles):
        idx = np.sort(np.random.default_rng(0).choice(len(tiles), subset, replace=False))
        tiles, labels = tiles[idx], labels[idx]
    return tiles, labels


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(args, tiles: np.ndarray, labels: np.ndarray, epochs: list[int]) -> dict:
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = TSimCNE(
        total_epochs=tuple(epochs),
        batch_size=args.batch_size,
        augmentations=args.augmentations,
        device=str(device),
        random_state=args.seed,
        backbone=args.backbone,
        width=args.width,
        preview_every=0,
        init_2d=args.init_2d,
    )
    acc128 = None
    curve = []
    side = 0.0  # time spent on measurements inside the loop, not counted as fitting
    _sync(device)
    t0 = time.perf_counter()
    for ev in model.fit_iter(tiles):
        end_of_stage = ev.epoch == ev.stage_epochs
        want = (ev.stage == 1 and end_of_stage) or (
            args.curve_every and (ev.global_epoch % args.curve_every == 0 or end_of_stage)
        )
        if not want:
            continue
        _sync(device)
        s0 = time.perf_counter()
        train_seconds = s0 - t0 - side
        y = ev.embedding if ev.embedding is not None else model.transform(tiles)  # 128-D in stage 1
        acc = knn_accuracy(y, labels)
        if ev.stage == 1 and end_of_stage:
            acc128 = acc
        if args.curve_every:
            curve.append(
                {
                    "global_epoch": ev.global_epoch,
                    "stage": ev.stage,
                    "train_seconds": round(train_seconds, 2),
                    "space": f"{y.shape[1]}d",
                    "knn15": round(acc, 2),
                }
            )
        side += time.perf_counter() - s0
    _sync(device)
    fit_seconds = time.perf_counter() - t0 - side
    per_stage: dict[int, list[float]] = {1: [], 2: [], 3: []}
    views: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for record in model.history_:  # the trainer's own timing of each epoch
        per_stage[record["stage"]].append(record["seconds"])
        views[record["stage"]].append(record["views_per_second"])
    peak_train = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    _sync(device)
    s0 = time.perf_counter()
    y, feats = model.transform(tiles, return_features=True)
    _sync(device)
    transform_seconds = time.perf_counter() - s0
    result = {
        "benchmark": "fit",
        "package": f"napari-tsimcne {__version__}",
        "data": Path(args.data).name,
        "n_tiles": int(len(tiles)),
        "tile_shape": list(tiles.shape[1:]),
        "epochs": list(epochs),
        "batch_size": args.batch_size,
        "augmentations": args.augmentations,
        "backbone": args.backbone,
        "width": args.width,
        "init_2d": args.init_2d,
        "seed": args.seed,
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seconds_per_epoch_overall": round(fit_seconds / max(1, sum(epochs)), 4),
        "seconds_per_epoch": {
            f"stage{k}": round(float(np.median(v)), 4) for k, v in per_stage.items() if v
        },
        "views_per_second": {
            f"stage{k}": round(float(np.median(v)), 1) for k, v in views.items() if v
        },
        "fit_seconds": round(fit_seconds, 2),
        "knn15_map_2d": round(knn_accuracy(y, labels), 2),
        "knn15_pretrain_128d": None if acc128 is None else round(acc128, 2),
        "knn15_backbone_features": round(knn_accuracy(feats, labels), 2),
        "transform_tiles_per_second": round(len(tiles) / transform_seconds, 1),
        "gpu_peak_memory_gib": None if peak_train is None else round(peak_train / 2**30, 2),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if args.curve_every:
        result["curve"] = curve
    return result


def run_reference(args, epochs: list[int]) -> dict:
    """tsimcne 0.3.12 on the same tiles, in a fresh process (its own CUDA context, matmul precision, workers)."""
    aug = args.reference_augmentations or REFERENCE_AUGMENTATIONS.get(
        args.augmentations, "rotation"
    )
    cmd = [
        sys.executable,
        str(Path(__file__).resolve().parent / "reference_runner.py"),
        "--data",
        args.data,
        "--epochs",
        *map(str, epochs),
        "--batch-size",
        str(args.batch_size),
        "--augmentations",
        aug,
        "--num-workers",
        str(args.reference_workers),
        "--device",
        args.device,
        "--seed",
        str(args.seed),
    ]
    if args.subset:
        cmd += ["--subset", str(args.subset)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    print("running the reference: " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=args.reference_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its DataLoader workers
        proc.communicate()
        return {"error": f"the reference did not finish within {args.reference_timeout} s"}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {
            "error": f"the reference runner failed (exit {proc.returncode}); see its messages above"
        }
    return json.loads(lines[-1])


def _table(ours: dict, ref: dict) -> str:
    rows = [
        ("package", "package"),
        ("device", "device"),
        ("n_tiles", "n_tiles"),
        ("epochs", "epochs"),
        ("augmentations", "augmentations"),
        ("s/epoch (fit / epochs)", "seconds_per_epoch_overall"),
        ("s/epoch by stage (median)", "seconds_per_epoch"),
        ("fit seconds", "fit_seconds"),
        ("15-NN map 2D %", "knn15_map_2d"),
        ("15-NN 128-D %", "knn15_pretrain_128d"),
        ("15-NN backbone %", "knn15_backbone_features"),
        ("transform tiles/s", "transform_tiles_per_second"),
    ]

    def fmt(v):
        if isinstance(v, dict):
            return " ".join(f"{x:g}" for x in v.values())
        return "-" if v is None else str(v)

    w0 = max(len(r[0]) for r in rows)
    cells = [(name, fmt(ours.get(key)), fmt(ref.get(key))) for name, key in rows]
    w1 = max(len("ours"), *(len(c[1]) for c in cells))
    lines = [f"{'':{w0}}  {'ours':{w1}}  reference"]
    lines += [f"{a:{w0}}  {b:{w1}}  {c}" for a, b, c in cells]
    if "error" in ref:
        lines.append(f"reference: {ref['error']}")
    return "\n".join(lines)


def _parse_budget(text: str) -> list[int]:
    parts = [int(x) for x in text.replace(",", "/").split("/")]
    if len(parts) != 3:
        raise SystemExit(f"a budget is three numbers E1/E2/E3, got {text!r}")
    return parts


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tiles, labels = load_tiles(args.data, args.subset)
    if resolve_device(args.device).type == "cuda":
        torch.zeros(
            1, device="cuda"
        )  # create the CUDA context before any clock starts (the reference runner does too)
    ours = None
    if not args.reference_only:
        if args.budgets:
            runs = []
            for b in args.budgets:
                r = run_ours(args, tiles, labels, _parse_budget(b))
                print(json.dumps(r), file=sys.stderr, flush=True)
                runs.append(r)
            ours = {
                "benchmark": "fit-budgets",
                "runs": runs,
                "curve": [
                    {
                        "epochs": r["epochs"],
                        "fit_seconds": r["fit_seconds"],
                        "knn15_map_2d": r["knn15_map_2d"],
                    }
                    for r in runs
                ],
            }
        else:
            ours = run_ours(args, tiles, labels, args.epochs)
    result = ours
    if args.reference or args.reference_only:
        del tiles  # the reference loads its own copy
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        ref = run_reference(args, args.reference_epochs or args.epochs)
        result = {"benchmark": "fit-vs-reference", "ours": ours, "reference": ref}
        single = ours if (ours and "runs" not in ours) else (ours["runs"][-1] if ours else {})
        if single and "error" not in ref:
            result["speedup_seconds_per_epoch"] = round(
                ref["seconds_per_epoch_overall"] / single["seconds_per_epoch_overall"], 2
            )
            result["knn15_map_2d_difference"] = round(
                single["knn15_map_2d"] - ref["knn15_map_2d"], 2
            )
        print(_table(single, ref), file=sys.stderr, flush=True)
    return emit(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
