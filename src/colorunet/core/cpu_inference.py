"""A network's inference forward as oneDNN runs it fastest on a CPU.

Eager PyTorch runs each convolution and the ReLU after it as two passes over the
feature map, and under bf16 autocast it casts every weight to bf16 again on
every call. For a network as small as ColorUNet the convolutions themselves are
cheap, so those extra passes are a large share of a forward: oneDNN can apply
the ReLU inside the convolution (a "post-op"), on weights cast once. PyTorch
exposes that primitive as ``torch.ops.mkldnn._convolution_pointwise`` (and its
transposed twin): the very op ``torch.compile``'s CPU backend emits for a conv
followed by a ReLU. Calling it directly gets the same speed without a compile
step, which would take longer (seconds) than colorizing a photo.

Measured with ``python benchmarks/bench_inference.py --part network`` (paper
preset, 256², batch 1, 2-core AVX512-BF16 CPU): about 15% less time than the
autocast path, with bit-identical outputs (``tests/test_model.py``).

The rewrite is generic, so the eccv16 baseline is run the same way in the
benchmarks: every Conv2d / ConvTranspose2d (followed by a ReLU or not) becomes
one ``OneDNNConv``; other modules are left as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.nn.intrinsic import ConvReLU2d

from .model import fused_for_inference


def onednn_available() -> bool:
    """Whether this PyTorch build has oneDNN's fused convolution ops (x86 and most CPU builds do)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._convolution_pointwise  # noqa: B018  (looked up, not called)
        torch.ops.mkldnn._convolution_transpose_pointwise  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


class OneDNNConv(nn.Module):
    """A Conv2d or ConvTranspose2d (+ ReLU) as one oneDNN primitive, weights held in ``dtype``."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, relu: bool, dtype: torch.dtype):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.register_buffer("weight", conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().to(dtype))
        self.padding, self.stride, self.dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
        self.output_padding = list(conv.output_padding) if self.transposed else None
        self.groups = conv.groups
        self.attr = "relu" if relu else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weight.dtype)  # only the first layer's input is not already in it
        if self.transposed:
            return torch.ops.mkldnn._convolution_transpose_pointwise(
                x,
                self.weight,
                self.bias,
                self.padding,
                self.output_padding,
                self.stride,
                self.dilation,
                self.groups,
                self.attr,
                [None],
                "",
            )
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, self.attr, [None], ""
        )

    def extra_repr(self) -> str:
        kind = "transposed " if self.transposed else ""
        return f"{kind}{tuple(self.weight.shape)}, {self.weight.dtype}, stride={self.stride}, post-op={self.attr}"


def _convertible(m: nn.Module) -> bool:
    # exact types: a subclass may do more in its forward (the semantic encoder's convs pad first)
    return type(m) in (nn.Conv2d, nn.ConvTranspose2d) and m.padding_mode == "zeros" and not isinstance(m.padding, str)


def _rewrite(module: nn.Module, dtype: torch.dtype) -> None:
    """Replace, in place, each conv (+ the ReLU right after it in a Sequential) by a OneDNNConv."""
    for name, child in list(module.named_children()):
        if isinstance(child, ConvReLU2d) and _convertible(child[0]):  # conv + BN + ReLU folded by fused_for_inference
            setattr(module, name, OneDNNConv(child[0], relu=True, dtype=dtype))
        elif _convertible(child):
            siblings = list(module.children()) if isinstance(module, nn.Sequential) else []
            i = next((k for k, s in enumerate(siblings) if s is child), -1)
            relu = 0 <= i < len(siblings) - 1 and isinstance(siblings[i + 1], nn.ReLU)
            setattr(module, name, OneDNNConv(child, relu=relu, dtype=dtype))
            if relu:
                module[i + 1] = nn.Identity()
        else:
            _rewrite(child, dtype)


def onednn_inference_net(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``net`` for CPU inference: batch norm folded where it can be, then every
    conv (+ ReLU) one oneDNN primitive with weights in ``dtype``, channels_last.

    Outputs come out in ``dtype``; the input may be float32. ``net`` is left as it is.
    """
    fast = fused_for_inference(net)  # a deep copy in eval mode
    _rewrite(fast, dtype)
    return fast.to(memory_format=torch.channels_last)


def cpu_inference_net(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """What colorize runs on a CPU: ``onednn_inference_net`` where this build runs it, else
    ``fused_for_inference`` in channels_last (to be called under autocast to ``dtype``).

    A build can list the oneDNN ops yet lack a kernel for this CPU or type, so the
    fast net is tried once on a small input before it is chosen.
    """
    if onednn_available():
        fast = onednn_inference_net(net, dtype)
        m = 2 * net.config.size_multiple
        try:
            with torch.inference_mode():
                fast(torch.rand(1, 1, m, m).contiguous(memory_format=torch.channels_last))
            return fast
        except (RuntimeError, NotImplementedError):
            pass
    return fused_for_inference(net).to(memory_format=torch.channels_last)
