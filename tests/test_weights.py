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
