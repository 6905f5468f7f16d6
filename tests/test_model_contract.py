"""One contract for every network variant (as timm's tests/test_models.py does for its models):
forward shape, gradients reach every parameter, the inference forward colorize runs equals the
eager one, and the exported ONNX file equals PyTorch."""

import numpy as np
import pytest
import torch

from colorunet.core.model import ColorUNetConfig, build_network
from colorunet.core.quantize import LAB_GRID_SIZE, LAB_NUM_CLASSES, ChromaHistogram, Quantizer

VARIANTS = {
    "paper": ColorUNetConfig(),
    "wide": ColorUNetConfig(widths=(32, 64, 128)),
    "regression": ColorUNetConfig(head="regression"),
    "eccv16": ColorUNetConfig(arch="eccv16", color_space="lab", num_classes=LAB_NUM_CLASSES),
    "semantic": ColorUNetConfig(widths=(32, 64, 128), encoder="efficientnet-lite0"),
}


def _network(name: str) -> torch.nn.Module:
    """The variant with random batch-norm affines and statistics, as a trained network has
    (a fresh one's zero-initialised fusion scale would hide its inputs' gradients)."""
    torch.manual_seed(0)
    net = build_network(VARIANTS[name])
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net


def _input(name: str, batch: int = 2) -> torch.Tensor:
    m = VARIANTS[name].size_multiple
    return torch.rand(batch, 1, 2 * m, 3 * m, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_shape_and_finite(name):
    net = _network(name).eval()
    x = _input(name)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, VARIANTS[name].out_channels, *x.shape[-2:]) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_backward_reaches_every_parameter(name):
    net = _network(name).train()
    net(_input(name)).square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", VARIANTS)
def test_the_inference_forward_equals_the_eager_one(name):
    from colorunet.core.weights import ColorModel

    net = _network(name).eval()
    fast = ColorModel(net, None, dtype=torch.float32).inference_net  # what colorize runs on this CPU, in fp32
    x = _input(name, 1).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = net(x), fast(x).float()
    torch.testing.assert_close(got, want, atol=2e-4 * float(want.abs().max()), rtol=1e-4)


def _quantizer(config: ColorUNetConfig) -> Quantizer | None:
    rng = np.random.default_rng(0)
    if config.head != "classification":
        return None
    if config.color_space == "lab":
        hist = ChromaHistogram.of(rng.normal(0, 20, 20_000), rng.normal(0, 20, 20_000), LAB_GRID_SIZE, "lab")
        return Quantizer.fit_in_gamut(hist)
    return Quantizer.fit(ChromaHistogram.of(rng.normal(0, 0.1, 20_000), rng.normal(0, 0.1, 20_000)), config.num_classes)


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_onnx_equals_pytorch(name, tmp_path):
    from colorunet.apps.export import export_onnx
    from colorunet.inference.pipeline import default_sample
    from colorunet.core.weights import save_model

    net = _network(name).eval()
    path = save_model(tmp_path / "m.safetensors", net, _quantizer(VARIANTS[name]))
    report = export_onnx(str(path), tmp_path / "m.onnx", [default_sample()])
    assert report.max_abs_diff_random < 1e-4 and report.max_abs_diff_photos < 1e-4
