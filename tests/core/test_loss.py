import numpy as np
import pytest
import torch

from napari_tsimcne.core.loss import cauchy_infonce


def reference_loss(z: torch.Tensor) -> torch.Tensor:
    """Plain loop over views: -log(s_pos / sum_{j != i} s_ij), s = 1 / (1 + d^2)."""
    n = z.shape[0]
    b = n // 2
    total = 0.0
    for i in range(n):
        twin = (i + b) % n
        sims = [1.0 / (1.0 + ((z[i] - z[j]) ** 2).sum()) for j in range(n) if j != i]
        pos = 1.0 / (1.0 + ((z[i] - z[twin]) ** 2).sum())
        total = total - torch.log(pos / sum(sims))
    return total / n


@pytest.mark.parametrize("dim", [2, 3, 128])
def test_loss_and_gradient_match_a_plain_reference(dim):
    gen = torch.Generator().manual_seed(dim)
    z = (torch.randn(12, dim, generator=gen, dtype=torch.float64) * 2).requires_grad_(True)
    z_ref = z.detach().clone().requires_grad_(True)
    loss = cauchy_infonce(z)
    ref = reference_loss(z_ref)
    loss.backward()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(z.grad.numpy(), z_ref.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_loss_is_lower_when_twins_are_close():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(16, 2, generator=gen) * 10
    together = cauchy_infonce(torch.cat([a, a + 0.01]))
    apart = cauchy_infonce(torch.cat([a, a.roll(1, 0)]))
    assert together < apart


def test_loss_rejects_odd_number_of_views():
    with pytest.raises(ValueError, match="even number"):
        cauchy_infonce(torch.zeros(5, 2))
