"""Training losses: class-rebalanced cross-entropy (hard or soft targets) and L2.

Zhang et al. Eq. 2–4: L = −Σ_pixels v(Z) Σ_q Z_q log Ẑ_q with v(Z) = w_{q*},
q* = argmax_q Z_q, averaged over pixels. ColorUNet uses hard (one-hot) targets,
for which this is the weighted negative log-likelihood of the target class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.quantize import cell_size

#: Zhang et al. soft-encode each colour over its 5 nearest bins...
SOFT_K = 5
#: ...with a Gaussian of σ = 5 Lab units, half their grid step of 10. On our UV
#: grid the same σ is half a cell, measured in cell units along each axis.
SOFT_SIGMA_CELLS = 0.5


def rebalanced_cross_entropy(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of w[target] · (−log p[target]).

    Args:
        logits: (B, n, H, W); the log-softmax is taken in float32 even under bf16 autocast.
        target: (B, H, W) int64 class indices.
        class_weights: (n,) rebalancing weights, E_P̂[w] = 1.
    """
    # reduction="sum" / numel, not "mean": torch's weighted "mean" divides by the
    # sum of the weights, which would undo the rebalancing.
    if logits.dim() == 4 and logits.is_contiguous(memory_format=torch.channels_last) and not logits.is_contiguous():
        # Pixels as rows, classes as columns: for channels_last logits (the training
        # layout) that view is free, where the 4-D form copies to NCHW first.
        rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
        return _RowsCrossEntropy.apply(rows, target.reshape(-1), class_weights.float(), target.numel())
    return F.cross_entropy(logits.float(), target, weight=class_weights, reduction="sum") / target.numel()


class _RowsCrossEntropy(torch.autograd.Function):
    """Σ_rows w[t]·(logsumexp(z) − z_t) / denom, with its gradient w[t]·(softmax(z) − onehot(t)) / denom.

    The same value and gradient as ``F.cross_entropy(z.float(), t, weight=w, reduction="sum") / denom``
    (tested), in one float32 buffer: the softmax made in the forward pass becomes the gradient in
    place. PyTorch's version materialises the log-softmax, a zero-filled gradient for the NLL and the
    log-softmax's gradient, and a bf16 → fp32 copy with its own backward; at 128² crops that loss was
    a quarter of a CPU training step, this one takes half the time. Reading bf16 logits directly, the
    exponentials are still taken in float32.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, denom: int) -> torch.Tensor:
        z = rows.to(torch.float32, copy=True)
        z -= z.amax(1, keepdim=True)
        z_target = z.gather(1, target[:, None])[:, 0]
        z.exp_()
        total = z.sum(1)
        w = weight[target]
        loss = (w * (total.log() - z_target)).sum() / denom
        z /= total[:, None]  # softmax
        ctx.save_for_backward(z, target, w)
        ctx.denom, ctx.dtype = denom, rows.dtype
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        p, target, w = ctx.saved_tensors
        # p is turned into the gradient in place: a training step calls backward once.
        p.scatter_add_(1, target[:, None], torch.full((len(target), 1), -1.0, device=p.device))
        p *= (w * (grad / ctx.denom))[:, None]
        return p.to(ctx.dtype), None, None, None


def soft_encode(
    uv: torch.Tensor, centers: torch.Tensor, grid_size: int, k: int = SOFT_K, sigma: float = SOFT_SIGMA_CELLS, space: str = "yuv"
) -> torch.Tensor:
    """Zhang et al.'s soft targets: a Gaussian over the k nearest bin centres.

    Args:
        uv: (B, 2, H, W) chroma.
        centers: (n, 2) bin chroma.
    Returns:
        (B, n, H, W) target distributions (each pixel sums to 1).
    """
    du, dv = cell_size(grid_size, space)  # on Zhang et al.'s ab grid a cell is 10, so σ = 5, theirs
    scale = torch.tensor([du, dv], dtype=torch.float32, device=uv.device)
    c = centers.to(uv.device, torch.float32) / scale  # (n, 2), in cell units
    x = uv.float().permute(0, 2, 3, 1) / scale  # (B, H, W, 2)
    d2 = ((x[..., None, :] - c) ** 2).sum(-1)  # (B, H, W, n)
    k = min(k, c.shape[0])
    near_d2, near_idx = d2.topk(k, dim=-1, largest=False)  # (B, H, W, k)
    w = torch.softmax(-near_d2 / (2 * sigma**2), dim=-1)
    z = torch.zeros_like(d2).scatter_(-1, near_idx, w)
    return z.permute(0, 3, 1, 2)  # (B, n, H, W)


def soft_rebalanced_cross_entropy(
    logits: torch.Tensor, soft_target: torch.Tensor, class_weights: torch.Tensor
) -> torch.Tensor:
    """Mean over pixels of w[argmax Z] · (−Σ_q Z_q log p_q) (Zhang et al. Eq. 2, 4)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    ce = -(soft_target * log_p).sum(1)  # (B, H, W)
    return (class_weights[soft_target.argmax(1)] * ce).mean()


def regression_loss(pred_uv: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Plain L2 on chroma: the regression baseline the paper argues against."""
    return F.mse_loss(pred_uv.float(), uv.float())
