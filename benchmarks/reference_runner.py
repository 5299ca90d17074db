"""Run the published reference package (tsimcne 0.3.12) on the same tiles and budget as bench_fit.py.

This script only imports and calls the installed reference package; none of
its code is copied here. Install it beside ours without its dependencies
(see benchmarks/README.md)::

    pip install --no-index --no-deps --target .ref .whl/*.whl   # tsimcne, lightning, torchmetrics, lightning-utilities

``.ref/`` (if present) is put at the front of ``sys.path``, so the reference
need not be installed into the environment at all.

Example (GPU, all PBC tiles, the reference figures' setting)::

    python benchmarks/reference_runner.py --data .data/pbc28.npz --epochs 40 4 16 \
        --batch-size 1024 --augmentations rotation --num-workers 16

Prints one JSON line (the last line of stdout). Quality is measured with our
``napari_tsimcne.knn_accuracy`` (15-NN, stratified 90/10 split, seed 0), the
same function and protocol bench_fit.py uses for our maps.

Augmentations (``--augmentations``):

* ``natural``: the package's own default (``data_transform=None``): random
  resized crop (0.2-1), horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1)
  with p = 0.8, greyscale with p = 0.2.
* ``rotation``: the medical-image set of Nwabufo, Böhm, Berens & Kobak
  (2024), passed to the package as ``data_transform`` and built here from
  torchvision transforms: a rotation by any angle (uniform in [0, 360)),
  the uncovered corners filled with the mean colour of the tile's border,
  then the natural set plus a vertical flip. tsimcne 0.3.12 has no switch
  for it; this is how its users supply it.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import emit

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / ".ref").is_dir():
    sys.path.insert(0, str(ROOT / ".ref"))
if (ROOT / "src").is_dir():
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from PIL import Image  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", default=None, help="npz with 'images' and 'labels' (default: as bench_fit.py)"
    )
    p.add_argument(
        "--subset",
        type=int,
        default=None,
        help="random subset of this many tiles (seed 0, as bench_fit.py)",
    )
    p.add_argument("--epochs", type=int, nargs=3, default=[40, 4, 16], metavar=("E1", "E2", "E3"))
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--augmentations", default="rotation", choices=["rotation", "natural"])
    p.add_argument(
        "--num-workers",
        type=int,
        default=16,
        help="DataLoader workers (the reference figures used 16)",
    )
    p.add_argument(
        "--device", default="auto", help="auto, cuda or cpu (passed to Lightning as accelerator)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch in the main process"
    )
    p.add_argument(
        "--no-128d", action="store_true", help="skip the 15-NN of the stage-1 128-D output"
    )
    p.add_argument("--out", default=None, help="append the JSON line to this file")
    return p.parse_args(argv)


class _PilTiles(torch.utils.data.Dataset):
    """(PIL image, 0) pairs, the input the reference expects; labels are never shown to it."""

    def __init__(self, tiles: np.ndarray):
        self.tiles = tiles
        self.mode = "L" if tiles.ndim == 3 or tiles.shape[-1] == 1 else "RGB"

    def __len__(self):
        return len(self.tiles)

    def __getitem__(self, i):
        t = self.tiles[i]
        if self.mode == "L" and t.ndim == 3:
            t = t[..., 0]
        return Image.fromarray(t, mode=self.mode), 0


class _RotateAnyAngleBorderFill:
    """Rotate a PIL image by a uniform angle in [0, 360), filling the corners with its border's mean colour."""

    def __call__(self, img: Image.Image) -> Image.Image:
        a = np.asarray(img)
        border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]]).reshape(
            -1, 1 if a.ndim == 2 else a.shape[2]
        )
        fill = tuple(int(round(v)) for v in border.mean(0))
        fill = fill[0] if a.ndim == 2 else fill
        return img.rotate(random.uniform(0.0, 360.0), resample=Image.BILINEAR, fillcolor=fill)


def rotation_transform(size):
    from torchvision import transforms as T

    return T.Compose(
        [
            _RotateAnyAngleBorderFill(),
            T.RandomResizedCrop(size=size, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )


def _install_hooks(
    tsimcne_module, accelerator: str, root_dir: str, epoch_times: list, on_stage_end
):
    """Wrap ``pl.Trainer`` inside the reference module: add our timing callback, quiet logging, temp dirs.

    (tsimcne 0.3.12 cannot take ``trainer_kwargs``: it sets them to None when
    given, so the module's ``pl`` is swapped for a thin proxy instead.)
    """
    from lightning import pytorch as pl

    class Timer(pl.Callback):
        def __init__(self):
            self.t0 = None
            self.stage = 0

        def _sync(self):
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def on_train_epoch_start(self, trainer, pl_module):
            self._sync()
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self._sync()
            epoch_times.append((self.stage, time.perf_counter() - self.t0))

        def on_train_end(self, trainer, pl_module):
            on_stage_end(self.stage, pl_module)

    counter = {"fit_trainers": 0}

    def trainer_factory(*args, **kwargs):
        kwargs.setdefault("accelerator", accelerator)
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_checkpointing", False)
        kwargs.setdefault("enable_progress_bar", False)
        kwargs.setdefault("enable_model_summary", False)
        kwargs.setdefault("default_root_dir", root_dir)
        if "max_epochs" in kwargs:  # a training stage (predict trainers have no max_epochs)
            counter["fit_trainers"] += 1
            timer = Timer()
            timer.stage = counter["fit_trainers"]
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [timer]
        return pl.Trainer(*args, **kwargs)

    class _PlProxy:
        def __getattr__(self, name):
            return getattr(pl, name)

    proxy = _PlProxy()
    proxy.Trainer = trainer_factory
    tsimcne_module.pl = proxy


def _device_name(accelerator: str) -> str:
    if accelerator != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import lightning
    import tsimcne
    import tsimcne.tsimcne as tsimcne_module
    from lightning.pytorch import seed_everything

    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "pytorch_lightning",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)

    from bench_fit import DEFAULT_DATA, load_tiles

    from napari_tsimcne import knn_accuracy

    args.data = args.data or str(DEFAULT_DATA)
    tiles, labels = load_tiles(args.data, args.subset)
    dataset = _PilTiles(tiles)
    kind = args.device.split(":")[0]
    accelerator = {"auto": "auto", "cuda": "gpu", "gpu": "gpu", "cpu": "cpu"}.get(kind)
    if accelerator is None:
        raise SystemExit(
            f"--device must be auto, cuda or cpu for the reference, got {args.device!r}"
        )
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"

    epoch_times: list[tuple[int, float]] = []
    extra = {"acc128": None, "side_seconds": 0.0}

    def on_stage_end(stage: int, pl_module):
        if stage != 1 or args.no_128d:
            return
        # 15-NN of the pre-trained 128-D output, on un-augmented tiles (the reference's own test transform:
        # ToTensor only). Excluded from the fit time.
        t0 = time.perf_counter()
        net = pl_module.model
        was_training = net.training
        net.eval()
        outs = []
        dev = next(net.parameters()).device
        with torch.no_grad():
            for s in range(0, len(tiles), 1024):
                x = torch.from_numpy(np.ascontiguousarray(tiles[s : s + 1024]))
                x = (
                    (x if x.ndim == 4 else x[..., None])
                    .permute(0, 3, 1, 2)
                    .float()
                    .div_(255)
                    .to(dev)
                )
                outs.append(net(x)[0].float().cpu())
        net.train(was_training)
        extra["acc128"] = knn_accuracy(torch.cat(outs).numpy(), labels)
        extra["side_seconds"] += time.perf_counter() - t0

    root_dir = tempfile.mkdtemp(prefix="tsimcne-ref-")
    _install_hooks(tsimcne_module, accelerator, root_dir, epoch_times, on_stage_end)
    size = tuple(tiles.shape[1:3])
    data_transform = rotation_transform(size) if args.augmentations == "rotation" else None
    seed_everything(args.seed, workers=True, verbose=False)
    model = tsimcne.TSimCNE(
        total_epochs=list(args.epochs),
        batch_size=args.batch_size,
        data_transform=data_transform,
        num_workers=args.num_workers,
        devices=1,
    )
    if accelerator == "gpu":
        torch.zeros(
            1, device="cuda"
        )  # create the CUDA context before the clock starts (bench_fit.py does too)
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.fit(dataset)
    if accelerator == "gpu":
        torch.cuda.synchronize()
    fit_seconds = time.perf_counter() - t0 - extra["side_seconds"]
    t1 = time.perf_counter()
    y, feats = model.transform(dataset, return_backbone_feat=True)
    transform_seconds = time.perf_counter() - t1
    feats = feats.numpy() if hasattr(feats, "numpy") else np.asarray(feats)

    per_stage: dict[int, list[float]] = {}
    for stage, dt in epoch_times:
        per_stage.setdefault(stage, []).append(dt)
    total_epochs = int(sum(args.epochs))
    result = {
        "benchmark": "fit",
        "package": f"tsimcne {tsimcne.__version__} (lightning {lightning.__version__})",
        "data": Path(args.data).name,
        "n_tiles": int(len(tiles)),
        "tile_shape": list(tiles.shape[1:]),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "augmentations": args.augmentations,
        "num_workers": args.num_workers,
        "backbone": "resnet18_simclr",
        "seed": args.seed,
        "device": _device_name(accelerator),
        "torch": torch.__version__,
        "python": platform.python_version(),
        # fit time / all epochs, as the reference figures (4.12 s = 248 s / 60) were computed
        "seconds_per_epoch_overall": round(fit_seconds / max(1, total_epochs), 4),
        # the median epoch in each stage, timed by a Lightning callback (epoch start to end, synchronised)
        "seconds_per_epoch": {
            f"stage{k}": round(float(np.median(v)), 4) for k, v in sorted(per_stage.items())
        },
        "views_per_second": {
            f"stage{k}": round(2 * len(tiles) / float(np.median(v)), 1)
            for k, v in sorted(per_stage.items())
        },
        "fit_seconds": round(fit_seconds, 2),
        "knn15_map_2d": round(knn_accuracy(y, labels), 2),
        "knn15_pretrain_128d": None if extra["acc128"] is None else round(extra["acc128"], 2),
        "knn15_backbone_features": round(knn_accuracy(feats, labels), 2),
        "transform_tiles_per_second": round(len(tiles) / transform_seconds, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return emit(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
