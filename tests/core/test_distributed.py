"""Several training processes (gloo on the CPU) train like one process with the global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from napari_tsimcne.core.loss import cauchy_infonce
from napari_tsimcne.core.schedule import lr_at, make_stages

from .ddp_worker import step_inputs

WORKER = Path(__file__).with_name("ddp_worker.py")


def torchrun(mode: str, out: Path, processes: int = 2) -> list[dict]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
    }
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        str(WORKER),
        mode,
        str(out),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(f"{out}.rank{r}.pt", weights_only=False) for r in range(processes)]


@pytest.mark.slow  # starts several Python processes
def test_two_processes_equal_one_process_with_the_global_batch(tmp_path):
    ranks = torchrun("step", tmp_path / "step")
    net, first, second = step_inputs(2)
    for only_last in (False, True):
        net.zero_grad(set_to_none=True)
        for p in net.parameters():
            p.requires_grad_(not only_last)
        net.head.last.requires_grad_(True)
        if only_last:
            with torch.no_grad():
                h = net.head.hidden(net.features(torch.cat([first, second])))
            z = net.head.last(h)
        else:
            z = net(torch.cat([first, second]))
        loss = cauchy_infonce(z)
        loss.backward()
        grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
        for r in ranks:
            got = r[only_last]
            assert got["loss"] == pytest.approx(loss.item(), rel=1e-5)
            assert set(got["grads"]) == set(grads)
            for name, g in grads.items():
                torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
    # batch-norm running statistics were pooled over both processes, as over the one big batch
    for name, b in net.named_buffers():
        for r in ranks:
            torch.testing.assert_close(
                r["buffers"][name].to(b.dtype), b, rtol=1e-4, atol=1e-6, msg=name
            )


@pytest.mark.slow  # starts several Python processes
def test_fit_under_torchrun_keeps_processes_in_step(tmp_path):
    ranks = torchrun("fit", tmp_path / "fit")
    a, b = ranks
    for name in a["state"]:
        torch.testing.assert_close(a["state"][name], b["state"][name], msg=name)
    torch.testing.assert_close(a["embedding"], b["embedding"])
    assert a["embedding"].shape == (128, 2) and torch.isfinite(a["embedding"]).all()
    assert len(a["history"]) == 4
    # the learning rate follows the global batch, 0.03 x (2 x 16) / 256, and so do the steps per epoch:
    # 128 tiles / 32 = 4, so epoch 1 ends at step 4 of stage 1's 8-step cosine schedule
    stage1 = make_stages((2, 1, 1), 0.03 * 32 / 256)[0]
    assert a["history"][0]["lr"] == pytest.approx(lr_at(stage1, 3, 4), rel=1e-6)
