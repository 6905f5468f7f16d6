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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .atomic import atomic_path
from .checkpoint import CheckpointError, load_latest_checkpoint, save_checkpoint
from .data import CropBatches, chroma_histogram, load_photos, photo_folder, split_paths, validation_batch
from .losses import SOFT_K, SOFT_SIGMA_CELLS, rebalanced_cross_entropy, regression_loss, soft_encode, soft_rebalanced_cross_entropy
from .hardware import pick_device, pick_dtype
from .model import ColorUNet, ColorUNetConfig, count_parameters
from .presets import PRESETS
from .quantize import GRID_SIZE, Quantizer
from .weights import MODEL_FILENAME, save_model

CONFIG_FILENAME = "config.json"
LOG_FILENAME = "log.csv"
#: Options that may change when a run is resumed (the rest would change the run itself).
RESUMABLE_OVERRIDES = ("steps", "epochs", "workers", "device", "checkpoint_every", "keep_checkpoints")
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

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be ≥ 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be ≥ 1, got {self.batch_size}")
        if self.target not in ("hard", "soft"):
            raise ValueError(f"target must be 'hard' or 'soft', got {self.target!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.load_size < self.crop:
            raise ValueError(f"load size ({self.load_size}) must be at least the crop ({self.crop})")


def resolve_configs(preset: str, model_overrides: dict[str, Any], train_overrides: dict[str, Any]) -> tuple[ColorUNetConfig, TrainConfig]:
    """Preset values, then explicit overrides (None means "not given")."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    m = dict(PRESETS[preset]["model"]) | {k: v for k, v in model_overrides.items() if v is not None}
    t = dict(PRESETS[preset]["train"]) | {k: v for k, v in train_overrides.items() if v is not None}
    return ColorUNetConfig(**m), TrainConfig(preset=preset, **t)


def learning_rate(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then a cosine down to lr/10 at the last step."""
    warm = min(cfg.warmup_steps, max(1, total // 10))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class Trainer:
    """One training run in ``out_dir``: new, or resumed from its newest checkpoint."""

    def __init__(self, photos_dir: Path, out_dir: Path, model_config: ColorUNetConfig, cfg: TrainConfig, progress: bool = True):
        self.photos_dir = Path(photos_dir)
        self.out_dir = Path(out_dir)
        self.model_config = model_config
        self.cfg = cfg
        self.progress = progress
        if cfg.crop % model_config.size_multiple:
            raise ValueError(f"crop {cfg.crop} must be a multiple of {model_config.size_multiple} for widths {model_config.widths}")

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr)

    # --- the pieces of a run ---
    def _photos(self):
        paths = photo_folder(self.photos_dir)
        train_paths, val_paths = split_paths(paths, self.photos_dir, self.cfg.val_fraction)
        train = load_photos(train_paths, self.cfg.load_size, progress=self.progress, min_size=self.cfg.crop)
        val = load_photos(val_paths, self.cfg.load_size, progress=self.progress, min_size=self.cfg.crop)
        for why in train.skipped + val.skipped:
            self.log(f"colorunet: {why}")
        if not train.photos:
            raise ValueError(f"{self.photos_dir}: no usable colour photos for training")
        return train, val

    def _data_digest(self, train_paths: list[Path]) -> str:
        rel = "\n".join(p.relative_to(self.photos_dir).as_posix() for p in train_paths)
        return hashlib.sha256(rel.encode()).hexdigest()[:16]

    def run(self, resume: bool = False, resume_overrides: dict[str, Any] | None = None) -> Path:
        """Train to the end and return the path of ``model.safetensors``.

        With ``resume``, the run's own saved configs are used; of
        ``resume_overrides`` (options given again on the command line) only
        RESUMABLE_OVERRIDES apply, e.g. more ``steps`` to extend a finished run.
        """
        out = self.out_dir
        existing = load_latest_checkpoint(out, log=lambda msg: print(msg, file=sys.stderr)) if resume else None
        if not resume and (out / CONFIG_FILENAME).exists():
            raise ValueError(f"{out}: already holds a training run; use --resume to continue it, or another --out")
        if resume and existing is None:
            raise CheckpointError(f"{out}: no checkpoint to resume from (did the run stop before its first one?); start again with another --out")
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
                elif v != saved.get(k):
                    self.log(f"colorunet: --resume keeps the run's {k}={saved.get(k)!r}; ignoring {v!r}")
            self.cfg = TrainConfig(**saved)
            self.log(f"colorunet: resuming from {ckpt_path} (step {state['step']})")
        cfg = self.cfg

        torch.manual_seed(cfg.seed)
        device = pick_device(cfg.device)
        dtype = pick_dtype(cfg.precision, device)
        train, val = self._photos()

        if existing is not None:
            quantizer = Quantizer.from_arrays({k: v.numpy() for k, v in state["quantizer"].items()})
            if state.get("data_digest") != self._data_digest(train.paths):
                self.log("colorunet: warning: the photo folder changed since this run started; batches will differ")
        else:
            quantizer = Quantizer.fit(chroma_histogram(train.photos, GRID_SIZE), self.model_config.num_classes)

        net = ColorUNet(self.model_config)
        steps_per_epoch = math.ceil(len(train.photos) / cfg.batch_size)
        total = cfg.steps if cfg.steps is not None else (cfg.epochs or 1) * steps_per_epoch
        val_every = cfg.val_every or max(steps_per_epoch, 100)

        memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        net = net.to(device=device, memory_format=memory_format)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        start = 0
        if existing is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["optimizer"])
            start = int(state["step"])
            torch.set_rng_state(state["torch_rng"])
        class_weights = torch.from_numpy(quantizer.rebalance_weights(cfg.rebalance_lambda)).float().to(device)
        centers = torch.from_numpy(quantizer.centers).to(device)

        def loss_of(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            if self.model_config.head == "regression":
                return regression_loss(out, batch["uv"])
            if cfg.target == "soft":
                z = soft_encode(batch["uv"], centers, quantizer.grid_size, SOFT_K, SOFT_SIGMA_CELLS)
                return soft_rebalanced_cross_entropy(out, z, class_weights)
            return rebalanced_cross_entropy(out, batch["target"], class_weights)

        autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype != torch.float32 else nullcontext

        def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            moved["y"] = moved["y"].contiguous(memory_format=memory_format)
            return moved

        val_batch = validation_batch(val.photos, quantizer, cfg.crop)

        def validate() -> float | None:
            if val_batch is None:
                return None
            net.eval()
            with torch.no_grad(), autocast():
                b = to_device(val_batch)
                v = float(loss_of(net(b["y"]), b))
            net.train()
            return v

        out.mkdir(parents=True, exist_ok=True)
        data_summary = {
            "photos_dir": str(self.photos_dir),
            "train_photos": len(train.photos),
            "val_photos": len(val.photos),
            "skipped": len(train.skipped) + len(val.skipped),
        }
        resolved = {
            "model_config": self.model_config.to_dict(),
            "train_config": asdict(cfg),
            "data": data_summary,
            "parameters": count_parameters(net),
            "device": str(device),
            "dtype": str(dtype).replace("torch.", ""),
            "total_steps": total,
        }
        _write_json_atomic(out / CONFIG_FILENAME, resolved)
        logger = _CsvLog(out / LOG_FILENAME, start)

        def save(step: int, val_loss: float | None, finished: bool) -> None:
            cpu_net = {k: v.detach().cpu() for k, v in net.state_dict().items()}
            save_checkpoint(
                out,
                step,
                {
                    "step": step,
                    "net": cpu_net,
                    "optimizer": opt.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "model_config": self.model_config.to_dict(),
                    "train_config": asdict(cfg),
                    "quantizer": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in quantizer.to_arrays().items()},
                    "data_digest": self._data_digest(train.paths),
                },
                keep=cfg.keep_checkpoints,
            )
            export = ColorUNet(self.model_config)
            export.load_state_dict(cpu_net)
            save_model(
                out / MODEL_FILENAME,
                export,
                quantizer if self.model_config.head == "classification" else None,
                extra={
                    "train_config": asdict(cfg),
                    "data": data_summary,
                    "step": step,
                    "finished": finished,
                    "val_loss": val_loss,
                    "rebalance_weights": quantizer.rebalance_weights(cfg.rebalance_lambda).tolist(),
                },
            )

        if start >= total:
            self.log(f"colorunet: run already at step {start} of {total}; nothing to do")
            return out / MODEL_FILENAME

        dataset = CropBatches(train.photos, quantizer, cfg.batch_size, cfg.crop, cfg.seed, cfg.augment, num_steps=total)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            sampler=range(start, total),
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if cfg.workers > 0 else None,
        )
        from tqdm import tqdm

        bar = tqdm(total=total, initial=start, desc="training", unit="step", disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        net.train()
        t0 = time.perf_counter()
        window_t, window_n = t0, 0
        val_loss: float | None = None
        step = start
        for step, batch in enumerate(loader, start=start):
            lr = learning_rate(step, total, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            b = to_device(batch)
            with autocast():
                pred = net(b["y"])
            loss = loss_of(pred, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_value = loss.detach().item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at step {step + 1}; try a lower --lr")
            window_n += cfg.batch_size
            done = step + 1
            row: dict[str, Any] = {"step": done, "epoch": f"{done / steps_per_epoch:.3f}", "loss": f"{loss_value:.5f}", "lr": f"{lr:.3g}"}
            if done % val_every == 0 or done == total:
                val_loss = validate()
                row["val_loss"] = "" if val_loss is None else f"{val_loss:.5f}"
            if done % 10 == 0 or done == total:
                now = time.perf_counter()
                ips = window_n / max(now - window_t, 1e-9)
                window_t, window_n = now, 0
                row["images_per_s"] = f"{ips:.1f}"
                bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{val_loss:.3f}" if val_loss is not None else "-", img_s=f"{ips:.0f}")
            row["elapsed_s"] = f"{time.perf_counter() - t0:.3f}"
            logger.write(row)
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == total:
                save(done, val_loss, finished=done == total)
        bar.close()
        logger.close()
        elapsed = time.perf_counter() - t0
        n = (step + 1 - start) * cfg.batch_size
        self.log(f"colorunet: trained {step + 1 - start} steps in {elapsed:.1f} s ({n / max(elapsed, 1e-9):.1f} images/s); model: {out / MODEL_FILENAME}")
        return out / MODEL_FILENAME


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


def _write_json_atomic(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")

