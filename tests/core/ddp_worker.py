"""Run under torchrun by tests/core/test_distributed.py: one training step, or a whole tiny fit.

torchrun --standalone --nproc-per-node=2 tests/core/ddp_worker.py step OUT
torchrun --standalone --nproc-per-node=2 tests/core/ddp_worker.py fit OUT
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from napari_tsimcne.core import TSimCNE
from napari_tsimcne.core.distributed import (
    from_environment,
    gather_views,
    mean_over_processes,
    wrap,
)
from napari_tsimcne.core.loss import cauchy_infonce
from napari_tsimcne.core.model import TSimCNENet
from napari_tsimcne.core.training import _StageModel

PER_PROCESS = 8


def step_inputs(world: int) -> tuple[TSimCNENet, torch.Tensor, torch.Tensor]:
    """The network and the two view sets of the global batch; identical in every process."""
    torch.manual_seed(0)
    net = TSimCNENet(3, "resnet10", 8, out_dim=16)
    g = torch.Generator().manual_seed(1)
    first = torch.rand(world * PER_PROCESS, 3, 16, 16, generator=g)
    second = torch.rand(world * PER_PROCESS, 3, 16, 16, generator=g)
    return net, first, second


def one_step(out: str) -> None:
    ctx = from_environment("cpu")
    net, first, second = step_inputs(ctx.world_size)
    cpu = torch.device("cpu")
    result = {}
    for only_last in (False, True):
        net.zero_grad(set_to_none=True)
        for p in net.parameters():
            p.requires_grad_(not only_last)
        net.head.last.requires_grad_(True)
        model = wrap(_StageModel(net, only_last, cpu), ctx, cpu)
        mine = slice(ctx.rank * PER_PROCESS, (ctx.rank + 1) * PER_PROCESS)
        z, rows = gather_views(model(torch.cat([first[mine], second[mine]])), ctx)
        loss = cauchy_infonce(z, rows)
        loss.backward()
        result[only_last] = {
            "loss": float(mean_over_processes(loss.detach(), ctx)),
            "grads": {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None},
        }
    result["buffers"] = {n: b.clone() for n, b in net.named_buffers()}
    torch.save(result, f"{out}.rank{ctx.rank}.pt")


def whole_fit(out: str) -> None:
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 255, size=(128, 16, 16, 3), dtype=np.uint8)
    tiles[:64, :8] //= 4  # two kinds of tiles
    model = TSimCNE(
        total_epochs=(2, 1, 1),
        batch_size=16,
        backbone="resnet10",
        width=8,
        device="cpu",
        random_state=3,
        preview_every=0,
    )
    y = model.fit_transform(tiles)
    state = {k: v.clone() for k, v in model.model_.state_dict().items()}
    torch.save(
        {
            "embedding": torch.from_numpy(y),
            "state": state,
            "history": model.history_,
            "lr": float(model.history_[0]["lr"]),
        },
        f"{out}.rank{torch.distributed.get_rank()}.pt",
    )


if __name__ == "__main__":
    {"step": one_step, "fit": whole_fit}[sys.argv[1]](sys.argv[2])
