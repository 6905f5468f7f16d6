"""Hostile and odd input, faults and fuzzing: nothing crashes, nothing is lost."""

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import colorunet
from colorunet.core.color import rgb_to_luma
from colorunet.core.images import ImageError

from conftest import synthetic_photo

RNG = np.random.default_rng(0)
PHOTO = synthetic_photo(RNG, 30, 40)


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_header_bomb(w: int = 60000, h: int = 60000) -> bytes:
    """A valid PNG signature and IHDR claiming w×h pixels, with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def hostile_corpus() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, expected: "ok", "ok-alpha", "ok-note" or a word of the error)."""
    jpeg = _bytes(Image.fromarray(PHOTO), "JPEG")
    png = _bytes(Image.fromarray(PHOTO), "PNG")
    pal = Image.fromarray(PHOTO).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    frames = [Image.fromarray(synthetic_photo(RNG, 20, 20)) for _ in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    return {
        "zero bytes.jpg": (b"", "not an image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "cannot decode"),
        "truncated.png": (png[: len(png) // 2], "cannot decode"),
        "text.jpg": (b"just some text, not a photo\n" * 10, "not an image"),
        "page.png": (b"<!doctype html><html><body>hi</body></html>", "not an image"),
        "drawing.jpg": (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="5" height="5"/></svg>', "not an image"),
        "cmyk.jpg": (_bytes(Image.fromarray(PHOTO).convert("CMYK"), "JPEG"), "ok"),
        "sixteen bit.png": (_bytes(Image.fromarray((PHOTO[..., 0].astype(np.uint16) * 257)), "PNG"), "ok"),
        "palette.png": (_bytes(pal, "PNG"), "ok-alpha"),
        "la.png": (_bytes(Image.fromarray(PHOTO[..., 0]).convert("LA"), "PNG"), "ok-alpha"),
        "rgba.png": (_bytes(Image.fromarray(np.dstack([PHOTO, PHOTO[..., 1]])), "PNG"), "ok-alpha"),
        "one.png": (_bytes(Image.fromarray(PHOTO[:1, :1]), "PNG"), "ok"),
        "row.png": (_bytes(Image.fromarray(PHOTO[:1, :17]), "PNG"), "ok"),
        "three.png": (_bytes(Image.fromarray(PHOTO[:3, :3]), "PNG"), "ok"),
        "bomb.png": (png_header_bomb(), "200,000,000"),
        "animated.gif": (gif.getvalue(), "ok-note"),
        "ünïcödé name.png": (png, "ok"),
    }


@pytest.mark.slow
def test_hostile_corpus_through_the_cli(tmp_path):
    src = tmp_path / "in put"
    src.mkdir()
    corpus = hostile_corpus()
    for name, (data, _) in corpus.items():
        (src / name).write_bytes(data)
    out = tmp_path / "out"
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "colorize", str(src), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert time.perf_counter() - t < 120  # no hang
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    for name, (data, expected) in corpus.items():
        produced = out / (name if not name.endswith(".gif") else name[:-4] + ".png")
        mentions = [ln for ln in lines if name in ln]
        if expected.startswith("ok"):
            assert produced.exists(), (name, r.stderr)
            img = Image.open(produced)
            assert img.size == Image.open(io.BytesIO(data)).size
            if expected == "ok-alpha":
                assert img.mode == "RGBA", name
            if expected == "ok-note":
                assert any("first frame" in ln for ln in mentions), name
        else:
            assert not produced.exists(), name
            assert len(mentions) == 1 and expected in mentions[0], (name, mentions)
    assert not list(out.rglob("*.part")) and not list(out.rglob(".*"))


def test_alpha_is_kept_exactly_and_luma_follows_the_input(tmp_path):
    corpus = hostile_corpus()
    img = Image.open(io.BytesIO(corpus["rgba.png"][0]))
    out = colorunet.colorize(img)
    np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])
    sixteen = Image.open(io.BytesIO(corpus["sixteen bit.png"][0]))
    y = rgb_to_luma(np.asarray(colorunet.colorize(sixteen), dtype=float) / 255)
    assert np.abs(y - np.asarray(sixteen, dtype=float) / 65535).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(tmp_path, orientation):
    img = Image.fromarray(synthetic_photo(RNG, 20, 36))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    img.save(path, exif=exif)
    out = colorunet.colorize(path)
    assert out.size == ((36, 20) if orientation <= 4 else (20, 36))


def test_api_errors_name_the_file(tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="is a directory"):
        colorunet.colorize(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        colorunet.colorize(tmp_path / "nope.jpg")
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(_bytes(Image.fromarray(PHOTO), "JPEG"))
    real_open = Image.open

    def deny(fp, *a, **k):  # root reads anything, so refuse the way the OS would
        if str(fp) == str(locked):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *a, **k)

    monkeypatch.setattr(Image, "open", deny)
    with pytest.raises(ImageError, match="locked.jpg: permission denied"):
        colorunet.colorize(locked)




@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), mode=st.sampled_from(["L", "RGB", "RGBA"]), seed=st.integers(0, 2**16),
    temperature=st.floats(0.05, 5.0), decode=st.sampled_from(["annealed", "mean", "mode"]), working_size=st.integers(8, 64),
    refine=st.booleans(),
)
def test_property_size_and_luma_are_kept(h, w, mode, seed, temperature, decode, working_size, refine):
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    a = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    img = Image.fromarray(a[..., 0] if mode == "L" else a, mode=None)
    out = colorunet.colorize(img, temperature=temperature, mode=decode, working_size=working_size, refine=refine)
    assert out.size == img.size
    y_in = rgb_to_luma(np.asarray(img.convert("RGB"), dtype=float) / 255)
    y_out = rgb_to_luma(np.asarray(out.convert("RGB"), dtype=float) / 255)
    assert np.abs(y_in - y_out).max() <= 0.5 / 255 + 1e-9


def _train_cmd(photo_dir, out, steps):
    return [
        sys.executable,
        "-m",
        "colorunet",
        "train",
        str(photo_dir),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "4",
        "--crop",
        "32",
        "--load-size",
        "48",
        "--checkpoint-every",
        "5",
        "--keep-checkpoints",
        "3",
        "-q",
    ]


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_is_exact(photo_dir, tmp_path):
    steps = 60
    full = tmp_path / "full"
    subprocess.run(_train_cmd(photo_dir, full, steps), check=True, capture_output=True, timeout=300)
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(photo_dir, run, steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    rng = np.random.default_rng(int(time.time()))
    target = int(rng.integers(10, 40))  # a random moment, after a few checkpoints
    while time.time() < deadline:
        done = sorted((run / "checkpoints").glob("step_*.pt.sha256")) if (run / "checkpoints").exists() else []
        if done and int(done[-1].name[5:14]) >= target:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = subprocess.run(_train_cmd(photo_dir, run, steps) + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a = colorunet.load_model(full).net.state_dict()
    b = colorunet.load_model(run).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_damaged_checkpoint_is_detected_and_the_previous_one_used(photo_dir, tmp_path):
    run = tmp_path / "run"
    subprocess.run(_train_cmd(photo_dir, run, 15), check=True, capture_output=True, timeout=300)
    newest = run / "checkpoints" / "step_000000015.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    r = subprocess.run(_train_cmd(photo_dir, run, 20) + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "checksum mismatch" in r.stderr
    import csv

    from colorunet.training.checkpoint import load_latest_checkpoint

    # resumed from step 10 (the log's rows after it were dropped and redone), ended at 20
    assert [int(row["step"]) for row in csv.DictReader(open(run / "log.csv"))] == list(range(1, 21))
    assert load_latest_checkpoint(run)[0]["step"] == 20


def test_http_api_survives_the_corpus():
    from fastapi.testclient import TestClient

    from colorunet.apps.web.app import ServerSettings, create_app

    client = TestClient(create_app(ServerSettings()), base_url="http://localhost:8000")
    for name, (data, expected) in hostile_corpus().items():
        r = client.post("/api/colorize", files={"image": (name, data, "application/octet-stream")})
        if expected.startswith("ok"):
            assert r.status_code == 200, (name, r.text)
        else:
            assert r.status_code in (400, 413, 415) and "error" in r.json(), (name, r.status_code)


def test_schema_fuzzing_finds_no_server_errors():
    import schemathesis

    from colorunet.apps.web.app import LOOPBACK_NAMES, ServerSettings, create_app

    # schemathesis calls the app as host "testserver"
    app = create_app(ServerSettings(max_upload_bytes=2**20, allowed_hosts=(*LOOPBACK_NAMES, "testserver")))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            response = case.call()
            if response.status_code >= 500:
                failures.append((operation.label, response.status_code, response.text[:200]))

        fuzz()
    assert not failures, failures


# --- Hostile input, round two: one test per kind of case, each failing before its fix ----------------------------------


def cli(args, capsys) -> tuple[int, str]:
    """``colorunet ARGS`` in this process (fast: the model stays loaded); (exit status, stderr)."""
    from colorunet.apps.cli import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def _photo_file(path, h=24, w=32, seed=0):
    Image.fromarray(synthetic_photo(np.random.default_rng(seed), h, w)).save(path)
    return path


def test_confidence_maps_never_overwrite_an_input_or_an_existing_file(tmp_path, capsys):
    cam = _photo_file(tmp_path / "cam.png")
    other = _photo_file(tmp_path / "cam_color_confidence.png", seed=1)  # an input named like cam's confidence map
    before = other.read_bytes()
    rc, err = cli(["colorize", cam, other, "--confidence", "-q"], capsys)
    assert rc == 1 and "would overwrite an input" in err and other.read_bytes() == before
    # an existing map is kept without --overwrite, even when the main output is missing
    single = _photo_file(tmp_path / "solo" / "x.png") if (tmp_path / "solo").mkdir() is None else None
    kept = tmp_path / "solo" / "x_color_confidence_ratio.png"
    kept.write_bytes(b"mine")
    rc, err = cli(["colorize", single, "--confidence", "-q"], capsys)
    assert rc == 0 and "exists, kept" in err and kept.read_bytes() == b"mine"
    rc, err = cli(["colorize", single, "--confidence", "--overwrite", "-q"], capsys)
    assert rc == 0 and Image.open(kept).size == (32, 24) and (tmp_path / "solo" / "x_color.png").exists()


def _clip(path, frames=3, size=(48, 64)):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.height, s.width = size
        s.pix_fmt = "yuv420p"
        for i in range(frames):
            c.mux(s.encode(av.VideoFrame.from_ndarray(synthetic_photo(np.random.default_rng(i), *size), format="rgb24")))
        c.mux(s.encode(None))
    return path


def _moov_only(src, dst):
    """The mp4 ``src`` without its media data: an index (moov) pointing at nothing."""
    data, out, i = src.read_bytes(), b"", 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        out += b"" if kind == b"mdat" else data[i : i + size]
        i += size
    dst.write_bytes(out)
    return dst


def test_a_film_with_no_decodable_frame_keeps_the_existing_output(tmp_path, capsys):
    film = _moov_only(_clip(tmp_path / "clip.mp4"), tmp_path / "moov_only.mp4")
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"last week's work")
    rc, err = cli(["video", film, "-o", existing, "--overwrite", "-q"], capsys)
    assert rc == 2 and "moov_only.mp4: no frames could be decoded" in err
    assert existing.read_bytes() == b"last week's work" and not list(tmp_path.glob(".*"))


def test_frames_that_would_share_an_output_name_are_refused(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("f1.jpg", "f1.png", "f2.png"):
        _photo_file(frames / name)
    out = tmp_path / "out"
    rc, err = cli(["video", frames, "-o", out, "-q"], capsys)
    assert rc == 2 and "f1.png" in err and "f1.jpg" in err
    assert not out.exists() or not list(out.iterdir())


def test_refinement_of_a_thin_photo_is_bounded_by_the_working_size(monkeypatch):
    from colorunet.inference import refine
    from colorunet.inference.working import working_shape

    h, w = working_shape(250, 4000, 256)
    assert h * w <= 2 * 256**2 and w / h == pytest.approx(16, rel=0.02)
    assert working_shape(256, 384, 256) == (256, 384)  # 3:2 photos are not affected
    sizes = []
    real = refine.refine_chroma
    monkeypatch.setattr(refine, "refine_chroma", lambda y, *a, **k: sizes.append(y.size) or real(y, *a, **k))
    strip = Image.fromarray(np.tile(synthetic_photo(RNG, 100, 250), (1, 8, 1)))  # 100×2000
    out = colorunet.colorize(strip, working_size=64, refine=True)
    assert out.size == (2000, 100) and sizes and max(sizes) <= 2 * 64**2


def _model_file(path, widths=(16, 32, 64), metadata=None, tensors=None):
    """A model file whose tensors are those of a small ColorUNet, with ``model_config`` and metadata overridden."""
    import json

    from safetensors.torch import save_file

    from colorunet.core.model import ColorUNet, ColorUNetConfig
    from colorunet.core.quantize import ChromaHistogram, Quantizer
    from colorunet.core.weights import save_model

    q = Quantizer.fit(ChromaHistogram.of(RNG.normal(0, 0.15, 5000), RNG.normal(0, 0.2, 5000)), 32)
    good = save_model(path, ColorUNet(ColorUNetConfig(widths=(16, 32, 64))), q)
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as f:
        meta = dict(f.metadata())
        ts = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
    meta["model_config"] = json.dumps(json.loads(meta["model_config"]) | {"widths": list(widths)})
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    ts.update(tensors or {})
    save_file(ts, str(path), metadata=meta)
    return path


def test_model_metadata_is_checked_against_its_tensors_before_allocating(tmp_path, monkeypatch):
    from colorunet.core import weights
    from colorunet.core.weights import ModelError

    path = _model_file(tmp_path / "hugewidths.safetensors", widths=(256, 512, 1024))
    devices = []
    real = weights.build_network
    monkeypatch.setattr(
        weights, "build_network", lambda config: devices.append(next(real(config).parameters()).device.type) or real(config)
    )
    with pytest.raises(ModelError, match="hugewidths.safetensors: tensor net.* has shape"):
        weights.load_model(path)
    assert devices and set(devices) == {"meta"}  # nothing was allocated for the widths the metadata claims


def _jpeg_claiming(w, h, cut=None):
    """A small real JPEG whose frame header claims w×h pixels; ``cut``: cut its scan there and end with EOI."""
    data = bytearray(_bytes(Image.fromarray(synthetic_photo(RNG, 16, 16)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, h, w)
    if cut is not None:
        data = data[: data.find(b"\xff\xda") + cut] + b"\xff\xd9"
    return bytes(data)


def test_a_jpeg_claiming_far_more_pixels_than_its_bytes_is_refused_before_decoding(tmp_path, capsys):
    from colorunet.core.images import open_image

    for data in (_jpeg_claiming(6000, 6000), _jpeg_claiming(6000, 6000, cut=40)):
        t = time.perf_counter()
        with pytest.raises(ImageError, match=r"bomb.jpg: claims 6000×6000 pixels in only \d+ bytes"):
            open_image(data, name="bomb.jpg")
        assert time.perf_counter() - t < 1
    (tmp_path / "bomb.jpg").write_bytes(_jpeg_claiming(6000, 6000))
    rc, err = cli(["colorize", tmp_path / "bomb.jpg", "-q"], capsys)
    assert rc == 1 and "decompression bomb" in err and not (tmp_path / "bomb_color.jpg").exists()
    ok = _bytes(Image.new("RGB", (1200, 1000), (120, 130, 140)), "JPEG")  # a flat picture is small, yet no bomb
    assert open_image(ok).size == (1200, 1000)


@pytest.fixture(scope="module")
def web_app():
    from colorunet.apps.web.app import ServerSettings, create_app

    return create_app(ServerSettings(max_upload_bytes=3 * 2**20, max_pixels=2_000_000))


def _web(app, host="127.0.0.1", client=("127.0.0.1", 50000)):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url=f"http://{host}:8000", client=client)


def test_web_checks_host_and_origin_and_says_nosniff(web_app):
    local = _web(web_app)
    r = local.get("/api/model")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    assert _web(web_app, host="localhost").get("/api/health").status_code == 200
    r = local.get("/api/model", headers={"Host": "evil.example:8000"})  # DNS rebinding
    assert r.status_code == 400 and "evil.example" in r.json()["error"] and r.headers["x-content-type-options"] == "nosniff"
    png = _bytes(Image.fromarray(PHOTO), "PNG")
    r = local.post("/api/colorize", files={"image": ("p.png", png, "image/png")}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["error"]
    r = local.post("/api/colorize", files={"image": ("p.png", png, "image/png")}, headers={"Origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"


def test_serve_answers_to_its_own_host_names(monkeypatch, capsys):
    import uvicorn

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: apps.append(app))
    from fastapi.testclient import TestClient

    assert cli(["serve", "--host", "192.168.7.7"], capsys)[0] == 0
    assert TestClient(apps[-1], base_url="http://192.168.7.7:8000").get("/api/health").status_code == 200
    assert TestClient(apps[-1], base_url="http://evil.example:8000").get("/api/health").status_code == 400
    assert cli(["serve", "--host", "0.0.0.0"], capsys)[0] == 0  # open to the network: its names are unknown
    assert TestClient(apps[-1], base_url="http://my-box.lan:8000").get("/api/health").status_code == 200


def test_recolor_ids_answer_only_the_client_that_made_them(web_app):
    mine, theirs = _web(web_app, client=("10.0.0.5", 1)), _web(web_app, client=("10.0.0.6", 1))
    r = mine.post("/api/colorize", files={"image": ("p.png", _bytes(Image.fromarray(PHOTO), "PNG"), "image/png")})
    key = r.headers["x-colorunet-id"]
    assert mine.post("/api/recolor", data={"id": key, "temperature": "0.5"}).status_code == 200
    r = theirs.post("/api/recolor", data={"id": key, "temperature": "0.5"})
    assert r.status_code == 404 and "error" in r.json()


def test_large_uploads_stay_in_memory(web_app, monkeypatch):
    import tempfile

    def no_disk(*a, **k):
        raise AssertionError("the upload was spooled to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_disk)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_disk)
    noise = np.random.default_rng(5).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    png = _bytes(Image.fromarray(noise), "PNG", compress_level=0)
    assert len(png) > 1.5 * 2**20
    r = _web(web_app).post("/api/colorize", files={"image": ("big.png", png, "image/png")})
    assert r.status_code == 200, r.text


HOSTILE_HINTS = {
    "infinite.json": '{"strokes": [{"points": [[10, 10], [20, 20]], "color": "#c0392b", "width": Infinity}]}',
    "huge.json": '{"points": [{"x": 1' + "0" * 400 + ', "y": 5, "color": "#c0392b"}]}',
    "exponent.json": '{"points": [{"x": 1e400, "y": 5, "color": "#c0392b"}]}',
    "deep.json": "[" * 50_000 + "]" * 50_000,
    "nan point.json": '{"strokes": [{"points": [[NaN, 10], [400, 400]], "color": "#2e86c1", "width": 4}]}',
    "inf point.json": '{"strokes": [{"points": [[-Infinity, 10], [400, 400]], "color": "#2e86c1", "width": 4}]}',
}


def test_hostile_hints_files_give_one_line(tmp_path, capsys, monkeypatch):
    photo = _photo_file(tmp_path / "p.png")
    for name, text in HOSTILE_HINTS.items():
        (tmp_path / name).write_text(text)
        rc, err = cli(["colorize", photo, "--hints", tmp_path / name, "-o", tmp_path / "o.png"], capsys)
        assert rc == 2 and name in err and len(err.strip().splitlines()) == 1, (name, err)
    (tmp_path / "folder.json").mkdir()
    rc, err = cli(["colorize", photo, "--hints", tmp_path / "folder.json", "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "folder.json: is a directory" in err
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    from pathlib import Path

    real = Path.read_text
    monkeypatch.setattr(
        Path,
        "read_text",
        lambda self, *a, **k: (
            (_ for _ in ()).throw(PermissionError(13, "Permission denied")) if self == locked else real(self, *a, **k)
        ),
    )
    rc, err = cli(["colorize", photo, "--hints", locked, "-o", tmp_path / "o.png"], capsys)
    assert rc == 2 and "locked.json: cannot read (Permission denied)" in err
    assert not (tmp_path / "o.png").exists()


def test_hostile_hints_on_the_web_are_422(web_app):
    png = _bytes(Image.fromarray(PHOTO), "PNG")
    for name, text in HOSTILE_HINTS.items():
        r = _web(web_app).post("/api/colorize", files={"image": ("p.png", png, "image/png")}, data={"hints": text[:200_000]})
        assert r.status_code == 422 and "hints" in r.json()["error"], (name, r.status_code, r.text[:200])


def test_a_nan_point_never_paints_the_photo():
    from colorunet.inference.refine import HintError, parse_hints

    with pytest.raises(HintError, match=r"strokes\[0\].points\[0\]: must be a number, got NaN"):
        parse_hints({"strokes": [{"points": [[float("nan"), 10], [400, 400]], "color": "#2e86c1", "width": 4}]})
    with pytest.raises(HintError, match="must be finite"):
        colorunet.colorize(PHOTO, hints={"points": [{"x": float("inf"), "y": 3, "color": "#2e86c1"}]})


def test_train_refuses_bad_run_folders_devices_and_foreign_checkpoints(photo_dir, tmp_path, capsys, monkeypatch):
    args = ["train", photo_dir, "--steps", "2", "--batch-size", "2", "--crop", "32", "--load-size", "48", "-q"]
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    rc, err = cli(args + ["--out", afile], capsys)
    assert rc == 2 and "afile: exists and is not a folder" in err and afile.read_text() == "not a folder"
    rc, err = cli(args + ["--out", tmp_path / "r1", "--device", "bogus"], capsys)
    assert rc == 2 and "--device 'bogus': not a device" in err
    foreign = tmp_path / "foreign"
    (foreign / "checkpoints").mkdir(parents=True)
    ckpt = foreign / "checkpoints" / "step_000000005.pt"
    torch.save({"weights": torch.zeros(3)}, ckpt)
    from colorunet.core.checksum import sha256_of

    (foreign / "checkpoints" / "step_000000005.pt.sha256").write_text(sha256_of(ckpt) + "\n")
    rc, err = cli(args[:-1] + ["--out", foreign, "--resume"], capsys)
    assert rc == 2 and "not a colorunet checkpoint" in err and "no checkpoint to resume from" in err
    # a read-only folder (simulated: tests may run as root, who may write anywhere)
    import tempfile

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    real_mkstemp, real_tf = tempfile.mkstemp, tempfile.TemporaryFile

    def deny(real):
        def f(*a, dir=None, **k):
            if dir is not None and str(dir).startswith(str(readonly)):
                raise PermissionError(13, "Permission denied", str(dir))
            return real(*a, dir=dir, **k)
        return f

    monkeypatch.setattr(tempfile, "mkstemp", deny(real_mkstemp))
    monkeypatch.setattr(tempfile, "TemporaryFile", deny(real_tf))
    rc, err = cli(args + ["--out", readonly / "run"], capsys)
    assert rc == 2 and "readonly/run: cannot write" in err and "Permission denied" in err


def test_video_options_and_outputs_are_checked(tmp_path, capsys, monkeypatch):
    clip = _clip(tmp_path / "clip.mp4")
    for bad, word in (
        (["--window", "100000000000000000000"], "--window"),
        (["--window", "1e20"], "--window"),
        (["--crf", "-5"], "--crf"),
        (["--decay", "nan"], "--decay"),
        (["--decay", "inf"], "--decay"),
    ):
        rc, err = cli(["video", clip, "-o", tmp_path / "o.mp4", *bad], capsys)
        # argparse: usage, then one error line
        assert rc == 2 and f"error: argument {word}: " in err.strip().splitlines()[-1], bad
    import tempfile

    real = tempfile.mkstemp
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    monkeypatch.setattr(
        tempfile,
        "mkstemp",
        lambda *a, dir=None, **k: (
            (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
            if str(dir) == str(readonly)
            else real(*a, dir=dir, **k)
        ),
    )
    rc, err = cli(["video", clip, "-o", readonly / "o.mp4", "-q"], capsys)
    assert rc == 2 and "readonly/o.mp4: cannot write (Permission denied)" in err


def test_smoothing_refuses_nan_and_infinite_decay():
    from colorunet.apps.video import TemporalSmoother

    for decay in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="decay"):
            TemporalSmoother(window=3, decay=decay)
    with pytest.raises(ValueError, match="window"):
        TemporalSmoother(window=10**20)


def _onnx_with(tmp_path, name, change=None, drop=(), graph=None):
    import onnx

    from colorunet.inference.onnx_backend import DEFAULT_ONNX

    proto = graph if graph is not None else onnx.load(str(DEFAULT_ONNX))
    if graph is not None:
        src = onnx.load(str(DEFAULT_ONNX))
        for p in src.metadata_props:
            e = proto.metadata_props.add()
            e.key, e.value = p.key, p.value
    props = {p.key: p.value for p in proto.metadata_props if p.key not in drop} | (change or {})
    del proto.metadata_props[:]
    for k, v in props.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


def _one_channel_graph():
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    node = helper.make_node("Conv", ["luma", "w"], ["logits"])
    g = helper.make_graph([node], "one", [helper.make_tensor_value_info("luma", TensorProto.FLOAT, ["b", 1, "h", "w"])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1, "h", "w"])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnx_metadata_is_validated_with_the_file_named(tmp_path):
    from colorunet.core.errors import ColorunetError
    from colorunet.inference.onnx_backend import colorize_full, load_onnx_model

    cases = {
        "no_multiple.onnx": {"drop": ("colorunet.size_multiple",)},
        "zero_multiple.onnx": {"change": {"colorunet.size_multiple": "0"}},
        "no_centres.onnx": {"drop": ("colorunet.centers_uv",)},
        "nan_centres.onnx": {"change": {"colorunet.centers_uv": "[[NaN, 0], [0, 0]]"}},
        "bad_json.onnx": {"change": {"colorunet.model_config": "{not json"}},
        "tiny_temperature.onnx": {"change": {"colorunet.temperature": "1e-45"}},
        "three_multiple.onnx": {"change": {"colorunet.size_multiple": "3"}},  # the network halves: a power of two
        "far_centres.onnx": {"change": {"colorunet.centers_uv": json.dumps([[3e38, 3e38]] * 32)}},
        "huge_prior.onnx": {"change": {"colorunet.prior": json.dumps([1e308] * 32)}},  # the sum overflows
        "one_channel.onnx": {"graph": _one_channel_graph()},
    }
    for name, how in cases.items():
        path = _onnx_with(tmp_path, name, **how)
        with pytest.raises(ColorunetError, match=name):
            colorize_full(PHOTO, load_onnx_model(str(path)))


def test_serve_refuses_an_impossible_port(capsys):
    rc, err = cli(["serve", "--port", "99999"], capsys)
    assert rc == 2 and "--port: must be between 1 and 65535" in err


def test_underflowing_temperatures_are_refused_everywhere(tmp_path, capsys, web_app):
    from colorunet.core.weights import ModelError, load_model

    photo = _photo_file(tmp_path / "p.png")
    for t in ("1e-40", "1e-38", "inf", "nan"):
        rc, err = cli(["colorize", photo, "-t", t, "-o", tmp_path / "o.png"], capsys)
        assert rc == 2 and "--temperature" in err, t
    with pytest.raises(ValueError, match="temperature: must be between 0.01 and 100"):
        colorunet.colorize(PHOTO, temperature=1e-40)
    r = _web(web_app).post(
        "/api/colorize",
        files={"image": ("p.png", _bytes(Image.fromarray(PHOTO), "PNG"), "image/png")},
        data={"temperature": "1e-40"},
    )
    assert r.status_code == 422 and "temperature" in r.json()["error"]
    with pytest.raises(ModelError, match="tiny.safetensors: the temperature in its metadata: must be between"):
        load_model(_model_file(tmp_path / "tiny.safetensors", metadata={"temperature": 1e-45}))
    assert not (tmp_path / "o.png").exists()


def test_a_model_with_nan_quantiser_centres_is_refused(tmp_path):
    from safetensors import safe_open

    from colorunet.core.weights import ModelError, load_model

    path = _model_file(tmp_path / "good.safetensors")
    with safe_open(str(path), framework="pt") as f:
        centres = f.get_tensor("quantizer.centers").clone()
    centres[3, 0] = float("nan")
    bad = _model_file(tmp_path / "nan_centres.safetensors", tensors={"quantizer.centers": centres})
    with pytest.raises(ModelError, match="nan_centres.safetensors: tensor quantizer.centers holds NaN"):
        load_model(bad)


def test_python_api_reads_16_bit_32_bit_and_float_images():
    grey = np.tile(np.linspace(0, 1, 48), (40, 1))
    inputs = {
        "uint16 array": (grey * 65535).round().astype(np.uint16),
        "mode F in [0, 1]": Image.fromarray(grey.astype(np.float32), mode="F"),
        "full-range mode I": Image.fromarray((grey * (2**31 - 1)).astype(np.int32), mode="I"),
        "float array": grey,
    }
    for name, image in inputs.items():
        y = rgb_to_luma(np.asarray(colorunet.colorize(image), dtype=float) / 255)
        assert np.abs(y - grey).max() <= 0.5 / 255 + 1e-3, name
    for bad, word in ((np.full((8, 8), np.nan), "NaN"), (grey * 255, "in \\[0, 1\\]"), (np.zeros((8, 8, 2)), "shape")):
        with pytest.raises(ImageError, match=word):
            colorunet.colorize(bad)


def test_an_output_named_in_a_format_colorunet_does_not_write_is_not_a_folder(tmp_path, capsys):
    photo = _photo_file(tmp_path / "p.png")
    rc, err = cli(["colorize", photo, "-o", tmp_path / "out.gif"], capsys)
    assert rc == 2 and "out.gif: unknown output format '.gif'" in err and not (tmp_path / "out.gif").exists()
    rc, err = cli(["colorize", photo, "-o", tmp_path / "out.jfif", "-q"], capsys)
    assert rc == 0 and (tmp_path / "out.jfif").is_file() and Image.open(tmp_path / "out.jfif").format == "JPEG"


def test_long_file_names_fit_their_temporary_names(tmp_path, capsys):
    photo = _photo_file(tmp_path / ("n" * 240 + ".png"))
    rc, err = cli(["colorize", photo, "-q"], capsys)
    out = tmp_path / ("n" * 240 + "_color.png")
    assert rc == 0, err
    assert Image.open(out).size == (32, 24) and not list(tmp_path.glob(".*"))


def test_working_sizes_below_8_are_usage_errors(tmp_path, capsys):
    photo = _photo_file(tmp_path / "p.png")
    for command in (["colorize", photo], ["video", photo, "-o", tmp_path / "v.mp4"], ["evaluate", tmp_path]):
        for size in ("1", "7"):
            rc, err = cli([*command, "--working-size", size], capsys)
            assert rc == 2 and "--working-size: must be ≥ 8" in err


def test_a_folder_whose_only_photo_is_held_out_still_trains(tmp_path, capsys):
    from colorunet.core.splits import is_validation

    name = next(f"photo{i}" for i in range(1000) if is_validation(f"photo{i}", 0.1))
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(synthetic_photo(RNG, 64, 64)).save(folder / f"{name}.png")
    rc, err = cli(
        ["train", folder, "--out", tmp_path / "run", "--steps", "2", "--batch-size", "2", "--crop", "32", "--load-size", "48"],
        capsys,
    )
    assert rc == 0, err
    assert "training on all 1" in err and (tmp_path / "run" / "model.safetensors").exists()


def test_a_run_that_failed_before_its_first_checkpoint_can_start_again(photo_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", photo_dir, "--out", out, "--steps", "2", "--batch-size", "2", "--crop", "32", "--load-size", "48", "-q"]
    rc, err = cli(args + ["--workers", "-1"], capsys)
    assert rc == 2 and "--workers" in err and not out.exists()  # refused before anything is written
    out.mkdir()
    # a folder of the user's own whose files have a run's names: refused, and left as it was
    (out / "config.json").write_text('{"my": "settings"}\n')
    rc, err = cli(args, capsys)
    assert rc == 2 and "holds a config.json that is not a colorunet run's" in err
    assert (out / "config.json").read_text() == '{"my": "settings"}\n' and not (out / "log.csv").exists()
    (out / "config.json").write_text('{"model_config": {}, "train_config": {}}\n')
    (out / "log.csv").write_text("when,what\n")
    rc, err = cli(args, capsys)
    assert rc == 2 and "holds a log.csv that is not a colorunet run's" in err and (out / "log.csv").read_text() == "when,what\n"
    # what a run that fails after its start leaves: it starts again over them
    (out / "log.csv").write_text("step,epoch,loss,val_loss,lr,images_per_s,elapsed_s\n")
    rc, err = cli(args, capsys)
    assert rc == 0, err
    assert (out / "model.safetensors").exists()
    rc, err = cli(args, capsys)  # a run with checkpoints is still protected
    assert rc == 2 and "already holds a training run" in err


@pytest.mark.parametrize(
    "option,value,words",
    [
        ("--lr", "1e39", "--lr: must be > 0 and ≤ 1"),  # overflowed float32 in the first step
        ("--seed", "-5", "--seed: must be between 0 and 4294967295"),
        ("--seed", "99999999999999999999999", "--seed: must be between 0 and 4294967295"),
        ("--crop", "4096", "--crop: must be between 8 and 1024"),  # every photo would be enlarged to it
        ("--load-size", "100000", "--load-size: must be between 8 and 8192"),
    ],
)
def test_training_numbers_are_checked_before_any_photo_is_read(tmp_path, capsys, option, value, words):
    out = tmp_path / "run"
    rc, err = cli(["train", tmp_path / "no-photos-here", "--out", out, option, value], capsys)
    assert rc == 2 and words in err and "Traceback" not in err and not out.exists()


def test_resume_names_the_kept_values(tiny_run, photo_dir, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    rc, err = cli(["train", photo_dir, "--out", run, "--resume", "--steps", "6", "--widths", "8,16", "--preset", "wide"], capsys)
    assert rc == 0, err
    assert "keeps the run's widths=(16, 32, 64); ignoring (8, 16)" in err
    assert "keeps the run's preset='paper'; ignoring 'wide'" in err and "None" not in err


def test_webm_codecs_and_messages(tmp_path, capsys):
    import av

    clip = _clip(tmp_path / "clip.mp4")
    rc, err = cli(["video", clip, "-o", tmp_path / "out.webm", "-q"], capsys)
    assert rc == 0, err
    with av.open(str(tmp_path / "out.webm")) as c:
        assert c.streams.video[0].codec_context.name == "vp9" and c.streams.video[0].frames in (0, 3)
    rc, err = cli(["video", clip, "-o", tmp_path / "o.mp4", "--codec", "bogus"], capsys)
    assert rc == 2 and "--codec 'bogus': not a video encoder" in err
    rc, err = cli(["video", clip, "-o", tmp_path / "o.webm", "--codec", "libx264"], capsys)
    assert rc == 2 and "o.webm: cannot write libx264 video into a webm file" in err
    from colorunet.core.images import open_image

    with pytest.raises(ImageError) as e:
        open_image(b"no image here", name="x.jpg")
    assert "Pillow" not in str(e.value) and "x.jpg: not an image file" in str(e.value)


def test_http_errors_are_json_with_an_error_field(web_app):
    client = _web(web_app)
    r = client.get("/no/such/page")
    assert r.status_code == 404 and "error" in r.json() and "detail" not in r.json()
    r = client.get("/api/colorize")
    assert r.status_code == 405 and "error" in r.json()
    png = _bytes(Image.fromarray(PHOTO), "PNG")
    r = client.post("/api/colorize", files={"image": ("p.png", png, "image/png")}, data={"hints": "x" * (2**20 + 10)})
    assert r.status_code in (400, 413, 422) and "error" in r.json() and "detail" not in r.json()
    r = client.post("/api/colorize", files={"image": ("p.png", png, "image/png")}, data={"temperature": "nan"})
    assert r.status_code == 422 and "NaN" in r.json()["error"] and "100" not in r.json()["error"]
