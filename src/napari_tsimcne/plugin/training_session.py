"""Training a map in the plugin, without Qt: the settings, the run, its progress, stopping and resuming.

The *Train map* dock (``.train_widget``) is a view of a ``TrainingSession``. It reads
``TrainingSettings`` from its controls, runs ``TrainingSession.steps`` in napari's worker
thread, hands every item the steps yield back to ``TrainingSession.handle`` on the main thread, and
draws what the session's events carry (the map, its outlier scores, the loss). Scripts and tests call
``TrainingSession.run``, which does the same in the calling thread, with no window at all.

While it trains, the session writes a checkpoint of the run after every epoch into the autosave folder
(named by the tile stack's fingerprint). A run that was stopped, or cut short by napari closing or
crashing, can then be continued with ``TrainingSession.start_resume``; a run that ends normally
removes its checkpoint.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from psygnal import Signal

from napari_tsimcne.core.config import default_batch_size
from napari_tsimcne.core.device import DEVICES, GPU_DEFAULTS, defaults_for, resolve_device
from napari_tsimcne.core.schedule import QUICK_GPU_EPOCHS

CHECKPOINT_SUFFIX = ".checkpoint.tsimcne"
KEEP_CHECKPOINTS = 5
"""Stopped runs kept for Resume (the newest); older checkpoints are deleted when a run starts."""


@dataclass(frozen=True)
class TrainingSettings:
    """What the user chose in the *Train map* dock.

    Parameters
    ----------
    preset : str
        Augmentation preset: ``"auto"`` or a name of ``napari_tsimcne.core.presets.PRESETS``.
    minutes : float or None
        Train for about this many minutes (training plus mapping); None trains ``epochs``.
    epochs : tuple of int
        Epochs of the three stages (pre-training, last layer, fine-tuning), used when ``minutes`` is None.
    batch_size : int
        Tiles compared at once.
    device : str
        One of ``napari_tsimcne.core.device.DEVICES`` (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
    backbone : str
        Network name (see ``napari_tsimcne.core.backbones.BACKBONES``).
    width : int
        Channels of the network's first layer.
    seed : int
        Random seed: the same seed and settings give the same map.
    dimensions : int
        2 for a flat map, 3 for a map in 3D.
    finish : str
        How the map is made after pre-training: ``"auto"``, ``"contrastive"`` or ``"tsne"``
        (see ``TSimCNE``).
    """

    preset: str = "auto"
    minutes: float | None = None
    epochs: tuple[int, int, int] = QUICK_GPU_EPOCHS
    batch_size: int = GPU_DEFAULTS.batch_size
    device: str = "auto"
    backbone: str = GPU_DEFAULTS.backbone
    width: int = GPU_DEFAULTS.width
    seed: int = 0
    dimensions: int = 2
    finish: str = "auto"

    @classmethod
    def for_device(cls, device: str = "auto", n_tiles: int | None = None) -> TrainingSettings:
        """The settings that suit ``device`` (the core's defaults for it) and a stack of ``n_tiles``.

        Parameters
        ----------
        device : str
            ``"auto"`` takes a GPU if there is one.
        n_tiles : int, optional
            The stack's size: the batch is not larger than the stack.

        Returns
        -------
        TrainingSettings
            With a CUDA GPU: the paper's network and 40/4/16 epochs; without one: the CPU's network,
            batch 256 and about 10 minutes.

        Raises
        ------
        ValueError
            ``device`` is not one of "auto", "cuda", "mps" or "cpu", or is not available here.
        """
        if device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, not {device!r}.")
        d = defaults_for(resolve_device(device))
        return cls(
            device=device,
            backbone=d.backbone,
            width=d.width,
            batch_size=default_batch_size(n_tiles or d.batch_size, d.batch_size),
            minutes=None if d.time_budget is None else d.time_budget / 60,
        )

    def make_model(self):
        """A new, untrained ``TSimCNE`` with these settings.

        Returns
        -------
        TSimCNE
        """
        from napari_tsimcne.core import TSimCNE

        by_time = self.minutes is not None
        return TSimCNE(
            total_epochs="auto" if by_time else tuple(int(e) for e in self.epochs),
            time_budget=60.0 * self.minutes if by_time else "auto",
            batch_size=self.batch_size,
            augmentations=self.preset,
            device=self.device,
            random_state=self.seed,
            backbone=self.backbone,
            width=self.width,
            out_dim=self.dimensions,
            finish=self.finish,
        )


@dataclass(frozen=True)
class Planned:
    """Training is about to start: the tiles are prepared and the epochs are known.

    Parameters
    ----------
    epochs : tuple of int
        Epochs of the three stages.
    time_budget : float or None
        Seconds asked for, when the epochs were chosen to fit a time budget.
    resumed_from : int
        Epochs done before this run (when a stopped run is continued).
    """

    epochs: tuple[int, int, int]
    time_budget: float | None
    resumed_from: int = 0
    """Epochs done before this run (when a stopped run is continued)."""


@dataclass(frozen=True)
class TrainingUpdate:
    """One finished epoch, with everything the view shows of it."""

    event: object
    """The ``TrainingEvent`` of the epoch."""
    outliers: np.ndarray | None = None
    """Outlier scores of ``event.embedding`` (computed in the worker thread), when there is a map."""
    seconds_left: float | None = None
    """Estimated time until the map is final."""

    @property
    def provisional(self) -> bool:
        """Whether the map is still an early one (before the last stage has ended)."""
        return self.event.global_epoch < self.event.total_epochs


@dataclass(frozen=True)
class TrainingResult:
    """How a run ended.

    Parameters
    ----------
    embedding : numpy.ndarray or None
        The map of the tiles, (N, 2) or (N, 3).
    outliers : numpy.ndarray or None
        Its outlier scores.
    stopped : bool
        Stopped before all planned epochs.
    seconds : float
        Wall time of the run (of this part, for a continued run).
    resumed_from : int
        Epochs done before this run (a stopped run continued), else 0.
    """

    embedding: np.ndarray | None
    outliers: np.ndarray | None
    stopped: bool
    """Stopped before all planned epochs (by the user, or by napari closing)."""
    seconds: float
    resumed_from: int = 0


@dataclass(frozen=True)
class LossPoint:
    """The mean loss of one epoch.

    Parameters
    ----------
    epoch : int
        Epoch over all stages, from 1.
    stage : int
        Its stage (1, 2 or 3).
    loss : float
        The mean loss of the epoch.
    finish : str, default "contrastive"
        How the run makes its map after pre-training (``TSimCNE(finish=...)``); with ``"tsne"``
        each stage has a loss of its own kind.
    """

    epoch: int
    """Epoch over all stages, from 1."""
    stage: int
    loss: float
    finish: str = "contrastive"


@dataclass
class _Run:
    model: object
    tiles: np.ndarray
    resume: bool
    checkpoint: Path | None
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class TrainingSession:
    """One tile stack's training in the plugin: start, stop, resume, and what the view shows.

    Parameters
    ----------
    checkpoint_dir : path, optional
        Where runs write their checkpoints; by default ``checkpoints`` in the autosave folder
        (``$NAPARI_TSIMCNE_AUTOSAVE_DIR`` or the user data folder). None or False disables them.

    Attributes
    ----------
    model : TSimCNE or None
        The model being trained, or the last one trained or loaded.
    history : list of LossPoint
        The loss of every epoch of the current run (continued runs include the epochs before).
    plan : Planned or None
        The epochs of the current run.
    result : TrainingResult or None
        How the last run ended.
    """

    planned = Signal(object)
    """Emitted with a ``Planned`` when the epochs are known."""
    progressed = Signal(object)
    """Emitted with a ``TrainingUpdate`` after every epoch."""
    finished = Signal(object)
    """Emitted with a ``TrainingResult`` when a run has ended and its map is made."""
    failed = Signal(object, bool)
    """Emitted with the exception and whether training had started."""

    def __init__(self, checkpoint_dir: str | Path | None | bool = True) -> None:
        if checkpoint_dir is True:
            from .autosave import autosave_dir

            checkpoint_dir = autosave_dir() / "checkpoints"
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.model = None
        self.history: list[LossPoint] = []
        self.plan: Planned | None = None
        self.result: TrainingResult | None = None
        self.last_update: TrainingUpdate | None = None
        self.closing = False
        self._run: _Run | None = None

    # -- state ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a run is under way (started and its thread not yet finished)."""
        return self._run is not None and not self._run.done.is_set()

    @property
    def stop_requested(self) -> bool:
        """Whether the current run was asked to stop."""
        return self._run is not None and self._run.stop.is_set()

    @property
    def epochs_done(self) -> int:
        """Epochs finished in the current (or last) run, counting those before a resume."""
        return self.history[-1].epoch if self.history else 0

    def checkpoint_path(self, tiles) -> Path | None:
        """Where a run on ``tiles`` keeps its checkpoint (None when checkpoints are off).

        Parameters
        ----------
        tiles : array-like
            The tile stack (a fingerprint of its shape, dtype and a few tiles names the file).

        Returns
        -------
        Path or None
            The checkpoint file (it may not exist), or None when checkpoints are off.
        """
        if self.checkpoint_dir is None:
            return None
        from .autosave import stack_fingerprint

        return self.checkpoint_dir / f"{stack_fingerprint(tiles)}{CHECKPOINT_SUFFIX}"

    def can_resume(self, tiles) -> bool:
        """Whether a stopped or interrupted run on these very tiles can be continued.

        Parameters
        ----------
        tiles : array-like
            The tiles of the run, (N, H, W) or (N, H, W, C); they identify its checkpoint.

        Returns
        -------
        bool
            True when a checkpoint of these tiles exists on disk and no run is going on.
        """
        path = self.checkpoint_path(tiles)
        return path is not None and path.is_file() and not self.running

    # -- starting ------------------------------------------------------------------
    def start(self, tiles, settings: TrainingSettings):
        """Check the tiles and settings and get a run ready; ``steps`` then trains.

        Parameters
        ----------
        tiles : array-like
            (N, H, W) or (N, H, W, C).
        settings : TrainingSettings

        Returns
        -------
        TSimCNE
            The model that will be trained.

        Raises
        ------
        TileStackError, ValueError
            The tiles or the settings cannot be trained (the message says why).
        RuntimeError
            A run is already under way.
        """
        self._check_idle()
        model = settings.make_model()
        # shape and settings at once, on a stand-in of the stack's shape and dtype (no pixels are read:
        # a stack built from several layers is only put together in the worker thread)
        model.validate(_stand_in(tiles))
        self._begin(model, tiles, resume=False)
        return model

    def start_resume(self, tiles, device: str = "auto"):
        """Get the continuation of a stopped or interrupted run on ``tiles`` ready.

        Parameters
        ----------
        tiles : array-like
            The same tiles the run was trained on.
        device : str
            Where to continue.

        Returns
        -------
        TSimCNE
            The model read from the checkpoint.

        Raises
        ------
        FileNotFoundError
            There is no stopped run of these tiles.
        ModelFileError
            The checkpoint cannot be read.
        """
        self._check_idle()
        path = self.checkpoint_path(tiles)
        if path is None or not path.is_file():
            raise FileNotFoundError("There is no stopped run of these tiles to continue.")
        from napari_tsimcne.core import TSimCNE

        model = TSimCNE.load(path, device=device)
        self._begin(model, tiles, resume=True)
        return model

    def _check_idle(self) -> None:
        if self.running:
            raise RuntimeError("A training is already running; stop it first.")

    def _begin(self, model, tiles, resume: bool) -> None:
        self.model = model
        self.closing = False
        self.result = None
        self.plan = None
        self.last_update = None
        self.history = _loss_history(getattr(model, "history_", None) or []) if resume else []
        self._run = _Run(model, tiles, resume, self.checkpoint_path(tiles))
        self._prune_checkpoints(keep=self._run.checkpoint)

    def _prune_checkpoints(self, keep: Path | None) -> None:
        """Delete all but the newest ``KEEP_CHECKPOINTS`` stopped runs (a checkpoint can be large)."""
        if self.checkpoint_dir is None or not self.checkpoint_dir.is_dir():
            return
        found = sorted(
            (p for p in self.checkpoint_dir.glob(f"*{CHECKPOINT_SUFFIX}") if p != keep),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in found[KEEP_CHECKPOINTS - 1 :]:
            with contextlib.suppress(OSError):
                old.unlink()

    # -- the run (worker thread) -------------------------------------------------
    def steps(self) -> Generator[Planned | TrainingUpdate, None, TrainingResult]:
        """Train; runs in a worker thread. Yields a ``Planned``, then a ``TrainingUpdate`` per epoch.

        ``stop`` ends training within one training step (closing the generator, after the current
        epoch); the tiles are then mapped with the model as it is.

        Yields
        ------
        Planned or TrainingUpdate
            First the plan of the run, then one update per finished epoch.

        Returns
        -------
        TrainingResult
            The generator's return value: the final map, its outlier scores, whether the run was
            stopped early, and the training time.

        Raises
        ------
        RuntimeError
            No run was started with ``start`` or ``start_resume``.
        """
        from .map_layer import outlier_scores

        run = self._run
        if run is None:
            raise RuntimeError("Call start() or start_resume() first.")
        try:
            model, tiles = run.model, np.asarray(run.tiles)
            if run.checkpoint is not None:
                run.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            if run.resume:
                events = model.resume_iter(tiles, checkpoint=run.checkpoint, stop=run.stop)
            else:
                events = model.fit_iter(tiles, checkpoint=run.checkpoint, stop=run.stop)
            budget = None if run.resume else model.time_budget_
            before = self.epochs_done
            yield Planned(tuple(model.total_epochs_), model.time_budget_, resumed_from=before)
            finished = False
            try:
                for event in events:
                    outliers = None
                    if (
                        event.embedding is not None
                    ):  # the map's outlier scores (a kNN search), off the main thread
                        outliers = outlier_scores(event.embedding)
                    left = _seconds_left(event, before, budget, time.perf_counter() - started)
                    yield TrainingUpdate(event, outliers, left)
                    finished = event.global_epoch >= event.total_epochs
                    if run.stop.is_set():
                        break
            finally:
                events.close()
            final = model.embedding_
            outliers = None
            if final is not None and not self.closing:
                outliers = outlier_scores(final)
            if finished and run.checkpoint is not None:  # a finished run leaves nothing to resume
                with contextlib.suppress(OSError):
                    run.checkpoint.unlink()
            return TrainingResult(
                final,
                outliers,
                not finished,
                float(model.fit_seconds_),
                before if run.resume else 0,
            )
        finally:
            run.done.set()

    # -- back on the main thread ------------------------------------------------
    def handle(self, item: Planned | TrainingUpdate) -> None:
        """Record an item yielded by ``steps`` and emit the matching event (main thread).

        Items arriving after the run has ended (or the view has closed) are ignored.

        Parameters
        ----------
        item : Planned or TrainingUpdate
            The plan of the run (emitted as ``planned``) or one finished epoch (added to
            the loss history and emitted as ``progressed``).
        """
        if self.closing or self.result is not None:
            return  # the run has ended (or the view is gone): a late epoch changes nothing
        if isinstance(item, Planned):
            self.plan = item
            self.planned.emit(item)
            return
        event = item.event
        self.history.append(LossPoint(event.global_epoch, event.stage, float(event.loss)))
        self.last_update = item
        self.progressed.emit(item)

    def complete(self, result: TrainingResult) -> None:
        """Record the end of a run (main thread) and emit ``finished``.

        Parameters
        ----------
        result : TrainingResult
            What the run produced (model, map, whether it was stopped, time taken).
        """
        self.result = result
        if not self.closing:
            self.finished.emit(result)

    def fail(self, exc: BaseException) -> None:
        """Record a failed run (main thread) and emit ``failed``.

        Parameters
        ----------
        exc : BaseException
            The error that ended the run; it is emitted together with whether any epoch had
            finished before it.
        """
        self.result = TrainingResult(None, None, True, 0.0)
        self.failed.emit(exc, bool(self.history))

    def run(self, tiles, settings: TrainingSettings | None = None, *, resume: bool = False):
        """Train in the calling thread, emitting the same events as in napari; for scripts and tests.

        Parameters
        ----------
        tiles : array-like
        settings : TrainingSettings, optional
            Needed unless ``resume``.
        resume : bool
            Continue the stopped run of these tiles instead.

        Returns
        -------
        TrainingResult
        """
        if resume:
            self.start_resume(tiles, device=settings.device if settings else "auto")
        else:
            self.start(tiles, settings)
        steps = self.steps()
        try:
            while True:
                self.handle(next(steps))
        except StopIteration as stop:
            self.complete(stop.value)
            return stop.value
        except Exception as exc:
            self.fail(exc)
            raise

    # -- stopping ---------------------------------------------------------------
    # -- a trained or loaded model ---------------------------------------------------
    def save(self, path) -> Path:
        """Write the session's model (trained or loaded) to a ``.tsimcne`` file.

        Parameters
        ----------
        path : str or os.PathLike
            The model file to write.

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        NotFittedError
            No model has been trained or loaded yet.
        """
        from napari_tsimcne.core import NotFittedError

        if self.model is None:
            raise NotFittedError("Train or load a model first.")
        self.model.save(path)
        return Path(path)

    def load(self, path, device: str = "auto"):
        """Make a saved model the session's model: it trains no further but maps tiles.

        Parameters
        ----------
        path : str or os.PathLike
            A ``.tsimcne`` file.
        device : str
            Where it maps tiles ("auto", "cpu", "cuda", ...).

        Returns
        -------
        TSimCNE
            The loaded model.

        Raises
        ------
        ModelFileError
            The file is not a readable model.
        """
        from napari_tsimcne.core import TSimCNE

        self.model = TSimCNE.load(path, device=device)
        return self.model

    def embed_job(self, tiles) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """Mapping ``tiles`` with the session's model, as a function to run in a background thread.

        Parameters
        ----------
        tiles : array-like
            The tiles, as the model was trained on (same channels and size).

        Returns
        -------
        callable
            Takes no arguments; returns the map and its outlier scores (both computed off the
            main thread).

        Raises
        ------
        NotFittedError
            No model has been trained or loaded yet (said before anything runs).
        """
        from napari_tsimcne.core import NotFittedError

        from .map_layer import outlier_scores

        model = self.model
        if model is None:
            raise NotFittedError("Load or train a model first.")

        def job() -> tuple[np.ndarray, np.ndarray]:
            embedding = model.transform(np.asarray(tiles))
            return embedding, outlier_scores(embedding)

        return job

    def stop(self) -> None:
        """Stop within one training step; the model keeps what it learned and the run can be continued."""
        if self._run is not None:
            self._run.stop.set()

    def close(self, timeout: float = 0.0) -> bool:
        """Stop, and forget the view: no more events. Returns whether the run's thread has finished.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the run's thread to end (0: don't wait).

        Returns
        -------
        bool
            Whether the run's thread has finished.
        """
        self.closing = True
        if self._run is None:
            return True
        self._run.stop.set()
        if timeout > 0:
            return self._run.done.wait(timeout)
        return self._run.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the run's thread has finished.

        Parameters
        ----------
        timeout : float, optional
            Longest wait in seconds; None waits as long as it takes.

        Returns
        -------
        bool
            True when the thread has finished (or no run was started), False on timeout.
        """
        return True if self._run is None else self._run.done.wait(timeout)


def _stand_in(tiles):
    """``tiles`` as they are when they are a NumPy array, else an array of their shape and dtype (no memory)."""
    if isinstance(tiles, np.ndarray):
        return tiles
    return np.broadcast_to(np.zeros((), dtype=np.dtype(tiles.dtype)), tuple(tiles.shape))


def _loss_history(records: list[dict]) -> list[LossPoint]:
    """The loss points of a model's training history (as stored in its checkpoint)."""
    return [
        LossPoint(i, int(r["stage"]), float(r["loss"]), str(r.get("finish", "contrastive")))
        for i, r in enumerate(records, 1)
    ]


def _seconds_left(
    event, epochs_before: int = 0, budget: float | None = None, elapsed: float = 0.0
) -> float | None:
    """Time to the end: what is left of a time budget, else the mean time per epoch so far times
    the epochs left (this run's epochs only). Epochs of different stages can cost very different
    times (with the t-SNE finish, its one "epoch" of t-SNE takes as long as four of pre-training), so
    a run for a time budget counts down the budget; past it, no estimate."""
    if budget is not None:
        left = budget - elapsed
        return left if left > 0 and event.global_epoch < event.total_epochs else None
    done = event.global_epoch - epochs_before
    if done <= 0 or event.seconds <= 0:
        return None
    return max(0.0, (event.total_epochs - event.global_epoch) * event.seconds / done)


__all__ = [
    "LossPoint",
    "Planned",
    "TrainingResult",
    "TrainingSession",
    "TrainingSettings",
    "TrainingUpdate",
]
