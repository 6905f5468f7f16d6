import numpy as np
import torch
import torch.nn.functional as F

from colorunet.training.losses import rebalanced_cross_entropy, soft_encode, soft_rebalanced_cross_entropy
from colorunet.core.quantize import cell_centers


def test_rebalanced_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).T.reshape(1, 2, 1, 3)  # 3 pixels
    target = torch.tensor([[[0, 1, 0]]])
    w = torch.tensor([0.5, 2.0])
    nll = [-np.log(np.exp(2) / (np.exp(2) + 1)), -np.log(np.e / (np.e + 1)), np.log(2)]
    expected = (0.5 * nll[0] + 2.0 * nll[1] + 0.5 * nll[2]) / 3
    assert abs(rebalanced_cross_entropy(logits, target, w).item() - expected) < 1e-6


def test_uniform_weights_give_plain_cross_entropy():
    logits, target = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    torch.testing.assert_close(rebalanced_cross_entropy(logits, target, torch.ones(5)), F.cross_entropy(logits, target))


def test_soft_encoding_peaks_at_the_nearest_bin():
    centers = torch.from_numpy(cell_centers()[[44, 45, 54, 55, 0, 99]]).float()
    uv = centers[3].view(1, 2, 1, 1) + 0.001  # on bin 3
    z = soft_encode(uv, centers, 10, k=5, sigma=0.5)
    assert z.shape == (1, 6, 1, 1)
    assert abs(z.sum().item() - 1) < 1e-6
    assert z.argmax(1).item() == 3
    assert (z > 0).sum().item() == 5
    # 1 cell away along U: Gaussian weight e^(−1/(2·0.25)) = e^−2 relative to the peak
    zz = z.flatten()
    # bin 2 (cell 54) is one cell below bin 3 (cell 55) along U
    d = (uv.flatten() - centers[2]) / torch.tensor([0.0872, 0.123])
    d3 = (uv.flatten() - centers[3]) / torch.tensor([0.0872, 0.123])
    expected = np.exp(-(d.square().sum() - d3.square().sum()).item() / (2 * 0.25))
    assert abs((zz[2] / zz[3]).item() - expected) < 1e-4


def test_soft_loss_with_one_hot_targets_equals_hard_loss():
    logits, target = torch.randn(2, 6, 3, 3), torch.randint(0, 6, (2, 3, 3))
    w = torch.rand(6) + 0.5
    z = F.one_hot(target, 6).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(soft_rebalanced_cross_entropy(logits, z, w), rebalanced_cross_entropy(logits, target, w))


def test_rebalanced_cross_entropy_same_in_both_layouts():
    import torch

    from colorunet.training.losses import rebalanced_cross_entropy

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 5, 6, generator=g)
    target = torch.randint(0, 7, (2, 5, 6), generator=g)
    w = torch.rand(7, generator=g) + 0.5
    # by hand: mean over pixels of w[t] * -log softmax(z)[t]
    logp = torch.log_softmax(logits, 1)
    by_hand = -(w[target] * logp.gather(1, target[:, None])[:, 0]).mean()
    a = rebalanced_cross_entropy(logits, target, w)
    b = rebalanced_cross_entropy(logits.contiguous(memory_format=torch.channels_last), target, w)
    assert torch.allclose(a, by_hand, atol=1e-6) and torch.allclose(b, by_hand, atol=1e-6)


def test_channels_last_cross_entropy_gradient_matches_pytorch():
    import torch
    import torch.nn.functional as F

    from colorunet.training.losses import rebalanced_cross_entropy

    g = torch.Generator().manual_seed(1)
    w = torch.rand(9, generator=g) + 0.5
    target = torch.randint(0, 9, (3, 6, 5), generator=g)
    for dtype in (torch.float32, torch.bfloat16):
        base = (torch.randn(3, 9, 6, 5, generator=g) * 4).to(dtype)
        a = base.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
        b = base.clone().requires_grad_()
        la = rebalanced_cross_entropy(a, target, w)  # the rows path
        lb = F.cross_entropy(b.float(), target, weight=w, reduction="sum") / target.numel()  # PyTorch's own
        la.backward()
        lb.backward()
        assert a.grad.dtype == dtype and torch.allclose(la, lb, atol=1e-5)
        tol = 1e-6 if dtype == torch.float32 else 1e-3
        assert torch.allclose(a.grad.float(), b.grad.float(), atol=tol), (dtype, (a.grad.float() - b.grad.float()).abs().max())
