"""ColorUNet: the small U-Net of Billaut, de Rochemonteix & Thibault (arXiv 1811.03120).

Reads top to bottom: building blocks, the config, the network.

The paper preset (``widths=(16, 32, 64)``):

    Y (1, H, W)
    DownConv 16  (H, W)       ──────────────── skip ─────────────┐
    max-pool 2 → DownConv 32  (H/2, W/2)  ──── skip ───┐          │
    max-pool 2 → DownConv 64  (H/4, W/4)  bottleneck   │          │
    UpConv 32: ConvTranspose 3×3 /2 → concat ◄─────────┘ → 2 conv │
    UpConv 16: ConvTranspose 3×3 /2 → concat ◄────────────────────┘ → 2 conv
    OutputConv: 1×1 conv → n logits (H, W)

Each DownConv is two 3×3 conv + batch norm + ReLU; the pooling between groups
belongs to the next group, so the last group (the bottleneck) is not pooled.
That gives ~131k parameters with 32 classes, against ~32M for Zhang et al.

With ``encoder="efficientnet-lite0"`` (the ``semantic`` preset) a frozen
ImageNet network (``semantic.py``) sees the same grey input, and its knowledge
of what things are joins at the bottleneck (``SemanticFusion``), as in Iizuka et
al. 2016 and Baldassarre et al. 2017: its stride-8 and stride-16 feature maps,
each projected to SEMANTIC_MAP_CHANNELS by a 1×1 conv and resized to the
bottleneck, and its pooled 1,280-d vector projected to the bottleneck's width
and broadcast over the image, are concatenated with the bottleneck, mixed back
to its width by a 1×1 conv + BN, and added to it. The BN's scale starts at zero
(as in Goyal et al. 2017's zero-initialised residuals), so the fusion starts as
a no-op: a semantic model initialised from a plain one (``train --init``) starts
exactly where that one is, and learns how much of the encoder to let in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .values import check_number


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: the batch norm that follows has its own shift.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2×2 max pooling with stride 2 (H and W even).

    Without autograd it is the elementwise maximum of the four phase-shifted
    views: same values, but 3–5× faster on a CPU than ``F.max_pool2d``, which
    also writes an int64 index per output for a backward pass that never comes.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    return torch.maximum(torch.maximum(x[..., ::2, ::2], x[..., 1::2, ::2]), torch.maximum(x[..., ::2, 1::2], x[..., 1::2, 1::2]))


class DownConv(nn.Sequential):
    """Two 3×3 conv + BN + ReLU (one encoder group)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(*conv_bn_relu(c_in, c_out), *conv_bn_relu(c_out, c_out))


class UpConv(nn.Module):
    """3×3 stride-2 transposed conv (×2 resolution), concat with the skip, then two 3×3 convs."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
        self.convs = DownConv(c_out + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, c_out, 2h, 2w)
        return self.convs(torch.cat([x, skip], dim=1))  # (B, c_out, 2h, 2w)


#: Channels each of the encoder's two feature maps is projected to before the fusion.
SEMANTIC_MAP_CHANNELS = 64
ENCODERS = ("none", "efficientnet-lite0")


class SemanticFusion(nn.Module):
    """The frozen encoder's features joined to the U-Net's bottleneck (see the module docstring)."""

    def __init__(self, width: int):
        super().__init__()
        from .semantic import GLOBAL_CHANNELS, STRIDE8_CHANNELS, STRIDE16_CHANNELS, SemanticEncoder

        self.encoder = SemanticEncoder()
        self.local8 = nn.Conv2d(STRIDE8_CHANNELS, SEMANTIC_MAP_CHANNELS, 1)
        self.local16 = nn.Conv2d(STRIDE16_CHANNELS, SEMANTIC_MAP_CHANNELS, 1)
        self.global_ = nn.Linear(GLOBAL_CHANNELS, width)
        self.mix = nn.Sequential(nn.Conv2d(2 * width + 2 * SEMANTIC_MAP_CHANNELS, width, 1, bias=False), nn.BatchNorm2d(width))
        nn.init.zeros_(self.mix[1].weight)  # a no-op at first (see the module docstring)

    def forward(self, bottleneck: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """
        Args:
            bottleneck: (B, w, h, w') the U-Net's bottleneck features.
            y: (B, 1, H, W) the network's input luma.
        Returns:
            (B, w, h, w') the bottleneck with the encoder's knowledge mixed in.
        """
        s8, s16, g = self.encoder(y)  # (B, 40, H/8, W/8), (B, 112, H/16, W/16), (B, 1280)
        size = bottleneck.shape[-2:]
        l8 = F.interpolate(self.local8(s8), size=size, mode="bilinear", align_corners=False)
        l16 = F.interpolate(self.local16(s16), size=size, mode="bilinear", align_corners=False)
        glob = self.global_(g)[:, :, None, None].expand(-1, -1, *size)  # (B, w, h, w')
        return bottleneck + self.mix(torch.cat([bottleneck, l8, l16, glob], dim=1))


#: Bounds of a network's shape (ColorUNetConfig): the paper has 3 levels of at most 64 channels, the eccv16
#: baseline 512 channels. Classes: Zhang et al.'s Lab quantiser has 262 (313 in their paper); each costs 4 bytes per
#: pixel of the working image (1,024 at a working size of 256: 256 MB).
MAX_LEVELS = 8
MAX_WIDTH = 4096
MAX_CLASSES = 1024


@dataclass
class ColorUNetConfig:
    """Architecture of a ColorUNet; saved inside every weights file.

    Attributes:
        widths: channels of each encoder group, the last being the bottleneck;
            ``len(widths) - 1`` poolings, skips and UpConv cells. The paper: (16, 32, 64).
        num_classes: chroma classes the head predicts (the quantiser's n).
        head: "classification" (n logits per pixel, the paper) or "regression"
            (2 channels, U and V, for the L2 baseline the paper argues against).
        arch: "colorunet", or "eccv16" for Zhang et al.'s network (``model_eccv16``;
            ``widths`` is then unused), the baseline the paper replaces.
        color_space: "yuv" (Y in, UV classes: ColorUNet) or "lab" (L in, ab classes:
            Zhang et al.).
        encoder: "none" (the paper), or "efficientnet-lite0": a frozen ImageNet
            network whose features join at the bottleneck (``SemanticFusion``).
    """

    widths: tuple[int, ...] = (16, 32, 64)
    num_classes: int = 32
    head: Literal["classification", "regression"] = "classification"
    arch: Literal["colorunet", "eccv16"] = "colorunet"
    color_space: Literal["yuv", "lab"] = "yuv"
    encoder: Literal["none", "efficientnet-lite0"] = "none"

    def __post_init__(self) -> None:
        # a model file's metadata is read through here: no inf, NaN or 2.5 channels
        self.widths = tuple(int(check_number(w, "widths", 1, MAX_WIDTH, integer=True)) for w in self.widths)
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"widths needs at least two positive entries, got {self.widths}")
        # a model file's metadata is read through here: each level halves the photo, and the input is padded to a
        # multiple of 2^(levels - 1), so a deep, narrow network of a few kilobytes would pad every photo to gigapixels
        if len(self.widths) > MAX_LEVELS or max(self.widths) > MAX_WIDTH:
            raise ValueError(f"widths: at most {MAX_LEVELS} levels of at most {MAX_WIDTH} channels, got {self.widths}")
        n = self.num_classes
        if isinstance(n, bool) or not isinstance(n, Integral) or not 1 <= n <= MAX_CLASSES:
            raise ValueError(f"num_classes must be a whole number from 1 to {MAX_CLASSES}, got {self.num_classes!r}")
        if self.head not in ("classification", "regression"):
            raise ValueError(f"head must be 'classification' or 'regression', got {self.head!r}")
        if self.arch not in ("colorunet", "eccv16"):
            raise ValueError(f"arch must be 'colorunet' or 'eccv16', got {self.arch!r}")
        if self.color_space not in ("yuv", "lab"):
            raise ValueError(f"color space must be 'yuv' or 'lab', got {self.color_space!r}")
        if self.arch == "eccv16" and self.head != "classification":
            raise ValueError("the eccv16 network has a classification head only")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.encoder != "none" and self.arch != "colorunet":
            raise ValueError("a semantic encoder joins ColorUNet's bottleneck; the eccv16 network has none")

    @property
    def out_channels(self) -> int:
        return self.num_classes if self.head == "classification" else 2

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (one halving per pool)."""
        if self.arch == "eccv16":
            return 8  # three stride-2 blocks
        if self.encoder != "none":
            from .semantic import SIZE_MULTIPLE  # the encoder halves five times

            return max(2 ** (len(self.widths) - 1), SIZE_MULTIPLE)
        return 2 ** (len(self.widths) - 1)

    def to_dict(self) -> dict:
        return asdict(self)


class ColorUNet(nn.Module):
    """Y in, per-pixel chroma class logits (or UV) out, at the input's resolution."""

    def __init__(self, config: ColorUNetConfig | None = None):
        super().__init__()
        config = config or ColorUNetConfig()
        self.config = config
        w = config.widths
        self.down = nn.ModuleList([DownConv(1, w[0])] + [DownConv(a, b) for a, b in zip(w[:-1], w[1:])])
        self.up = nn.ModuleList([UpConv(w[i + 1], w[i], w[i]) for i in reversed(range(len(w) - 1))])
        self.out = nn.Conv2d(w[0], config.out_channels, 1)
        self.semantic = SemanticFusion(w[-1]) if config.encoder != "none" else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """
        Args:
            y: (B, 1, H, W) luma in [0, 1]; H and W multiples of ``config.size_multiple``.
        Returns:
            (B, n, H, W) class logits, or (B, 2, H, W) chroma for the regression head.
        """
        m = self.config.size_multiple
        if y.shape[-2] % m or y.shape[-1] % m:
            raise ValueError(f"input height and width must be multiples of {m}, got {tuple(y.shape[-2:])}")
        x = y - 0.5  # centre the input; BN does the rest
        skips = []
        for i, group in enumerate(self.down):
            if i > 0:
                skips.append(x)
                x = max_pool2(x)  # (B, c, h/2, w/2)
            x = group(x)
        if self.semantic is not None:
            x = self.semantic(x, y)  # (B, w[-1], H/2^k, W/2^k), k = len(widths) - 1
        for cell in self.up:
            x = cell(x, skips.pop())
        return self.out(x)


def build_network(config: ColorUNetConfig) -> nn.Module:
    """The network a config describes: a ColorUNet, or Zhang et al.'s eccv16 network."""
    if config.arch == "eccv16":
        from .model_eccv16 import ECCV16Config, ECCV16Net

        net = ECCV16Net(ECCV16Config(num_classes=config.num_classes))
        net.config = config  # callers read size_multiple, head, colour space from here
        return net
    return ColorUNet(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fused_for_inference(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode with each conv + batch norm + ReLU folded into one op.

    Batch norm at inference is a fixed affine map, so it folds into the conv's
    weights and bias; one fused kernel instead of three passes over the feature
    map makes the small network's forward about 10–15% faster on a CPU. Same
    outputs up to float rounding; the original ``net`` (and its state dict) is
    left as it is.
    """
    import copy

    from torch.ao.quantization import fuse_modules

    fused = copy.deepcopy(net).eval()
    if not isinstance(net, ColorUNet):
        return fused  # eccv16: its BN follows the ReLU, nothing to fold
    groups = []
    for name, module in fused.named_modules():
        if isinstance(module, DownConv):
            groups += [[f"{name}.0", f"{name}.1", f"{name}.2"], [f"{name}.3", f"{name}.4", f"{name}.5"]]
    return fuse_modules(fused, groups)
