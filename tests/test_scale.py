"""Training at scale: tar shards, the rank-sliced data stream, and torchrun with gloo on the CPU."""

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from colorunet.training.checkpoint import list_checkpoints
from colorunet.training.data import CropBatches, chroma_histogram, load_photo, prior_sample
from colorunet.core.quantize import Quantizer
from colorunet.training.shards import ShardPhotos, decode_some, index_tars, split_records, write_shards
from colorunet.training.trainer import Trainer, resolve_configs, weights_digest
from colorunet.core.weights import load_model

from conftest import learnable_photo


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shards_round_trip_same_photos_same_order(photo_dir, tmp_path):
    a = write_shards(photo_dir, tmp_path / "a", shard_size=3, seed=7, progress=False)
    write_shards(photo_dir, tmp_path / "b", shard_size=3, seed=7, progress=False)
    tars = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert tars == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]  # 8 photos, 3 per shard
    assert [_sha(tmp_path / "a" / t) for t in tars] == [_sha(tmp_path / "b" / t) for t in tars]  # same seed: same bytes
    names = [n for s in a["shards"] for n in s["names"]]
    assert sorted(names) == sorted(p.relative_to(photo_dir).as_posix() for p in photo_dir.rglob("*.png"))
    other = write_shards(photo_dir, tmp_path / "c", shard_size=3, seed=8, progress=False)
    assert [n for s in other["shards"] for n in s["names"]] != names  # the seed shuffles

    # Every record is the original file's bytes: decoding it equals decoding the file.
    train, val = split_records(tmp_path / "a", val_fraction=0.0)
    assert len(val) == 0 and train.names == names
    photos = ShardPhotos(train, load_size=64, min_size=32, seed=0)
    for i, name in enumerate(names):
        assert np.array_equal(photos[i], load_photo(photo_dir / name, 64, 32)), name
    # The tar members are readable by any tar reader (WebDataset's layout: KEY.png + KEY.json).
    with tarfile.open(tmp_path / "a" / tars[0]) as t:
        members = t.getnames()
        assert members[0].endswith(".png") and members[1] == members[0][:-4] + ".json"
        assert json.loads(t.extractfile(members[1]).read())["path"] == names[0]

    # One pass of the stream visits every photo once, shard by shard, and is the same when reopened.
    order = [photos.photo_of(k) for k in range(len(photos))]
    assert sorted(order) == list(range(len(photos)))
    shard_runs = [int(train.shard[i]) for i in order]
    assert sum(1 for x, y in zip(shard_runs, shard_runs[1:]) if x != y) == 2  # 3 shards, read one after another
    again = ShardPhotos(split_records(tmp_path / "b" / "shards.json", 0.0)[0], 64, 32, seed=0)
    assert [again.photo_of(k) for k in range(3 * len(photos))] == [photos.photo_of(k) for k in range(3 * len(photos))]
    assert [photos.photo_of(k) for k in range(len(photos), 2 * len(photos))] != order  # each pass reshuffles


def test_split_of_shards_matches_the_folder_split(photo_dir, tmp_path):
    from colorunet.core.splits import split_paths

    write_shards(photo_dir, tmp_path / "s", shard_size=4, progress=False)
    paths = sorted(photo_dir.rglob("*.png"))
    for fraction in (0.3, 0.5):
        f_train, f_val = split_paths(paths, photo_dir, fraction)
        s_train, s_val = split_records(tmp_path / "s", fraction)
        assert sorted(s_val.names) == sorted(p.relative_to(photo_dir).as_posix() for p in f_val)
        assert len(s_train) + len(s_val) == len(paths)


def test_records_read_from_many_threads_are_the_right_ones(photo_dir, tmp_path):
    # decode_some reads one shard file from several threads: each record must still
    # come back whole (a seek of one thread between another's seek and read used to
    # hand it the wrong bytes, and the photo was taken for a broken one).
    write_shards(photo_dir, tmp_path / "s", shard_size=8, progress=False)
    photos = ShardPhotos(split_records(tmp_path / "s", 0.0)[0], load_size=64, min_size=32, seed=0)
    expected = [photos.decode(i) for i in range(len(photos))]
    which = [i % len(photos) for i in range(400)]
    for got, i in zip(decode_some(photos, which, workers=8), which):
        assert np.array_equal(got, expected[i])


def test_index_of_foreign_webdataset_tars_and_bad_records(tmp_path):
    rng = np.random.default_rng(3)
    tar_path = tmp_path / "foreign-000.tar"
    arrays = [learnable_photo(rng, 48, 64) for _ in range(3)]
    with tarfile.open(tar_path, "w") as t:
        for i, a in enumerate(arrays):
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "PNG")
            for name, data in ((f"k{i}.png", buf.getvalue()), (f"k{i}.cls", b"3")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        broken = b"not an image at all"
        info = tarfile.TarInfo("k9.jpg")
        info.size = len(broken)
        t.addfile(info, io.BytesIO(broken))
    index = index_tars([str(tar_path)], tmp_path / "shards.json")
    assert index["photos"] == 4 and index["shards"][0]["names"] == ["k0.png", "k1.png", "k2.png", "k9.jpg"]
    train, _ = split_records(tmp_path / "shards.json", 0.0)
    photos = ShardPhotos(train, load_size=48, min_size=32, seed=0)
    for i, a in enumerate(arrays):
        assert np.array_equal(photos[i], a)
    # the broken record is replaced by the next photo of its shard (wrapping around), not a crash
    assert np.array_equal(photos[3], arrays[0])


def test_ranks_take_disjoint_slices_of_one_stream():
    photos = [np.full((40, 40, 3), i, np.uint8) for i in range(12)]
    q = Quantizer.fit(chroma_histogram([np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)], 10), 8)
    one = CropBatches(photos, q, batch_size=4, crop=32, seed=5, num_steps=3)
    ranks = [CropBatches(photos, q, batch_size=2, crop=32, seed=5, num_steps=3, rank=r, world_size=2) for r in (0, 1)]
    for step in range(3):  # 12 photos, global batch 4: one pass in 3 steps
        whole = one[step]["y"]
        parts = torch.cat([ranks[0][step]["y"], ranks[1][step]["y"]])
        assert torch.equal(whole, parts)  # the two ranks' batches are the single process's batch, split
    seen = [one._photo_of(k) for k in range(12)]
    assert sorted(seen) == list(range(12))
    # Resuming at step 2 with 3 processes after 8 samples continues at sample 8.
    resumed = CropBatches(
        photos, q, batch_size=1, crop=32, seed=5, num_steps=4, rank=1, world_size=3, start_step=2, sample_base=8
    )
    assert resumed.first_sample(2) == 9 and resumed.first_sample(3) == 12
    assert torch.equal(resumed[2]["y"][0], one.__getitem__(2)["y"][1])


def test_prior_sample():
    assert prior_sample(5, 10, seed=0) == [0, 1, 2, 3, 4]
    assert prior_sample(5, 0, seed=0) == [0, 1, 2, 3, 4]
    s = prior_sample(1000, 50, seed=0)
    assert len(s) == len(set(s)) == 50 and s == prior_sample(1000, 50, seed=0) and s != prior_sample(1000, 50, seed=1)


def _train(data, out, resume=False, **overrides):
    settings = {"batch_size": 4, "crop": 32, "load_size": 64, "seed": 0} | overrides
    mc, cfg = resolve_configs("paper", {}, settings)
    return Trainer(data, out, mc, cfg, progress=False).run(resume=resume, resume_overrides=overrides if resume else None)


def test_training_from_shards_resumes_exactly(photo_dir, tmp_path):
    write_shards(photo_dir, tmp_path / "shards", shard_size=3, progress=False)
    _train(tmp_path / "shards", tmp_path / "full", steps=6, checkpoint_every=3, keep_checkpoints=3, workers=1)
    # The same run "killed" after its step-3 checkpoint, resumed (decoding in this process this time).
    _train(tmp_path / "shards", tmp_path / "cut", steps=6, checkpoint_every=3, keep_checkpoints=3)
    for step, path in list_checkpoints(tmp_path / "cut"):
        if step > 3:
            path.unlink()
    _train(tmp_path / "shards", tmp_path / "cut", resume=True)
    a, b = load_model(tmp_path / "full").net.state_dict(), load_model(tmp_path / "cut").net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())
    assert cfg["data"]["photos_dir"] == str(tmp_path / "shards") and cfg["data"]["train_photos"] + cfg["data"]["val_photos"] == 8


def _torchrun(nproc, *args, env):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "colorunet",
        "train",
        *map(str, args),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="needs gloo")
def test_torchrun_two_processes_on_cpu_then_resume_on_one(photo_dir, tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLORUNET_DEBUG": "1"}
    out = tmp_path / "run"
    common = (
        "--crop",
        "32",
        "--load-size",
        "64",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--keep-checkpoints",
        "5",
        "--device",
        "cpu",
    )
    r = _torchrun(2, photo_dir, "--out", out, "--steps", "4", *common, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    # Both ranks ended with the same parameters, and they are the saved model's.
    m = re.search(r"parameters identical on all 2 ranks \(sha256 ([0-9a-f]{64})\)", r.stderr)
    assert m, r.stderr[-2000:]
    assert weights_digest(dict(load_model(out).net.named_parameters())) == m.group(1)

    # Checkpoints: written once each, by rank 0, recording the world they came from.
    ckpts = list_checkpoints(out)
    assert [s for s, _ in ckpts] == [2, 4]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_000000002.pt", "step_000000002.pt.sha256", "step_000000004.pt", "step_000000004.pt.sha256"]
    state = torch.load(ckpts[-1][1], weights_only=True)
    assert (state["rank"], state["world_size"], state["samples"]) == (0, 2, 4 * 2 * 2)
    assert r.stderr.count("colorunet: trained 4 steps") == 1  # one log, from rank 0

    # Resume the same run in a single process: the step count and the data stream continue.
    r2 = subprocess.run(
        [sys.executable, "-m", "colorunet", "train", str(photo_dir), "--out", str(out), "--resume", "--steps", "6"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "had 2 processes, now 1" in r2.stderr
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    state = torch.load(list_checkpoints(out)[-1][1], weights_only=True)
    assert (state["step"], state["world_size"], state["samples"]) == (6, 1, 16 + 2 * 2)
    assert float(rows[-1]["epoch"]) == pytest.approx(
        20 / json.loads((out / "config.json").read_text())["data"]["train_photos"], abs=1e-3
    )


@pytest.mark.slow
def test_shard_and_index_commands(photo_dir, tmp_path):
    env = os.environ | {"COLORUNET_DEBUG": ""}
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "data", "shard", str(photo_dir), str(tmp_path / "s"), "--shard-size", "5", "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0 and "8 photos in 2 shard(s)" in r.stderr, r.stderr
    tars = sorted(str(p) for p in (tmp_path / "s").glob("*.tar"))
    r = subprocess.run([sys.executable, "-m", "colorunet", "data", "index", *tars, "-o", str(tmp_path / "again.json")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    theirs = json.loads((tmp_path / "again.json").read_text())
    ours = json.loads((tmp_path / "s" / "shards.json").read_text())
    assert [s["names"] for s in theirs["shards"]] == [s["names"] for s in ours["shards"]]  # paths come back from KEY.json
    assert [s["offsets"] for s in theirs["shards"]] == [s["offsets"] for s in ours["shards"]]
    # an index written in another folder, from paths relative to the working directory, still finds the tars
    (tmp_path / "elsewhere").mkdir()
    r = subprocess.run([sys.executable, "-m", "colorunet", "data", "index", *(os.path.relpath(t, tmp_path) for t in tars),
                        "-o", "elsewhere/shards.json"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    moved, _ = split_records(tmp_path / "elsewhere" / "shards.json", 0.0)
    photos = ShardPhotos(moved, 64, 32, seed=0)
    assert len(photos) == 8 and all(photos[i].shape[2] == 3 for i in range(len(photos)))
    # errors: short, named, no traceback
    r = subprocess.run([sys.executable, "-m", "colorunet", "data", "shard", str(tmp_path / "missing"), str(tmp_path / "o")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "missing: not a folder of photos" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "colorunet", "train", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "not a colorunet shard index" in r.stderr and "Traceback" not in r.stderr


def test_short_side_shards_hold_shrunk_jpegs(photo_dir, tmp_path):
    index = write_shards(photo_dir, tmp_path / "s", shard_size=8, short_side=48, progress=False)
    train, _ = split_records(tmp_path / "s", 0.0)
    photos = ShardPhotos(train, load_size=48, min_size=32, seed=0)
    with tarfile.open(tmp_path / "s" / "shard-000000.tar") as t:
        assert all(n.endswith((".jpg", ".json")) for n in t.getnames())
    for i, name in enumerate(index["shards"][0]["names"]):
        a = photos[i]
        b = load_photo(photo_dir / name, 48, 32)  # 96×128 → 48×64 from the original file
        assert a.shape == b.shape == (48, 64, 3)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # only JPEG's loss apart


def test_shards_read_through_an_fsspec_url(photo_dir, tmp_path):
    pytest.importorskip("fsspec")
    write_shards(photo_dir, tmp_path / "s", shard_size=5, progress=False)
    local, _ = split_records(tmp_path / "s", 0.0)
    remote, _ = split_records(f"file://{tmp_path / 's'}", 0.0)
    assert remote.urls[0].startswith("file://") and remote.names == local.names
    a, b = ShardPhotos(local, 64, 32, 0), ShardPhotos(remote, 64, 32, 0)
    assert all(np.array_equal(a[i], b[i]) for i in range(len(a)))


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="needs gloo")
def test_torchrun_on_shards_with_a_time_budget(photo_dir, tmp_path):
    """Two processes reading shards in loader workers, stopped by the clock: the learning rate
    follows the clock, so the ranks must agree on it (they would drift apart otherwise)."""
    write_shards(photo_dir, tmp_path / "shards", shard_size=3, progress=False)
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLORUNET_DEBUG": "1"}
    out = tmp_path / "run"
    r = _torchrun(
        2,
        tmp_path / "shards",
        "--out",
        out,
        "--time-budget",
        "2",
        "--workers",
        "1",
        "--crop",
        "32",
        "--load-size",
        "64",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"parameters identical on all 2 ranks \(sha256 ([0-9a-f]{64})\)", r.stderr)
    assert m and weights_digest(dict(load_model(out).net.named_parameters())) == m.group(1)
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert float(rows[-1]["elapsed_s"]) >= 2.0 and len(rows) > 3
    assert [s for s, _ in list_checkpoints(out)] == [len(rows)]
