"""The ``napari-tsimcne`` command: train, embed and evaluate t-SimCNE maps without a GUI.

Subcommands: ``fit``, ``embed``, ``evaluate`` and ``demo``. Exit codes:
0 success, 1 other errors, 2 bad usage, 3 bad input data, 4 bad model file,
5 output not writable (read-only, permissions, disk full), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from .core.defaults import CPU_DEFAULTS, GPU_DEFAULTS
from .core.parameters import DEVICES
from .core.presets import PRESETS
from .core.schedule import QUICK_GPU_EPOCHS
from .core.tiles import HOW_TO_CUT

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_BAD_MODEL = 4
EXIT_OUTPUT = 5
EXIT_INTERRUPTED = 130

CHECKPOINT = "checkpoint.tsimcne"
DEMO_DIR = "tsimcne-demo"
KNN_K = 15
RESULTS = ("model.tsimcne", "embedding.csv", "map.png", "summary.json")
"""The outputs of fit and demo, in the order they are moved into place (the summary last: the set is complete)."""

EPILOG = """exit codes:
  0    success
  1    other errors
  2    bad usage (unknown option, missing argument)
  3    bad input data (missing or unreadable file, not a tile stack)
  4    bad model file (missing, corrupt, not a napari-tsimcne model)
  5    output cannot be written (folder not writable, read-only, disk full)
  130  interrupted with Ctrl-C (fit/demo save the partial model as model.partial.tsimcne)
"""


class CliError(Exception):
    """An error with a one-line message and an exit code.

    Parameters
    ----------
    message : str
        The message shown to the user (one line, no traceback).
    code : int
        The exit status of the command, e.g. ``EXIT_USAGE``.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Interrupted(Exception):
    """Ctrl-C during training, after the partial model was handled."""


# -- argument parsing ------------------------------------------------------------


def _positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _add_training_options(p: argparse.ArgumentParser) -> None:
    from .core.backbones import BACKBONES

    g = p.add_argument_group("training (left out: chosen for the device found)")
    how_long = g.add_mutually_exclusive_group()
    how_long.add_argument(
        "--epochs",
        nargs=3,
        type=int,
        metavar=("E1", "E2", "E3"),
        default=None,
        help="epochs of the three stages: 128-D pre-training, 2-D last layer alone, 2-D "
        "fine-tuning (default: the paper's "
        f"{' '.join(map(str, GPU_DEFAULTS.total_epochs))} on a CUDA GPU; elsewhere as many "
        "as fit --minutes)",
    )
    how_long.add_argument(
        "--minutes",
        type=_positive_float,
        default=None,
        metavar="M",
        help="train for about M minutes instead of a number of epochs: the first steps are "
        "timed and the epochs set to fit, mapping included (default without a CUDA GPU: "
        f"{CPU_DEFAULTS.time_budget / 60:g})",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="tiles per step; every other view in the batch is a negative (default: "
        f"{GPU_DEFAULTS.batch_size} on a GPU, {CPU_DEFAULTS.batch_size} on a CPU; lowered to the "
        "largest power of two that fits when the stack is smaller)",
    )
    g.add_argument(
        "--augmentations",
        choices=("auto", *PRESETS),
        default="auto",
        help="augmentation preset; what it varies, the map ignores (default: %(default)s, chosen "
        "from the stack and said at the start: 'quantitative' for fluorescence where intensity is "
        "the signal, 'microscopy' otherwise)",
    )
    g.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help=f"{', '.join(DEVICES)} or cuda:N; auto takes CUDA, then MPS, then the CPU "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="random seed for weights, shuffling and augmentations (default: %(default)s)",
    )
    g.add_argument(
        "--backbone",
        choices=("auto", *BACKBONES),
        default="auto",
        help="network: resnet18 (the paper's), the lighter resnet10, or resnet18-s2 (stride-2 stem, "
        f"about 3x cheaper on small tiles) (default: {GPU_DEFAULTS.backbone} on a GPU, "
        f"{CPU_DEFAULTS.backbone} on a CPU)",
    )
    g.add_argument(
        "--width",
        type=int,
        default=None,
        metavar="C",
        help="channels of the first network layer; smaller is faster and weaker "
        f"(default: {GPU_DEFAULTS.width} on a GPU, {CPU_DEFAULTS.width} on a CPU)",
    )
    g.add_argument(
        "--finish",
        choices=("auto", "contrastive", "tsne"),
        default="auto",
        help="how the 2-D map is made after pre-training: contrastive (the paper's two 2-D "
        "stages) or tsne (a t-SNE of the learned features, then the network fitted to it; "
        "new tiles are still mapped by the network) (default: tsne with a time budget on a "
        "CPU, contrastive elsewhere)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar and no messages besides errors"
    )


def _add_checkpoint_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("checkpoints")
    g.add_argument(
        "--checkpoint-every",
        type=_non_negative_int,
        default=10,
        metavar="N",
        help=f"write OUTDIR/{CHECKPOINT} every N epochs (atomically) and delete it once the results "
        "of the finished run are written; 0: never (default: %(default)s)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help=f"continue an interrupted run from OUTDIR/{CHECKPOINT}, on the same INPUT; the "
        "training options are taken from the checkpoint",
    )
    _add_overwrite_option(p)


def _add_overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results already in OUTDIR; without it a folder holding results or a "
        "checkpoint is refused",
    )


def _non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_input_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument(
        "--tile-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="INPUT is one large 2D image: cut it into N x N tiles (default: INPUT is a stack)",
    )
    g.add_argument(
        "--stride",
        type=_positive_int,
        default=None,
        metavar="N",
        help="step between tiles with --tile-size (default: the tile size, no overlap)",
    )
    g.add_argument(
        "--min-foreground",
        type=float,
        default=0.0,
        metavar="F",
        help="with --tile-size keep only tiles with at least this fraction of pixels brighter than "
        "Otsu's threshold (default: %(default)s, keep all)",
    )
    g.add_argument(
        "--channel-axis",
        type=int,
        default=None,
        metavar="AXIS",
        help="axis of the channels when not the last, e.g. 1 for N x C x H x W "
        "(default: last axis)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``napari-tsimcne`` command.

    Returns
    -------
    argparse.ArgumentParser
        With the sub-commands ``fit``, ``embed``, ``evaluate`` and ``demo``.
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="napari-tsimcne",
        description="2D maps of image tiles with t-SimCNE (contrastive learning straight to 2D).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    fit = sub.add_parser(
        "fit",
        help="train a map on a tile stack and write model, CSV, PNG and summary",
        description="Train t-SimCNE on INPUT and write OUTDIR/model.tsimcne, embedding.csv, "
        "map.png and summary.json.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    fit.add_argument(
        "input",
        metavar="INPUT",
        help="tile stack: .tif/.tiff stack, .npy, .npz (key 'images' or the first array; 'labels' "
        "if present), a folder of same-shape image files, or one large image with --tile-size",
    )
    fit.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="folder for the results (created)"
    )
    _add_input_options(fit)
    _add_training_options(fit)
    _add_checkpoint_options(fit)

    embed = sub.add_parser(
        "embed",
        help="map new tiles with a saved model",
        description="Map the tiles in INPUT with the model in MODEL (no retraining) and "
        "write a CSV.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    embed.add_argument(
        "model", metavar="MODEL", help="a .tsimcne model file (or a folder holding model.tsimcne)"
    )
    embed.add_argument("input", metavar="INPUT", help="tiles, in any form that 'fit' reads")
    embed.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="CSV file to write")
    embed.add_argument(
        "--device", default="auto", help="device for the forward pass (default: %(default)s)"
    )
    embed.add_argument("--quiet", action="store_true", help="no messages besides errors")
    _add_input_options(embed)

    ev = sub.add_parser(
        "evaluate",
        help="15-NN accuracy of a map, given labels",
        description="Print the k-NN accuracy (stratified 90/10 split, seed 0, 15 neighbours) "
        "of a map. Labels are used for this score only, never for training.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    ev.add_argument(
        "embedding",
        metavar="EMBEDDING",
        help="an embedding CSV, or an output folder of 'fit'/'demo' (reads its embedding.csv)",
    )
    ev.add_argument(
        "--labels",
        default=None,
        metavar="LABELS",
        help="labels: .npy, .npz (key 'labels' or the first array) or .csv (column given by "
        "--label-column) (default: the CSV's own 'label' column)",
    )
    ev.add_argument(
        "--label-column", default="label", help="column of a labels CSV (default: %(default)s)"
    )

    demo = sub.add_parser(
        "demo",
        help="train on the bundled sample and show (or write) the map",
        description="With a display: open napari with the demo. Headless (no display, or "
        "--headless): train on the whole sample (blood cells when pbc28.npz is "
        "found, else histology tiles) and write the outputs of 'fit'. On a CUDA "
        "GPU it trains --epochs "
        f"{' '.join(map(str, QUICK_GPU_EPOCHS))}; without one, the CPU settings "
        "for about 10 minutes (--minutes).",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    demo.add_argument(
        "--headless", action="store_true", help="never open a window, even with a display"
    )
    demo.add_argument(
        "-o",
        "--output",
        default=DEMO_DIR,
        metavar="OUTDIR",
        help="folder for the results in headless mode (default: ./%(default)s)",
    )
    demo.add_argument(
        "--n-tiles",
        type=_positive_int,
        default=None,
        metavar="N",
        help="train on a random subset of N tiles (default: all tiles of the sample)",
    )
    _add_training_options(demo)
    _add_overwrite_option(demo)
    return parser


# -- helpers -----------------------------------------------------------------------


def _is_main_process() -> bool:
    """False on all but the first of several processes started by torchrun (they neither print nor write)."""
    return int(os.environ.get("RANK", "0")) == 0


def _say(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False) and _is_main_process():
        print(message)


def _read(path: str, args: argparse.Namespace, min_tiles: int = 2):
    """The tiles of ``path``, their shape checked (values are checked when training or mapping starts)."""
    from .core.io import TileData, read_tiles
    from .core.tiles import as_tile_stack

    data = read_tiles(
        path,
        args.tile_size,
        args.stride,
        min_foreground=args.min_foreground,
        channel_axis=args.channel_axis,
    )
    tiles = as_tile_stack(data.tiles, check_values=False, min_tiles=min_tiles)
    return TileData(
        tiles, data.name, labels=data.labels, origins=data.origins, class_names=data.class_names
    )


def _batch_size(requested: int | None, n_tiles: int, args: argparse.Namespace) -> int | str:
    """The batch size, lowered to the largest power of two not above the stack size ('auto' when not given)."""
    if requested is None:
        return "auto"
    if requested <= n_tiles:
        return requested
    from .core.config import default_batch_size

    fitted = default_batch_size(n_tiles, largest=requested)
    _say(args, f"note: --batch-size {requested} exceeds the {n_tiles} tiles; using {fitted}.")
    return fitted


def _progress(events, total: int, quiet: bool):
    """Drive the training generator with a tqdm bar on stderr; yields the events."""
    from tqdm import tqdm

    with tqdm(total=total, unit="epoch", disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        for event in events:
            if bar.total != event.total_epochs:  # a time budget re-planned after its first epoch
                bar.total = event.total_epochs
            speed = event.views_per_second  # 0 where no views are trained on (t-SNE finish)
            bar.set_postfix(
                stage=event.stage_name,
                loss=f"{event.loss:.3f}",
                **({"views_s": f"{speed:,.0f}"} if speed > 0 else {}),
                refresh=False,
            )
            bar.update(event.global_epoch - bar.n)
            if event.message and not quiet:
                bar.write(f"note: {event.message}", file=sys.stderr)
            yield event


class _TileBar:
    """A tqdm bar on stderr counting mapped tiles; opened at the first ``update(done, total)``, closed at the last."""

    def __init__(self, desc: str, quiet: bool) -> None:
        self.desc = desc
        self.quiet = quiet
        self.bar = None

    def update(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if (
            self.bar is None
        ):  # opened after the first batch: its tiles count as done, not towards the rate
            self.bar = tqdm(
                total=total,
                initial=done,
                unit="tile",
                desc=self.desc,
                disable=self.quiet,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            self.bar = None


def _train(model, tiles: np.ndarray, outdir: Path, args: argparse.Namespace):
    """Run (or resume) the fit with a progress bar; on Ctrl-C save the partial model and raise _Interrupted."""
    every = getattr(args, "checkpoint_every", 0)
    checkpoint = outdir / CHECKPOINT if every > 0 else None
    quiet = args.quiet or not _is_main_process()
    mapping = _TileBar("mapping", quiet)
    start = model.resume_iter if getattr(args, "resume", False) else model.fit_iter
    events = start(
        tiles, checkpoint=checkpoint, checkpoint_every=max(1, every), progress=mapping.update
    )
    if getattr(model, "preset_reason_", None):  # "auto": the preset was chosen from the stack
        _say(args, f"Augmentations: {model.preset_}. {model.preset_reason_}")
    if (
        getattr(model, "step_costs_", None) is not None
    ):  # a time budget: the epochs were just chosen
        e1, _, e3 = model.total_epochs_
        what = (
            f"{e1} epochs of pre-training, then a t-SNE of the learned features and {e3} epochs "
            "fitting the network to it"
            if model.finish_ == "tsne"
            else f"training epochs {' '.join(map(str, model.total_epochs_))}"
        )
        _say(
            args,
            f"Measured {2 * model.batch_size_ / model.step_costs_.full_step:,.0f} views/s: "
            f"{what}, to finish in about {_minutes(model.time_budget_)}.",
        )
    try:
        for _ in _progress(events, sum(model.total_epochs_), quiet):
            pass
    except KeyboardInterrupt:
        events.close()
        if _is_main_process():
            _save_partial(model, outdir, checkpoint)
        raise _Interrupted() from None
    return (
        checkpoint  # written by this run at its last epoch; deleted once the results are in place
    )


def _save_partial(model, outdir: Path, checkpoint: Path | None = None) -> None:
    path = outdir / "model.partial.tsimcne"
    try:
        model.save(path)
    except Exception as exc:  # noqa: BLE001 - report, never mask the interrupt
        print(f"Interrupted; the partial model could not be saved: {exc}", file=sys.stderr)
        return
    print(
        f"Interrupted; the partial model was saved to {path} "
        f"(load it with TSimCNE.load or 'napari-tsimcne embed').",
        file=sys.stderr,
    )
    if checkpoint is not None and checkpoint.exists():
        print(
            "Continue training from the last checkpoint with the same command and --resume.",
            file=sys.stderr,
        )


def _make_model(args: argparse.Namespace, n_tiles: int):
    from .core import TSimCNE

    return TSimCNE(
        total_epochs="auto" if args.epochs is None else tuple(args.epochs),
        time_budget="auto" if args.minutes is None else 60.0 * args.minutes,
        batch_size=_batch_size(args.batch_size, n_tiles, args),
        augmentations=args.augmentations,
        device=args.device,
        random_state=args.seed,
        backbone=args.backbone,
        width="auto" if args.width is None else args.width,
        finish=args.finish,
        preview_every=0,
    )  # no live map to update here


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 90 else f"{seconds:.0f} s"


def _plan_text(model, device) -> str:
    """How long training will run, as the start line says it, before the epochs are known."""
    plan = model.plan_for(device, 10**9)
    if plan.total_epochs is not None:
        return f"epochs {' '.join(map(str, plan.total_epochs))}"
    return f"about {_minutes(plan.time_budget)}"


def _write_outputs(model, data, outdir: Path, args: argparse.Namespace) -> dict:
    """Write model.tsimcne, embedding.csv, map.png and summary.json as one set; return the summary.

    The files are written into a hidden folder inside ``outdir`` and moved into
    place together, the summary last. The k-NN score comes after the model and the
    map are written, and a score that cannot be computed is a warning, never a failure.
    """
    from .core.io import plot_map, write_embedding_csv
    from .core.persistence import StagedOutputs

    emb = model.embedding_
    with StagedOutputs(outdir) as staged:
        model.save(staged.path("model.tsimcne"))
        write_embedding_csv(
            staged.path("embedding.csv"), emb, origins=data.origins, labels=data.labels
        )
        acc, note = _score(emb, data.labels, args)
        title = data.name if acc is None else f"{data.name}: {KNN_K}-NN accuracy {acc:.1f} %"
        plot_map(
            staged.path("map.png"),
            emb,
            labels=data.labels,
            class_names=data.class_names or None,
            title=title,
        )
        summary = _summary(model, data, args, acc, note)
        text = json.dumps(summary, indent=2) + "\n"
        _write_text(staged.path("summary.json"), text)
        staged.commit(list(RESULTS))
    return summary


def _write_text(path: Path, text: str) -> None:
    from .core.persistence import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _score(
    embedding: np.ndarray, labels: np.ndarray | None, args: argparse.Namespace
) -> tuple[float | None, str | None]:
    """The k-NN accuracy, or (None, why not) with a warning when the labels do not allow it."""
    from .core import knn_accuracy

    if labels is None:
        return None, None
    try:
        return knn_accuracy(embedding[:, :2], labels, k=KNN_K), None
    except Exception as exc:  # noqa: BLE001 - a score is never worth losing a finished training over
        note = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if _is_main_process():
            print(
                f"warning: {note} The map was saved; summary.json records knn_accuracy as null.",
                file=sys.stderr,
            )
        return None, note


def _summary(model, data, args: argparse.Namespace, acc: float | None, note: str | None) -> dict:
    return {
        "data": data.name,
        "n_tiles": int(len(data.tiles)),
        "tile_shape": list(data.tiles.shape[1:]),
        "input": _input_record(args, data),
        "settings": {
            "epochs": list(model.total_epochs_),
            "batch_size": int(model.batch_size_),
            "time_budget_seconds": getattr(model, "time_budget_", None),
            "finish": getattr(model, "finish_", None),
            "preset": getattr(model, "preset_", None),
            "augmentations": model.augmentations_.to_dict(),
            "seed": model.random_state,
            "backbone": model.backbone_,
            "width": model.width_,
            "device_requested": args.device,
            "processes": int(os.environ.get("WORLD_SIZE", "1")),
        },
        "device": str(model.device_),
        "fit_seconds": round(float(model.fit_seconds_), 3),
        "knn_accuracy": acc,
        "knn_k": KNN_K if acc is not None else None,
        "knn_note": note,
        "fingerprint": model.fingerprint_.to_dict()
        if getattr(model, "fingerprint_", None) is not None
        else None,
    }


def _input_record(args: argparse.Namespace, data) -> dict:
    """Where the tiles came from and how they were read, so the output folder can be reopened with its tiles."""
    if (
        getattr(args, "input", None) is None
    ):  # the demo: the bundled sample (which may hold fewer tiles than asked)
        return {
            "sample": data.name,
            "n_tiles": None if args.n_tiles is None else len(data.tiles),
            "seed": args.seed,
        }
    return {
        "path": str(Path(args.input).resolve()),
        "tile_size": args.tile_size,
        "stride": args.stride,
        "min_foreground": args.min_foreground,
        "channel_axis": args.channel_axis,
    }


def _resume_model(outdir: Path, args: argparse.Namespace):
    """The model and training state of OUTDIR's checkpoint, for --resume."""
    from .core import TSimCNE

    path = outdir / CHECKPOINT
    if not path.exists():
        raise CliError(
            f"--resume: there is no checkpoint {path} (written by 'fit' with --checkpoint-every > 0).",
            EXIT_USAGE,
        )
    return TSimCNE.load(path, device=args.device)


def _fit_and_write(data, outdir: Path, args: argparse.Namespace) -> dict:
    from .core.device import resolve_device

    device = resolve_device(args.device)  # a wrong --device is reported before anything is written
    resume = getattr(args, "resume", False)
    # settings that cannot run (a batch larger than the free memory) are refused before any output
    if not resume:
        model = _make_model(args, len(data.tiles))
        model.validate(data.tiles)
    if _is_main_process():
        _prepare_output(outdir, args)
    if resume:
        model = _resume_model(outdir, args)
        _say(
            args,
            f"Resuming from {outdir / CHECKPOINT} (epochs {' '.join(map(str, model.total_epochs_))}, "
            f"batch {model.batch_size_}).",
        )
    _say(
        args,
        f"Training on {len(data.tiles)} tiles of {data.name} ({data.tiles.shape[1]} x {data.tiles.shape[2]}), "
        f"{_plan_text(model, device)}, device {_device_name(device)}.",
    )
    checkpoint = _train(model, data.tiles, outdir, args)
    if not _is_main_process():
        return {}
    summary = _write_outputs(model, data, outdir, args)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # finished, and the results are in place
    return summary


def _device_name(device) -> str:
    """The device training runs on, as the start line shows it (under torchrun: this process's GPU)."""
    local = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local is not None:
        return f"cuda:{local}"
    return str(device)


def _prepare_output(outdir: Path, args: argparse.Namespace) -> None:
    """Before training: refuse an output folder that would lose or mix results, and make sure it is writable."""
    from .core.persistence import check_writable, remove_stale_temporaries

    _refuse_input_folder(outdir, args)
    if outdir.exists() and not outdir.is_dir():
        raise CliError(f"-o {outdir} is a file; give a folder for the results.", EXIT_USAGE)
    remove_stale_temporaries(outdir)
    _refuse_overwrite(outdir, args)
    check_writable(outdir)
    _check_free_space(outdir, args)


def _refuse_input_folder(outdir: Path, args: argparse.Namespace) -> None:
    """Outputs written among the input tiles would be read as tiles by the next fit."""
    source = getattr(args, "input", None)
    if source is not None and Path(source).is_dir() and Path(source).resolve() == outdir.resolve():
        raise CliError(
            f"-o {outdir} is the input folder: the results would land among the tiles. "
            "Choose another output folder.",
            EXIT_USAGE,
        )


def _refuse_overwrite(outdir: Path, args: argparse.Namespace) -> None:
    """A folder with results or a checkpoint needs --resume or --overwrite."""
    if getattr(args, "overwrite", False) or not outdir.is_dir():
        return
    has_checkpoint = (outdir / CHECKPOINT).exists()
    if getattr(args, "resume", False):
        return  # _resume_model checks that the checkpoint is there
    if has_checkpoint:
        raise CliError(
            f"{outdir} holds {CHECKPOINT} of an unfinished run: continue it with --resume, or pass "
            "--overwrite to start over (the checkpoint is replaced once the new run writes its own).",
            EXIT_USAGE,
        )
    found = [name for name in RESULTS if (outdir / name).exists()]
    if found and getattr(args, "input", None) is None and _holds_demo_results(outdir):
        _say(args, f"note: replacing the results of the previous demo in {outdir}.")
        return
    if found:
        raise CliError(
            f"{outdir} already holds results ({', '.join(found)}): pass --overwrite to replace them, "
            "or choose another output folder with -o.",
            EXIT_USAGE,
        )


def _holds_demo_results(outdir: Path) -> bool:
    """Whether ``outdir`` holds a complete set written by ``demo`` (its summary names the bundled sample)."""
    try:
        summary = json.loads((outdir / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(summary, dict)
        and isinstance(summary.get("input"), dict)
        and "sample" in summary["input"]
    )


def _check_free_space(outdir: Path, args: argparse.Namespace) -> None:
    """Refuse to start a training whose model and checkpoint could not be saved on this disk."""
    import shutil

    from .core.persistence import OutputFileError

    need = _output_bytes_estimate(args)
    free = shutil.disk_usage(outdir).free
    if free < need:
        raise OutputFileError(
            f"Cannot write into {outdir}: only {free / 2**20:.0f} MiB are free, and the model, "
            f"a checkpoint and the map need about {need / 2**20:.0f} MiB."
        )


def _output_bytes_estimate(args: argparse.Namespace) -> int:
    """About what the outputs and a checkpoint take on disk: weights, optimizer state and the model file."""
    width = getattr(args, "width", None) or 64  # at most what "auto" chooses on any device
    backbone = getattr(args, "backbone", "auto")
    per_width64 = {"resnet10": 5.0e6}.get(backbone, 11.7e6)
    params = (
        per_width64 * (width / 64) ** 2 + 1.2e6
    )  # the MLP head: 512 x 1024 at width 64, less when narrower
    return int(params * 4 * 4) + (
        16 << 20
    )  # model file, checkpoint (weights + momentum), a temporary; CSV/PNG


def _report(summary: dict, outdir: Path, args: argparse.Namespace) -> None:
    if not summary:  # not the main process
        return
    _say(args, f"Trained in {summary['fit_seconds']:.1f} s on {summary['device']}.")
    if summary["knn_accuracy"] is not None:
        _say(args, f"{KNN_K}-NN accuracy: {summary['knn_accuracy']:.1f} %")
    _say(
        args,
        f"Wrote {outdir / 'model.tsimcne'}, {outdir / 'embedding.csv'}, {outdir / 'map.png'}, "
        f"{outdir / 'summary.json'}",
    )


# -- subcommands ---------------------------------------------------------------------


def cmd_fit(args: argparse.Namespace) -> int:
    """Train on INPUT and write model, CSV, map and summary into OUTDIR.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see ``build_parser``).

    Returns
    -------
    int
        The exit code, 0 on success.

    Raises
    ------
    CliError, TileStackError, ParameterError, OutputFileError
        Reported by ``main`` as one line and an exit code.
    """
    data = _read(args.input, args)
    outdir = Path(args.output)
    _report(_fit_and_write(data, outdir, args), outdir, args)
    return EXIT_OK


def cmd_embed(args: argparse.Namespace) -> int:
    """Map the tiles of INPUT with a saved model (no retraining) and write a CSV.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see ``build_parser``).

    Returns
    -------
    int
        The exit code, 0 on success.

    Raises
    ------
    CliError, ModelFileError, TileStackError, OutputFileError
        Reported by ``main`` as one line and an exit code.
    """
    from .core import TSimCNE
    from .core.io import write_embedding_csv
    from .core.persistence import check_writable

    model_path = Path(args.model)
    if model_path.is_dir() and (model_path / "model.tsimcne").is_file():
        model_path = model_path / "model.tsimcne"
    output = Path(args.output)
    _refuse_output_over_inputs(output, [model_path, Path(args.input)])
    model = TSimCNE.load(model_path, device=args.device)
    data = _read(args.input, args, min_tiles=1)
    check_writable(output.parent if str(output.parent) else Path("."))
    emb = model.transform(data.tiles, progress=_TileBar("embedding", args.quiet).update)
    write_embedding_csv(output, emb, origins=data.origins, labels=data.labels)
    _say(args, f"Mapped {len(emb)} tiles; wrote {output}")
    return EXIT_OK


def _refuse_output_over_inputs(output: Path, inputs: list[Path]) -> None:
    """The CSV may not replace an input file, nor be written where a folder is."""
    if output.is_dir():
        raise CliError(
            f"-o {output} is a folder; give the name of the CSV file to write.", EXIT_USAGE
        )
    for source in inputs:
        if source.exists() and output.exists() and output.resolve() == source.resolve():
            raise CliError(
                f"-o {output} is an input of this command ({source}); it would be replaced by the CSV. "
                "Choose another output file.",
                EXIT_USAGE,
            )
        if source.is_dir() and output.resolve().parent == source.resolve():
            raise CliError(
                f"-o {output} is inside the input folder {source}: the CSV would be read as a tile "
                "next time. Choose another output file.",
                EXIT_USAGE,
            )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the k-NN accuracy of a map, given labels.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see ``build_parser``).

    Returns
    -------
    int
        The exit code, 0 on success.

    Raises
    ------
    CliError, ValueError
        Reported by ``main`` as one line and an exit code.
    """
    from .core import knn_accuracy
    from .core.evaluation import why_not_scorable
    from .core.io import read_embedding_csv, read_labels

    path = Path(args.embedding)
    if path.is_dir():
        path = path / "embedding.csv"
    table = read_embedding_csv(path)
    labels = read_labels(args.labels, args.label_column) if args.labels else table.labels
    if labels is None:
        raise CliError(f"{path} has no 'label' column; pass --labels.", EXIT_BAD_INPUT)
    if len(labels) != len(table.embedding):
        raise CliError(
            f"{len(table.embedding)} embedded tiles but {len(labels)} labels.", EXIT_BAD_INPUT
        )
    reason = why_not_scorable(labels, k=KNN_K)
    if reason is not None:  # e.g. a class too small for a stratified split
        raise CliError(f"Cannot score this map: {reason}.", EXIT_BAD_INPUT)
    try:
        acc = knn_accuracy(table.embedding, labels, k=KNN_K)
    except ValueError as exc:  # EvaluationError: e.g. coordinates that are not finite
        raise CliError(f"Cannot score this map: {exc}", EXIT_BAD_INPUT) from None
    print(f"{KNN_K}-NN accuracy: {acc:.2f} %")
    return EXIT_OK


def has_display() -> bool:
    """Whether a window can open here.

    Returns
    -------
    bool
        True on macOS and Windows, and where ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set.
    """
    if sys.platform == "darwin" or os.name == "nt":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _run_viewer() -> bool:
    """Open the napari demo; False (with a message) when napari cannot be imported."""
    try:
        from .plugin.demo import run_demo_viewer

        run_demo_viewer()  # imports napari itself, before any window opens
    except ImportError as exc:
        print(
            f"napari could not be imported ({exc}); running the demo headless instead.",
            file=sys.stderr,
        )
        return False
    return True


def cmd_demo(args: argparse.Namespace) -> int:
    """Open napari with the demo, or (headless) train on the bundled sample and write the outputs.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (see ``build_parser``).

    Returns
    -------
    int
        The exit code, 0 on success.

    Raises
    ------
    CliError, ParameterError, OutputFileError
        Reported by ``main`` as one line and an exit code.
    """
    from .core.io import TileData
    from .core.sample import load_sample

    if not args.headless and has_display() and _run_viewer():
        return EXIT_OK
    _fill_demo_defaults(args)
    sample = load_sample(n_tiles=args.n_tiles, seed=args.seed)
    keep = slice(args.n_tiles)  # the histology fallback ignores n_tiles: take its first tiles
    data = TileData(
        sample.tiles[keep],
        sample.name,
        labels=None if sample.labels is None else sample.labels[keep],
        origins=None if sample.origins is None else sample.origins[keep],
        class_names=tuple(sample.class_names),
    )
    outdir = Path(args.output)
    if args.n_tiles is not None and len(data.tiles) < args.n_tiles:
        _say(
            args,
            f"note: the sample holds {len(data.tiles):,} tiles, fewer than the {args.n_tiles:,} asked for; "
            "training on all of them.",
        )
    _say(args, f"Demo: {_demo_banner(sample, len(data.tiles))}")
    summary = _fit_and_write(data, outdir, args)
    _report(summary, outdir, args)
    _say(args, f"Open {outdir / 'map.png'} to see the map.")
    return EXIT_OK


def _demo_banner(sample, n_used: int) -> str:
    """The sample's description, with the number of tiles really trained on."""
    if n_used == len(sample.tiles):
        return sample.description
    return f"{n_used:,} of {sample.description}"


def _fill_demo_defaults(args: argparse.Namespace) -> None:
    """On a CUDA GPU the demo trains ``QUICK_GPU_EPOCHS`` unless told otherwise; elsewhere the CPU settings."""
    from .core.device import resolve_device

    if args.epochs is None and args.minutes is None:
        if resolve_device(args.device).type == "cuda":
            args.epochs = list(QUICK_GPU_EPOCHS)
        else:
            _say(
                args,
                "No CUDA GPU here: the settings chosen for the CPU, about 10 minutes of training "
                "(--minutes or --epochs for another length).",
            )


COMMANDS = {"fit": cmd_fit, "embed": cmd_embed, "evaluate": cmd_evaluate, "demo": cmd_demo}


# -- entry point ---------------------------------------------------------------------


_OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
"""Errors that only a write can cause: reported as output problems (exit 5)."""


FLAGS = {
    "total_epochs": "--epochs",
    "batch_size": "--batch-size",
    "augmentations": "--augmentations",
    "device": "--device",
    "random_state": "--seed",
    "backbone": "--backbone",
    "width": "--width",
    "channel_axis": "--channel-axis",
    "tile_size": "--tile-size",
}
"""Python parameter -> the option of this command that sets it (for messages about bad values)."""


def with_flags(exc: ValueError) -> str:
    """The message of a bad-parameter error, naming this command's options instead of Python's names.

    Parameters
    ----------
    exc : ValueError
        A ``ParameterError`` or ``TileStackError`` (its ``parameters`` say which
        names to replace); other errors keep their message.

    Returns
    -------
    str
        The message with ``batch_size='x'`` and ``batch_size=x`` written as ``--batch-size x``
        and a bare ``batch_size`` as ``--batch-size``, for every parameter of the error that
        has an option.

    Examples
    --------
    >>> from napari_tsimcne.core.parameters import ParameterError
    >>> with_flags(ParameterError("device='tpu' is unknown; use device='cpu'.", "device"))
    '--device tpu is unknown; use --device cpu.'
    """
    text = str(exc).replace(HOW_TO_CUT, "--tile-size N")
    for name in getattr(exc, "parameters", ()):
        flag = FLAGS.get(name)
        if flag is None:
            continue
        name = rf"(?<![-\w]){name}"  # not inside another name, nor an option written already
        text = re.sub(rf"{name}='([^'\s]*)'", rf"{flag} \1", text)
        text = re.sub(rf"{name}=", f"{flag} ", text)
        text = re.sub(rf"{name}\b", flag, text)
    return text


def _error(message: str, code: int) -> int:
    print(f"napari-tsimcne: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` and return the exit code.

    Errors are printed as one line, ``napari-tsimcne: error: ...``; a bad setting names
    the command's option (``--batch-size``), not the Python parameter.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 for errors and bad settings, 2 for bad usage, 3 for bad input
        data, 4 for a bad model file, 5 when an output cannot be written, 130 when
        interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, bad usage
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    from .core import (  # imports torch: not for --help
        ModelFileError,
        NotFittedError,
        TileStackError,
    )
    from .core.parameters import ParameterError
    from .core.persistence import OutputFileError, output_error

    try:
        return COMMANDS[args.command](args)
    except _Interrupted:
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CliError as exc:
        return _error(str(exc), exc.code)
    except OutputFileError as exc:
        return _error(str(exc), EXIT_OUTPUT)
    except ModelFileError as exc:
        return _error(str(exc), EXIT_BAD_MODEL)
    except TileStackError as exc:
        return _error(with_flags(exc), EXIT_BAD_INPUT)
    except OSError as exc:
        if exc.errno in _OUTPUT_ERRNOS:  # a write that failed outside our own file writers
            return _error(str(output_error(exc.filename or "the output", exc)), EXIT_OUTPUT)
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            return _error(str(exc), EXIT_BAD_INPUT)
        return _error(f"{exc.__class__.__name__}: {exc}", EXIT_ERROR)
    except ParameterError as exc:
        return _error(with_flags(exc), EXIT_ERROR)
    except (ValueError, NotFittedError) as exc:
        return _error(str(exc), EXIT_ERROR)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        return _error(f"{exc.__class__.__name__}: {exc}", EXIT_ERROR)


if __name__ == "__main__":
    sys.exit(main())
