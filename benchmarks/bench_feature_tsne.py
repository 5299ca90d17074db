"""How much of a map is in the pre-trained features? t-SNE of them, and a network head fitted to that t-SNE.

For each pre-trained network (stage 1 of the CLI's 10-minute CPU run, cached by
``bench_map_stages.py``), on all 17,092 blood cells of ``../shared/data/pbc28.npz``:

- the 15-NN accuracy of the backbone features (128-D at width 16);
- a t-SNE of the features (openTSNE, its defaults): its accuracy and seconds on this machine;
- the head fitted to that t-SNE by regression (the pre-trained hidden layer and a new 2-D layer,
  mean squared error, Adam, 60 epochs): what a parametric map that imitates the t-SNE keeps;
- with ``--whole-network``, the whole network fitted to it the same way (10 epochs of all tiles, no
  augmentation, the 2-D layer started from the least-squares fit to the hidden layer);
- with ``--map-head``, the t-SNE finish's ``MapHead`` (standardised features, ``HEAD_DEPTH`` hidden
  layers of ``HEAD_HIDDEN``) fitted to it as the product fits it (``tsne_finish.distill_epoch``, its
  schedule and passes), scored after half of the passes and after all;
- with ``--head-sizes 1024x3:100 512x3:300 ...``, only such heads, of each size and number of passes
  (any network: the features are the backbone's, which the fit leaves as it is).

    python benchmarks/bench_feature_tsne.py .data/stage1_pbc_w16_e32_lr003.tsimcne \\
        --out benchmarks/results/feature-tsne-cpu-2core_pbc17092.jsonl
    python benchmarks/bench_feature_tsne.py tsimcne-demo/model.tsimcne \\
        --head-sizes 1024x3:100 512x3:100 512x3:200 512x3:300 \\
        --out benchmarks/results/map-head-cpu-2core_pbc17092.jsonl

With ``--end-to-end MINUTES`` (and no model files) it times the whole way instead, from the tiles to
a map: two epochs of pre-training to measure the speed, pre-training for as many epochs as leave
time for the features and their t-SNE, then the t-SNE; the wall time and the map's accuracy.
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
from bench_cpu import machine  # noqa: E402

from napari_tsimcne import TSimCNE, knn_accuracy  # noqa: E402
from napari_tsimcne.core.sample import load_pbc  # noqa: E402
from napari_tsimcne.core.store import TileStore  # noqa: E402
from napari_tsimcne.core.tiles import as_tile_stack  # noqa: E402

REGRESSION_EPOCHS = (5, 20, 60)


@torch.no_grad()
def backbone_features(model: TSimCNE, tiles: np.ndarray) -> np.ndarray:
    """The backbone features of all tiles (the network may still have its 128-D output)."""
    net = model.model_.eval()
    store = TileStore(as_tile_stack(tiles), model.normalization_, torch.device("cpu"))
    n = len(store)
    parts = [
        net.features(store.gather(torch.arange(i, min(n, i + 1024)))) for i in range(0, n, 1024)
    ]
    return torch.cat(parts).float().numpy()


def fit_head(model: TSimCNE, features: np.ndarray, target: np.ndarray, labels) -> dict:
    """Regress the t-SNE map from the features with the pre-trained hidden layer and a new 2-D layer."""
    torch.manual_seed(0)
    hidden = model.model_.head.hidden
    head = torch.nn.Sequential(hidden, torch.nn.Linear(hidden[0].out_features, 2)).train()
    x = torch.from_numpy(features)
    y = torch.from_numpy((target - target.mean(0)) / target.std()).float()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    result, started = {}, time.perf_counter()
    for epoch in range(1, max(REGRESSION_EPOCHS) + 1):
        for rows in torch.randperm(len(x)).split(256):
            loss = ((head(x[rows]) - y[rows]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch in REGRESSION_EPOCHS:
            with torch.no_grad():
                mapped = head(x).numpy()
            result[f"epochs_{epoch}"] = {
                "knn15": round(knn_accuracy(mapped, labels), 2),
                "seconds": round(time.perf_counter() - started, 1),
                "mse": round(float(((torch.from_numpy(mapped) - y) ** 2).mean()), 4),
            }
    return result


def fit_network(model: TSimCNE, tiles: np.ndarray, target: np.ndarray, labels) -> dict:
    """Regress the t-SNE map from the tiles with the whole network (backbone and head)."""
    torch.manual_seed(0)
    net = model.model_
    store = TileStore(as_tile_stack(tiles), model.normalization_, torch.device("cpu"))
    n, every = len(store), torch.arange(len(store))
    y = torch.from_numpy((target - target.mean(0)) / target.std()).float()

    @torch.no_grad()
    def mapped(layer) -> torch.Tensor:
        net.eval()
        out = torch.cat([layer(store.gather(every[i : i + 1024])) for i in range(0, n, 1024)])
        net.train()
        return out

    hidden = mapped(lambda x: net.head.hidden(net.features(x)))
    design = torch.cat([hidden, torch.ones(n, 1)], 1)
    solution = torch.linalg.lstsq(design, y).solution
    last = torch.nn.Linear(hidden.shape[1], 2)
    with torch.no_grad():
        last.weight.copy_(solution[:-1].T)
        last.bias.copy_(solution[-1])
    net.head.last = last
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    result, started = {}, time.perf_counter()
    for epoch in range(1, 11):
        for rows in torch.randperm(n).split(256):
            loss = ((net(store.gather(rows)) - y[rows]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch in (2, 5, 10):
            result[f"epochs_{epoch}"] = {
                "knn15": round(knn_accuracy(mapped(net).numpy(), labels), 2),
                "seconds": round(time.perf_counter() - started, 1),
            }
    return result


def fit_map_head(
    features: np.ndarray,
    target: np.ndarray,
    labels,
    hidden: int | None = None,
    depth: int | None = None,
    passes: int | None = None,
) -> dict:
    """Fit a ``MapHead`` to the t-SNE map as training does (``distill_epoch``, its schedule).

    By default the product's head and passes; scored after half of the passes and after all.
    """
    from napari_tsimcne.core.schedule import lr_at, make_stages
    from napari_tsimcne.core.tsne_finish import (
        DISTILL_EPOCHS,
        HEAD_DEPTH,
        HEAD_HIDDEN,
        PASSES_PER_EPOCH,
        distill_epoch,
        new_map_head,
    )

    hidden, depth = hidden or HEAD_HIDDEN, depth or HEAD_DEPTH
    passes = passes or DISTILL_EPOCHS * PASSES_PER_EPOCH
    x = torch.from_numpy(features).float()
    y = torch.from_numpy(target).float()
    head = new_map_head(x, y, seed=0, hidden_dim=hidden, depth=depth)
    epochs = max(1, passes // 10)  # 10 passes an epoch, so that the schedule is the product's
    stage = make_stages((1, 1, epochs), 0.03, finish="tsne")[2]
    optimizer = torch.optim.Adam(head.parameters(), lr=stage.lr)
    result, started = {"hidden": hidden, "depth": depth}, time.perf_counter()
    for done in range(epochs):
        gen = torch.Generator().manual_seed(done)
        order = torch.cat([torch.randperm(len(x), generator=gen) for _ in range(10)])
        distill_epoch(
            head,
            optimizer,
            x,
            y,
            order,
            lambda step, steps, done=done: lr_at(stage, done * steps + step, steps),
        )
        if done + 1 in (epochs // 2, epochs):
            with torch.no_grad():
                mapped = head.eval()(x).numpy()
            result[f"passes_{(done + 1) * 10}"] = {
                "knn15": round(knn_accuracy(mapped, labels), 2),
                "seconds": round(time.perf_counter() - started, 1),
            }
    return result


def end_to_end(minutes: float, seed: int, tsne_seconds: float = 60.0) -> dict:
    """Pre-training for the time left after ``tsne_seconds``, then a t-SNE of its features."""
    from openTSNE import TSNE

    from napari_tsimcne.core.device import CPU_DEFAULTS

    sample = load_pbc(None, 0)
    started = time.perf_counter()

    def model(epochs: int) -> TSimCNE:
        return TSimCNE(
            total_epochs=(epochs, 0, 0),
            backbone=CPU_DEFAULTS.backbone,
            width=CPU_DEFAULTS.width,
            batch_size=CPU_DEFAULTS.batch_size,
            device="cpu",
            random_state=seed,
            preview_every=0,
        )

    # two probe epochs: the second one's time is the steady speed (the first one warms up)
    seen = [event.seconds for event in model(2).fit_iter(sample.tiles)]
    epoch_s = seen[1] - seen[0]
    left = 60 * minutes - (time.perf_counter() - started) - tsne_seconds
    epochs = max(1, int(left // epoch_s))
    trained = model(epochs).fit(sample.tiles)
    features = backbone_features(trained, sample.tiles)
    tsne = np.asarray(TSNE(n_jobs=2, random_state=seed).fit(features))
    return {
        "benchmark": "feature_tsne_end_to_end",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "n_tiles": int(len(sample.tiles)),
        "minutes_asked": minutes,
        "seed": seed,
        "epoch_seconds_probe": round(epoch_s, 1),
        "pretrain_epochs": epochs,
        "knn15_features": round(knn_accuracy(features, sample.labels), 2),
        "knn15_tsne_map": round(knn_accuracy(tsne, sample.labels), 2),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def head_sizes(specs, path: Path, features, tsne, tsne_seconds: float, sample) -> dict:
    """MapHeads of several sizes and lengths of fit, fitted to one t-SNE of one network's features."""
    runs = []
    for spec in specs:
        size, passes = spec.split(":")
        hidden, depth = (int(v) for v in size.split("x"))
        runs.append(fit_map_head(features, tsne, sample.labels, hidden, depth, int(passes)))
        print(spec, runs[-1], flush=True)
    return {
        **header("map_head_sizes", path, features, tsne, tsne_seconds, sample),
        "map_heads": runs,
    }


def header(benchmark: str, path: Path, features, tsne, tsne_seconds: float, sample) -> dict:
    """What every line says: the machine, the network, its features and their t-SNE."""
    return {
        "benchmark": benchmark,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "n_tiles": int(len(sample.tiles)),
        "model": path.name,
        "knn15_features": round(knn_accuracy(features, sample.labels), 2),
        "tsne_of_features": {
            "knn15": round(knn_accuracy(tsne, sample.labels), 2),
            "seconds": round(tsne_seconds, 1),
        },
    }


def main() -> int:
    from openTSNE import TSNE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="stage-1 networks (.tsimcne)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--whole-network", action="store_true", help="also fit the whole network")
    parser.add_argument("--map-head", action="store_true", help="also fit the t-SNE finish's head")
    parser.add_argument(
        "--head-sizes",
        nargs="+",
        default=None,
        metavar="UNITSxDEPTH:PASSES",
        help="only fit MapHeads of these sizes (e.g. 1024x3:100 512x3:300), nothing else",
    )
    parser.add_argument("--end-to-end", type=float, default=None, metavar="MINUTES")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.end_to_end is not None:
        emit(end_to_end(args.end_to_end, args.seed), args.out)
        return 0
    sample = load_pbc(None, 0)
    for path in args.models:
        model = TSimCNE.load(path, device="cpu")
        features = backbone_features(model, sample.tiles)
        started = time.perf_counter()
        tsne = np.asarray(TSNE(n_jobs=2, random_state=0).fit(features))
        tsne_seconds = time.perf_counter() - started
        if args.head_sizes:
            emit(head_sizes(args.head_sizes, path, features, tsne, tsne_seconds, sample), args.out)
            continue
        emit(
            {
                **header("feature_tsne", path, features, tsne, tsne_seconds, sample),
                "head_fitted_to_tsne": fit_head(model, features, tsne, sample.labels),
                "map_head_fitted_to_tsne": (
                    fit_map_head(features, tsne, sample.labels) if args.map_head else None
                ),
                "network_fitted_to_tsne": (
                    fit_network(TSimCNE.load(path, device="cpu"), sample.tiles, tsne, sample.labels)
                    if args.whole_network
                    else None
                ),
            },
            args.out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
