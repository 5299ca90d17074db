"""Which way from a CPU-trained network to its 2D map keeps the most? Variants of the two 2D stages,
each started from the same pre-trained network (stage 1 of the CLI's 10-minute CPU run: ResNet-18 with
a stride-2 stem at width 16, batch 256, 32 epochs on all 17,092 blood cells of
``../shared/data/pbc28.npz``).

    python benchmarks/bench_map_stages.py --cache .data/stage1.tsimcne \
        --variants paper,lr3x10,lr3x100 --out benchmarks/results/map-stages-cpu-2core_pbc17092.jsonl

The pre-trained network is trained once and kept in ``--cache``. Every variant then trains stages 2
and 3 from it and prints the map's 15-NN accuracy, the accuracy of the 128-D output it started from,
and the seconds its two stages took. A variant is a name from ``VARIANTS``:

- ``paper``: stage 2 at the learning rate of stage 1, stage 3 at a thousandth of it (the paper's).
- ``lr3xK``: stage 3 at K thousandths of the stage-1 rate (``lr3x10``: a hundredth); stages 1 and 2
  train at 0.03 (the paper's rule for batch 256) unless ``--pretrain-lr`` says otherwise.
- ``s2eN``: N epochs of stage 2 instead of 1.
- ``e3N``: N epochs of stage 3 instead of 16.
- ``bsN``: batch size N in the two 2D stages (and the learning rate scaled with it) instead of 256.
- ``tsne``: stage 2 starts its 2D layer from a t-SNE of the backbone features (openTSNE) instead of
  their PCA: the layer is the least-squares fit from the head's hidden units to the t-SNE map.
- ``dofA``: a Student-t kernel ``(1 + d^2 / A)^-A`` with A degrees of freedom in the 2D stages in place
  of the Cauchy kernel (A = 1); heavier tails (A < 1) separate clusters more (Kobak et al. 2019).

Variant names combine with ``+``: ``lr3x10+e3N8``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import emit  # noqa: E402
from bench_cpu import machine  # noqa: E402

import napari_tsimcne.core.training as training_module  # noqa: E402
from napari_tsimcne import TSimCNE, knn_accuracy  # noqa: E402
from napari_tsimcne.core.parameters import is_auto  # noqa: E402
from napari_tsimcne.core.sample import load_pbc  # noqa: E402
from napari_tsimcne.core.schedule import default_lr  # noqa: E402

PRETRAIN_EPOCHS = 32
STAGE2_EPOCHS = 1
STAGE3_EPOCHS = 16


def base_model(epochs: tuple[int, int, int], lr: float | str = "auto", seed: int = 0) -> TSimCNE:
    """The estimator as the CLI's 10-minute CPU run sets it, with fixed epochs."""
    return TSimCNE(
        lr=lr,
        total_epochs=epochs,
        backbone="resnet18-s2",
        width=16,
        batch_size=256,
        device="cpu",
        random_state=seed,
        preview_every=0,
    )


def pretrain(tiles: np.ndarray, cache: Path, lr: float | str, seed: int) -> float:
    """Train stage 1 and keep its last checkpoint in ``cache``; returns the seconds it took."""
    started = time.perf_counter()
    model = base_model((PRETRAIN_EPOCHS, STAGE2_EPOCHS, STAGE3_EPOCHS), lr, seed)
    partial = cache.with_suffix(".partial")
    events = model.fit_iter(tiles, checkpoint=partial, checkpoint_every=1)
    for event in events:
        print(f"stage 1 epoch {event.epoch}/{event.stage_epochs} loss {event.loss:.3f}", flush=True)
        if event.stage == 1 and event.epoch == event.stage_epochs:
            break
    events.close()
    partial.replace(cache)
    return time.perf_counter() - started


def parse_variant(name: str) -> dict:
    """The settings of a variant name (see the module's docstring)."""
    settings = dict(
        lr3_factor=1.0, e2=STAGE2_EPOCHS, e3=STAGE3_EPOCHS, dof=1.0, batch_size=256, init="pca"
    )
    for part in name.split("+"):
        if part == "paper":
            continue
        if part == "tsne":
            settings["init"] = "tsne"
        elif m := re.fullmatch(r"lr3x(\d+(?:\.\d+)?)", part):
            settings["lr3_factor"] = float(m.group(1))
        elif m := re.fullmatch(r"s2e(\d+)", part):
            settings["e2"] = int(m.group(1))
        elif m := re.fullmatch(r"e3N(\d+)", part):
            settings["e3"] = int(m.group(1))
        elif m := re.fullmatch(r"bs(\d+)", part):
            settings["batch_size"] = int(m.group(1))
        elif m := re.fullmatch(r"dof(\d+(?:\.\d+)?)", part):
            settings["dof"] = float(m.group(1))
        else:
            raise SystemExit(f"Unknown variant part {part!r} in {name!r}.")
    return settings


def tsne_init(labels: np.ndarray, report: dict):
    """A replacement for ``Trainer._init_last_layer_from_pca`` that starts from a t-SNE instead."""
    from openTSNE import TSNE

    @torch.no_grad()
    def init(self, max_tiles: int = 0) -> None:
        started = time.perf_counter()
        net, n = self.net, len(self.store)
        net.eval()
        feats, hidden = [], []
        for start in range(0, n, 1024):
            f = net.features(self.store.gather(torch.arange(start, min(n, start + 1024))))
            feats.append(f)
            hidden.append(net.head.hidden(f))
        net.train()
        f = torch.cat(feats).float().numpy()
        h = torch.cat(hidden).float()
        t0 = time.perf_counter()
        y = np.asarray(TSNE(n_jobs=2, random_state=self.config.seed).fit(f))
        report["tsne_seconds"] = round(time.perf_counter() - t0, 1)
        report["tsne_knn15"] = round(knn_accuracy(y, labels), 2)
        y = torch.from_numpy((y - y.mean(0)) / y.std() * self.config.init_scale).float()
        design = torch.cat([h, torch.ones(n, 1)], 1)
        solution = torch.linalg.lstsq(design, y).solution
        fit = design @ solution
        report["init_r2"] = round(float(1 - ((fit - y) ** 2).sum() / (y**2).sum()), 3)
        report["init_knn15"] = round(knn_accuracy(fit.numpy(), labels), 2)
        last = torch.nn.Linear(h.shape[1], y.shape[1])
        last.weight.copy_(solution[:-1].T)
        last.bias.copy_(solution[-1])
        net.head.last = last
        report["init_seconds"] = round(time.perf_counter() - started, 1)

    return init


def run_variant(name: str, tiles: np.ndarray, labels: np.ndarray, cache: Path) -> dict:
    """Stages 2 and 3 of one variant from the cached pre-trained network."""
    settings = parse_variant(name)
    model = TSimCNE.load(cache, device="cpu")
    model.total_epochs = (PRETRAIN_EPOCHS, settings["e2"], settings["e3"])
    model.preview_every = 0
    model.batch_size = settings["batch_size"]  # the learning rate follows it
    model._resume_state["batch_size"] = settings["batch_size"]

    def student_infonce(z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``cauchy_infonce`` with the Student-t kernel of ``settings["dof"]`` degrees of freedom."""
        z = z.float()
        n, dof = z.shape[0], settings["dof"]
        b = n // 2
        rows = torch.arange(n, device=z.device) if rows is None else rows
        sq = (z * z).sum(1)
        d2 = (sq[rows, None] + sq[None, :] - 2.0 * (z[rows] @ z.T)).clamp_min(0.0)
        sim = (1.0 + d2 / dof).pow(-dof)
        local = torch.arange(len(rows), device=z.device)
        sim = sim.index_put((local, rows), torch.zeros((), device=z.device))
        positive = sim[local, (rows + b) % n]
        return (sim.sum(1).log() - positive.log()).mean()

    lr = default_lr(settings["batch_size"]) if is_auto(model.lr) else float(model.lr)
    model.finetune_lr = lr / 1000 * settings["lr3_factor"]
    original = training_module.cauchy_infonce
    original_init = training_module.Trainer._init_last_layer_from_pca
    report: dict = {}
    if settings["dof"] != 1.0:
        training_module.cauchy_infonce = student_infonce
    if settings["init"] == "tsne":
        training_module.Trainer._init_last_layer_from_pca = tsne_init(labels, report)
    try:
        started = time.perf_counter()
        for _ in model.resume_iter(tiles):
            pass
        seconds = time.perf_counter() - started
    finally:
        training_module.cauchy_infonce = original
        training_module.Trainer._init_last_layer_from_pca = original_init
    return {
        **report,
        "variant": name,
        "settings": settings,
        "stage23_seconds": round(seconds, 1),
        "knn15": round(knn_accuracy(model.embedding_, labels), 2),
    }


def main() -> int:
    global PRETRAIN_EPOCHS  # noqa: PLW0603 (one setting for the whole run)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--variants", default="paper")
    parser.add_argument("--out", default=None)
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN_EPOCHS)
    parser.add_argument(
        "--pretrain-lr", type=float, default=None, help="stage 1's learning rate (default: 0.03)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random_state of the pre-training")
    parser.add_argument("--n-tiles", type=int, default=None, help="a subset, for a quick check")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sample = load_pbc(args.n_tiles, 0)
    PRETRAIN_EPOCHS = args.pretrain_epochs
    pretrain_seconds = None
    if not args.cache.exists():
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        pretrain_seconds = round(
            pretrain(sample.tiles, args.cache, args.pretrain_lr or "auto", args.seed), 1
        )
    for name in args.variants.split(","):
        result = run_variant(name, sample.tiles, sample.labels, args.cache)
        emit(
            {
                "benchmark": "cpu_map_stages",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": machine(),
                "n_tiles": int(len(sample.tiles)),
                "pretrain": {
                    "epochs": PRETRAIN_EPOCHS,
                    "backbone": "resnet18-s2",
                    "width": 16,
                    "batch_size": 256,
                    "lr": args.pretrain_lr or 0.03,
                    "seed": args.seed,
                    "seconds_this_run": pretrain_seconds,
                },
                **result,
            },
            args.out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
