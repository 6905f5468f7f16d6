"""Model files: one ``.safetensors`` holding the weights, the quantiser and the configs.

Loading never runs code (safetensors, not pickle), and a model file is
self-contained: the network's config and the training config are JSON in the
file's metadata, the quantiser's arrays are tensors beside the weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path
from .checksum import sha256_of
from .decode import DEFAULT_TEMPERATURE
from .hardware import inference_dtype
from .images import pad_to_multiple
from .errors import ColorunetError
from .model import ColorUNetConfig, build_network, count_parameters, fused_for_inference
from .quantize import Quantizer
from .values import ValueRangeError, check_temperature

FORMAT_NAME = "colorunet"
FORMAT_VERSION = "1"
#: File name of the final weights inside a run directory.
MODEL_FILENAME = "model.safetensors"

_ASSETS = Path(__file__).parents[1] / "assets"
#: Models shipped inside the package: name -> (file, SHA-256). See assets/MODEL_CARD.md.
_MODELS = {
    "default": ("default.safetensors", "10be6183be9c785af75b86f25b0db0eb4cbcdd8c9a6d62d521dfa7a6bc10c2e3"),
}


class ModelError(ColorunetError):
    """A model file that is missing, corrupt or not a colorunet model."""


@dataclass
class ColorModel:
    """A network with the quantiser it was trained with, ready for inference."""

    net: torch.nn.Module  # a ColorUNet, or an ECCV16Net (the baseline)
    quantizer: Quantizer | None
    name: str = "model"
    metadata: dict[str, Any] = field(default_factory=dict)
    #: autocast type for inference (bf16 where the hardware is fast at it; see hardware.py)
    dtype: torch.dtype = torch.float32

    @property
    def config(self) -> ColorUNetConfig:
        return self.net.config

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.net)

    @cached_property
    def inference_net(self) -> torch.nn.Module:
        """What colorize runs: ``net`` with conv + BN + ReLU fused, channels_last; on a CPU,
        each conv (+ ReLU) one oneDNN primitive with weights already in ``dtype``
        (``cpu_inference``). Made once, on first use: a ColorModel is for inference,
        not for training."""
        if next(self.net.parameters()).device.type == "cpu":
            from .cpu_inference import cpu_inference_net

            return cpu_inference_net(self.net, self.dtype)
        return fused_for_inference(self.net).to(memory_format=torch.channels_last)

    # --- the backend interface (``inference.backend.Backend``): what the pipeline needs of a model ---
    @property
    def head(self) -> str:
        return self.config.head

    @property
    def color_space(self) -> str:
        return self.config.color_space

    @property
    def centers(self) -> np.ndarray | None:
        """(n, 2) chroma of each class; None for a regression model."""
        return None if self.quantizer is None or self.config.head != "classification" else self.quantizer.centers

    @property
    def prior(self) -> np.ndarray | None:
        """(n,) P̂ of each class, the share of training pixels in it (``--reference`` re-weights against it)."""
        return None if self.quantizer is None or self.config.head != "classification" else self.quantizer.prior

    def scores(self, small: np.ndarray) -> np.ndarray:
        """Network output for a working-size luma image.

        Args:
            small: (h, w) float32 luma in [0, 1] (``inference.working.working_luma``).
        Returns:
            (1, C, h, w) float32: class logits (C = n) or chroma (C = 2, regression head).
        """
        h, w = small.shape
        x = torch.from_numpy(pad_to_multiple(small, self.config.size_multiple))[None, None]  # (1, 1, h', w')
        device = next(self.net.parameters()).device
        # channels_last: the layout oneDNN's and cuDNN's fastest convolutions use
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.inference_net(x).float()
        return out[..., :h, :w].cpu().numpy()

    @property
    def temperature(self) -> float:
        """The annealed-mean temperature this model was measured best at (its file's
        "temperature" metadata), else Zhang et al.'s 0.38. A less trained model often
        does better nearer 1, so the choice belongs to each model."""
        t = self.metadata.get("temperature")
        return float(t) if isinstance(t, (int, float)) and t > 0 else DEFAULT_TEMPERATURE


def save_model(
    path: str | os.PathLike,
    net: torch.nn.Module,
    quantizer: Quantizer | None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a model file atomically. ``extra`` values are stored as JSON metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if quantizer is not None:
        tensors.update({f"quantizer.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in quantizer.to_arrays().items()})
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "model_config": json.dumps(net.config.to_dict())}
    for k, v in (extra or {}).items():
        metadata[k] = json.dumps(v)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def copy_with_metadata(src: str | os.PathLike, dst: str | os.PathLike, **extra: Any) -> Path:
    """Write ``src``'s model to ``dst`` with extra (or replaced) metadata, e.g. a measured temperature."""
    m = load_model(src)
    meta = dict(m.metadata) | extra
    return save_model(dst, m.net, m.quantizer, extra=meta)


def resolve_model_path(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """Model file for "default", a ``.safetensors`` path, or a run directory; plus its expected SHA-256."""
    if str(spec) in _MODELS:
        filename, sha = _MODELS[str(spec)]
        return _ASSETS / filename, sha
    path = Path(spec)
    if path.is_dir():
        candidate = path / MODEL_FILENAME
        if not candidate.exists():
            raise ModelError(
                f"{path}: no {MODEL_FILENAME} in this folder (is training finished? "
                f"known model names: {', '.join(_MODELS)})"
            )
        return candidate, None
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder (known model names: {', '.join(_MODELS)})")
    return path, None


#: The floating-point types a model file's tensors may have (they are copied into float32 parameters).
STORED_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: The largest magnitude a network's number may have. Trained ones stay far below (the shipped model's largest is 374,
#: the semantic candidate's 820); a finite 3e38 overflows the network's arithmetic and colours the photo black.
MAX_ABS_WEIGHT = 1e6


def check_tensors(
    path: Path, config: ColorUNetConfig, state: dict[str, torch.Tensor], quantizer: dict[str, torch.Tensor]
) -> None:
    """A model file's tensors against what its metadata describes, before anything is allocated.

    The network the config describes is built on PyTorch's "meta" device (shapes,
    no memory), and every parameter's shape is compared with the file's tensor:
    the metadata of a 1 kB file could otherwise ask for widths of 4096 and
    gigabytes of weights before loading fails. Every floating-point tensor must
    be finite: NaN weights or quantiser centres would colour every photo black.
    """
    with torch.device("meta"):
        try:
            expected = {k: tuple(v.shape) for k, v in build_network(config).state_dict().items()}
        except (TypeError, ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: damaged colorunet model ({str(e).splitlines()[0]})") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        which = f"no tensor net.{missing[0]}" if missing else f"unexpected tensor net.{unexpected[0]}"
        raise ModelError(f"{path}: its tensors do not match the network its metadata describes ({which})")
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise ModelError(f"{path}: tensor net.{k} has shape {tuple(state[k].shape)}, but the metadata's network needs "
                             f"{shape}")
    for prefix, tensors in (("net.", state), ("quantizer.", quantizer)):
        for k, t in tensors.items():
            if t.is_floating_point() and t.dtype not in STORED_FLOAT_TYPES:  # float8: nothing computes with it here
                raise ModelError(f"{path}: tensor {prefix}{k} is {str(t.dtype).removeprefix('torch.')}; a colorunet model "
                                 "stores float16, bfloat16, float32 or float64")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ModelError(f"{path}: tensor {prefix}{k} holds NaN or infinite values (a damaged or tampered model)")
            if prefix == "net." and t.is_floating_point() and t.numel() and float(t.abs().max()) > MAX_ABS_WEIGHT:
                raise ModelError(f"{path}: tensor {prefix}{k} holds values beyond ±{MAX_ABS_WEIGHT:g} (a damaged or "
                                 "tampered model)")


def load_model(spec: str | os.PathLike = "default", device: str | torch.device = "cpu") -> ColorModel:
    """Load a model by name ("default"), file or run directory, in eval mode.

    Raises:
        ModelError: missing, corrupt, tampered (shipped models are SHA-256 checked)
            or not a colorunet model file.
    """
    from safetensors import SafetensorError, safe_open

    if str(spec).lower().endswith(".onnx"):  # whether or not it exists: it could not be used here
        raise ModelError(f"{spec}: an exported ONNX file; this needs the .safetensors model or run folder it was "
                         "exported from (ONNX files run with `colorunet colorize --backend onnx`, or in Python with "
                         "colorunet.inference.onnx_backend)")
    path, expected_sha = resolve_model_path(spec)
    if expected_sha is not None:
        if not path.exists():
            raise ModelError(f"{path}: the shipped model file is missing from the installation")
        if sha256_of(path) != expected_sha:
            raise ModelError(f"{path}: checksum mismatch, the shipped model file is damaged; reinstall colorunet")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable safetensors model file ({e})") from None
    if meta.get("format") != FORMAT_NAME:
        raise ModelError(f"{path}: a safetensors file, but not a colorunet model (no colorunet metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: model format version {meta.get('format_version')!r}; this colorunet reads {FORMAT_VERSION!r}")
    try:
        config = ColorUNetConfig(**json.loads(meta["model_config"]))
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as e:  # JSON nested 10,000 deep too
        raise ModelError(f"{path}: damaged colorunet model ({str(e).splitlines()[0]})") from None
    state = {k[len("net.") :]: v for k, v in tensors.items() if k.startswith("net.")}
    q = {k[len("quantizer.") :]: v for k, v in tensors.items() if k.startswith("quantizer.")}
    check_tensors(path, config, state, q)  # before the network is built: its metadata could ask for gigabytes
    try:
        net = build_network(config)
        net.load_state_dict(state)
        quantizer = Quantizer.from_arrays({k: v.numpy() for k, v in q.items()}) if q else None
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: damaged colorunet model ({str(e).splitlines()[0]})") from None
    if config.head == "classification" and (quantizer is None or quantizer.num_classes != config.num_classes):
        raise ModelError(f"{path}: the model's quantizer does not match its {config.num_classes} output classes")
    if quantizer is not None and quantizer.space != config.color_space:
        raise ModelError(f"{path}: the model's quantizer is on the {quantizer.space} chroma plane, its network "
                         f"{config.color_space}")
    extra = {}
    for k, v in meta.items():
        if k not in ("format", "format_version", "model_config"):
            try:
                extra[k] = json.loads(v)
            except (json.JSONDecodeError, RecursionError):
                extra[k] = v
    if extra.get("temperature") is not None:
        try:
            check_temperature(extra["temperature"], "the temperature in its metadata")
        except ValueRangeError as e:
            raise ModelError(f"{path}: {e}") from None
    name = str(spec) if str(spec) in _MODELS else path.stem if path.name != MODEL_FILENAME else path.parent.name
    device = torch.device(device)
    return ColorModel(net.to(device).eval(), quantizer, name=name, metadata=extra, dtype=inference_dtype(device))
