"""Colorize with ONNX Runtime, without PyTorch: ``colorunet colorize --backend onnx``.

Runs a file written by ``colorunet export`` (the shipped model comes as
``assets/default.onnx`` too). ``OnnxModel`` is a backend (``backend.Backend``):
everything around the network is the one pipeline (``pipeline``) — reading the
luma and the working size, the annealed mean, the recombination with the
full-resolution luma — so the two backends differ only by the network's
arithmetic. ONNX Runtime runs in fp32 here; the PyTorch backend uses
bf16 where the CPU has it, which is why the two results differ by a few 8-bit
levels at most. Importing this module does not import torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.decode import DEFAULT_TEMPERATURE
from ..core.errors import ColorunetError
from ..core.images import pad_to_multiple
from ..core.quantize import CHROMA_RANGE
from ..core.values import ValueRangeError, check_number, check_temperature
from .working import DEFAULT_WORKING_SIZE, Colorization, ImageLike

#: The shipped model, exported (kept equal to assets/default.safetensors by the tests).
DEFAULT_ONNX = Path(__file__).parents[1] / "assets" / "default.onnx"


@dataclass
class OnnxModel:
    """An ONNX Runtime session and what its metadata says about decoding."""

    path: Path
    session: object
    head: str
    size_multiple: int
    temperature: float
    centers: np.ndarray | None  # (n, 2) chroma of each class; None for a regression model
    color_space: str = "yuv"
    prior: np.ndarray | None = None  # (n,) P̂ of each class, for --reference; None in files exported without it

    @property
    def name(self) -> str:
        return self.path.name

    def scores(self, small: np.ndarray) -> np.ndarray:
        """(1, C, h, w) network output for an (h, w) working-size luma (edge-padded to the size multiple)."""
        h, w = small.shape
        x = pad_to_multiple(small, self.size_multiple)[None, None]
        out = self.session.run(None, {"luma": x})[0]
        return np.asarray(out[..., :h, :w], dtype=np.float32)


@lru_cache(maxsize=4)
def load_onnx_model(spec: str = "default") -> OnnxModel:
    """'default' (the shipped model) or a ``.onnx`` file from ``colorunet export``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ColorunetError("--backend onnx needs ONNX Runtime: pip install 'colorunet[onnx]'") from None
    path = DEFAULT_ONNX if spec in ("default", "", None) else Path(spec)
    if not path.is_file():
        raise ColorunetError(f"{path}: no such ONNX model file (write one with 'colorunet export --onnx FILE')")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for any unreadable file
        raise ColorunetError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0][:200]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if "colorunet.model_config" not in meta:
        raise ColorunetError(f"{path}: not a colorunet model (no colorunet metadata; export it with 'colorunet export')")
    return OnnxModel(path, session, *_check_metadata(path, session, meta))


def _check_metadata(path: Path, session, meta: dict[str, str]) -> tuple:
    """(head, size_multiple, temperature, centres, colour space) from an ONNX model's colorunet metadata,
    each checked against what decoding needs and against the network's own input and output."""

    def bad(what: str) -> ColorunetError:
        return ColorunetError(f"{path}: damaged colorunet metadata: {what}")

    def field(key: str, default=None):
        if key not in meta:
            return default
        try:
            return json.loads(meta[key])
        except (json.JSONDecodeError, RecursionError):
            raise bad(f"{key} is not valid JSON") from None

    config = field("colorunet.model_config")
    if not isinstance(config, dict):
        raise bad("colorunet.model_config is not an object")
    head, space = config.get("head", "classification"), config.get("color_space", "yuv")
    if head not in ("classification", "regression") or space not in ("yuv", "lab"):
        raise bad(f"head {head!r} / colour space {space!r}")
    try:
        multiple = check_number(field("colorunet.size_multiple"), "colorunet.size_multiple", 1, 1024, integer=True)
        if multiple & (multiple - 1):  # the network halves the photo: a power of two
            raise ValueRangeError(f"colorunet.size_multiple: must be a power of two, got {multiple}")
        temperature = field("colorunet.temperature")
        temperature = DEFAULT_TEMPERATURE if temperature is None else check_temperature(temperature, "colorunet.temperature")
    except ValueRangeError as e:
        raise bad(str(e)) from None
    centers = None
    if head == "classification":
        try:
            centers = np.asarray(field("colorunet.centers_uv"), dtype=np.float32)
        except (TypeError, ValueError):
            raise bad("colorunet.centers_uv is not a list of (u, v) pairs") from None
        if centers.ndim != 2 or centers.shape[1] != 2 or len(centers) < 2 or not np.isfinite(centers).all():
            raise bad("colorunet.centers_uv must list the (u, v) of each class, as finite numbers")
        if (np.abs(centers) > np.array(CHROMA_RANGE[space]) * 1.01).any():  # as Quantizer checks a model file's
            raise bad(f"colorunet.centers_uv lie off the {space} chroma plane")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != ["luma"] or len(outputs) != 1 or len(outputs[0].shape) != 4:
        raise bad("the network must take one input 'luma' and give one (batch, channels, height, width) output")
    channels = outputs[0].shape[1]
    want = 2 if centers is None else len(centers)
    if isinstance(channels, int) and channels != want:
        raise bad(f"the network gives {channels} channels, its metadata needs {want}")
    prior = None
    if centers is not None and "colorunet.prior" in meta:
        try:
            prior = np.asarray(field("colorunet.prior"), dtype=np.float64)
        except (TypeError, ValueError):
            raise bad("colorunet.prior is not a list of numbers") from None
        with np.errstate(over="ignore"):  # a sum that overflows is refused below, without a warning first
            total = prior.sum() if prior.ndim == 1 else np.nan
        if prior.shape != (len(centers),) or not np.isfinite(prior).all() or (prior < 0).any() or not 0 < total < np.inf:
            raise bad("colorunet.prior must give each class a finite share ≥ 0")
        prior = prior / prior.sum()
    return head, int(multiple), float(temperature), centers, space, prior


def colorize_full(
    image: ImageLike,
    model: OnnxModel | str = "default",
    temperature: float | None = None,
    mode: str = "annealed",
    working_size: int = DEFAULT_WORKING_SIZE,
    confidence: bool = False,
    reference=None,
    reference_strength: float | None = None,
    bias: np.ndarray | None = None,
) -> Colorization:
    """``pipeline.colorize_full`` with an ONNX model (or the name or file of one)."""
    from .pipeline import colorize_full

    m = model if isinstance(model, OnnxModel) else load_onnx_model(str(model))
    return colorize_full(image, m, temperature, mode, working_size, confidence=confidence, reference=reference,
                         reference_strength=reference_strength, bias=bias)
