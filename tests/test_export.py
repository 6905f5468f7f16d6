"""ONNX export: one file that ONNX Runtime runs like PyTorch, with what decoding needs."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from colorunet.errors import ColorunetError
from colorunet.export import export_onnx
from colorunet.pipeline import default_sample, get_model


def test_export_matches_pytorch_and_carries_the_decoder(tmp_path, tiny_run):
    r = export_onnx(tiny_run, tmp_path / "m.onnx", [default_sample()])
    assert r.max_abs_diff_random < 1e-3 and r.max_abs_diff_photos < 1e-3
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(r.path)).metadata_props}
    m = get_model(str(tiny_run))
    np.testing.assert_allclose(meta["colorunet.centers_uv"], m.quantizer.centers, atol=1e-6)
    assert meta["colorunet.model_config"]["widths"] == [16, 32, 64] and meta["colorunet.temperature"] == 0.38
    # dynamic batch, height and width
    s = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(0, 1, (2, 1, 20, 28)).astype(np.float32)
    with torch.no_grad():
        ref = m.net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(s.run(None, {"luma": x})[0], ref, atol=1e-4)


def test_a_mismatch_is_refused_and_nothing_written(tmp_path, tiny_run, monkeypatch):
    import colorunet.export as ex

    monkeypatch.setattr(ex, "TOLERANCE", 0.0)  # any float difference now counts as a mismatch
    with pytest.raises(ColorunetError, match="differs from PyTorch"):
        export_onnx(tiny_run, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_export_cli(tmp_path):
    out = tmp_path / "default.onnx"
    r = subprocess.run([sys.executable, "-m", "colorunet", "export", "--onnx", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 1_000_000 and "max |ONNX Runtime - PyTorch|" in r.stderr
