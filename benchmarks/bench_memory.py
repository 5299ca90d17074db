"""Peak host memory of training and embedding on a large tile stack (default 200,000 tiles of 64 x 64 x 3 uint8).

Each case runs in a fresh subprocess, so its high-water mark (``VmHWM`` in
``/proc/self/status``) is its own. A background thread also samples the
anonymous resident memory (``RssAnon``: memory the process allocated, as
opposed to ``RssFile``: pages of a memory-mapped file, which the kernel can
drop at any time), and its peak is reported too.

The child goes through the library's own path: ``TSimCNE.fit_iter`` (tile
check, normalisation, ``TileStore``, network, input statistics), then
``--steps`` training steps over tiles drawn at random from the whole stack
(a full epoch of 200,000 tiles takes too long on a CPU; memory does not grow
with the number of steps), then ``TSimCNE.transform`` of the whole stack.

Cases: ``memmap`` (``np.load(path, mmap_mode="r")``, as the command-line tool
reads a .npy) and ``inmemory`` (``np.load(path)``: the stack read into memory
once). Prints one JSON line per case and appends it to ``--out``.

Usage::

    python benchmarks/bench_memory.py                      # 200,000 x 64 x 64 x 3, both cases
    python benchmarks/bench_memory.py --n-tiles 20000 --cases memmap --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9


def _status() -> dict[str, int]:
    """Memory lines of /proc/self/status in bytes."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


class _AnonPeak(threading.Thread):
    """Samples RssAnon every few milliseconds and keeps the maximum."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, _status()["RssAnon"])
            time.sleep(self.interval)


def make_stack(path: Path, n: int, size: int, channels: int, chunk: int = 10_000) -> None:
    """Write a .npy of ``n`` uint8 tiles (smooth blobs plus noise), chunk by chunk."""
    if path.exists() and np.load(path, mmap_mode="r").shape == (n, size, size, channels):
        return
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.uint8, shape=(n, size, size, channels)
    )
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        cy, cx, r = rng.random((3, m, 1, 1)) * np.array([0.6, 0.6, 0.3]).reshape(
            3, 1, 1, 1
        ) + np.array([0.2, 0.2, 0.1]).reshape(3, 1, 1, 1)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        colour = rng.random((m, 1, 1, channels))
        tiles = 200 * blob[..., None] * colour + rng.integers(0, 40, (m, size, size, channels))
        out[start : start + m] = tiles.clip(0, 255).astype(np.uint8)
    out.flush()
    del out


def child(args: argparse.Namespace) -> dict:
    """One case, in this (fresh) process."""
    import torch

    from napari_tsimcne import TSimCNE
    from napari_tsimcne.core import estimator
    from napari_tsimcne.core.store import TileStore

    torch.set_num_threads(os.cpu_count() or 1)
    sampler = _AnonPeak()
    sampler.start()
    marks = {"start": _status()}
    t0 = time.perf_counter()
    X = np.load(args.npy, mmap_mode="r" if args.case == "memmap" else None)
    if args.case == "inmemory":
        marks["loaded"] = _status()

    class SampledStore(TileStore):
        """The real store, with training drawing ``steps x batch`` tiles at random from the whole stack."""

        @classmethod
        def wrap(cls, store: TileStore, n_used: int) -> SampledStore:
            obj = cls.__new__(cls)
            obj.__dict__.update(store.__dict__)
            rng = np.random.default_rng(0)
            obj._map = torch.from_numpy(np.sort(rng.choice(store.n_tiles, n_used, replace=False)))
            obj.n_tiles = n_used
            return obj

        def gather(self, index):
            return super().gather(self._map[index])

    n_used = min(len(X), args.steps * args.batch_size)
    real_store = estimator.TileStore
    estimator.TileStore = lambda *a, **k: SampledStore.wrap(real_store(*a, **k), n_used)
    model = TSimCNE(
        total_epochs=(1, 0, 0),
        batch_size=args.batch_size,
        backbone="resnet10",
        width=args.width,
        device="cpu",
        random_state=0,
        preview_every=0,
        embed_batch_size=args.embed_batch_size,
    )
    events = model.fit_iter(X)
    marks["store_built"] = _status()
    store_shares_input = bool(np.shares_memory(model_store_array(events), X))
    t_fit = time.perf_counter()
    for _ in events:
        pass
    marks["trained"] = _status()
    estimator.TileStore = real_store
    t_emb = time.perf_counter()
    y = model.transform(X)
    marks["transformed"] = _status()
    sampler.running = False
    sampler.join()
    end = _status()
    raw = X.nbytes
    return {
        "benchmark": "memory",
        "case": args.case,
        "n_tiles": int(len(X)),
        "tile_shape": list(X.shape[1:]),
        "dtype": str(X.dtype),
        "raw_gb": round(raw / GB, 3),
        "peak_rss_gb": round(end["VmHWM"] / GB, 3),
        "ratio": round(end["VmHWM"] / raw, 3),
        "peak_anon_gb": round(max(sampler.peak, end["RssAnon"]) / GB, 3),
        "anon_ratio": round(max(sampler.peak, end["RssAnon"]) / raw, 3),
        "end_rss_file_gb": round(end["RssFile"] / GB, 3),
        "phases_vmhwm_gb": {k: round(v["VmHWM"] / GB, 3) for k, v in marks.items()},
        "phases_rss_anon_gb": {k: round(v["RssAnon"] / GB, 3) for k, v in marks.items()},
        "store_shares_input": store_shares_input,
        "embedding_shape": list(y.shape),
        "seconds": {
            "setup": round(t_fit - t0, 1),
            "train_steps": round(t_emb - t_fit, 1),
            "transform": round(time.perf_counter() - t_emb, 1),
        },
        "settings": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "embed_batch_size": args.embed_batch_size,
            "backbone": "resnet10",
            "width": args.width,
            "device": "cpu",
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM",
        "torch_threads": torch.get_num_threads(),
    }


def model_store_array(events) -> np.ndarray:
    """The array behind the training store, found through the (not yet started) training generator."""
    trainer = events.gi_frame.f_locals["trainer"]
    return trainer.store.data.numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-tiles", type=int, default=200_000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument(
        "--cases", nargs="+", default=["memmap", "inmemory"], choices=["memmap", "inmemory"]
    )
    p.add_argument("--steps", type=int, default=20, help="training steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--embed-batch-size", type=int, default=1024)
    p.add_argument("--width", type=int, default=4)
    p.add_argument(
        "--workdir", default="/tmp/tsimcne-bench-memory", help="where the .npy stack is written"
    )
    p.add_argument(
        "--out",
        default=None,
        help="JSON-lines file to append to (default: benchmarks/results/"
        "memory-cpu-<cores>core_<n>k-<size>x<size>x<channels>.jsonl)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--npy", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    npy = work / f"stack_{args.n_tiles}_{args.size}x{args.size}x{args.channels}.npy"
    make_stack(npy, args.n_tiles, args.size, args.channels)
    out = Path(
        args.out
        or ROOT
        / "benchmarks"
        / "results"
        / f"memory-cpu-{os.cpu_count()}core_{args.n_tiles // 1000}k-{args.size}x{args.size}x{args.channels}.jsonl"
    )
    for case in args.cases:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--case",
            case,
            "--npy",
            str(npy),
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--embed-batch-size",
            str(args.embed_batch_size),
            "--width",
            str(args.width),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if res.returncode != 0:
            sys.exit(f"case {case} failed:\n{res.stderr}")
        line = res.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
