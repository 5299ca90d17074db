"""What ``"auto"`` stands for on each kind of device: network, batch and training length (no PyTorch).

``napari_tsimcne.core.device`` picks one of these for the device it finds; the command line's help
and the plugin's first values read them from here, so each default is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schedule import PAPER_EPOCHS


@dataclass(frozen=True)
class DeviceDefaults:
    """What ``"auto"`` means for the network, the batch and the training length on one kind of device."""

    backbone: str
    """The network (see ``napari_tsimcne.core.backbones.BACKBONES``)."""
    width: int
    """Channels of the network's first layer."""
    batch_size: int
    """Tiles per training step."""
    total_epochs: tuple[int, int, int] | None
    """Epochs of the three stages, or None: set by ``time_budget`` instead."""
    time_budget: float | None
    """Seconds of training and mapping, or None: train ``total_epochs``."""
    embed_batch_size: int = 2048
    """Tiles per forward pass when mapping. On a CPU small batches keep the activations in the cache:
    mapping 64 x 64 tiles is 1.3 to 2 times faster with 128 tiles per pass than with 2048."""
    finish: str = "contrastive"
    """How ``finish="auto"`` makes the map after pre-training under a time budget: the paper's
    contrastive 2-D stages, or ``"tsne"``: a t-SNE of the features distilled into the network
    (``napari_tsimcne.core.tsne_finish``)."""
    finetune_lr_ratio: float = 1e-3
    """Stage 3's learning rate as a multiple of ``lr``. The paper's 1/1000 suits its 1000 epochs of
    pre-training and 450 of fine-tuning; in a run of minutes the network must still change to
    serve the 2D map, and fine-tuning at the full rate or above keeps more of what it learned."""


SHORT_RUN_FINETUNE = 1.0
"""Stage 3's learning rate as a multiple of ``lr`` where ``"auto"`` means a run of minutes (CPU, MPS).

From one network pre-trained for 32 epochs on the CPU (all 17,092 blood cells), 16 epochs of
stage 3 gave maps of 74.3 / 75.9 / 76.7 / 77.3 % 15-NN at 1/1000, 1/10, 1 and 3 times ``lr``
(``benchmarks/results/map-stages-cpu-2core_pbc17092.jsonl``). On 1,000 tiles and 10 / 3 / 3 epochs,
two seeds gave 54 and 47 % at 1/1000, 60 and 52 % at 1 x ``lr``, 57 and 56 % at 1.5 x
(``finetune-small-cpu-2core_pbc1000.jsonl``); at 3 x one seed fell to 35 %, so ``lr`` it is."""

GPU_DEFAULTS = DeviceDefaults("resnet18", 64, 1024, PAPER_EPOCHS, None)
"""CUDA: the paper's network, batch and budget (Böhm et al. 2023)."""

MPS_DEFAULTS = DeviceDefaults(
    "resnet18", 64, 1024, None, 600.0, finetune_lr_ratio=SHORT_RUN_FINETUNE
)
"""Apple's GPUs: the paper's network, trained for about 10 minutes."""

CPU_DEFAULTS = DeviceDefaults(
    "resnet18-s2",
    16,
    256,
    None,
    600.0,
    embed_batch_size=128,
    finetune_lr_ratio=SHORT_RUN_FINETUNE,
    finish="tsne",
)
"""No GPU: ResNet-18 with a stride-2 stem and 16 channels in its first layer, batch 256, about 10 minutes.

On 28 x 28 tiles the stride-2 stem makes a training step 2.9 times cheaper
than the paper's stride-1 stem at the same width. In a 10-minute budget on 2
cores both gave maps of the same quality (73.3 and 73.9 % 15-NN on the blood
cells), and the stride-2 network maps new tiles three times faster (5,260
against about 1,400 tiles/s); docs/cpu.md shows the measurements.
"""
