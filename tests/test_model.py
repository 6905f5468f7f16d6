import pytest
import torch

from colorunet.core.model import ColorUNet, ColorUNetConfig, count_parameters


def test_paper_preset_parameter_count():
    # ~130k–140k in the paper; 130,400 with 32 classes and bias-free convs before BN.
    assert count_parameters(ColorUNet()) == 130_400


def test_structure_two_pools_two_skips():
    net = ColorUNet()
    assert len(net.down) == 3 and len(net.up) == 2
    assert [m.up.out_channels for m in net.up] == [32, 16]


@pytest.mark.parametrize("widths", [(16, 32, 64), (8, 16), (8, 16, 32, 64)])
def test_forward_shape_and_finite(widths):
    torch.manual_seed(0)
    cfg = ColorUNetConfig(widths=widths, num_classes=12)
    net = ColorUNet(cfg)
    m = cfg.size_multiple
    x = torch.rand(2, 1, 3 * m, 5 * m)
    out = net(x)
    assert out.shape == (2, 12, 3 * m, 5 * m)
    assert torch.isfinite(out).all()


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = ColorUNet()
    out = net(torch.rand(2, 1, 32, 32))
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_regression_head_outputs_uv():
    net = ColorUNet(ColorUNetConfig(head="regression"))
    assert net(torch.rand(1, 1, 8, 8)).shape == (1, 2, 8, 8)


def test_bad_sizes_and_configs_are_refused():
    with pytest.raises(ValueError, match="multiples of 4"):
        ColorUNet()(torch.rand(1, 1, 10, 8))
    with pytest.raises(ValueError):
        ColorUNetConfig(widths=(16,))
    with pytest.raises(ValueError):
        ColorUNetConfig(head="gan")
