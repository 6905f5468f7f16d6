import math

import pytest
import torch

from colorunet.core.decode import annealed_distribution, confidence_maps, decode_chroma

CENTERS = torch.tensor([[0.1, 0.0], [-0.1, 0.2]])


def _log_probs(p):
    return torch.log(torch.tensor(p, dtype=torch.float32)).view(1, -1, 1, 1)


def test_annealed_mean_hand_computed():
    # p = (0.75, 0.25), T = 0.5: p² = (0.5625, 0.0625) -> (0.9, 0.1);
    # chroma = 0.9·(0.1, 0) + 0.1·(−0.1, 0.2) = (0.08, 0.02).
    uv = decode_chroma(_log_probs([0.75, 0.25]), CENTERS, "annealed", 0.5)
    assert uv.shape == (1, 2, 1, 1)
    assert uv.flatten().tolist() == pytest.approx([0.08, 0.02], abs=1e-6)


def test_mean_and_mode():
    lp = _log_probs([0.75, 0.25])
    assert decode_chroma(lp, CENTERS, "mean").flatten().tolist() == pytest.approx([0.05, 0.05], abs=1e-6)
    assert decode_chroma(lp, CENTERS, "annealed", 1.0).flatten().tolist() == pytest.approx([0.05, 0.05], abs=1e-6)
    assert decode_chroma(lp, CENTERS, "mode").flatten().tolist() == pytest.approx([0.1, 0.0])
    # T -> 0 tends to the mode
    assert decode_chroma(lp, CENTERS, "annealed", 0.01).flatten().tolist() == pytest.approx([0.1, 0.0], abs=1e-6)


def test_logits_and_log_probs_decode_alike():
    logits = torch.randn(2, 5, 3, 4)
    centers = torch.randn(5, 2)
    a = decode_chroma(logits, centers, "annealed", 0.38)
    b = decode_chroma(torch.log_softmax(logits, 1), centers, "annealed", 0.38)
    torch.testing.assert_close(a, b)


def test_lower_temperature_is_more_vivid():
    # A vivid class and grey: the annealed mean is q(T)·c with q(T) = p^(1/T) / (p^(1/T) + (1-p)^(1/T)),
    # which falls as T rises whenever p > 1/2; by hand for p = 0.7 and T = 0.5: 0.49 / 0.58.
    centers = torch.tensor([[0.2, -0.1], [0.0, 0.0]])
    lp = _log_probs([0.7, 0.3])
    sat = [decode_chroma(lp, centers, "annealed", t).norm().item() for t in (0.2, 0.5, 1.0, 3.0)]
    assert sat == sorted(sat, reverse=True)
    assert sat[1] == pytest.approx(0.49 / 0.58 * math.hypot(0.2, 0.1), rel=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_annealing_sharpens_every_distribution(seed):
    # whatever the logits, a lower T never raises the entropy of the annealed distribution
    logits = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2
    entropies = []
    for t in (0.1, 0.38, 1.0, 3.0):
        p = annealed_distribution(logits, t)
        entropies.append(-(p * p.clamp_min(1e-30).log()).sum(1))
    for lower, higher in zip(entropies, entropies[1:]):
        assert (lower <= higher + 1e-5).all()


def test_annealed_distribution_sums_to_one():
    p = annealed_distribution(torch.randn(2, 7, 5, 5), 0.38)
    torch.testing.assert_close(p.sum(1), torch.ones(2, 5, 5))


def test_confidence_maps_hand_computed():
    top, margin = confidence_maps(torch.tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1))
    assert top.item() == pytest.approx(0.6)
    assert margin.item() == pytest.approx(0.5)  # 1 − 0.3/0.6


@pytest.mark.parametrize("mode,t", [("median", 1.0), ("annealed", 0.0), ("annealed", -1.0), ("annealed", math.nan)])
def test_bad_options_are_refused(mode, t):
    with pytest.raises(ValueError):
        decode_chroma(torch.zeros(1, 2, 1, 1), CENTERS, mode, t)
