"""Train on a synthetic tile stack held in pinned host memory (streamed to the GPU batch by batch).

Example (the device machine: H100, 128 GiB RAM)::

    python benchmarks/bench_stream.py --n 2000000 --size 64 --steps 150 --epochs 2

What it does:

1. Builds a synthetic uint8 stack of ``--n`` tiles (``--size`` x ``--size``
   x 3; 2,000,000 x 64 x 64 x 3 = 24.6 GB): a few smooth random prototypes
   plus noise tiles from a small pool, written in chunks (fast: no per-pixel
   random numbers for the whole stack).
2. Forces the streamed path (``--force-stream``, the default): the stack
   stays in pinned host memory and every batch is gathered there and copied
   to the GPU. (Left alone, TileStore keeps a stack on the GPU when it needs
   less than half of the free GPU memory; 24.6 GB does on an 80 GB GPU.)
3. Trains stage 1 for ``--epochs`` epochs of ``--steps`` steps each, on
   batches drawn at random from the *whole* stack (an epoch over 2M tiles
   would take minutes; the access pattern per batch is the same).
   Reports views/s of each epoch (the first includes warm-up), GPU
   utilisation sampled during training (nvidia-smi), and the rate at which
   the streamed store alone delivers batches.
4. Times ``transform`` (embedding, also streamed) on ``--transform-tiles``
   tiles, including building that store (pinning, copying).
5. Peak host memory (VmHWM) and peak GPU memory.

Prints one JSON line; see benchmarks/README.md for the fields.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import emit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path and (ROOT / "src").is_dir():
    sys.path.insert(0, str(ROOT / "src"))

import napari_tsimcne.core.estimator as estimator_module  # noqa: E402
import napari_tsimcne.core.store as store_module  # noqa: E402
from napari_tsimcne import TSimCNE, __version__  # noqa: E402
from napari_tsimcne.core.device import device_name, resolve_device  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--n",
        type=int,
        default=2_000_000,
        help="tiles in the synthetic stack (default %(default)s)",
    )
    p.add_argument(
        "--size", type=int, default=64, help="tile height and width (default %(default)s)"
    )
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=16, help="prototypes the tiles are made from")
    p.add_argument(
        "--steps", type=int, default=150, help="training steps per epoch (default %(default)s)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="stage-1 epochs (default %(default)s; the first warms up)",
    )
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--augmentations", default="microscopy")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--transform-tiles",
        type=int,
        default=500_000,
        help="tiles to embed for the transform rate (0: all)",
    )
    p.add_argument(
        "--gather-batches", type=int, default=50, help="batches for the store-only streaming rate"
    )
    p.add_argument(
        "--no-force-stream",
        dest="force_stream",
        action="store_false",
        help="let TileStore decide (on the GPU if the stack needs < half the free GPU memory)",
    )
    p.add_argument(
        "--sample-interval", type=float, default=0.5, help="seconds between GPU utilisation samples"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--out", default=None, help="append the JSON line to this file")
    return p.parse_args(argv)


def make_stack(
    n: int, size: int, channels: int, classes: int, seed: int, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, channels) uint8 tiles: smooth prototypes + noise, and their class labels.

    Each chunk of tiles copies its prototypes and adds a random window of a
    pool of noise tiles in place: two passes over memory, no per-pixel random numbers.
    """
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(classes, channels, 4, 4, generator=g)
    protos = torch.nn.functional.interpolate(
        coarse, size=(size, size), mode="bicubic", align_corners=False
    )
    protos = (
        (protos.clamp(0, 1) * 200).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    )  # (classes, S, S, C)
    pool = 2 * chunk
    noise = torch.randint(0, 56, (pool, size, size, channels), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g)
    offsets = torch.randint(0, pool - chunk + 1, ((n + chunk - 1) // chunk,), generator=g).tolist()
    stack = torch.empty((n, size, size, channels), dtype=torch.uint8)
    for i, s in enumerate(range(0, n, chunk)):
        e = min(n, s + chunk)
        torch.index_select(protos, 0, labels[s:e], out=stack[s:e])
        stack[s:e].add_(noise[offsets[i] : offsets[i] + e - s])
    return stack.numpy(), labels.numpy()


class _SampledStore:
    """A view of a TileStore that exposes ``m`` tiles drawn at random from all of it.

    Training batches then come from anywhere in the full (pinned) stack, while an
    'epoch' is only ``m`` tiles long. Everything else is the real store.
    """

    def __init__(self, inner, m: int, seed: int):
        self.inner = inner
        self.pick = (
            torch.randperm(inner.n_tiles, generator=torch.Generator().manual_seed(seed))[:m]
            .sort()
            .values
        )
        self.n_tiles = int(len(self.pick))
        self.device, self.on_device, self.normalization = (
            inner.device,
            inner.on_device,
            inner.normalization,
        )

    def __len__(self):
        return self.n_tiles

    def gather(self, index):
        return self.inner.gather(self.pick[index.cpu()])

    def evenly_spaced(self, max_tiles):
        return self.gather(torch.linspace(0, self.n_tiles - 1, min(self.n_tiles, max_tiles)).long())

    def iter_batches(self, batch_size):
        for start in range(0, self.n_tiles, batch_size):
            idx = torch.arange(start, min(start + batch_size, self.n_tiles))
            yield idx, self.gather(idx)


class GpuSampler(threading.Thread):
    """Samples GPU utilisation (%) and memory used with nvidia-smi (or torch.cuda.utilization) every few tenths of a second."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, float, float]] = []  # (time, util %, memory used MiB)
        self.stop_event = threading.Event()
        self.smi = shutil.which("nvidia-smi")

    def read(self):
        if self.smi:
            out = (
                subprocess.run(
                    [
                        self.smi,
                        "--query-gpu=utilization.gpu,memory.used",
                        "--format=csv,noheader,nounits",
                        "-i",
                        "0",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                .stdout.strip()
                .splitlines()[0]
            )
            u, m = (float(x) for x in out.split(","))
            return u, m
        return float(torch.cuda.utilization()), float("nan")

    def run(self):
        while not self.stop_event.is_set():
            try:
                u, m = self.read()
                self.samples.append((time.perf_counter(), u, m))
            except Exception:  # no nvidia-smi, no pynvml: leave the samples empty
                return
            self.stop_event.wait(self.interval)

    def summary(self, t0: float, t1: float) -> dict | None:
        s = [(u, m) for t, u, m in self.samples if t0 <= t <= t1]
        if not s:
            return None
        u = np.array([x[0] for x in s])
        return {
            "mean": round(float(u.mean()), 1),
            "median": round(float(np.median(u)), 1),
            "samples": len(s),
            "max_memory_used_mib": round(float(np.nanmax([x[1] for x in s])), 0),
        }


def _host_memory_gib() -> dict:
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, val = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = round(int(val.split()[0]) / 2**20, 2)  # kB -> GiB
    except OSError:
        pass
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"

    t = time.perf_counter()
    stack, labels = make_stack(args.n, args.size, args.channels, args.classes, args.seed)
    generate_seconds = time.perf_counter() - t
    print(
        f"generated {stack.shape} uint8 ({stack.nbytes / 1e9:.1f} GB) in {generate_seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )

    if args.force_stream:
        store_module._fits_on_device = lambda nbytes, dev: (
            False
        )  # bench only: every CUDA store stays in pinned host memory
    created = []
    real_store = estimator_module.TileStore
    m = args.steps * args.batch_size

    def sampled_store(stack_, normalization, dev, **kw):
        inner = real_store(stack_, normalization, dev, **kw)
        created.append(inner)
        return _SampledStore(inner, m, args.seed)

    sampler = GpuSampler(args.sample_interval) if cuda else None
    if sampler:
        sampler.start()
        torch.cuda.reset_peak_memory_stats(device)
    model = TSimCNE(
        total_epochs=(args.epochs, 0, 0),
        batch_size=args.batch_size,
        augmentations=args.augmentations,
        device=str(device),
        random_state=args.seed,
        backbone=args.backbone,
        width=args.width,
        preview_every=0,
    )
    estimator_module.TileStore = sampled_store
    try:
        t = time.perf_counter()
        it = model.fit_iter(stack)  # builds the store (pins and copies the whole stack) now
        store_seconds = time.perf_counter() - t
    finally:
        estimator_module.TileStore = real_store
    inner = created[0]
    store_on_gpu, store_pinned = (
        bool(inner.on_device),
        bool(inner.data.is_pinned()) if cuda else False,
    )
    print(
        f"store built in {store_seconds:.1f} s (on the device: {inner.on_device}); training",
        file=sys.stderr,
        flush=True,
    )
    t_train0 = time.perf_counter()
    epoch_marks = [t_train0]
    for _ev in it:
        if cuda:
            torch.cuda.synchronize(device)
        epoch_marks.append(time.perf_counter())
    t_train1 = time.perf_counter()
    peak_gpu_train = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    history = model.history_

    # the streamed store alone: gather random batches from the whole stack, copy to the GPU, normalise
    gen = torch.Generator().manual_seed(args.seed + 1)
    batch = None
    for _ in range(3):  # warm-up
        inner.gather(torch.randint(0, inner.n_tiles, (args.batch_size,), generator=gen))
    if cuda:
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(max(1, args.gather_batches)):
        batch = inner.gather(torch.randint(0, inner.n_tiles, (args.batch_size,), generator=gen))
    if cuda:
        torch.cuda.synchronize(device)
    gather_seconds = time.perf_counter() - t
    del batch, inner, created[:], it
    if cuda:
        torch.cuda.empty_cache()

    n_tr = args.n if args.transform_tiles <= 0 else min(args.n, args.transform_tiles)
    t = time.perf_counter()
    y = model.transform(stack[:n_tr])
    if cuda:
        torch.cuda.synchronize(device)
    transform_seconds = time.perf_counter() - t
    if sampler:
        sampler.stop_event.set()

    train_epochs = [
        {
            "epoch": h["epoch"],
            "seconds": round(h["seconds"], 3),
            "views_per_second": round(h["views_per_second"], 1),
        }
        for h in history
    ]
    result = {
        "benchmark": "stream",
        "package": f"napari-tsimcne {__version__}",
        "n_tiles": args.n,
        "tile_shape": [args.size, args.size, args.channels],
        "stack_gb": round(stack.nbytes / 1e9, 2),
        "forced_stream": args.force_stream,
        "store_on_device": store_on_gpu,
        "store_pinned_host": store_pinned,
        "batch_size": args.batch_size,
        "steps_per_epoch": args.steps,
        "backbone": args.backbone,
        "width": args.width,
        "augmentations": args.augmentations,
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "generate_seconds": round(generate_seconds, 2),
        "store_build_seconds": round(store_seconds, 2),
        "train_epochs": train_epochs,
        "views_per_second": train_epochs[-1]["views_per_second"] if train_epochs else None,
        "train_seconds": round(t_train1 - t_train0, 2),
        "gpu_utilisation_percent": sampler.summary(t_train0, t_train1) if sampler else None,
        "stream_only_tiles_per_second": round(
            max(1, args.gather_batches) * args.batch_size / gather_seconds, 1
        ),
        "transform_tiles": n_tr,
        "transform_seconds": round(transform_seconds, 2),
        "transform_tiles_per_second": round(n_tr / transform_seconds, 1),
        "gpu_peak_memory_gib_train": None if peak_gpu_train is None else round(peak_gpu_train, 2),
        "host_memory_gib": _host_memory_gib(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    del y
    return emit(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
