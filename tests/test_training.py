import csv
import math

import pytest
import torch

from colorunet.training.checkpoint import list_checkpoints, load_latest_checkpoint
from colorunet.training.data import CropBatches, load_photos
from colorunet.training.losses import rebalanced_cross_entropy
from colorunet.training.trainer import Trainer, learning_rate, resolve_configs
from colorunet.core.weights import load_model


def _train(photo_dir, out, resume=False, **overrides):
    settings = {"batch_size": 4, "crop": 32, "load_size": 64, "seed": 0} | overrides
    mc, cfg = resolve_configs("paper", {}, settings)
    return Trainer(photo_dir, out, mc, cfg, progress=False).run(resume=resume, resume_overrides=overrides if resume else None)


def _fixed_batch_loss(photo_dir, run_dir):
    """Loss of the run's model on fixed, un-augmented crops of the training photos."""
    m = load_model(run_dir)
    photos = load_photos(sorted(photo_dir.rglob("*.png")), 64, progress=False).photos
    b = CropBatches(photos, m.quantizer, 8, 32, seed=123, augment=False, num_steps=1)[0]
    w = torch.from_numpy(m.quantizer.rebalance_weights(0.5)).float()
    with torch.no_grad():
        return rebalanced_cross_entropy(m.net(b["y"]), b["target"], w).item()


def test_a_few_dozen_steps_lower_the_loss(photo_dir, tmp_path):
    _train(photo_dir, tmp_path / "short", steps=1, lr=1e-9)
    _train(photo_dir, tmp_path / "long", steps=40)
    before = _fixed_batch_loss(photo_dir, tmp_path / "short")
    after = _fixed_batch_loss(photo_dir, tmp_path / "long")
    assert after < 0.8 * before, (before, after)
    rows = list(csv.DictReader(open(tmp_path / "long" / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(photo_dir, tmp_path):
    full = tmp_path / "full"
    _train(photo_dir, full, steps=12, checkpoint_every=4, keep_checkpoints=5)
    # The same run, "killed" after its step-8 checkpoint: drop what came later, resume.
    cut = tmp_path / "cut"
    _train(photo_dir, cut, steps=12, checkpoint_every=4, keep_checkpoints=5)
    for step, path in list_checkpoints(cut):
        if step > 8:
            path.unlink()
    (cut / "model.safetensors").unlink()
    _train(photo_dir, cut, resume=True)
    a = load_model(full).net.state_dict()
    b = load_model(cut).net.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log was continued, not duplicated
    steps = [int(r["step"]) for r in csv.DictReader(open(cut / "log.csv"))]
    assert steps == list(range(1, 13))


def test_resume_can_extend_a_finished_run(photo_dir, tmp_path):
    out = tmp_path / "run"
    _train(photo_dir, out, steps=3)
    _train(photo_dir, out, resume=True, steps=5)
    state, _ = load_latest_checkpoint(out)
    assert state["step"] == 5 and load_model(out).metadata["step"] == 5


def test_checkpoints_are_complete_and_pruned(photo_dir, tmp_path):
    out = tmp_path / "run"
    _train(photo_dir, out, steps=6, checkpoint_every=2)
    assert [s for s, _ in list_checkpoints(out)] == [4, 6]  # keep the newest two
    assert not list(out.rglob("*.part"))
    state, _ = load_latest_checkpoint(out)
    assert {"net", "optimizer", "step", "model_config", "train_config", "quantizer"} <= set(state)


def test_refuses_to_train_over_an_existing_run(photo_dir, tmp_path):
    _train(photo_dir, tmp_path / "run", steps=1)
    with pytest.raises(ValueError, match="already holds a training run"):
        _train(photo_dir, tmp_path / "run", steps=1)


def test_soft_targets_and_regression_head_train(photo_dir, tmp_path):
    _train(photo_dir, tmp_path / "soft", steps=2, target="soft")
    mc, cfg = resolve_configs("paper-regression", {}, {"steps": 2, "batch_size": 4, "crop": 32, "load_size": 64})
    Trainer(photo_dir, tmp_path / "reg", mc, cfg, progress=False).run()
    assert load_model(tmp_path / "reg").quantizer is None


def test_learning_rate_schedule():
    _, cfg = resolve_configs("paper", {}, {"lr": 1.0, "warmup_steps": 10})
    lrs = [learning_rate(s, 1000, cfg) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1, abs=1e-4)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_time_budget_schedule_and_run(photo_dir, tmp_path):
    _, cfg = resolve_configs("paper", {}, {"lr": 1.0, "warmup_steps": 1000})
    # a slow network: warm-up ends at 10% of the budget although only 3 steps were done
    assert learning_rate(0, 10**9, cfg, spent=0.0) == pytest.approx(1e-3)
    assert learning_rate(3, 10**9, cfg, spent=0.05) == pytest.approx(0.5 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.05))))
    assert learning_rate(3, 10**9, cfg, spent=1.0) == pytest.approx(0.1)
    out = tmp_path / "timed"
    _train(photo_dir, out, time_budget_s=2.0, checkpoint_every=10**6)
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert 2.0 <= float(rows[-1]["elapsed_s"]) < 10 and len(rows) >= 2
    # the schedule runs on the clock: the last step's rate lies between the cosine's value when the step before it
    # ended (the last step started after that) and its end, lr/10 (on an idle machine both are within 5% of lr/10)
    def cosine(spent: float) -> float:
        return 2e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, spent))))

    before_last = float(rows[-2]["elapsed_s"]) / 2.0
    assert 2e-3 * 0.1 * 0.99 <= float(rows[-1]["lr"]) <= cosine(before_last) * 1.01  # the log keeps 3 significant digits
    assert [s for s, _ in list_checkpoints(out)] == [len(rows)]
    with pytest.raises(ValueError, match="time budget cannot be resumed"):
        _train(photo_dir, out, resume=True)
