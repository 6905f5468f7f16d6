"""Zhang, Isola & Efros's ECCV 2016 colorization network, as a baseline to measure against.

The architecture of "Colorful Image Colorization" (arXiv 1603.08511, Fig. 2): eight
VGG-style blocks of 3×3 convolutions with batch norm, strides instead of pooling
in blocks 1–3, no stride and dilation 2 in blocks 5–6, a 4×4 transposed
convolution in block 8, and a 1×1 convolution to 313 ab classes at a quarter of
the input resolution; about 32.2M parameters against ColorUNet's 0.13M. Here it
takes the same input as ColorUNet (luma in [0, 1]) and its logits are upsampled
bilinearly to the input size, so it drops into the same pipeline and benchmarks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Zhang et al.'s in-gamut ab bins on a grid of 10.
ECCV16_CLASSES = 313


def _block(c_in: int, c_out: int, n: int, stride_last: int = 1, dilation: int = 1, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride=stride, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
        ]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


@dataclass
class ECCV16Config:
    num_classes: int = ECCV16_CLASSES

    @property
    def size_multiple(self) -> int:
        return 8

    def to_dict(self) -> dict:
        return asdict(self)


class ECCV16Net(nn.Module):
    """Luma (B, 1, H, W) in, (B, n, H, W) logits out (computed at H/4 × W/4, then upsampled)."""

    def __init__(self, config: ECCV16Config | None = None):
        super().__init__()
        self.config = config or ECCV16Config()
        self.blocks = nn.Sequential(
            _block(1, 64, 2, stride_last=2),  # conv1: H/2
            _block(64, 128, 2, stride_last=2),  # conv2: H/4
            _block(128, 256, 3, stride_last=2),  # conv3: H/8
            _block(256, 512, 3),  # conv4
            _block(512, 512, 3, dilation=2),  # conv5 (à trous)
            _block(512, 512, 3, dilation=2),  # conv6 (à trous)
            _block(512, 512, 3),  # conv7
            nn.Sequential(  # conv8: back to H/4
                nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            ),
        )
        self.out = nn.Conv2d(256, self.config.num_classes, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = y - 0.5  # as Zhang et al.'s (L − 50) / 100
        logits = self.out(self.blocks(x))  # (B, n, H/4, W/4)
        return F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=False)
