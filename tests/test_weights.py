import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from colorunet.core.model import ColorUNet, ColorUNetConfig
from colorunet.core.quantize import ChromaHistogram, Quantizer
from colorunet.core.weights import ModelError, load_model, save_model


def _quantizer(n=32):
    rng = np.random.default_rng(0)
    return Quantizer.fit(ChromaHistogram.of(rng.normal(0, 0.15, 10000), rng.normal(0, 0.2, 10000)), n)


def test_round_trip_keeps_outputs_config_and_quantizer(tmp_path):
    torch.manual_seed(0)
    net = ColorUNet(ColorUNetConfig(widths=(8, 16, 32), num_classes=20)).eval()
    q = _quantizer(20)
    path = save_model(tmp_path / "m.safetensors", net, q, extra={"note": {"a": 1}})
    m = load_model(path)
    assert m.config == net.config
    np.testing.assert_array_equal(m.quantizer.centers, q.centers)
    assert m.metadata["note"] == {"a": 1}
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(m.net(x), net(x))
    assert not m.net.training


def test_run_folder_and_missing_model(tmp_path, tiny_run):
    assert load_model(tiny_run).name == tiny_run.name
    with pytest.raises(ModelError, match="no model.safetensors"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="no such model"):
        load_model(tmp_path / "nope.safetensors")


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelError, match="not a colorunet model"):
        load_model(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="not a readable"):
        load_model(junk)
    good = save_model(tmp_path / "good.safetensors", ColorUNet(), _quantizer())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(ModelError):
        load_model(truncated)


def test_mismatched_quantizer_is_refused(tmp_path):
    path = save_model(tmp_path / "m.safetensors", ColorUNet(), _quantizer(16))
    with pytest.raises(ModelError, match="does not match"):
        load_model(path)


def test_shipped_default_loads_and_is_checksummed():
    m = load_model("default")
    assert m.config.head == "classification" and m.quantizer.num_classes == m.config.num_classes
    assert "train_config" in m.metadata and json.dumps(m.metadata)  # plain JSON


def test_tampered_shipped_model_is_detected(tmp_path, monkeypatch):
    import colorunet.core.weights as w

    src = w._ASSETS / w._MODELS["default"][0]
    copy = tmp_path / src.name
    data = bytearray(src.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(w, "_ASSETS", tmp_path)
    with pytest.raises(ModelError, match="checksum"):
        load_model("default")


def _rewritten(src, dst, tensors=None, metadata=None):
    """``src``'s model file with some tensors or metadata replaced, as a damaged or hostile file would be."""
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        meta, all_tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    save_file(all_tensors | (tensors or {}), str(dst), metadata=meta | (metadata or {}))
    return dst


@pytest.mark.parametrize(
    "tensor,value,words",
    [
        ("quantizer.space", torch.tensor([7]), "unknown chroma space number 7"),
        ("quantizer.space", torch.tensor([-1]), "unknown chroma space number -1"),  # Python would index from the end
        ("quantizer.kept_cells", "first=500", "cells must be between 0 and 99"),
        ("quantizer.kept_cells", "first=-3", "cells must be between 0 and 99"),
        ("quantizer.grid_size", torch.tensor([100000]), "grid size must be between 1 and 64"),
        ("quantizer.prior", "negative", "prior must be non-negative"),
        ("quantizer.prior", "huge", "prior must be non-negative and sum to 1"),  # each finite, their sum not
        ("quantizer.centers", "huge", "centers lie off the yuv chroma plane"),
        ("quantizer.grid_size", torch.zeros(0, dtype=torch.int64), "grid size: one number expected, got 0"),
        ("quantizer.space", torch.zeros(0, dtype=torch.int64), "chroma space: one number expected, got 0"),
        ("quantizer.space", torch.tensor([1]), "quantizer is on the lab chroma plane, its network yuv"),
        ("quantizer.grid_size", torch.tensor([10.9]), "grid size: whole numbers expected"),
        ("quantizer.kept_cells", "float", "kept cells: whole numbers expected"),
    ],
)
def test_a_damaged_quantizer_is_refused_when_the_model_loads(tmp_path, tensor, value, words):
    good = save_model(tmp_path / "good.safetensors", ColorUNet(), _quantizer())
    original = load_model(good).quantizer.to_arrays()
    if value == "negative":
        value = torch.from_numpy(-original["prior"])
    elif value == "huge":
        key = tensor.split(".")[1]
        value = torch.full(original[key].shape, 1e38, dtype=torch.float64 if key == "prior" else torch.float32)
    elif value == "float":
        value = torch.from_numpy(original["kept_cells"].astype(np.float32))
    elif isinstance(value, str):
        cells = original["kept_cells"].copy()
        cells[0] = int(value.split("=")[1])
        value = torch.from_numpy(cells)
    bad = _rewritten(good, tmp_path / "bad.safetensors", tensors={tensor: value})
    with pytest.raises(ModelError, match=words):
        load_model(bad)


def test_an_onnx_file_where_a_model_file_is_needed_says_so(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x07" * 10)
    with pytest.raises(ModelError, match="an exported ONNX file; this needs the .safetensors model"):
        load_model(onnx)


def test_a_deep_network_in_a_small_file_is_refused_before_it_pads_a_photo(tmp_path):
    """Each level halves the photo and the input is padded to 2^(levels - 1): 16 levels of one channel (a few
    kilobytes of weights) would pad a photo to 32,768 pixels a side."""
    good = save_model(tmp_path / "good.safetensors", ColorUNet(), _quantizer())
    deep = {"widths": [1] * 16, "num_classes": 32, "head": "classification", "arch": "colorunet", "color_space": "yuv",
            "encoder": "none"}
    bad = _rewritten(good, tmp_path / "deep.safetensors", metadata={"model_config": json.dumps(deep)})
    with pytest.raises(ModelError, match="at most 8 levels"):
        load_model(bad)


@pytest.mark.parametrize(
    "change,words",
    [
        ({"metadata": {"model_config": "[" * 20000 + "]" * 20000}}, "damaged colorunet model"),  # Python's JSON recursion
        ({"metadata": {"model_config": json.dumps({"widths": [32, 64, 1e400]})}}, "widths: must be finite"),
        ({"metadata": {"model_config": json.dumps({"widths": [32, 64.5, 128]})}}, "widths: must be a whole number"),
        ({"tensors": {"net.out.weight": "float8"}}, "net.out.weight is float8_e4m3fn; a colorunet model stores"),
        ({"tensors": {"net.out.bias": "huge"}}, r"net.out.bias holds values beyond ±1e\+06"),  # finite, yet black photos
        ({"metadata": {"model_config": json.dumps({"widths": [1, 1], "num_classes": 16384})}}, "num_classes must be"),
    ],
)
def test_odd_metadata_and_tensor_types_are_refused_in_one_line(tmp_path, change, words):
    good = save_model(tmp_path / "good.safetensors", ColorUNet(ColorUNetConfig(widths=(32, 64, 128))), _quantizer())
    tensors = change.get("tensors")
    if tensors == {"net.out.weight": "float8"}:
        tensors = {"net.out.weight": load_model(good).net.state_dict()["out.weight"].to(torch.float8_e4m3fn)}
    elif tensors:
        tensors = {"net.out.bias": torch.full((32,), 3e38)}
    bad = _rewritten(good, tmp_path / "bad.safetensors", tensors=tensors, metadata=change.get("metadata"))
    with pytest.raises(ModelError, match=words):
        load_model(bad)
