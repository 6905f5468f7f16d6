"""Fine-tuning: adapt a trained model to your own photos, on a CPU, in minutes.

An archivist often has some colour photos of the same place, era or film stock
as the black-and-white ones. ``colorunet train PHOTOS --out RUN --init default``
starts from the shipped model instead of random weights:

- the network is the init model's own (widths, classes, head, encoder), unless
  ``--preset`` names another one (``semantic`` on top of ``default``, say: the
  layers the init model lacks start fresh);
- its colour classes (the grid cells the head was trained on) are kept, so the
  network's outputs keep their meaning; what the classes weigh and decode to
  follows the new photos (``--init-prior refit``, ``Quantizer.refit_to``): the
  prior P̂, and so the rebalancing weights, better than keeping it on the
  fine-tunes' validation photos of two archives; and each class's decode
  chroma, the mean of the new photos' pixels in its cell, which an archive with
  a cast fills towards one side (docs/finetune.md). ``--init-prior keep`` keeps
  both. Its temperature is measured again on the run's own validation photos
  at the end (``evaluation/temperature.py``: a fine-tune's distributions are no
  longer the init model's), and kept only where there are none;
- its training choices that shape the loss (λ, hard or soft targets, crop) are
  kept, unless given on the command line;
- the schedule suits a short run: 50 warm-up steps (or 10% of a
  ``--time-budget``), then the preset's cosine, at twice the preset's peak
  learning rate. Lower rates, down to an eighth, were measured and each reached
  a higher validation loss on average over two archives in the same 2 minutes
  (docs/finetune.md): 2 minutes is short, and the warm-up keeps the first steps
  gentle. A lower rate keeps more of the shipped model's look on other photos
  (higher PSNR there) and fits the archive less; ``--lr`` gives it.

Options given on the command line win over all of this.
"""

from __future__ import annotations

from typing import Any

from ..core.model import ColorUNetConfig
from .presets import PRESETS

#: Peak learning rate of a fine-tune, as a multiple of the preset's. Chosen by the mean
#: validation loss of 2-minute fine-tunes on two archives (docs/finetune.md: 0.125 to 4 compared;
#: below 1 was worse, and 2 beat 1 by a margin smaller than the spread over seeds).
FINETUNE_LR_SCALE = 2.0
#: Warm-up steps of a fine-tune (or 10% of a --time-budget, whichever ends first).
FINETUNE_WARMUP_STEPS = 50
#: Training options an init model's own run decided and a fine-tune keeps unless told otherwise.
KEPT_FROM_INIT = ("rebalance_lambda", "target", "prior_sigma", "crop", "load_size")


def finetune_configs(init: str, preset: str | None, model_overrides: dict[str, Any], train_overrides: dict[str, Any]):
    """(ColorUNetConfig, TrainConfig) of a run started from ``init`` (``train --init``).

    ``preset`` None: the init model's own network and training choices; a preset
    name: that preset's network, grown from the init model's weights where they fit.
    ``None`` values in the overrides mean "not given".
    """
    import torch

    from .trainer import TrainConfig, check_some_layer_fits
    from ..core.model import build_network
    from ..core.weights import load_model

    init_model = load_model(init)  # an exported ONNX file is refused there, with what to give instead
    own = init_model.metadata.get("train_config") or {}
    if not isinstance(own, dict):
        raise ValueError(f"--init {init}: damaged model (its training settings are not a table)")
    try:  # what a fine-tune takes over, checked like any setting before it is used (a file can hold anything)
        TrainConfig(**{k: own[k] for k in KEPT_FROM_INIT if k in own})
    except ValueError as e:
        raise ValueError(f"--init {init}: damaged model (its training settings: {e})") from None
    own_preset = own.get("preset") if isinstance(own.get("preset"), str) and own["preset"] in PRESETS else "paper"
    base = preset or own_preset
    if base not in PRESETS:
        raise ValueError(f"unknown preset {base!r}; choose one of {', '.join(PRESETS)}")
    model = dict(PRESETS[base]["model"]) if preset else init_model.config.to_dict()
    same_kind = all(model.get(k, getattr(ColorUNetConfig, k)) == getattr(init_model.config, k) for k in ("color_space", "head"))
    if preset and same_kind:
        model["num_classes"] = init_model.config.num_classes  # its classes, however many (a fine-tune may have grown them)
    model |= {k: v for k, v in model_overrides.items() if v is not None}
    train = dict(PRESETS[base]["train"])
    if preset is None:
        train |= {k: own[k] for k in KEPT_FROM_INIT if k in own}
    train["lr"] = train.get("lr", TrainConfig.lr) * FINETUNE_LR_SCALE
    train["warmup_steps"] = FINETUNE_WARMUP_STEPS
    train |= {k: v for k, v in train_overrides.items() if v is not None}
    train["init"] = init
    model_config = ColorUNetConfig(**model)
    for key in ("num_classes", "color_space", "head"):  # before any photo is read (the trainer checks again)
        if getattr(model_config, key) != getattr(init_model.config, key):
            raise ValueError(
                f"--init {init}: its {key} is {getattr(init_model.config, key)!r}, this run's {getattr(model_config, key)!r}"
            )
    with torch.device("meta"):  # shapes only, nothing allocated: is there anything to start from?
        mine = {k: v.shape for k, v in build_network(model_config).state_dict().items() if v.is_floating_point()}
    theirs = init_model.net.state_dict()
    check_some_layer_fits(init, {k: v.shape for k, v in theirs.items() if mine.get(k) == v.shape}, model_config,
                          init_model.config)
    train_config = TrainConfig(preset=base, **train)
    if train_config.grow_classes > 0 and model_config.head != "classification":  # the trainer checks again
        raise ValueError(f"--init {init}: a {model_config.head} model has no colour classes to grow")
    return model_config, train_config
