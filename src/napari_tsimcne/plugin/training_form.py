"""The settings of *Train map* as magicgui forms: what to train on, how, for how long, and cutting.

The form holds controls and nothing else: it reads them into a :class:`TrainingSettings`, sets
them from one (or from a device's defaults), and shows help for the chosen preset. Which layers
there are, the recommendation for them and training itself belong to the dock widget and the
training session.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractSpinBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSizePolicy,
)

from napari_tsimcne.core.backbones import BACKBONES
from napari_tsimcne.core.device import CPU_DEFAULTS, DEVICES
from napari_tsimcne.core.presets import PRESET_SUMMARIES, PRESETS
from napari_tsimcne.core.recommend import Recommendation
from napari_tsimcne.core.schedule import QUICK_GPU_EPOCHS

from .qt_helpers import WrappedLabel, align_labels, apply_tooltips, keep_narrow
from .training_session import TrainingSettings

PRESET_HELP = {
    **PRESET_SUMMARIES,  # one sentence or two per choice, from the core
    # "auto" says why it chose, for the chosen tiles, just below: its own line stays short
    "auto": "Picked for your tiles: 'quantitative' for fluorescence-like images, else 'microscopy'.",
}
AUTO_HELP_WITHOUT_TILES = (
    "Picked once you choose tiles: 'quantitative' for fluorescence-like images, else 'microscopy'."
)
"""What "auto" does, said while there are no tiles to pick for."""
MINUTES, EPOCHS = "minutes", "epochs"
DIMENSIONS = {"2D": 2, "3D": 3}
FINISHES = [("auto", "auto"), ("contrastive stages", "contrastive"), ("t-SNE of features", "tsne")]
"""How the 2D map is made after pre-training, as (shown, ``TSimCNE(finish=...)``)."""
STAGE_TIPS = (
    "Stage 1: learn what makes tiles different (most of the time goes here).",
    "Stage 2: turn what was learned into a 2D map (short). Map by 't-SNE of features': one "
    "t-SNE, whatever the number.",
    "Stage 3: fine-tune the whole map. Map by 't-SNE of features': fit the network to the "
    "t-SNE (each epoch is 20 quick passes; 15 are enough).",
)
TOOLTIPS = {
    "layer_combo": "The image layer that holds your tiles, one tile per slice (N x H x W, N x C x H x W "
    "with a channel slider, or RGB). Each tile becomes one point of the map.",
    "channels_list": "Other layers that hold more channels of the same tiles (as napari opens a "
    "multichannel file, one layer per channel). Ticked ones are trained together with the tiles "
    "layer and shown together in the gallery.",
    "preset_combo": "What the map should ignore. Whatever the augmentations change (orientation, "
    "brightness, ...), the map learns to disregard.",
    "length_combo": "How long to train: for about so many minutes (the speed is measured on the first "
    "steps and the epochs are set to fit), or for a number of epochs.",
    "minutes_spin": "Training and mapping together take about this long. Longer gives a better map.",
    "epochs_row": "Epochs of the three stages: pre-training, the 2D layer alone, then the whole map. "
    "One epoch shows the network every tile once.",
    "finish_combo": "How the map is made once the network has learned: 'contrastive stages' trains "
    "two more stages in 2D (the paper's way); 't-SNE of features' makes a t-SNE of what the "
    "network learned and fits the network to it, which keeps more of it in a run of minutes. "
    "Either way new tiles are mapped by the network; the contrastive stages place tiles it was "
    "not trained on a little better. 'auto': t-SNE when training for minutes without a GPU.",
    "dims_combo": "A flat 2D map, or a 3D map shown as a point cloud you can turn (napari "
    "switches to its 3D view).",
    "batch_spin": "How many tiles the network compares at once. Larger separates the map better but "
    "needs more memory; it cannot exceed the number of tiles.",
    "device_combo": "Where to train: 'auto' takes the graphics card (GPU) if there is one, else the CPU. "
    "Changing it sets the network, batch and length that suit that device.",
    "backbone_combo": "The network that looks at the tiles: resnet18 (the paper's), the smaller, "
    "faster resnet10, or resnet18-s2, which looks at small tiles at half resolution "
    "first: about three times faster, the best choice without a GPU.",
    "width_spin": "How wide the network is (64 as in the paper). Smaller trains faster on a CPU and "
    "gives a rougher map.",
    "seed_spin": "Starting point of the random choices. The same seed and settings give the same map.",
    "source_combo": "A large 2D image (a slide, a field of view) to cut into square tiles.",
    "tile_size_spin": "Side of each tile in pixels: about the size of one cell or structure.",
    "stride_spin": "Pixels from one tile to the next. Equal to the tile size: tiles touch; smaller: "
    "they overlap.",
    "min_fg_spin": "Leave out tiles that are mostly empty background (0 keeps them all).",
    "cut_button": "Cut the image into a new tile layer; its tiles stay linked to their place in the image.",
}


def _form(*widgets) -> Container:
    """A labelled magicgui form without outer margins (it sits in the dock's own layout)."""
    form = Container(widgets=list(widgets))
    form.margins = (0, 0, 0, 0)
    return form


class TrainingForm:
    """The controls of *Train map*: magicgui forms whose values are the training settings.

    Attributes
    ----------
    source_form : magicgui.widgets.Container
        ``layer_combo``: the tile layer.
    channels_label : QLabel
        The channel list's title (shown with it).
    channels_list : QListWidget
        Other layers of the same tiles, ticked to train with them (a list of check boxes).
    preset_form, length_form : magicgui.widgets.Container
        ``preset_combo``; ``length_combo``, ``minutes_spin`` and ``epochs_row`` (``epoch_spins``).
    preset_help, preset_advice : WrappedLabel
        What the chosen preset does; what "auto" picks for the chosen tiles, and why.
    advanced_form : magicgui.widgets.Container
        ``dims_combo``, ``finish_combo``, ``batch_spin``, ``device_combo``, ``backbone_combo``,
        ``width_spin``, ``seed_spin``.
    cut_form : magicgui.widgets.Container
        ``source_combo``, ``tile_size_spin``, ``stride_spin``, ``min_fg_spin``, ``cut_button``.
    """

    def __init__(self) -> None:
        start = TrainingSettings()  # replaced by the settings for the device found
        self.layer_combo = ComboBox(label="Tiles", choices=[])
        self.source_form = _form(self.layer_combo)
        keep_narrow(self.layer_combo.native)  # a long layer name must not widen the dock
        self.channels_label = QLabel("With channels (ticked: trained together)")
        self.channels_list = QListWidget()
        self.channels_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.preset_combo = ComboBox(
            label="Augmentations", choices=["auto", *PRESETS], value="auto"
        )
        self.preset_form = _form(self.preset_combo)
        self.preset_help = WrappedLabel(AUTO_HELP_WITHOUT_TILES)
        self.preset_advice = WrappedLabel("")
        self.length_combo = ComboBox(label="Train for", choices=[MINUTES, EPOCHS], value=MINUTES)
        self.minutes_spin = FloatSpinBox(
            label="About", min=0.1, max=24 * 60, step=0.5, value=CPU_DEFAULTS.time_budget / 60
        )
        self.minutes_spin.native.setSuffix(" min")
        self.minutes_spin.native.setDecimals(1)
        self.epoch_spins = [SpinBox(min=0, max=5000, value=e) for e in QUICK_GPU_EPOCHS]
        for spin in self.epoch_spins:  # three in a row: no wider together than one other control
            spin.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            # typed, or changed with the arrow keys and the wheel: no -/+ buttons, and less than
            # the 70 px of text and 20 of padding napari's theme gives a spin box
            spin.native.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
            spin.native.setStyleSheet("QAbstractSpinBox { min-width: 40px; padding: 1px 6px; }")
        self.epochs_row = Container(
            widgets=self.epoch_spins, layout="horizontal", labels=False, label="Epochs"
        )
        self.epochs_row.margins = (0, 0, 0, 0)
        self.length_form = _form(self.length_combo, self.minutes_spin, self.epochs_row)
        self.dims_combo = ComboBox(label="Map", choices=list(DIMENSIONS), value="2D")
        self.finish_combo = ComboBox(label="Map by", choices=FINISHES, value="auto")
        self.batch_spin = SpinBox(label="Batch size", min=2, max=65536, value=start.batch_size)
        self.device_combo = ComboBox(label="Device", choices=list(DEVICES))
        self.backbone_combo = ComboBox(label="Network", choices=list(BACKBONES))
        self.width_spin = SpinBox(label="Network width", min=4, max=256, value=start.width)
        self.seed_spin = SpinBox(label="Random seed", min=0, max=2**31 - 1, value=start.seed)
        self.advanced_form = _form(
            self.dims_combo,
            self.finish_combo,
            self.batch_spin,
            self.device_combo,
            self.backbone_combo,
            self.width_spin,
            self.seed_spin,
        )
        self.source_combo = ComboBox(label="Image", choices=[])
        self.tile_size_spin = SpinBox(label="Tile size", min=4, max=4096, value=32)
        self.stride_spin = SpinBox(label="Step", min=1, max=4096, value=32)
        self.min_fg_spin = FloatSpinBox(
            label="Skip background", min=0.0, max=1.0, step=0.05, value=0.0
        )
        self.cut_button = PushButton(text="Cut")
        self.cut_form = _form(
            self.source_combo,
            self.tile_size_spin,
            self.stride_spin,
            self.min_fg_spin,
            self.cut_button,
        )
        apply_tooltips(self, TOOLTIPS)
        for spin, tip in zip(self.epoch_spins, STAGE_TIPS):
            spin.tooltip = f"{tip} One epoch shows the network every tile once."
        align_labels(
            self.source_form, self.preset_form, self.length_form
        )  # stacked with help between
        align_labels(self.advanced_form)
        align_labels(self.cut_form)
        self.length_combo.changed.connect(self.show_length)
        self.tile_size_spin.changed.connect(self._keep_stride)
        self._last_tile_size = self.tile_size_spin.value
        self.show_length()

    # -- settings -------------------------------------------------------------
    @property
    def by_time(self) -> bool:
        """Whether training runs for a time budget (else for the epochs shown)."""
        return self.length_combo.value == MINUTES

    def settings(self) -> TrainingSettings:
        """The training settings shown.

        Returns
        -------
        TrainingSettings
            Preset, length (epochs or minutes), batch size, device, network, seed, map
            dimensions and how the map is made, as set in the controls.
        """
        return TrainingSettings(
            preset=self.preset_combo.value,
            minutes=self.minutes_spin.value if self.by_time else None,
            epochs=tuple(s.value for s in self.epoch_spins),
            batch_size=self.batch_spin.value,
            device=self.device_combo.value,
            backbone=self.backbone_combo.value,
            width=self.width_spin.value,
            seed=self.seed_spin.value,
            dimensions=DIMENSIONS[self.dims_combo.value],
            finish=self.finish_combo.value,
        )

    def show_defaults(self, defaults: TrainingSettings) -> None:
        """Show a device's network, batch and training length (the other controls stay).

        Parameters
        ----------
        defaults : TrainingSettings
            The device's settings (``TrainingSettings.for_device``).
        """
        self.backbone_combo.value = defaults.backbone
        self.width_spin.value = defaults.width
        self.batch_spin.value = defaults.batch_size
        if defaults.minutes is None:
            self.length_combo.value = EPOCHS
        else:
            self.length_combo.value = MINUTES
            self.minutes_spin.value = defaults.minutes
        self.show_length()

    def apply(
        self,
        *,
        epochs: tuple[int, int, int] | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        backbone: str | None = None,
        width: int | None = None,
        preset: str | None = None,
        seed: int | None = None,
        minutes: float | None = None,
        dimensions: int | None = None,
        finish: str | None = None,
    ) -> None:
        """Set the controls (as a user would); None leaves a control as it is.

        ``epochs`` switches the length to epochs, ``minutes`` to a time budget. A new ``device``
        is set first (the dock then shows that device's defaults); the other arguments then
        override them.

        Parameters
        ----------
        epochs : tuple of int, optional
            Epochs of the three training stages.
        batch_size : int, optional
            Tiles per training step.
        device : str, optional
            One of ``DEVICES`` ("auto", "cpu", "cuda", "mps").
        backbone : str, optional
            One of ``BACKBONES``.
        width : int, optional
            Width of the network (channels of its first layer).
        preset : str, optional
            An augmentation preset, or "auto".
        seed : int, optional
            Random seed of training and of the preview.
        minutes : float, optional
            Time budget of training.
        dimensions : int, optional
            2 or 3: the dimensions of the map.
        finish : str, optional
            How the map is made after pre-training: "auto", "contrastive" or "tsne".

        Raises
        ------
        ValueError
            An unknown device, backbone, preset or finish, ``epochs`` without three numbers, or
            ``dimensions`` other than 2 or 3.
        """
        choices = {
            "device": (device, self.device_combo),
            "backbone": (backbone, self.backbone_combo),
            "preset": (preset, self.preset_combo),
            "finish": (finish, self.finish_combo),
        }
        for value, combo in choices.values():  # check all before changing any
            if value is not None and value not in combo.choices:
                raise ValueError(f"{value!r} is not one of {list(combo.choices)}.")
        if epochs is not None and len(epochs) != 3:
            raise ValueError(f"epochs needs three numbers (one per stage), got {epochs!r}.")
        if dimensions is not None and int(dimensions) not in DIMENSIONS.values():
            raise ValueError(f"dimensions must be 2 or 3, not {dimensions!r}.")
        if device is not None:
            self.device_combo.value = device
        if epochs is not None:
            for spin, value in zip(self.epoch_spins, epochs):
                spin.value = int(value)
            self.length_combo.value = EPOCHS
        if minutes is not None:
            self.minutes_spin.value = float(minutes)
            self.length_combo.value = MINUTES
        if batch_size is not None:
            self.batch_spin.value = int(batch_size)
        if backbone is not None:
            self.backbone_combo.value = backbone
        if preset is not None:
            self.preset_combo.value = preset
        if width is not None:
            self.width_spin.value = int(width)
        if seed is not None:
            self.seed_spin.value = int(seed)
        if dimensions is not None:
            self.dims_combo.value = f"{int(dimensions)}D"
        if finish is not None:
            self.finish_combo.value = finish

    # -- what the controls show -------------------------------------------------
    def show_length(self, mode: str | None = None) -> None:
        """Show the minutes for a time budget, the three epoch counts otherwise.

        Parameters
        ----------
        mode : str, optional
            The length's new value (``length_combo`` sends it); not needed, the combo is read.
        """
        self.minutes_spin.visible = self.by_time
        self.epochs_row.visible = not self.by_time

    def show_preset_help(self, recommendation: Recommendation | None) -> None:
        """Say what the chosen preset does and, beside a recommendation, what "auto" picks.

        Parameters
        ----------
        recommendation : Recommendation or None
            The preset that suits the chosen tiles and why; None without tiles to judge.
        """
        choice = self.preset_combo.value
        rec = recommendation
        no_tiles = choice == "auto" and rec is None
        self.preset_help.setText(AUTO_HELP_WITHOUT_TILES if no_tiles else PRESET_HELP[choice])
        if rec is None or (choice != "auto" and choice == rec.preset):
            self.preset_advice.setText("")
        elif choice == "auto":
            self.preset_advice.setText(f"For these tiles: {rec.preset}. {rec.reason}")
        else:
            self.preset_advice.setText(
                f"'auto' would choose {rec.preset} for these tiles. {rec.reason}"
            )

    def ticked_channels(self) -> set[str]:
        """The channel layers the user ticked.

        Returns
        -------
        set of str
            Their names.
        """
        items = (self.channels_list.item(i) for i in range(self.channels_list.count()))
        return {i.text() for i in items if i.checkState() == Qt.CheckState.Checked}

    def offer_channels(self, names: list[str], shown: set[str]) -> None:
        """List ``names`` as channels to tick, keeping earlier ticks; ``shown`` ones start ticked.

        No change signal is sent. The list is as tall as its rows (up to four) and hidden when
        empty.

        Parameters
        ----------
        names : list of str
            The other single-channel layers of the same tiles.
        shown : set of str
            Those napari blends with the tiles: ticked unless the user unticked them before.
        """
        before = {
            self.channels_list.item(i).text(): self.channels_list.item(i).checkState()
            for i in range(self.channels_list.count())
        }
        self.channels_list.blockSignals(True)
        self.channels_list.clear()
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            default = Qt.CheckState.Checked if name in shown else Qt.CheckState.Unchecked
            item.setCheckState(before.get(name, default))
            self.channels_list.addItem(item)
        self.channels_list.blockSignals(False)
        rows = max(1, min(len(names), 4))
        self.channels_list.setFixedHeight(rows * self.channels_list.sizeHintForRow(0) + 6)
        self.channels_list.setVisible(bool(names))
        self.channels_label.setVisible(bool(names))

    def _keep_stride(self, value: int) -> None:
        """Keep the step equal to the tile size unless the user chose another step."""
        if self.stride_spin.value == self._last_tile_size:
            self.stride_spin.value = value
        self._last_tile_size = value
