"""``colorunet export``: a model as one self-contained ONNX file, checked against PyTorch.

The file holds the network (weights inside; batch, height and width dynamic; input
``luma`` (B, 1, H, W) in [0, 1], H and W multiples of the model's size multiple,
output ``logits`` (B, n, H, W) — or ``uv`` for a regression model) and, in its
metadata, everything needed to decode without colorunet or torch: the model
config, the quantiser's bin chroma and prior, and the model's temperature (JSON
strings under ``colorunet.*`` keys). Needs the ``onnx`` extra.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.errors import ColorunetError
from ..inference.pipeline import get_model
from ..inference.working import pad_to_multiple, read_luma, working_luma

#: Largest |ONNX − PyTorch| accepted on the check inputs (fp32 both sides).
TOLERANCE = 1e-3


@dataclass
class ExportReport:
    path: Path
    max_abs_diff_random: float
    max_abs_diff_photos: float
    size_bytes: int


def export_onnx(model_spec, out: Path, check_photos: list[Path] | None = None, opset: int = 17) -> ExportReport:
    """Export, then run the file with ONNX Runtime next to PyTorch and compare."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise ColorunetError("export needs the 'onnx' extra: pip install 'colorunet[onnx]'") from None
    m = get_model(model_spec)
    net = m.net.eval().float()
    mult = m.config.size_multiple
    out_name = "logits" if m.config.head == "classification" else "uv"
    example = torch.rand(1, 1, 4 * mult, 6 * mult)
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # The legacy (TorchScript) exporter: the network is static, and it gives one plain file.
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(tmp), input_names=["luma"], output_names=[out_name],
                          dynamic_axes={"luma": axes, out_name: axes}, opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        meta = {
            "colorunet.model_config": json.dumps(m.config.to_dict()),
            "colorunet.temperature": json.dumps(m.temperature),
            "colorunet.size_multiple": json.dumps(mult),
        }
        if m.quantizer is not None:
            meta["colorunet.centers_uv"] = json.dumps(m.quantizer.centers.tolist())
            meta["colorunet.prior"] = json.dumps(m.quantizer.prior.tolist())
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

        def diff(x: np.ndarray) -> float:
            with torch.no_grad():
                ref = net(torch.from_numpy(x)).numpy()
            got = session.run(None, {"luma": x})[0]
            return float(np.abs(got - ref).max())

        rng = np.random.default_rng(0)
        d_random = max(
            diff(rng.uniform(0, 1, (b, 1, h * mult, w * mult)).astype(np.float32)) for b, h, w in ((1, 5, 7), (3, 16, 12))
        )
        d_photos = 0.0
        for p in check_photos or []:
            y = working_luma(read_luma(p, m.config.color_space)[0])  # as colorize reads the photo
            d_photos = max(d_photos, diff(pad_to_multiple(y, mult)[None, None]))
        worst = max(d_random, d_photos)
        if worst > TOLERANCE:
            raise ColorunetError(f"{out}: ONNX output differs from PyTorch by {worst:.2g} (> {TOLERANCE}); not written")
    return ExportReport(out, d_random, d_photos, out.stat().st_size)
