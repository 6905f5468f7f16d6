"""The fast inference paths give the network's own outputs, and the allocator setting does what it says."""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from colorunet.core.cpu_inference import OneDNNConv, onednn_available, onednn_inference_net
from colorunet.core.model import ColorUNet, ColorUNetConfig, fused_for_inference, max_pool2
from colorunet.core.model_eccv16 import ECCV16Net

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN fused convolutions")


def trained_looking(net: torch.nn.Module) -> torch.nn.Module:
    """Batch norm statistics away from their initial identity, so that folding them is really tested."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (3, 1, 24, 40)])
def test_max_pool2_equals_max_pool2d_and_keeps_its_gradient(shape):
    x = torch.randn(*shape[:1], 5, *shape[2:])
    with torch.no_grad():
        assert torch.equal(max_pool2(x), F.max_pool2d(x, 2))
        cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(max_pool2(cl), F.max_pool2d(x, 2))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    max_pool2(a).sum().backward()
    F.max_pool2d(b, 2).sum().backward()
    assert torch.equal(a.grad, b.grad)  # with autograd it is max_pool2d itself
    assert a.grad.sum() == a.numel() / 4  # one winner per 2×2 window


def test_fused_batch_norm_matches_the_network_in_fp32():
    torch.manual_seed(0)
    net = trained_looking(ColorUNet(ColorUNetConfig(widths=(8, 16, 32), num_classes=12)))
    x = torch.rand(2, 1, 32, 48)
    with torch.inference_mode():
        assert torch.allclose(fused_for_inference(net)(x), net(x), atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("arch", ["colorunet", "eccv16"])
def test_onednn_net_is_bit_identical_to_the_autocast_path_in_bf16(arch):
    torch.manual_seed(0)
    net = trained_looking(ColorUNet(ColorUNetConfig()) if arch == "colorunet" else ECCV16Net())
    fast = onednn_inference_net(net, torch.bfloat16)
    assert any(isinstance(m, OneDNNConv) and m.attr == "relu" for m in fast.modules())
    assert not any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.ReLU)) for m in fast.modules())
    plain = fused_for_inference(net).to(memory_format=torch.channels_last)
    for shape in [(1, 1, 64, 96), (2, 1, 40, 32)]:
        x = torch.rand(*shape).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            a, b = plain(x), fast(x)
        assert b.dtype == torch.bfloat16 and b.shape == a.shape
        assert torch.equal(a, b)


@needs_onednn
def test_onednn_net_in_fp32_matches_the_original_network():
    torch.manual_seed(0)
    net = trained_looking(ColorUNet(ColorUNetConfig(widths=(8, 16, 32), num_classes=12)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = onednn_inference_net(net, torch.float32)
    x = torch.rand(2, 1, 32, 48)
    with torch.inference_mode():
        assert torch.allclose(fast(x.contiguous(memory_format=torch.channels_last)), net(x), atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the original is untouched
    assert net.training is False and isinstance(net.down[0][0], torch.nn.Conv2d)


def _faults_of_forwards(env: dict) -> dict:
    """Minor page faults of ten forwards of a small fp32 network after five warm-ups, in a fresh process."""
    code = """
import json, resource
from colorunet.apps.allocator import reuse_freed_memory
applied = reuse_freed_memory()
import torch
from colorunet.core.model import ColorUNet, ColorUNetConfig
net = ColorUNet(ColorUNetConfig(widths=(16, 32), num_classes=8)).eval()
x = torch.rand(1, 1, 256, 256)
with torch.inference_mode():
    for _ in range(5):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        net(x)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_memory_is_reused_without_page_faults():
    system = _faults_of_forwards({"COLORUNET_MALLOC": "system"})
    assert system["applied"] is False
    if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
        pytest.skip("not glibc")
    kept = _faults_of_forwards({"COLORUNET_MALLOC": ""})
    assert kept["applied"] is True
    # Each forward frees and re-allocates feature maps of 1-4 MB (hundreds of pages
    # each): glibc as it comes maps them anew (40,000-90,000 faults over ten forwards
    # here); kept for reuse, they are faulted in during the warm-up, bar the odd
    # block where the heap still grows (0-1,100 faults here).
    assert system["faults"] > 10_000
    assert kept["faults"] < 5_000 and kept["faults"] < system["faults"] / 10


def test_colorize_falls_back_when_the_onednn_ops_fail(monkeypatch):
    from colorunet.core import cpu_inference
    from colorunet.inference.pipeline import colorize, default_sample
    from colorunet.core.weights import load_model

    def broken(self, x):
        raise RuntimeError("no kernel for this CPU")

    import numpy as np

    expected = np.asarray(colorize(default_sample(), load_model("default")))
    monkeypatch.setattr(cpu_inference.OneDNNConv, "forward", broken)
    model = load_model("default")  # a fresh ColorModel: inference_net is made on first use
    assert not any(isinstance(m, OneDNNConv) for m in model.inference_net.modules())
    got = np.asarray(colorize(default_sample(), model))
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # the same network, by the autocast path
