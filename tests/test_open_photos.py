"""The open-photo pool builder, on small files made here (no network)."""

import csv
import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from colorunet.datasets import open_photos
from colorunet.datasets.open_photos import Source, embedded_jpegs, encode_photo, gather
from colorunet.datasets.photo_filters import DuplicateIndex, perceptual_hash, photo_problem, top_color_share
from colorunet.datasets.rcc import RccError, iter_rcc

from conftest import learnable_photo, synthetic_photo


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def build_rcc(files: dict[str, bytes], compress: set[str] = frozenset()) -> bytes:
    """A version-2 Qt resource file holding ``files`` (paths with '/'), written by hand."""
    names, data = bytearray(), bytearray()
    name_offsets: dict[str, int] = {}

    def name_offset(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_offsets[name]

    tree: dict = {}
    for path in files:
        node = tree
        parts = path.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = path
    nodes: list[bytes] = []

    def add(children: dict, slot: int, name: str) -> None:
        # breadth-first layout: a folder's children are consecutive
        keys = sorted(children)
        first = len(nodes)
        nodes.extend([b""] * len(keys))
        nodes[slot] = struct.pack(">IHII", name_offset(name), 2, len(keys), first) + bytes(8)
        for i, k in enumerate(keys):
            v = children[k]
            if isinstance(v, dict):
                add(v, first + i, k)
            else:
                payload = files[v]
                flags = 0
                if v in compress:
                    payload, flags = struct.pack(">I", len(payload)) + zlib.compress(payload), 1
                offset = len(data)
                data.extend(struct.pack(">I", len(payload)) + payload)
                nodes[first + i] = struct.pack(">IHHHI", name_offset(k), flags, 0, 0, offset) + bytes(8)

    nodes.append(b"")
    add(tree, 0, "")
    header = 24
    tree_bytes = b"".join(nodes)
    tree_off, data_off = header, header + len(tree_bytes)
    names_off = data_off + len(data)
    return b"qres" + struct.pack(">IIIII", 2, tree_off, data_off, names_off, 0) + tree_bytes + bytes(data) + bytes(names)


def test_rcc_reader_plain_and_compressed():
    files = {"gcompris/a/x.webp": b"hello", "gcompris/a/b/y.png": b"\x89PNG" * 50, "top.txt": b"t"}
    blob = build_rcc(files, compress={"gcompris/a/b/y.png"})
    assert dict(iter_rcc(blob)) == files
    with pytest.raises(RccError):
        list(iter_rcc(b"nope" + blob[4:]))


def test_embedded_jpegs_are_found_in_a_binary_blob():
    rng = np.random.default_rng(0)
    jpgs = []
    for size in ((40, 60), (80, 120)):
        buf = io.BytesIO()
        Image.fromarray(synthetic_photo(rng, *size)).save(buf, format="JPEG")
        jpgs.append(buf.getvalue())
    blob = b"EET\x00" + bytes(100) + jpgs[0] + b"\xff\xd8\xff\xe0garbage" + bytes(50) + jpgs[1] + b"tail"
    found = list(embedded_jpegs(blob))
    assert [img.size for _, img in found] == [(60, 40), (120, 80)]


def test_photo_filters():
    rng = np.random.default_rng(1)
    assert photo_problem(Image.fromarray(learnable_photo(rng, 64, 64))) is None
    drawing = np.zeros((64, 64, 3), np.uint8)
    drawing[:32] = (200, 30, 30)
    drawing[32:, :20] = (30, 30, 200)
    assert "drawing" in photo_problem(Image.fromarray(drawing))
    grey = np.repeat(synthetic_photo(rng, 64, 64)[..., :1], 3, 2)
    assert photo_problem(Image.fromarray(grey)) == "grayscale"
    assert "too small" in photo_problem(Image.fromarray(learnable_photo(rng, 20, 64)))
    assert top_color_share(drawing) == 1.0
    # a photo cut out on transparency is judged on its opaque pixels only
    cut = np.dstack([learnable_photo(rng, 64, 64), np.where(np.arange(64)[None, :] < 32, 255, 0).repeat(64, 0)]).astype(np.uint8)
    assert photo_problem(Image.fromarray(cut, "RGBA")) is None


def test_near_duplicates_are_detected_across_sizes_and_encodings():
    rng = np.random.default_rng(2)
    a = Image.fromarray(synthetic_photo(rng, 120, 160))
    idx = DuplicateIndex()
    idx.add(perceptual_hash(a), "a")
    buf = io.BytesIO()
    a.resize((80, 60)).save(buf, format="JPEG", quality=70)
    assert idx.find(perceptual_hash(Image.open(buf))) == "a"
    assert idx.find(perceptual_hash(Image.fromarray(synthetic_photo(rng, 120, 160)))) is None


def test_encode_is_deterministic_and_bounded():
    rng = np.random.default_rng(3)
    small = Image.fromarray(synthetic_photo(rng, 40, 50))
    assert encode_photo(small)[1] == ".png" and encode_photo(small) == encode_photo(small)
    big = Image.fromarray(learnable_photo(rng, 600, 3000))
    data, ext, size = encode_photo(big)
    assert ext == ".jpg" and size == (2048, 410)


def _fake_wheel(cache, rng):
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / "fakephotos-1.0-py3-none-any.whl", "w") as z:
        for i in range(3):
            z.writestr(f"fakephotos/img{i}.png", _png(learnable_photo(rng, 64, 96)))
        z.writestr("fakephotos/zcopy.png", _png(np.asarray(Image.open(io.BytesIO(z.read("fakephotos/img0.png"))))))
        z.writestr("fakephotos/grey.png", _png(synthetic_photo(rng, 64, 64)[..., 0]))


@pytest.mark.slow
def test_gather_end_to_end_is_repeatable(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    _fake_wheel(tmp_path / "cache" / "pypi", rng)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download a cached package")

    monkeypatch.setattr(open_photos.subprocess, "run", no_network)
    src = Source("fakephotos", "1.0", "pypi", "train", "CC0", lambda r: open_photos._files(r, ["fakephotos/*.png"]))
    report = gather(tmp_path / "pool", tmp_path / "cache", (src,), progress=False)
    assert report.written == 3 and report.dropped == 2 and report.failed_sources == []
    rows = list(csv.DictReader(open(tmp_path / "pool" / "manifest.csv")))
    assert [r["original_path"] for r in rows] == ["fakephotos/img0.png", "fakephotos/img1.png", "fakephotos/img2.png"]
    assert {r["source"] for r in rows} == {"fakephotos"} and rows[0]["licence"] == "CC0"
    import hashlib

    for r in rows:
        assert hashlib.sha256((tmp_path / "pool" / r["file"]).read_bytes()).hexdigest() == r["sha256"]
    first = (tmp_path / "pool" / "manifest.csv").read_bytes()
    gather(tmp_path / "pool", tmp_path / "cache", (src,), progress=False)
    assert (tmp_path / "pool" / "manifest.csv").read_bytes() == first


@pytest.mark.slow
def test_a_source_that_cannot_be_fetched_is_reported_and_the_rest_come_through(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    _fake_wheel(tmp_path / "cache" / "pypi", rng)

    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: No matching distribution found for missingpkg==9"

    monkeypatch.setattr(open_photos.subprocess, "run", lambda *a, **k: Failed())
    good = Source("fakephotos", "1.0", "pypi", "train", "CC0", lambda r: open_photos._files(r, ["fakephotos/*.png"]))
    bad = Source("missingpkg", "9", "pypi", "train", "?", lambda r: iter(()))
    report = gather(tmp_path / "pool", tmp_path / "cache", (bad, good), progress=False)
    assert report.written == 3
    assert (
        len(report.failed_sources) == 1 and "missingpkg" in report.failed_sources[0] and "No matching" in report.failed_sources[0]
    )


def test_debian_sources_are_skipped_without_apt(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(open_photos, "debian_tools_available", lambda: False)
    src = Source("somedeb", None, "debian", "train", "?", lambda r: iter(()))
    report = gather(tmp_path / "pool", tmp_path / "cache", (src,), progress=False)
    assert report.written == 0 and "no apt-get" in report.failed_sources[0]
    assert "skipping the Debian sources" in capsys.readouterr().err
