import numpy as np
import torch
from conftest import synthetic_photo
from PIL import Image

from colorunet.core.color import is_grayscale
from colorunet.core.splits import split_paths
from colorunet.training.data import CropBatches, chroma_histogram, load_photos
from colorunet.core.quantize import Quantizer


def test_grayscale_detection():
    rng = np.random.default_rng(0)
    colour = synthetic_photo(rng)
    grey = np.repeat(colour.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    assert not is_grayscale(colour)
    assert is_grayscale(grey)
    sepia_noise = np.clip(grey.astype(int) + rng.integers(-1, 2, grey.shape), 0, 255).astype(np.uint8)
    assert is_grayscale(sepia_noise)  # a B/W scan with a little colour noise is still grey


def test_split_is_deterministic_and_stable_when_photos_are_added(tmp_path):
    paths = [tmp_path / f"{i:03d}.jpg" for i in range(200)]
    train, val = split_paths(paths, tmp_path, 0.1)
    assert 10 <= len(val) <= 30 and len(train) + len(val) == 200
    assert split_paths(paths, tmp_path, 0.1) == (train, val)
    more = paths + [tmp_path / f"new{i}.jpg" for i in range(50)]
    train2, val2 = split_paths(more, tmp_path, 0.1)
    assert set(val) <= set(val2) and set(train) <= set(train2)


def test_split_of_a_growing_tiny_folder_never_moves_a_photo_across(tmp_path):
    import hashlib

    names = [f"{c}.png" for c in "abcdefghijkl"]
    sides = {}
    for n in range(1, len(names) + 1):
        paths = [tmp_path / x for x in names[:n]]
        train, val = split_paths(paths, tmp_path, 0.1)
        assert len(train) + len(val) == n
        for p in paths:
            side = p in val
            assert sides.setdefault(p.name, side) == side, f"{p.name} changed sides when photo {n} was added"
    # the rule is the documented hash alone: sha256 of the name without extension, first 8 bytes < fraction
    expected = [x for x in names if int.from_bytes(hashlib.sha256(x[:-4].encode()).digest()[:8], "big") / 2**64 < 0.1]
    assert [x for x in names if sides[x]] == expected


def test_load_photos_skips_grey_and_broken_files(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(synthetic_photo(rng, 50, 80)).save(tmp_path / "colour.png")
    Image.fromarray(synthetic_photo(rng, 50, 80)[..., 0]).save(tmp_path / "grey.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    ps = load_photos(sorted(tmp_path.iterdir()), load_size=40, progress=False)
    assert [p.name for p in ps.paths] == ["colour.png"]
    assert ps.photos[0].shape == (40, 64, 3)  # short side resized to 40, aspect kept
    assert len(ps.skipped) == 2 and any("broken.jpg" in s for s in ps.skipped) and any("grayscale" in s for s in ps.skipped)


def _dataset(seed=0, augment=True):
    rng = np.random.default_rng(2)
    photos = [synthetic_photo(rng, 64, 80) for _ in range(3)]
    q = Quantizer.fit(chroma_histogram(photos, 10), 16)
    return CropBatches(photos, q, batch_size=4, crop=32, seed=seed, augment=augment, num_steps=10), q


def test_batches_are_a_pure_function_of_seed_and_step():
    ds, q = _dataset()
    a, b = ds[3], ds[3]
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert not torch.equal(ds[3]["y"], ds[4]["y"])
    other, _ = _dataset(seed=1)
    assert not torch.equal(ds[3]["y"], other[3]["y"])


def test_batch_shapes_and_targets():
    ds, q = _dataset(augment=False)
    b = ds[0]
    assert b["y"].shape == (4, 1, 32, 32) and b["uv"].shape == (4, 2, 32, 32) and b["target"].shape == (4, 32, 32)
    assert b["target"].dtype == torch.int64
    np.testing.assert_array_equal(b["target"].numpy(), q.encode(b["uv"][:, 0].numpy(), b["uv"][:, 1].numpy()))
    # without augmentation the input is exactly the crop's luma: Y + chroma reconstruct valid RGB
    assert b["y"].min() >= 0 and b["y"].max() <= 1


def test_every_photo_is_seen_once_per_epoch():
    ds, _ = _dataset()
    seen = [ds._photo_of(k) for k in range(6)]
    assert sorted(seen[:3]) == [0, 1, 2] and sorted(seen[3:]) == [0, 1, 2]


def test_small_photos_are_not_blown_up_beyond_the_crop(tmp_path):
    from colorunet.training.data import load_photo

    Image.fromarray(synthetic_photo(np.random.default_rng(3), 30, 40)).save(tmp_path / "small.png")
    assert load_photo(tmp_path / "small.png", load_size=64, min_size=16).shape == (30, 40, 3)  # kept as is
    assert load_photo(tmp_path / "small.png", load_size=64, min_size=32).shape == (32, 43, 3)  # just enough for a crop
    assert load_photo(tmp_path / "small.png", load_size=20).shape == (20, 27, 3)  # larger ones shrink to load_size
