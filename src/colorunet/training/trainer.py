"""Training a ColorUNet on a folder of colour photos.

The loop knows the network only through its config and its output; the data
stream is a pure function of (seed, step) (see ``data.CropBatches``) and the
learning rate a pure function of the step, so a checkpoint needs nothing but the
weights, the optimiser state and the step to resume exactly where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..core.atomic import OutputError, write_text_atomic
from ..core.errors import ColorunetError
from ..core.values import check_number, check_temperature
from .checkpoint import CheckpointError, list_checkpoints, load_latest_checkpoint, save_checkpoint
from . import distributed
from .data import MAX_VALIDATION_PHOTOS, CropBatches, chroma_histogram, load_photos, photo_folder, prior_sample, validation_batch
from .losses import (
    SOFT_K,
    SOFT_SIGMA_CELLS,
    rebalanced_cross_entropy,
    regression_loss,
    soft_encode,
    soft_rebalanced_cross_entropy,
)
from ..core.hardware import pick_device, pick_dtype
from ..core.model import ColorUNetConfig, build_network, count_parameters
from .presets import PRESETS
from ..core.splits import split_paths
from ..core.quantize import GRID_SIZE, LAB_GRID_SIZE, Quantizer
from .shards import ShardPhotos, decode_some, is_shard_source, is_url, split_records
from ..core.weights import MODEL_FILENAME, save_model

CONFIG_FILENAME = "config.json"
LOG_FILENAME = "log.csv"
#: Options that may change when a run is resumed (the rest would change the run itself).
RESUMABLE_OVERRIDES = ("steps", "epochs", "workers", "device", "checkpoint_every", "keep_checkpoints", "compile")
LOG_FIELDS = ("step", "epoch", "loss", "val_loss", "lr", "images_per_s", "elapsed_s")


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved in the run folder and the model file.

    Attributes:
        steps: optimiser steps; if None, ``epochs`` passes over the training photos.
        epochs: used when ``steps`` is None (one epoch = one crop of every photo).
        batch_size: crops per step.
        crop: side of the square training crops, a multiple of the network's size multiple.
        load_size: photos are resized so their short side is this before cropping.
        lr: Adam's peak learning rate, reached after ``warmup_steps``, then cosine to lr/10.
        rebalance_lambda: λ of the class rebalancing (1 = no rebalancing).
        target: "hard" one-hot targets (the paper) or "soft" (Zhang et al., 5 nearest bins).
        prior_sigma: σ, in grid cells, of the Gaussian that smooths the colour prior P̂
            before the rebalancing weights are taken from it (Zhang et al. §2.2: 5 ab units,
            half a cell of their grid); 0: not smoothed (ColorUNet).
        augment: the paper's flips and input noise (crops are always random).
        val_fraction: share of photos held out for the validation loss.
        val_every: steps between validation losses (None: once per epoch, at least 100 steps).
        checkpoint_every: steps between checkpoints (plus one at the end).
        keep_checkpoints: newest checkpoints kept on disk.
        precision: "auto" (bf16 where the hardware has it), "bf16" or "fp32".
        channels_last: NHWC memory layout (faster with bf16 on CPUs and GPUs).
        device: "auto" (CUDA if present), "cpu" or "cuda".
        workers: data-loader processes (0: build batches in the training process).
        seed: seeds the data stream and the initial weights.
        prior_photos: the colour prior P̂ is estimated from a seeded sample of at most this
            many training photos (0: all of them).
        compile: run the network through ``torch.compile`` (faster steps on GPUs after a
            minute of compiling; needs a C++ compiler on CPUs).
        init: start from this model's weights ("default", a model file or a run folder)
            instead of random ones, and keep its quantiser's colour classes (see
            ``init_prior`` for their prior and decode chroma). Tensors are taken where
            name and shape match; the others (a semantic encoder's fusion, say) start fresh.
        init_prior: with ``init``, "refit" re-estimates the prior P̂ (and so the rebalancing
            weights) and each class's decode chroma from this run's photos
            (``Quantizer.refit_to``), "keep" keeps the init model's; the classes are the
            init model's either way (docs/finetune.md measures both).
        grow_classes: with ``init`` and "refit", > 0 also adds as new classes the grid
            cells outside the init model's classes that hold at least this share of the
            photos' pixels (``Quantizer.grown``): for an archive whose colours the init
            model's classes miss, such as a magenta cast. The old classes keep their
            head rows; each new one starts as a copy of its nearest old class's row at a
            hundredth of its probability, so the first outputs are the init model's
            (``_grown_head``). 0: the classes are the init model's.
        time_budget_s: stop after this many seconds of training (set-up not counted); the
            learning-rate schedule then runs on the share of the budget spent instead of
            steps. ``colorunet compare`` uses it so that contenders get the same wall-clock
            time. How many steps fit depends on the machine: such a run is not
            reproducible bit for bit, and cannot be resumed.

    ``batch_size`` is per process: under ``torchrun`` with W processes a step
    consumes W × batch_size crops.
    """

    preset: str = "paper"
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 16
    crop: int = 128
    load_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    rebalance_lambda: float = 0.5
    target: Literal["hard", "soft"] = "hard"
    prior_sigma: float = 0.0
    augment: bool = True
    val_fraction: float = 0.1
    val_every: int | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    channels_last: bool = True
    device: str = "auto"
    workers: int = 0
    seed: int = 0
    prior_photos: int = 10_000
    compile: bool = False
    time_budget_s: float | None = None
    init: str | None = None
    init_prior: Literal["keep", "refit"] = "refit"
    grow_classes: float = 0.0

    def __post_init__(self) -> None:
        # Every number is checked here, once, whoever made the config: the command line, a resumed
        # run's checkpoint, or the training settings a fine-tune takes over from its --init model's
        # metadata (which a damaged or hostile file could set to anything).
        n, whole = check_number, dict(integer=True)
        for name, value, low, high in (("--steps", self.steps, 1, MAX_STEPS), ("--epochs", self.epochs, 1, MAX_STEPS),
                                       ("--val-every", self.val_every, 1, None)):
            if value is not None:
                n(value, name, low, high, **whole)
        n(self.batch_size, "--batch-size", 1, MAX_BATCH, **whole)
        n(self.crop, "--crop", MIN_CROP, MAX_CROP, **whole)
        n(self.load_size, "--load-size", MIN_CROP, MAX_LOAD_SIZE, **whole)
        n(self.lr, "--lr", 0, MAX_LR, low_open=True)
        n(self.weight_decay, "weight decay", 0, 1)
        n(self.warmup_steps, "--warmup-steps", 0, MAX_STEPS, **whole)
        n(self.rebalance_lambda, "--lambda", 0, 1, low_open=True)
        n(self.prior_sigma, "--prior-sigma", 0, MAX_PRIOR_SIGMA)
        n(self.val_fraction, "--val-fraction", 0, 1)
        n(self.checkpoint_every, "--checkpoint-every", 1, None, **whole)
        n(self.keep_checkpoints, "--keep-checkpoints", 1, None, **whole)
        n(self.workers, "--workers", 0, MAX_WORKERS, **whole)
        n(self.seed, "--seed", 0, MAX_SEED, **whole)
        n(self.prior_photos, "--prior-photos", 0, None, **whole)
        if self.time_budget_s is not None:
            n(self.time_budget_s, "--time-budget", 0, MAX_TIME_BUDGET_S, low_open=True)
        n(self.grow_classes, "--grow-classes (the share of pixels a new class needs)", 0, 1)
        for name, value, allowed in (("target", self.target, ("hard", "soft")),
                                     ("--precision", self.precision, ("auto", "bf16", "fp32")),
                                     ("--init-prior", self.init_prior, ("keep", "refit"))):
            if value not in allowed:
                raise ValueError(f"{name} must be {' or '.join(allowed)}, got {value!r}")
        if self.load_size < self.crop:
            raise ValueError(f"load size ({self.load_size}) must be at least the crop ({self.crop})")
        if self.grow_classes > 0 and not (self.init and self.init_prior == "refit"):
            raise ValueError("growing classes needs --init (the classes to grow) with --init-prior refit (a new class's "
                             "prior and colour come from the photos)")


#: Bounds of TrainConfig's numbers: far beyond any useful run, they keep a typo or a damaged file from asking for
#: absurd memory or time. Photos smaller than the crop are enlarged to it and kept decoded in memory: at 1,024 a photo
#: takes at least 3 MB. The seed feeds NumPy and PyTorch, which take 32 and 64 bits.
MIN_CROP, MAX_CROP, MAX_LOAD_SIZE = 8, 1024, 8192
MAX_STEPS = 10**9
MAX_BATCH = 65536
MAX_LR = 1.0
MAX_PRIOR_SIGMA = 32.0  # σ in grid cells: the Lab grid has 23 per side
MAX_WORKERS = 1024
MAX_SEED = 2**32 - 1
MAX_TIME_BUDGET_S = 10**8


def resolve_configs(
    preset: str, model_overrides: dict[str, Any], train_overrides: dict[str, Any]
) -> tuple[ColorUNetConfig, TrainConfig]:
    """Preset values, then explicit overrides (None means "not given")."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    m = dict(PRESETS[preset]["model"]) | {k: v for k, v in model_overrides.items() if v is not None}
    t = dict(PRESETS[preset]["train"]) | {k: v for k, v in train_overrides.items() if v is not None}
    return ColorUNetConfig(**m), TrainConfig(preset=preset, **t)


def learning_rate(step: int, total: int, cfg: TrainConfig, spent: float | None = None) -> float:
    """Linear warm-up to ``lr``, then a cosine down to lr/10 at the last step.

    With a time budget, ``spent`` is the share of it used so far: the cosine runs
    over that share, and the warm-up ends after ``warmup_steps`` steps or 10% of
    the budget, whichever comes first (a slow network may do only a hundred steps).
    """
    if spent is not None:
        warm = max((step + 1) / max(1, cfg.warmup_steps), spent / 0.1)
        return cfg.lr * min(1.0, warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, spent))))
    warm = min(cfg.warmup_steps, max(1, total // 10))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


#: A fine-tune says so when this share of its photos' pixels lies outside the init model's classes: 1%. Counted on the
#: training photos of docs/finetune.md's archives, the casts put 1.1% to 4.7% there, the archives as they are less.
OUTSIDE_SHARE_WORTH_SAYING = 0.01


#: A new class's head row starts as a copy of its nearest old class's with this much less probability: log(100),
#: 1% of that class's at T = 1, and e^(-4.6/T) of it at the lower temperatures models decode at (0.14% at 0.7).
GROWN_CLASS_LOGIT_OFFSET = math.log(100.0)


def _grown_head(theirs: dict[str, torch.Tensor], old: Quantizer, grown: Quantizer) -> dict[str, torch.Tensor]:
    """The head's weight and bias for ``grown``'s classes, from a head trained on ``old``'s.

    The old classes keep their rows. Each new class (a cell ``old`` had no class
    for, whose pixels trained as its nearest class, its parent) starts as a copy
    of the parent's row, its bias lowered by ``GROWN_CLASS_LOGIT_OFFSET``: it
    responds where the parent does, at a hundredth of its probability, so the
    first outputs are the init model's at every temperature to within that share.
    The targets then pull the copy up where its colour is (a Net2Net-style
    widening, Chen et al. 2016, that leaves the parent whole rather than splitting
    it: a split is exact only at T = 1, and decoding runs at the model's T).
    """
    n = old.num_classes
    parent = torch.from_numpy(old.cell_to_class[grown.kept_cells[n:]]).long()
    head = {}
    for name in ("out.weight", "out.bias"):
        t = theirs.get(name)
        if t is None or t.shape[0] != n:
            continue
        copies = t[parent] - GROWN_CLASS_LOGIT_OFFSET if name == "out.bias" else t[parent]
        head[name] = torch.cat([t, copies])
    return head


class Trainer:
    """One training run in ``out_dir``: new, or resumed from its newest checkpoint."""

    def __init__(
        self, photos_dir: Path | str, out_dir: Path, model_config: ColorUNetConfig, cfg: TrainConfig, progress: bool = True
    ):
        # A folder of photos, or tar shards: a folder with shards.json, the index itself, or a URL.
        self.photos_dir = photos_dir if is_url(str(photos_dir)) else Path(photos_dir)
        self.out_dir = Path(out_dir)
        self.model_config = model_config
        self.cfg = cfg
        self.progress = progress
        self._inherited: dict[str, Any] | None = None  # what the model keeps of its --init model (_inherited_metadata)
        if cfg.crop % model_config.size_multiple:
            raise ValueError(f"crop {cfg.crop} must be a multiple of {model_config.size_multiple} for widths "
                             f"{model_config.widths}")

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr)

    # --- the pieces of a run ---
    def _data(self, with_validation: bool = True) -> _TrainingData:
        """The training photos, and the validation photos if ``with_validation`` (only rank 0 validates)."""
        cfg = self.cfg
        if is_shard_source(self.photos_dir):
            # Shards: photos are decoded on demand, in the loader workers; only the
            # validation photos and the prior's sample are decoded up front.
            train_rec, val_rec = split_records(self.photos_dir, cfg.val_fraction)
            train = ShardPhotos(train_rec, cfg.load_size, cfg.crop, cfg.seed)
            n_val = min(MAX_VALIDATION_PHOTOS, len(val_rec)) if with_validation else 0
            val_photos = (
                list(decode_some(ShardPhotos(val_rec, cfg.load_size, cfg.crop, cfg.seed), list(range(n_val)))) if n_val else []
            )
            return _TrainingData(
                train, val_photos, train_rec.names, 0,
                lambda: decode_some(train, prior_sample(len(train), cfg.prior_photos, cfg.seed)),
            )
        paths = photo_folder(self.photos_dir)
        train_paths, val_paths = split_paths(paths, self.photos_dir, cfg.val_fraction)
        if not train_paths and val_paths:
            # a folder of one photo that the split holds out: train on it rather than on nothing
            self.log(f"colorunet: {self.photos_dir}: too few photos to hold any out for validation; training on all "
                     f"{len(val_paths)}")
            train_paths, val_paths = val_paths, []
        elif cfg.val_fraction > 0 and not val_paths and with_validation:
            self.log(f"colorunet: none of the {len(paths)} photos falls in the validation split (a hash of each name picks "
                     f"{cfg.val_fraction:.0%} of them, so adding photos never moves one across); training without a validation "
                     "loss")
        train = load_photos(train_paths, cfg.load_size, progress=self.progress, min_size=cfg.crop)
        val = load_photos(val_paths if with_validation else [], cfg.load_size, progress=self.progress, min_size=cfg.crop)
        for why in train.skipped + val.skipped:
            self.log(f"colorunet: {why}")
        if not train.photos:
            raise ValueError(f"{self.photos_dir}: no usable colour photos for training")
        names = [p.relative_to(self.photos_dir).as_posix() for p in train.paths]
        return _TrainingData(
            train.photos, val.photos, names, len(train.skipped) + len(val.skipped),
            lambda: (train.photos[i] for i in prior_sample(len(train.photos), cfg.prior_photos, cfg.seed)),
        )

    @staticmethod
    def _data_digest(names: list[str]) -> str:
        return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]

    def run(self, resume: bool = False, resume_overrides: dict[str, Any] | None = None) -> Path:
        """Train to the end and return the path of ``model.safetensors``.

        With ``resume``, the run's own saved configs are used; of
        ``resume_overrides`` (options given again on the command line) only
        RESUMABLE_OVERRIDES apply, e.g. more ``steps`` to extend a finished run.
        """
        world = distributed.from_environment()
        path = self._run(world, resume, resume_overrides)
        # Only after a run that ended well: were another rank still inside a
        # collective (it failed), leaving the group would wait for it forever.
        distributed.shutdown(world)
        return path

    def _run(self, world: distributed.World, resume: bool, resume_overrides: dict[str, Any] | None) -> Path:
        """The loop, as nanoGPT's train.py reads: set up, then step, validate, log and checkpoint until the end."""
        out = self.out_dir
        existing = self._adopt_run(world, resume, resume_overrides)
        s = self._set_up(world, existing)
        cfg = self.cfg
        logger = _CsvLog(out / LOG_FILENAME, s.start) if world.is_main else None
        if s.start >= s.total:
            self.log(f"colorunet: run already at step {s.start} of {s.total}; nothing to do")
            if world.is_main and not self._model_file_is_at(s.start):
                # a run that stopped between its last checkpoint and its model file (or lost the file): write it now
                self._export(s, s.start, None, finished=True)
                self.log(f"colorunet: wrote {out / MODEL_FILENAME} from the checkpoint of step {s.start}")
            distributed.barrier(world)
            return out / MODEL_FILENAME

        from tqdm import tqdm

        bar = tqdm(total=None if cfg.time_budget_s else s.total, initial=s.start, desc="training", unit="step",
                   disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        s.net.train()
        t0 = time.perf_counter()
        window_t, window_n = t0, 0
        val_loss: float | None = None
        step = s.start
        spent = 0.0 if cfg.time_budget_s else None
        for step, batch in enumerate(self._loader(s), start=s.start):
            lr = learning_rate(step, s.total, cfg, spent)
            loss_value = self._step(s, batch, lr)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at step {step + 1}; try a lower --lr")
            window_n += s.global_batch
            done = step + 1
            if cfg.time_budget_s:
                # one clock for all ranks (rank 0's): the learning rate follows it, and all must stop at the same step
                spent = distributed.rank0_value(world, (time.perf_counter() - t0) / cfg.time_budget_s)
                last = spent >= 1.0 or done == s.total
            else:
                last = done == s.total
            epochs_done = s.samples_at(done) / len(s.data.train)  # by samples: right across world sizes
            row: dict[str, Any] = {"step": done, "epoch": f"{epochs_done:.3f}", "loss": f"{loss_value:.5f}", "lr": f"{lr:.3g}"}
            if done % s.val_every == 0 or last:
                val_loss = self._validate(s)
                row["val_loss"] = "" if val_loss is None else f"{val_loss:.5f}"
            if done % 10 == 0 or last:
                now = time.perf_counter()
                ips = window_n / max(now - window_t, 1e-9)
                window_t, window_n = now, 0
                row["images_per_s"] = f"{ips:.1f}"
                bar.set_postfix(
                    loss=f"{loss_value:.3f}", val=f"{val_loss:.3f}" if val_loss is not None else "-", img_s=f"{ips:.0f}"
                )
            row["elapsed_s"] = f"{time.perf_counter() - t0:.3f}"
            if logger:
                logger.write(row)
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or last:
                self._checkpoint(s, done, val_loss, finished=last)
            if last:
                break
        bar.close()
        if logger:
            logger.close()
        if world.distributed:
            self._check_replicas(world, s.net)
        elapsed = time.perf_counter() - t0
        n = (step + 1 - s.start) * s.global_batch
        self.log(f"colorunet: trained {step + 1 - s.start} steps in {elapsed:.1f} s ({n / max(elapsed, 1e-9):.1f} images/s); "
                 f"model: {out / MODEL_FILENAME}")
        return out / MODEL_FILENAME

    # --- set-up: the run folder, the configs of a resumed run, then the train state ---
    def _adopt_run(self, world: distributed.World, resume: bool, resume_overrides: dict[str, Any] | None):
        """Check the run folder and, with ``resume``, take the run's own configs from its newest checkpoint.

        Returns (checkpoint state, its path), or None for a new run.
        """
        out = self.out_dir
        self.device = distributed.init(world, pick_device(self.cfg.device))
        self.progress = self.progress and world.is_main  # one bar and one log, from rank 0
        if world.is_main:
            _check_run_folder(out)
        existing = load_latest_checkpoint(out, log=lambda msg: print(msg, file=sys.stderr)) if resume else None
        # A run exists once it has a checkpoint or a model. A config.json and log.csv
        # alone are what a run that failed before its first checkpoint leaves: starting
        # afresh replaces them (refusing would leave the folder usable by neither way).
        if not resume and (list_checkpoints(out) or (out / MODEL_FILENAME).exists()):
            raise ValueError(f"{out}: already holds a training run; use --resume to continue it, or another --out")
        if resume and existing is not None and existing[0]["train_config"].get("time_budget_s"):
            raise ValueError(f"{out}: a run with a time budget cannot be resumed (its schedule ran on the clock); start a new "
                             "one")
        if resume and existing is None:
            raise CheckpointError(f"{out}: no checkpoint to resume from (did the run stop before its first one?); "
                                  "start it again without --resume")
        distributed.barrier(world)  # every rank has looked before rank 0 writes config.json
        if existing is not None:
            state, ckpt_path = existing
            # A resumed run is the same run: its own configs win over the command line.
            self.model_config = ColorUNetConfig(**state["model_config"])
            saved = dict(state["train_config"])
            for k, v in (resume_overrides or {}).items():
                if k in RESUMABLE_OVERRIDES:
                    saved[k] = v
                    if k in ("steps", "epochs"):  # one replaces the other
                        saved["epochs" if k == "steps" else "steps"] = None
                    continue
                # a model option (widths, classes, head) is the run's model config's, the others its training config's
                kept = state["model_config"].get(k) if k in state["model_config"] else saved.get(k)
                if _comparable(v) != _comparable(kept):
                    self.log(f"colorunet: --resume keeps the run's {k}={_comparable(kept)!r}; ignoring {_comparable(v)!r}")
            self.cfg = TrainConfig(**saved)
            self.log(f"colorunet: resuming from {ckpt_path} (step {state['step']})")
        return existing

    def _set_up(self, world: distributed.World, existing) -> _TrainState:
        """Data, quantiser, network, optimiser and schedule; from the checkpoint when resuming. Writes config.json."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        device = self.device
        if existing is not None and not world.distributed:
            device = pick_device(cfg.device)  # the resumed run's own (or a newly given) device
        dtype = pick_dtype(cfg.precision, device)
        data = self._data(with_validation=world.is_main)
        digest = self._data_digest(data.names)

        state = existing[0] if existing is not None else None
        quantizer = None
        if state is not None:
            quantizer = Quantizer.from_arrays({k: v.numpy() for k, v in state["quantizer"].items()})
            if cfg.init and state.get("inherited"):  # checked like the init model's own metadata was
                self._inherited = _inheritance(state["inherited"], "the checkpoint's init model")
            if state.get("data_digest") != digest:
                self.log("colorunet: warning: the training photos changed since this run started; batches will differ")
        init_model = None
        if state is None and cfg.init:
            init_model = self._init_model()
            quantizer = init_model.quantizer
            if cfg.init_prior == "refit" and quantizer is not None:  # same classes; weights and decode follow these photos
                # rank 0 estimates it (one streaming pass over a sample), as for a new run; the others receive it
                grid = LAB_GRID_SIZE if quantizer.space == "lab" else GRID_SIZE
                refit = None
                if world.is_main:
                    hist = chroma_histogram(data.prior(), grid, space=quantizer.space)
                    grown = quantizer.grown(hist, cfg.grow_classes) if cfg.grow_classes > 0 else quantizer
                    outside = quantizer.share_outside(hist)
                    if grown.num_classes > quantizer.num_classes:
                        self.log(f"colorunet: {grown.num_classes - quantizer.num_classes} new colour classes for "
                                 f"{outside - grown.share_outside(hist):.1%} of the photos' pixels, in cells {cfg.init} has "
                                 "no class for")
                    elif cfg.grow_classes > 0:
                        self.log(f"colorunet: no colour cell outside the classes of {cfg.init} holds "
                                 f"{cfg.grow_classes:.2%} of the photos' pixels ({outside:.1%} lie outside them in all); "
                                 "no class added")
                    elif outside >= OUTSIDE_SHARE_WORTH_SAYING:
                        self.log(f"colorunet: {outside:.1%} of the photos' pixels lie in colour cells outside the classes "
                                 f"of {cfg.init}; they train and decode as the nearest class (--grow-classes 0.001 gives "
                                 "the commonest cells classes of their own; docs/finetune.md)")
                    refit = grown.refit_to(hist, prior_sigma=cfg.prior_sigma)
                quantizer = distributed.broadcast(world, refit)
            if quantizer is not None and quantizer.num_classes != self.model_config.num_classes:
                self.model_config = replace(self.model_config, num_classes=quantizer.num_classes)
        if state is None and quantizer is None:  # a new run, or a regression model's fine-tune (its file keeps none)
            # Rank 0 estimates the prior (one streaming pass over a sample); the others receive it.
            quantizer = distributed.broadcast(world, self._fit_quantizer(data) if world.is_main else None)

        net = build_network(self.model_config)
        if init_model is not None:
            self._warm_start(net, init_model, quantizer)
        n_train = len(data.train)
        global_batch = cfg.batch_size * world.world_size
        steps_per_epoch = math.ceil(n_train / global_batch)
        if cfg.time_budget_s is not None:
            total = cfg.steps or 10**9  # the clock stops the run; steps (if given) only cap it
        else:
            total = cfg.steps if cfg.steps is not None else (cfg.epochs or 1) * steps_per_epoch

        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        net = net.to(device=device, memory_format=memory_format)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        start = 0
        sample_base = 0
        if state is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["optimizer"])
            start = int(state["step"])
            torch.set_rng_state(state["torch_rng"])
            sample_base = int(state.get("samples", start * cfg.batch_size))
            if int(state.get("world_size", 1)) != world.world_size:
                self.log(f"colorunet: the run had {state.get('world_size', 1)} processes, now {world.world_size}; "
                         f"the data stream continues at sample {sample_base:,} (batch {global_batch} per step from here)")

        model = net
        if world.distributed:
            model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            model = torch.compile(model)
        s = _TrainState(
            world=world, device=device, dtype=dtype, memory_format=memory_format, data=data, digest=digest,
            quantizer=quantizer, net=net, model=model, opt=opt,
            class_weights=torch.from_numpy(quantizer.rebalance_weights(cfg.rebalance_lambda)).float().to(device),
            centers=torch.from_numpy(quantizer.centers).to(device),
            val_batch=validation_batch(data.val, quantizer, cfg.crop),
            start=start, total=total, sample_base=sample_base, global_batch=global_batch,
            val_every=cfg.val_every or max(steps_per_epoch, 100),
            data_summary={
                "photos_dir": str(self.photos_dir),
                "train_photos": n_train,
                "val_photos": len(data.val),
                "skipped": data.skipped,
            },
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if world.is_main:
            _write_json_atomic(self.out_dir / CONFIG_FILENAME, {
                "model_config": self.model_config.to_dict(),
                "train_config": asdict(cfg),
                "data": s.data_summary,
                "parameters": count_parameters(net),
                "device": str(device),
                "dtype": str(dtype).replace("torch.", ""),
                "total_steps": total,
                "world_size": world.world_size,
            })
        return s

    def _loader(self, s: _TrainState) -> torch.utils.data.DataLoader:
        """The batches of steps start..total, each rebuilt from its step number (``data.CropBatches``)."""
        cfg = self.cfg
        dataset = CropBatches(
            s.data.train, s.quantizer, cfg.batch_size, cfg.crop, cfg.seed, cfg.augment, num_steps=s.total,
            rank=s.world.rank, world_size=s.world.world_size, start_step=s.start, sample_base=s.sample_base,
        )
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            sampler=range(s.start, s.total),
            num_workers=cfg.workers,
            pin_memory=s.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if cfg.workers > 0 else None,
        )

    # --- one step, validation, checkpoint ---
    def _autocast(self, s: _TrainState):
        return torch.autocast(s.device.type, dtype=s.dtype) if s.dtype != torch.float32 else nullcontext()

    def _to_device(self, s: _TrainState, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moved = {k: v.to(s.device, non_blocking=True) for k, v in batch.items()}
        moved["y"] = moved["y"].contiguous(memory_format=s.memory_format)
        return moved

    def _loss(self, s: _TrainState, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.model_config.head == "regression":
            return regression_loss(out, batch["uv"])
        if self.cfg.target == "soft":
            q = s.quantizer
            z = soft_encode(batch["uv"], s.centers, q.grid_size, SOFT_K, SOFT_SIGMA_CELLS, space=q.space)
            return soft_rebalanced_cross_entropy(out, z, s.class_weights)
        return rebalanced_cross_entropy(out, batch["target"], s.class_weights)

    def _step(self, s: _TrainState, batch: dict[str, torch.Tensor], lr: float) -> float:
        """One optimiser step at learning rate ``lr``; returns the loss, averaged over the ranks."""
        for g in s.opt.param_groups:
            g["lr"] = lr
        b = self._to_device(s, batch)
        with self._autocast(s):
            pred = s.model(b["y"])
        loss = self._loss(s, pred, b)
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        s.opt.step()
        return distributed.mean(s.world, loss.detach()).item()

    def _validate(self, s: _TrainState) -> float | None:
        """The loss on the fixed validation batch (rank 0's photos), or None without one."""
        if s.val_batch is None:
            return None
        s.net.eval()
        with torch.no_grad(), self._autocast(s):
            b = self._to_device(s, s.val_batch)
            v = float(self._loss(s, s.net(b["y"]), b))
        s.net.train()
        return v

    def _checkpoint(self, s: _TrainState, step: int, val_loss: float | None, finished: bool) -> None:
        """A checkpoint and ``model.safetensors``. Rank 0 writes (the weights are the same on every rank); the others wait."""
        if s.world.is_main:
            self._save(s, step, val_loss, finished)
        distributed.barrier(s.world)

    def _save(self, s: _TrainState, step: int, val_loss: float | None, finished: bool) -> None:
        """A checkpoint, then the model file."""
        cfg, quantizer = self.cfg, s.quantizer
        cpu_net = {k: v.detach().cpu() for k, v in s.net.state_dict().items()}
        save_checkpoint(
            self.out_dir,
            step,
            {
                "step": step,
                "net": cpu_net,
                "optimizer": s.opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "model_config": self.model_config.to_dict(),
                "train_config": asdict(cfg),
                "quantizer": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in quantizer.to_arrays().items()},
                "data_digest": s.digest,
                "samples": s.samples_at(step),
                "world_size": s.world.world_size,
                "rank": s.world.rank,
                "inherited": self._inherited_metadata(),
            },
            keep=cfg.keep_checkpoints,
        )
        self._export(s, step, val_loss, finished, cpu_net)

    def _export(self, s: _TrainState, step: int, val_loss: float | None, finished: bool,
                cpu_net: dict[str, torch.Tensor] | None = None) -> None:
        """``model.safetensors`` from the network's current weights (``cpu_net``: already copied off the device)."""
        cfg, quantizer = self.cfg, s.quantizer
        if cpu_net is None:
            cpu_net = {k: v.detach().cpu() for k, v in s.net.state_dict().items()}
        export = build_network(self.model_config)
        export.load_state_dict(cpu_net)
        save_model(
            self.out_dir / MODEL_FILENAME,
            export,
            quantizer if self.model_config.head == "classification" else None,
            extra={
                "train_config": asdict(cfg),
                "data": s.data_summary,
                "step": step,
                "finished": finished,
                "val_loss": val_loss,
                "rebalance_weights": quantizer.rebalance_weights(cfg.rebalance_lambda).tolist(),
                **self._inherited_metadata(),
            },
        )

    def _init_model(self):
        """The model ``--init`` names, checked to fit this run's network (same classes, colour space, head)."""
        from ..core.weights import load_model

        m = load_model(self.cfg.init)
        self._init_metadata = m.metadata
        mine, theirs = self.model_config, m.config
        for key in ("num_classes", "color_space", "head"):
            if getattr(mine, key) != getattr(theirs, key):
                raise ValueError(f"--init {self.cfg.init}: its {key} is {getattr(theirs, key)!r}, this run's "
                                 f"{getattr(mine, key)!r}")
        if m.quantizer is None and mine.head == "classification":
            raise ValueError(f"--init {self.cfg.init}: has no quantiser")
        if self.cfg.grow_classes > 0 and mine.head != "classification":
            raise ValueError(f"--init {self.cfg.init}: a {mine.head} model has no colour classes to grow")
        return m

    def _inherited_metadata(self) -> dict[str, Any]:
        """What a fine-tuned model keeps of its ``--init`` model: where it came from, and
        the temperature that model was measured best at (same classes, same decode).

        Read from the init model when the run starts and kept in every checkpoint, so a
        resumed run needs neither the init file nor the folder it was named from.
        """
        if not self.cfg.init:
            return {}
        if self._inherited is None:
            meta = getattr(self, "_init_metadata", None)
            if meta is None:  # a checkpoint written before checkpoints kept it: the init model, if still there
                from ..core.weights import load_model

                try:
                    meta = load_model(self.cfg.init).metadata
                except (ColorunetError, OSError, ValueError) as e:
                    self.log(f"colorunet: warning: the run's --init model cannot be read ({e}); the model file will "
                             "keep only its name")
                    meta = {}
            self._inherited = _inheritance({"init": meta.get("name", str(self.cfg.init)),
                                            "temperature": meta.get("temperature")}, f"--init {self.cfg.init}")
        return self._inherited

    def _model_file_is_at(self, step: int) -> bool:
        """Whether ``model.safetensors`` holds the finished weights of ``step`` (its metadata says so)."""
        from ..core.weights import load_model

        try:
            meta = load_model(self.out_dir / MODEL_FILENAME).metadata
        except (ColorunetError, OSError, ValueError):
            return False
        return meta.get("step") == step and meta.get("finished") is True

    def _warm_start(self, net: torch.nn.Module, init_model, quantizer: Quantizer | None) -> None:
        """Copy every tensor of ``init_model`` whose name and shape match ``net``'s, and the
        head's rows when ``quantizer`` grew the init model's classes (``grow_classes``)."""
        theirs = init_model.net.state_dict()
        # weights and statistics only: batch norm's step counters fit any network of the same depth
        mine = {k: v for k, v in net.state_dict().items() if v.is_floating_point()}
        taken = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
        old = init_model.quantizer
        if old is not None and quantizer is not None and quantizer.num_classes > old.num_classes:
            taken |= _grown_head(theirs, old, quantizer)
        check_some_layer_fits(self.cfg.init, {k: v.shape for k, v in taken.items()}, self.model_config, init_model.config)
        net.load_state_dict(taken, strict=False)
        fresh = sorted({k.split(".")[0] for k in mine if k not in taken})
        self.log(f"colorunet: started from {self.cfg.init}: {len(taken)} of {len(mine)} weight tensors"
                 + (f"; new: {', '.join(fresh)}" if fresh else ""))

    def _fit_quantizer(self, data: _TrainingData) -> Quantizer:
        mc = self.model_config
        if mc.color_space == "lab":  # Zhang et al.'s quantiser: every in-gamut ab bin
            q = Quantizer.fit_in_gamut(chroma_histogram(data.prior(), LAB_GRID_SIZE, space="lab"), self.cfg.prior_sigma)
            if mc.head == "classification" and q.num_classes != mc.num_classes:
                raise ValueError(f"a Lab model has {q.num_classes} classes (the in-gamut ab bins); got --classes "
                                 f"{mc.num_classes}")
            return q
        return Quantizer.fit(chroma_histogram(data.prior(), GRID_SIZE), mc.num_classes, self.cfg.prior_sigma)

    def _check_replicas(self, world: distributed.World, net: torch.nn.Module) -> None:
        """DDP keeps the replicas' parameters equal; verify it (a divergence would make rank 0's model a lie).

        Batch-norm running statistics are not compared: each rank updates them
        from its own last batch, and DDP (like the saved model) takes rank 0's.
        """
        digests = distributed.gather_strings(world, weights_digest(dict(net.named_parameters())))
        if len(set(digests)) != 1:
            raise RuntimeError(f"the model's parameters differ between ranks: {digests}")
        self.log(f"colorunet: parameters identical on all {world.world_size} ranks (sha256 {digests[0]})")


def _inheritance(inherited: Any, name: str) -> dict[str, Any]:
    """What a fine-tuned model keeps of its init model (its name, and temperature if it has one), checked:
    it is written into every checkpoint and the model file, whose loader checks the temperature again."""
    if not isinstance(inherited, dict) or not isinstance(inherited.get("init"), str):
        raise ValueError(f"{name}: damaged (its name)")
    kept = {"init": inherited["init"][:500]}
    if inherited.get("temperature") is not None:
        kept["temperature"] = check_temperature(inherited["temperature"], f"{name}: its temperature")
    return kept


def check_some_layer_fits(init: str, fitting: dict[str, Any], mine: ColorUNetConfig, theirs: ColorUNetConfig) -> None:
    """Refuse a fine-tune none of whose convolutions' kernels (``fitting``: the init model's tensors that fit
    this run's network, by name and shape) carries over: a bias or two would leave it training from scratch."""
    if not any(len(shape) >= 2 for shape in fitting.values()):
        raise ValueError(f"--init {init}: none of its layers fits this network (widths {mine.widths}, its "
                         f"{theirs.widths}): that is training from scratch; leave out --init, or the options that "
                         "change the network")


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict: names and float32 values, in name order."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class _TrainingData:
    train: Any  # list of uint8 arrays, or ShardPhotos
    val: list[np.ndarray]
    names: list[str]  # training photos, relative paths (the data digest)
    skipped: int
    prior: Any  # () -> iterable of photos for the colour prior


@dataclass
class _TrainState:
    """What the loop works on, made once by ``Trainer._set_up``: the data, the quantiser, the network
    (``net``; ``model`` is it wrapped for DDP or compiled), the optimiser and the schedule's steps."""

    world: distributed.World
    device: torch.device
    dtype: torch.dtype
    memory_format: torch.memory_format
    data: _TrainingData
    digest: str  # of the training photos' names, saved in checkpoints
    quantizer: Quantizer
    net: torch.nn.Module
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    class_weights: torch.Tensor
    centers: torch.Tensor
    val_batch: dict[str, torch.Tensor] | None
    start: int  # first step of this process's run (the checkpoint's step when resuming)
    total: int
    sample_base: int  # samples of the global stream consumed before ``start``
    global_batch: int
    val_every: int
    data_summary: dict[str, Any]

    def samples_at(self, step: int) -> int:
        """Samples of the global stream consumed after ``step`` steps of this run."""
        return self.sample_base + (step - self.start) * self.global_batch


class _CsvLog:
    """``log.csv`` of the run; on resume, rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path, start_step: int):
        rows: list[dict[str, str]] = []
        if start_step > 0 and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=LOG_FIELDS)
        self.w.writeheader()
        self.w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        self.w.writerow(row)
        if int(row["step"]) % 50 == 0:
            self.f.flush()

    def close(self) -> None:
        self.f.close()


def _comparable(value: Any) -> Any:
    """Option values as a run folder stores them (JSON turns tuples into lists)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _check_run_folder(out: Path) -> None:
    """``out`` must be a folder colorunet can write to (made if missing), checked before any work."""
    import tempfile

    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder; --out names the run's folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise OutputError(f"{out}: cannot write the run's folder ({e.strerror or e})") from None
    # A run replaces its config.json and log.csv (those of a run that failed before its first checkpoint too):
    # only where colorunet wrote them. A folder of the user's own with files of those names is left alone.
    for name, ours in ((CONFIG_FILENAME, _is_run_config), (LOG_FILENAME, _is_run_log)):
        path = out / name
        if path.exists() and not ours(path):
            raise OutputError(f"{out}: holds a {name} that is not a colorunet run's; give --out a new or empty folder")


def _is_run_config(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.loads(f.read(1 << 26))  # a run's is a few kilobytes
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and isinstance(obj.get("model_config"), dict) and isinstance(obj.get("train_config"), dict)


def _is_run_log(path: Path) -> bool:
    """A log.csv a run began: its header, or the start of it (a run killed as it wrote it leaves that, or nothing)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            first = f.readline(4096)
    except (OSError, ValueError):
        return False
    header = ",".join(LOG_FIELDS)
    return first.rstrip("\r\n") == header or not first.endswith("\n") and header.startswith(first)


def _write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")

