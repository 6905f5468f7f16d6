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
from colorunet.datasets.open_photos import DataError, Source, embedded_jpegs, encode_photo, gather, pzl_records
from colorunet.datasets.photo_filters import FLATTEN_GREY, DuplicateIndex, perceptual_hash, photo_problem, top_color_share
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


def _jpg(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _pzl(name: str, thumb: bytes) -> bytes:
    """A Jigzo puzzle file as the game writes it: header lines, then name / length / bytes records."""
    out = b"PzlF\n0.1\n" + name.encode() + b"\nhttp://www.resorama.com/glpuzzle/\n"
    texture = _jpg(np.zeros((64, 64, 3), np.uint8))
    for fname, payload in (
        (f"{name}.map", b"#texture map data\ncrop000 0 0 10 10 5 5 0 0 0 0\n"),
        (f"{name}-t.jpg", thumb),
        (f"{name}.png", _png(np.zeros((64, 64, 4), np.uint8))),
        (f"{name}.jpg", texture),
    ):
        out += fname.encode() + b"\n" + str(len(payload)).encode() + b"\n" + payload
    return out


def test_jigzo_puzzles_give_their_whole_photo_and_the_non_free_one_is_left_out(tmp_path):
    rng = np.random.default_rng(6)
    thumb = _jpg(learnable_photo(rng, 60, 80))
    blob = _pzl("bike-3x4", thumb)
    assert [(n, len(p)) for n, p in pzl_records(blob)][1] == ("bike-3x4-t.jpg", len(thumb))
    with pytest.raises(DataError):
        list(pzl_records(b"PK\x03\x04" + blob[4:]))
    with pytest.raises(DataError):
        list(pzl_records(blob[:-10]))  # a record cut short
    folder = tmp_path / "usr/share/games/jigzo/puzzles/00_default"
    folder.mkdir(parents=True)
    (folder / "bike-3x4.pzl").write_bytes(blob)
    (folder / "penguin-3x2.pzl").write_bytes(_pzl("penguin-3x2", _jpg(learnable_photo(rng, 60, 80))))  # CC-BY-NC-SA
    (folder / "broken.pzl").write_bytes(b"not a puzzle")
    found = list(open_photos._jigzo(tmp_path))
    assert [(n, img.size) for n, img in found] == [
        ("usr/share/games/jigzo/puzzles/00_default/bike-3x4.pzl:bike-3x4-t.jpg", (80, 60))
    ]


def test_tuxpaint_stamps_keep_photo_cutouts_only_and_flatten_them_onto_grey(tmp_path):
    rng = np.random.default_rng(7)
    cut = np.dstack([learnable_photo(rng, 64, 64), np.full((64, 64), 255, np.uint8)])
    cut[:8, :, 3] = 0  # a transparent band at the top, as around a cut-out
    stamps = tmp_path / "usr/share/tuxpaint/stamps"
    names = [
        "animals/birds/owl.png",
        "animals/birds/cartoon/owl.png",
        "town/houses/cartoon/inn.png",
        "household/tools/saw_mirror.png",
        "town/roadsigns/no_entry_sign.png",
        "town/roadsigns/traffic_cone.png",
        "seasonal/easter/bunny.png",
        "space/planets/6_saturn.png",
    ]
    for n in names:
        (stamps / n).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(cut, "RGBA").save(stamps / n)
    kept = sorted(n.removeprefix("usr/share/tuxpaint/stamps/") for n, _ in open_photos._tuxpaint_stamps(tmp_path))
    assert kept == ["animals/birds/owl.png", "town/roadsigns/traffic_cone.png"]
    _, img = next(open_photos._tuxpaint_stamps(tmp_path))
    assert img.mode == "RGBA" and photo_problem(img) is None
    data, _, _ = encode_photo(img)
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((10, 2)) == FLATTEN_GREY


def test_labelme_keeps_the_annotated_photos_not_their_renderings(tmp_path):
    rng = np.random.default_rng(8)
    base = tmp_path / "usr/share/doc/labelme-examples/examples"
    names = [
        "bbox_detection/data_annotated/2011_000003.jpg",
        "bbox_detection/data_dataset_voc/AnnotationsVisualization/2011_000003.jpg",
        "bbox_detection/data_dataset_voc/JPEGImages/2011_000003.jpg",
        "semantic_segmentation/.readme/annotation.jpg",
        "semantic_segmentation/data_dataset_voc/SegmentationClassVisualization/2011_000003.jpg",
        "video_annotation/data_annotated/00000100.jpg",
        "video_annotation/data_annotated/00000101.jpg",
        "primitives/primitives.jpg",
        "tutorial/apc2016_obj3.jpg",
        "tutorial/.readme/draw_json.jpg",
    ]
    for n in names:
        (base / n).parent.mkdir(parents=True, exist_ok=True)
        (base / n).write_bytes(_jpg(learnable_photo(rng, 48, 64)))
    kept = [n.removeprefix("usr/share/doc/labelme-examples/examples/") for n, _ in open_photos._labelme(tmp_path)]
    assert kept == [
        "bbox_detection/data_annotated/2011_000003.jpg",
        "video_annotation/data_annotated/00000100.jpg",
        "tutorial/apc2016_obj3.jpg",
    ]


def test_new_debian_sources_are_registered_for_training():
    by_name = {s.package: s for s in open_photos.SOURCES}
    for name, licence in (("tuxpaint-stamps-default", "GPL-2"), ("labelme-examples", "GPL-3+"), ("jigzo-data", "GPL-2")):
        s = by_name[name]
        assert s.kind == "debian" and s.split == "train" and s.licence.startswith(licence)
    assert "CC-BY-NC-SA" in by_name["jigzo-data"].licence and "left out" in by_name["jigzo-data"].licence
