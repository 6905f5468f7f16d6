"""``train --init``: fine-tuning keeps the init model's network, classes and temperature, on a fine-tuning schedule."""

import numpy as np
import pytest
import torch

from colorunet.training.finetune import FINETUNE_LR_SCALE, FINETUNE_WARMUP_STEPS, finetune_configs
from colorunet.training.presets import PRESETS
from colorunet.training.trainer import TrainConfig, Trainer, learning_rate
from colorunet.core.weights import load_model

TINY = {"steps": 3, "batch_size": 2, "crop": 32, "load_size": 64, "checkpoint_every": 3}


def test_configs_come_from_the_init_model_with_a_fine_tuning_schedule():
    shipped = load_model("default")
    mc, cfg = finetune_configs("default", None, {}, {"lr": None})
    assert mc == shipped.config  # its own network, not the paper preset's
    own = shipped.metadata["train_config"]
    assert cfg.preset == own["preset"] and cfg.init == "default"
    assert (cfg.rebalance_lambda, cfg.target, cfg.crop) == (own["rebalance_lambda"], own["target"], own["crop"])
    assert cfg.lr == pytest.approx(TrainConfig.lr * FINETUNE_LR_SCALE) and cfg.warmup_steps == FINETUNE_WARMUP_STEPS
    # what the user gives wins
    mc, cfg = finetune_configs("default", None, {}, {"lr": 1e-3, "crop": 64})
    assert cfg.lr == 1e-3 and cfg.crop == 64
    # a preset names the network to grow into; its own lr, scaled
    mc, cfg = finetune_configs("default", "semantic", {}, {})
    assert mc.encoder == PRESETS["semantic"]["model"]["encoder"] and cfg.preset == "semantic"
    assert cfg.lr == pytest.approx(PRESETS["semantic"]["train"].get("lr", TrainConfig.lr) * FINETUNE_LR_SCALE)
    # a network whose classes cannot hold the init model's is refused before any photo is read
    with pytest.raises(ValueError, match="num_classes is 32, this run's 262"):
        finetune_configs("default", "eccv16", {}, {})
    with pytest.raises(ValueError, match="unknown preset"):
        finetune_configs("default", "nope", {}, {})
    with pytest.raises(ValueError, match="head is 'classification', this run's 'regression'"):
        finetune_configs("default", "paper-regression", {}, {})
    from colorunet.core.weights import ModelError

    with pytest.raises(ModelError, match="an exported ONNX file; this needs the .safetensors model"):
        finetune_configs("model.onnx", None, {}, {})


def test_warm_up_is_short_and_the_peak_is_the_scaled_rate():
    _, cfg = finetune_configs("default", None, {}, {"steps": 1000})
    lrs = [learning_rate(s, 1000, cfg) for s in range(1000)]
    assert lrs[0] == pytest.approx(cfg.lr / FINETUNE_WARMUP_STEPS)
    assert max(lrs) == pytest.approx(cfg.lr) and int(np.argmax(lrs)) == FINETUNE_WARMUP_STEPS - 1
    assert lrs[-1] == pytest.approx(cfg.lr / 10, rel=0.01)


def test_fine_tuned_model_keeps_classes_and_temperature_and_moves_its_weights(photo_dir, tmp_path):
    shipped = load_model("default")
    mc, cfg = finetune_configs("default", None, {}, TINY | {"init_prior": "keep"})
    path = Trainer(photo_dir, tmp_path / "ft", mc, cfg, progress=False).run()
    tuned = load_model(path)
    assert tuned.config == shipped.config
    assert np.array_equal(tuned.quantizer.kept_cells, shipped.quantizer.kept_cells)
    assert np.array_equal(tuned.quantizer.centers, shipped.quantizer.centers)
    assert np.array_equal(tuned.quantizer.prior, shipped.quantizer.prior)
    assert tuned.temperature == shipped.temperature and tuned.metadata["init"] == shipped.metadata["name"]
    a, b = shipped.net.state_dict(), tuned.net.state_dict()
    assert a.keys() == b.keys()
    moved = [k for k in a if a[k].is_floating_point() and not np.allclose(a[k].numpy(), b[k].numpy())]
    assert moved, "three steps of fine-tuning changed no weight"
    # started from the shipped weights, not from random ones: after 3 small steps they are still close
    k = "enc.0.conv1.weight" if "enc.0.conv1.weight" in a else next(k for k in a if k.endswith("weight") and a[k].ndim == 4)
    assert np.abs(a[k].numpy() - b[k].numpy()).max() < 0.05 * np.abs(a[k].numpy()).max()


@pytest.mark.slow
def test_cli_init_default_needs_no_preset(photo_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "mine"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "colorunet",
            "train",
            photo_dir,
            "--out",
            out,
            "--init",
            "default",
            "--time-budget",
            "3",
            "--batch-size",
            "2",
            "--crop",
            "32",
            "--load-size",
            "64",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    tuned = load_model(out)
    assert tuned.config == load_model("default").config
    import json

    saved = json.loads((out / "config.json").read_text())
    peak = TrainConfig.lr * FINETUNE_LR_SCALE
    assert saved["train_config"]["init"] == "default" and saved["train_config"]["lr"] == pytest.approx(peak)
    # on the clock: the first step is the warm-up's first (peak / 50), none exceeds the peak, the run lasts its budget
    import csv

    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) >= 2 and float(rows[-1]["elapsed_s"]) >= 3.0
    assert float(rows[0]["lr"]) == pytest.approx(peak / FINETUNE_WARMUP_STEPS, rel=0.01)
    assert max(float(r["lr"]) for r in rows) <= peak * 1.001


def test_refit_keeps_the_classes_and_follows_the_new_photos(photo_dir, tmp_path):
    shipped = load_model("default")
    mc, cfg = finetune_configs("default", None, {}, TINY | {"init_prior": "refit"})
    tuned = load_model(Trainer(photo_dir, tmp_path / "refit", mc, cfg, progress=False).run())
    assert np.array_equal(tuned.quantizer.kept_cells, shipped.quantizer.kept_cells)
    assert not np.allclose(tuned.quantizer.prior, shipped.quantizer.prior)
    assert tuned.quantizer.prior.min() >= 0.01 * shipped.quantizer.prior.min() * 0.999  # the old prior stays mixed in


def test_refit_decodes_an_archives_cast_colour(tmp_path):
    """Photos of one cast colour: its class now decodes to that colour; classes it never reaches keep theirs."""
    from PIL import Image
    from skimage.color import rgb2yuv

    rng = np.random.default_rng(0)
    cast = np.array([200, 150, 60], np.float64)
    photos = tmp_path / "archive"
    photos.mkdir()
    for i in range(6):
        rgb = np.clip(cast + rng.integers(-2, 3, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(photos / f"p{i}.png")
    shipped = load_model("default").quantizer
    mc, cfg = finetune_configs("default", None, {}, TINY)
    tuned = load_model(Trainer(photos, tmp_path / "run", mc, cfg, progress=False).run()).quantizer
    uv = rgb2yuv(cast[None, None] / 255.0)[0, 0, 1:]  # scikit-image's YUV: the oracle
    k = int(shipped.encode(np.array([uv[0]]), np.array([uv[1]]))[0])
    assert np.linalg.norm(shipped.centers[k] - uv) > 0.005  # the old decode missed the cast
    assert tuned.centers[k] == pytest.approx(uv, abs=1e-3)
    others = np.arange(shipped.num_classes) != k
    np.testing.assert_allclose(tuned.centers[others], shipped.centers[others], atol=1e-6)
    mc, cfg = finetune_configs("default", None, {}, TINY | {"init_prior": "keep"})
    kept = load_model(Trainer(photos, tmp_path / "keep", mc, cfg, progress=False).run()).quantizer
    assert np.array_equal(kept.centers, shipped.centers) and np.array_equal(kept.prior, shipped.prior)


def test_a_grown_head_starts_with_the_init_models_colours_at_every_temperature():
    """Each new class is a copy of its nearest old class's row at a hundredth of its probability: the annealed
    distribution over the old classes, which decoding uses, stays the init model's at T = 1, 0.7 and 0.38."""
    import dataclasses
    import math

    import torch

    from colorunet.core.model import build_network
    from colorunet.core.quantize import Quantizer
    from colorunet.training.trainer import GROWN_CLASS_LOGIT_OFFSET, _grown_head

    shipped = load_model("default")
    old = shipped.quantizer
    new_cells = np.array([67, 32, 68, 77])  # magenta, green, purple, violet: none is a shipped class
    assert not np.isin(new_cells, old.kept_cells).any()
    grown = Quantizer(np.concatenate([old.kept_cells, new_cells]), np.concatenate([old.centers, old.centers[:4]]),
                      np.concatenate([old.prior, np.zeros(4)]), old.grid_size, old.space)
    parent = old.cell_to_class[new_cells]
    copies = np.bincount(parent).max()
    assert copies > 1  # two new cells share a parent: the bound below covers that
    theirs = shipped.net.state_dict()
    net = build_network(dataclasses.replace(shipped.config, num_classes=grown.num_classes)).eval()
    net.load_state_dict({k: v for k, v in theirs.items() if not k.startswith("out.")} | _grown_head(theirs, old, grown))
    n = old.num_classes
    assert torch.equal(net.out.weight[:n], theirs["out.weight"]) and torch.equal(net.out.bias[:n], theirs["out.bias"])
    for j, k in enumerate(parent):
        assert torch.equal(net.out.weight[n + j], net.out.weight[k])
        assert float((net.out.bias[k] - net.out.bias[n + j]).detach()) == pytest.approx(math.log(100))
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z_old, z_new = shipped.net.eval()(y), net(y)
    for t in (1.0, 0.7, 0.38):
        p_old, p_new = (z_old / t).softmax(1), (z_new / t).softmax(1)
        bound = copies * math.exp(-GROWN_CLASS_LOGIT_OFFSET / t)  # a copy holds e^(-offset/T) of its parent's mass
        assert float(p_new[:, n:].sum(1).max()) <= bound * 1.001
        assert float((p_new[:, :n] - p_old).abs().max()) <= bound * 1.001
        # each copy follows its parent everywhere, at e^(-offset/T) of its probability: there, not dead
        ratio = p_new[:, n:] / p_new[:, torch.from_numpy(parent)]
        torch.testing.assert_close(ratio, torch.full_like(ratio, math.exp(-GROWN_CLASS_LOGIT_OFFSET / t)), rtol=1e-3, atol=0)


def test_grow_classes_adds_a_class_for_a_cast_the_model_has_none_for(tmp_path, capsys, photo_dir):
    """A magenta archive (a cell none of the shipped classes is): one new class, decoding to the cast."""
    import json

    from PIL import Image
    from skimage.color import rgb2yuv

    rng = np.random.default_rng(0)
    cast = np.array([200, 60, 200], np.float64)
    photos = tmp_path / "archive"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(np.clip(cast + rng.integers(-2, 3, (64, 64, 3)), 0, 255).astype(np.uint8)).save(photos / f"p{i}.png")
    shipped = load_model("default")
    # without growing, the run says how much of the archive its classes miss, and what to do
    mc, cfg = finetune_configs("default", None, {}, TINY)
    Trainer(photos, tmp_path / "kept", mc, cfg).run()
    said = capsys.readouterr().err
    assert "100.0% of the photos' pixels lie in colour cells outside the classes of default" in said
    assert "--grow-classes" in said
    mc, cfg = finetune_configs("default", None, {}, TINY | {"grow_classes": 0.01})
    run = tmp_path / "run"
    tuned = load_model(Trainer(photos, run, mc, cfg, progress=False).run())
    q, n = tuned.quantizer, shipped.quantizer.num_classes
    uv = rgb2yuv(cast[None, None] / 255.0)[0, 0, 1:]  # scikit-image's YUV: the oracle
    cell = int(q.encode(np.array([uv[0]]), np.array([uv[1]]))[0])
    assert np.array_equal(q.kept_cells[:n], shipped.quantizer.kept_cells) and q.num_classes == n + 1
    assert cell == n and q.centers[n] == pytest.approx(uv, abs=1e-3)
    assert tuned.config.num_classes == n + 1 == json.loads((run / "config.json").read_text())["model_config"]["num_classes"]
    assert tuned.net.out.weight.shape[0] == n + 1
    # the grown model colours a photo like any other
    from colorunet.inference.pipeline import colorize

    out = colorize(np.full((40, 48), 0.5, np.float32), model=tuned, reference=photos / "p0.png")
    assert out.size == (48, 40)
    # a resumed grown run keeps its classes
    Trainer(photos, run, mc, TrainConfig(**{**cfg.__dict__, "steps": 4}), progress=False).run(
        resume=True, resume_overrides={"steps": 4})
    assert load_model(run).quantizer.num_classes == n + 1
    # a preset's network grown from it takes its classes, all of them
    assert finetune_configs(str(run), "wide", {}, {})[0].num_classes == n + 1
    # asked for a share no cell outside reaches, the run says so and keeps the classes
    mc, cfg = finetune_configs("default", None, {}, TINY | {"grow_classes": 0.9})
    capsys.readouterr()
    assert load_model(Trainer(photo_dir, tmp_path / "none", mc, cfg).run()).quantizer.num_classes == n
    assert "no class added" in capsys.readouterr().err


def test_grow_classes_is_refused_where_it_means_nothing(tmp_path):
    from colorunet.core.model import ColorUNet, ColorUNetConfig
    from colorunet.core.weights import save_model

    regression = save_model(tmp_path / "l2.safetensors", ColorUNet(ColorUNetConfig(widths=(8, 16, 32), head="regression")), None)
    with pytest.raises(ValueError, match="regression model has no colour classes to grow"):  # before any photo is read
        finetune_configs(str(regression), None, {}, {"grow_classes": 0.01})
    with pytest.raises(ValueError, match="needs --init"):
        TrainConfig(grow_classes=0.01)
    with pytest.raises(ValueError, match="needs --init"):
        TrainConfig(grow_classes=0.01, init="default", init_prior="keep")
    for bad in (float("nan"), -0.1, 2.0):
        with pytest.raises(ValueError, match="share"):
            TrainConfig(grow_classes=bad, init="default")


@pytest.mark.slow
def test_cli_resumes_a_grown_run(photo_dir, tmp_path):
    import subprocess
    import sys

    def train(*more):
        return subprocess.run([sys.executable, "-m", "colorunet", "train", photo_dir, "--out", tmp_path / "run", "--batch-size",
                               "2", "--crop", "32", "--load-size", "64", "--no-measure-temperature", *map(str, more)],
                              capture_output=True, text=True, timeout=300)

    r = train("--init", "default", "--grow-classes", "0.0001", "--steps", "2")
    assert r.returncode == 0, r.stderr
    grown = load_model(tmp_path / "run").quantizer.num_classes
    assert grown > load_model("default").quantizer.num_classes, r.stderr
    r = train("--resume", "--grow-classes", "0.0001", "--steps", "3")  # the option given again, without --init
    assert r.returncode == 0, r.stderr
    assert load_model(tmp_path / "run").quantizer.num_classes == grown
    r = train("--grow-classes", "nan", "--steps", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--grow-classes" in r.stderr


def test_a_regression_model_fine_tunes(photo_dir, tmp_path):
    from colorunet.training.trainer import resolve_configs

    mc, cfg = resolve_configs("paper-regression", {"widths": (8, 16, 32)}, TINY | {"steps": 2})
    base = Trainer(photo_dir, tmp_path / "l2", mc, cfg, progress=False).run()
    mc, cfg = finetune_configs(str(base), None, {}, TINY | {"steps": 2})
    tuned = load_model(Trainer(photo_dir, tmp_path / "l2-ft", mc, cfg, progress=False).run())
    assert tuned.config.head == "regression" and tuned.metadata["init"] == str(base) and tuned.metadata["step"] == 2


@pytest.mark.parametrize(
    "train_config,words",
    [
        ({"prior_sigma": 1e12}, "--prior-sigma: must be between 0 and 32"),  # would ask for terabytes
        ({"crop": 60000, "load_size": 60000}, "--crop: must be between 8 and 1024"),  # every photo enlarged to it
        ({"crop": "abc"}, "--crop: expected a number"),
        ({"rebalance_lambda": float("nan")}, "--lambda: must be a number"),
        (["not", "a", "table"], "not a table"),
    ],
)
def test_damaged_training_settings_of_the_init_model_are_refused(tmp_path, train_config, words):
    import json

    from colorunet.core.weights import copy_with_metadata

    bad = copy_with_metadata("default", tmp_path / "bad.safetensors", train_config=train_config)
    assert json.dumps(load_model(bad).metadata["train_config"], allow_nan=True)  # the file itself loads
    with pytest.raises(ValueError, match=f"--init {bad}: damaged model .*{words}".replace("(", r"\(").replace("[", r"\[")):
        finetune_configs(str(bad), None, {}, {})


def test_a_network_no_layer_of_the_init_model_fits_is_refused():
    # the shipped model is `wide` (32-64-128): `paper` (16-32-64) would take only a bias and batch-norm counters
    for preset, overrides in (("paper", {}), (None, {"widths": (8, 16, 32)})):
        with pytest.raises(ValueError, match="none of its layers fits this network"):
            finetune_configs("default", preset, overrides, {})
    assert finetune_configs("default", "wide", {}, {})[0].widths == load_model("default").config.widths


def test_a_resumed_fine_tune_needs_neither_its_init_file_nor_a_model_file(photo_dir, tmp_path):
    from colorunet.core.weights import copy_with_metadata

    init = copy_with_metadata("default", tmp_path / "mine.safetensors", temperature=0.55, name="mine")
    mc, cfg = finetune_configs(str(init), None, {}, TINY | {"steps": 4, "checkpoint_every": 2})
    Trainer(photo_dir, tmp_path / "ft", mc, cfg, progress=False).run()
    init.unlink()  # moved, deleted, or named relative to another folder
    resumed = Trainer(photo_dir, tmp_path / "ft", mc, cfg, progress=False).run(resume=True, resume_overrides={"steps": 6})
    m = load_model(resumed)
    assert m.metadata["step"] == 6 and m.metadata["init"] == "mine" and m.temperature == 0.55
    # the model file lost (or a run stopped between its last checkpoint and its model): "nothing to do" writes it
    (tmp_path / "ft" / "model.safetensors").unlink()
    again = Trainer(photo_dir, tmp_path / "ft", mc, cfg, progress=False).run(resume=True, resume_overrides={"steps": 6})
    m2 = load_model(again)
    assert m2.metadata["step"] == 6 and m2.metadata["finished"] is True and m2.metadata["init"] == "mine"
    for k, v in m.net.state_dict().items():
        assert torch.equal(v, m2.net.state_dict()[k]), k


def test_a_checkpoint_without_the_init_models_name_resumes_with_a_warning(photo_dir, tmp_path, capsys):
    """Checkpoints written before they kept the init model's name: a resume reads the init model if it can,
    and goes on without it if it cannot."""
    from colorunet.core.weights import copy_with_metadata
    from colorunet.training.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint

    init = copy_with_metadata("default", tmp_path / "mine.safetensors", name="mine")
    mc, cfg = finetune_configs(str(init), None, {}, TINY | {"steps": 2, "checkpoint_every": 2})
    run = tmp_path / "ft"
    Trainer(photo_dir, run, mc, cfg, progress=False).run()
    state, _ = load_latest_checkpoint(run)
    del state["inherited"]
    save_checkpoint(run, 2, state)  # as the older code wrote it, checksum and all
    init.unlink()
    m = load_model(Trainer(photo_dir, run, mc, cfg).run(resume=True, resume_overrides={"steps": 3}))
    assert m.metadata["step"] == 3 and m.metadata["init"] == str(init)
    assert "warning: the run's --init model cannot be read" in capsys.readouterr().err
    # a checkpoint whose record of it is damaged is refused, not copied into the model file
    state, _ = load_latest_checkpoint(run)
    state["inherited"] = {"init": "mine", "temperature": -1}
    save_checkpoint(run, 3, state)
    with pytest.raises(ValueError, match="its temperature"):
        Trainer(photo_dir, run, mc, cfg, progress=False).run(resume=True, resume_overrides={"steps": 4})
    assert [s for s, _ in list_checkpoints(run)] == [2, 3]
