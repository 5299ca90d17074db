"""Draw the maps saved by ``bench_quantitative.py --save-maps DIR``: one column per map, coloured by
class (top) and by true DNA content (bottom).

Example::

    python benchmarks/plot_quantitative.py benchmarks/results/quantitative-maps \
        pca2_raw tsne "ours_microscopy_seed0" "ours_quantitative_seed0" -o docs/images/quantitative-maps.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from synthetic_cells import CLASSES

TITLES = {
    "pca2": "PCA of the pixels",
    "pca2_raw": "PCA of the raw pixels",
    "tsne": "t-SNE of the pixels",
    "umap": "UMAP of the pixels",
    "intensity": "integrated intensity",
}
COLOURS = ["#4c72b0", "#55a868", "#8172b2", "#c44e52", "#dd8452", "#937860", "#da8bc3"]


def _title(name: str) -> str:
    if name in TITLES:
        return TITLES[name]
    if name.startswith("ours_"):
        return "t-SimCNE, " + name[5:].rsplit("_seed", 1)[0].replace("_", " ") + " preset"
    return name


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("maps", nargs="+", help="names of the saved maps (file names without .npy)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--scores", help="a .jsonl from the same run, to print 15-NN under each title")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    truth = np.load(folder / "truth.npz")
    labels, dna = truth["labels"], truth["dna"]
    knn = {}
    if args.scores:
        for line in Path(args.scores).read_text().splitlines():
            r = json.loads(line)
            key = r["map"].replace("ours, ", "ours_")
            if "settings" in r:
                key += f"_seed{r['settings']['seed']}"
            knn[key] = r["knn15"]
    fig, axes = plt.subplots(2, len(args.maps), figsize=(3.2 * len(args.maps), 6.4), squeeze=False)
    for j, name in enumerate(args.maps):
        y = np.load(folder / f"{name}.npy")
        y = y[:, :2] if y.ndim == 2 and y.shape[1] > 1 else np.c_[y.ravel(), np.zeros(len(y))]
        title = _title(name)
        if name in knn:
            title += f"\n15-NN {knn[name]:.1f} %"
        top, bottom = axes[0, j], axes[1, j]
        order = np.argsort(-np.bincount(labels)[labels], kind="stable")  # rare classes on top
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal", adjustable="datalim")
        top.scatter(
            y[order, 0], y[order, 1], s=2, c=[COLOURS[k] for k in labels[order]], linewidths=0
        )
        top.set_title(title, fontsize=10)
        sc = bottom.scatter(y[:, 0], y[:, 1], s=2, c=dna, cmap="viridis", linewidths=0)
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=COLOURS[k], label=c)
        for k, c in enumerate(CLASSES)
    ]
    fig.legend(handles=handles, loc="upper center", ncol=len(CLASSES), frameon=False, fontsize=9)
    cbar = fig.colorbar(sc, ax=axes[1, :].tolist(), shrink=0.8, pad=0.01)
    cbar.set_label("DNA content (1 = G1, 2 = G2)")
    fig.savefig(args.output, dpi=110, bbox_inches="tight")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
