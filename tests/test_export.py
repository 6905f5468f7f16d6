"""ONNX export: one file that ONNX Runtime runs like PyTorch, with what decoding needs."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from colorunet.core.errors import ColorunetError
from colorunet.apps.export import export_onnx
from colorunet.inference.pipeline import default_sample, get_model


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
    import colorunet.apps.export as ex

    monkeypatch.setattr(ex, "TOLERANCE", 0.0)  # any float difference now counts as a mismatch
    with pytest.raises(ColorunetError, match="differs from PyTorch"):
        export_onnx(tiny_run, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_export_cli(tmp_path):
    out = tmp_path / "default.onnx"
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "export", "--onnx", str(out)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 1_000_000 and "max |ONNX Runtime - PyTorch|" in r.stderr


# --- colorize --backend onnx ---------------------------------------------------------------------------


def test_shipped_onnx_is_the_shipped_model():
    from colorunet.inference.onnx_backend import DEFAULT_ONNX, load_onnx_model

    m = get_model("default")
    o = load_onnx_model("default")
    assert o.path == DEFAULT_ONNX and o.temperature == m.temperature
    np.testing.assert_allclose(o.centers, m.quantizer.centers, atol=1e-6)
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 64, 96)).astype(np.float32)
    with torch.no_grad():
        ref = m.net.eval().float()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(o.session.run(None, {"luma": x})[0], ref, atol=1e-3)


def test_numpy_decode_matches_torch_decode():
    from colorunet.core.decode import confidence_maps, confidence_maps_np, decode_chroma, decode_chroma_np

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 12, 5, 7)).astype(np.float32)
    centers = rng.uniform(-0.4, 0.4, (12, 2)).astype(np.float32)
    for mode, t in (("annealed", 0.38), ("annealed", 1.7), ("mean", 1.0), ("mode", 1.0)):
        ref = decode_chroma(torch.from_numpy(logits), torch.from_numpy(centers), mode, t).numpy()
        np.testing.assert_allclose(decode_chroma_np(logits, centers, mode, t), ref, atol=1e-6)
    p = torch.softmax(torch.from_numpy(logits), 1)
    for a, b in zip(confidence_maps_np(p.numpy()), confidence_maps(p)):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-6)


def _colorize_in_fresh_python(args, env=None):
    """The real CLI in a new interpreter; reports whether torch was imported."""
    code = ("import sys, json; from colorunet.apps.cli import main; rc = main(sys.argv[1:]); "
            "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))")
    r = subprocess.run(
        [sys.executable, "-c", code, "colorize", *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.mark.slow
def test_onnx_backend_cli_runs_without_torch_and_matches_the_torch_backend(tmp_path):
    import os

    from PIL import Image

    rng = np.random.default_rng(2)
    photos = tmp_path / "in"
    photos.mkdir()
    Image.open(default_sample()).save(photos / "camera.png")
    Image.fromarray(rng.integers(0, 255, (37, 53, 4), dtype=np.uint8), "RGBA").save(photos / "odd.png")  # odd size, alpha
    out, stderr = _colorize_in_fresh_python([photos, "--backend", "onnx", "-o", tmp_path / "onnx", "--confidence", "-q"])
    assert out == {"rc": 0, "torch": False}, stderr
    env = os.environ | {"COLORUNET_PRECISION": "fp32"}
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "colorize", str(photos), "-o", str(tmp_path / "torch"), "--confidence", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    for name in ("camera.png", "odd.png", "camera_confidence.png", "camera_confidence_ratio.png"):
        a = np.asarray(Image.open(tmp_path / "onnx" / name)).astype(int)
        b = np.asarray(Image.open(tmp_path / "torch" / name)).astype(int)
        assert a.shape == b.shape, name
        assert np.abs(a - b).max() <= 2 and np.abs(a - b).mean() < 0.05, name  # fp32 both: only float order differs
    odd = np.asarray(Image.open(tmp_path / "onnx" / "odd.png"))
    assert odd.shape == (37, 53, 4) and np.array_equal(odd[..., 3], np.asarray(Image.open(photos / "odd.png"))[..., 3])
    cam = np.asarray(Image.open(tmp_path / "onnx" / "camera.png").convert("RGB")).astype(np.float32) / 255
    assert np.abs(cam[..., 0] - cam[..., 2]).mean() > 0.01  # colour, not grey


@pytest.mark.slow
def test_onnx_backend_errors(tmp_path):
    (tmp_path / "fake.onnx").write_bytes(b"not a model")
    for args, message in (
        (["--backend", "onnx", "--refine"], "need the PyTorch backend"),
        (["--model", tmp_path / "missing.onnx"], "missing.onnx: no such ONNX model file"),
        (["--model", tmp_path / "fake.onnx"], "fake.onnx: not a readable ONNX model"),
    ):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "colorunet",
                "colorize",
                str(default_sample()),
                "-o",
                str(tmp_path / "x.png"),
                *map(str, args),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "x.png").exists()
