"""The web app: API through FastAPI's TestClient, a real uvicorn process, and a real browser."""

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from colorunet.color import rgb_to_luma  # noqa: E402
from colorunet.pipeline import default_sample  # noqa: E402
from colorunet.web import app as web  # noqa: E402

from conftest import synthetic_photo  # noqa: E402

SAMPLE = default_sample().read_bytes()


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client():
    # the address a local browser uses: the app refuses Host names that are not its own (DNS rebinding)
    return TestClient(web.create_app(web.ServerSettings(max_upload_bytes=2 * 2**20, max_pixels=1_000_000)), base_url="http://127.0.0.1:8000")


def _post(client, data=SAMPLE, name="camera.png", ctype="image/png", **fields):
    return client.post("/api/colorize", files={"image": (name, data, ctype)}, data={k: str(v) for k, v in fields.items()})


def test_health_model_and_schema(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    assert info["parameters"] > 100_000 and info["quantizer"]["classes"] == 32 and info["temperature"] > 0
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/colorize", "/api/recolor", "/api/health", "/api/model"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "colorunet" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_colorize_keeps_size_and_luma_png_and_jpeg(client):
    r = _post(client, temperature=0.5)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(r.content))
    src = Image.open(io.BytesIO(SAMPLE))
    assert out.size == src.size and out.mode == "RGB"
    y = rgb_to_luma(np.asarray(out, dtype=float) / 255)
    assert np.abs(y - np.asarray(src.convert("L"), dtype=float) / 255).max() <= 0.5 / 255 + 1e-9
    assert r.headers["x-colorunet-id"]
    j = _post(client, format="jpeg")
    assert j.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(j.content)).format == "JPEG"
    a = client.post("/api/colorize", files={"image": ("c.png", SAMPLE, "image/png")}, headers={"Accept": "image/jpeg"})
    assert a.headers["content-type"] == "image/jpeg"


def test_recolor_reuses_the_prediction(client, monkeypatch):
    r = _post(client, temperature=1.0)
    key = r.headers["x-colorunet-id"]

    def no_network(*a, **k):
        raise AssertionError("recolor ran the network again")

    monkeypatch.setattr(web, "predict", no_network)
    same = client.post("/api/recolor", data={"id": key, "temperature": "1.0"})
    assert same.status_code == 200 and np.array_equal(np.asarray(Image.open(io.BytesIO(same.content))), np.asarray(Image.open(io.BytesIO(r.content))))
    vivid = client.post("/api/recolor", data={"id": key, "temperature": "0.2"})
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(vivid.content))), np.asarray(Image.open(io.BytesIO(r.content))))
    conf = client.post("/api/recolor", data={"id": key, "confidence": "true"})
    assert Image.open(io.BytesIO(conf.content)).mode == "L"
    assert client.post("/api/recolor", data={"id": "nope"}).status_code == 404


def test_refine_and_hints_through_the_api(client):
    r = _post(client)
    key = r.headers["x-colorunet-id"]
    hints = '{"points": [{"x": 100, "y": 300, "color": "#c0392b"}]}'
    hinted = client.post("/api/recolor", data={"id": key, "hints": hints})
    refined = client.post("/api/recolor", data={"id": key, "refine": "true"})
    plain = np.asarray(Image.open(io.BytesIO(r.content)), dtype=float)
    for resp in (hinted, refined):
        assert resp.status_code == 200
        assert np.abs(np.asarray(Image.open(io.BytesIO(resp.content)), dtype=float) - plain).mean() > 0.5
    a = np.asarray(Image.open(io.BytesIO(hinted.content)), dtype=float)[300, 100]
    assert a[0] > a[2] + 5  # reddish where the hint is
    bad = client.post("/api/recolor", data={"id": key, "hints": '{"points": [{"x": 1, "y": 1, "color": "red"}]}'})
    assert bad.status_code == 422 and "#rrggbb" in bad.json()["error"]
    assert client.post("/api/recolor", data={"id": key, "hints": "{nope"}).status_code == 422


@pytest.mark.parametrize(
    "kwargs,status,words",
    [
        ({"data": b"<html>hi</html>", "name": "page.html", "ctype": "text/html"}, 415, "unsupported type"),
        ({"data": b"<svg/>", "name": "d.svg", "ctype": "image/svg+xml"}, 415, "SVG"),
        ({"data": b"not really a png", "name": "fake.png"}, 400, "not an image"),
        ({"data": b"", "name": "empty.png"}, 400, "empty"),
        ({"data": SAMPLE[: len(SAMPLE) // 3], "name": "cut.png"}, 400, "cannot decode"),
        ({"data": _png(np.zeros((1100, 1000, 3), np.uint8)), "name": "big.png"}, 413, "pixels"),
        ({"temperature": -1}, 422, "temperature"),
        ({"mode": "median"}, 422, "mode"),
        ({"format": "gif"}, 422, "format"),
    ],
)
def test_errors_are_json_with_the_right_status(client, kwargs, status, words):
    r = _post(client, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_upload_limit_is_enforced_before_buffering(client):
    r = client.post("/api/colorize", content=b"x" * 10, headers={"Content-Length": str(3 * 2**20), "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: counted while streaming
        yield b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 2**16

    r = client.post("/api/colorize", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413


def test_busy_server_answers_503_with_retry_after(monkeypatch):
    app = web.create_app(web.ServerSettings(max_concurrent=1, queue_timeout_s=0.2))
    real_predict = web.predict

    def slow_predict(*a, **k):
        time.sleep(1.0)
        return real_predict(*a, **k)

    monkeypatch.setattr(web, "predict", slow_predict)

    async def both():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            send = lambda: c.post("/api/colorize", files={"image": ("c.png", SAMPLE, "image/png")})  # noqa: E731
            return await asyncio.gather(send(), send())

    statuses = sorted(r.status_code for r in asyncio.run(both()))
    assert statuses == [200, 503]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A real `colorunet serve` on a loopback port."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "colorunet", "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(proc.stdout.read().decode())
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_real_server_on_loopback(server):
    photo = _png(synthetic_photo(np.random.default_rng(0), 120, 90))
    r = httpx.post(server + "/api/colorize", files={"image": ("p.png", photo, "image/png")}, data={"temperature": "0.6"}, timeout=60)
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (90, 120)
    assert httpx.post(server + "/api/colorize", files={"image": ("t.txt", b"hello", "text/plain")}).status_code == 415


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_browser_upload_slider_download(server, tmp_path):
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("COLORUNET_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
        page.goto(server + "/")
        page.wait_for_function("document.querySelector('#limits').textContent.includes('parameters')")
        page.set_input_files("#files", str(default_sample()))
        page.wait_for_function("document.querySelector('.card .status').textContent.startsWith('Done')", timeout=60_000)
        before = page.evaluate("fetch(document.querySelector('.card .after').src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))")
        page.eval_on_selector("#temperature", "el => { el.value = '0.2'; el.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.querySelector('.card .status').textContent.startsWith('Updated')", timeout=60_000)
        after = page.evaluate("fetch(document.querySelector('.card .after').src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))")
        assert bytes(before) != bytes(after)
        # a colour hint: click on the photo, the image changes; undo brings it back
        grab = "fetch(document.querySelector('.card .after').src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))"
        src = lambda: page.get_attribute(".card .after", "src")  # noqa: E731
        page.eval_on_selector("#hintcolor", "el => { el.value = '#2e86c1'; }")
        box = page.locator(".card .after").bounding_box()
        old = src()
        page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.6)
        page.wait_for_function(f"document.querySelector('.card .after').src !== '{old}'", timeout=60_000)
        hinted = page.evaluate(grab)
        assert bytes(hinted) != bytes(after)
        old = src()
        page.click("#undo")
        page.wait_for_function(f"document.querySelector('.card .after').src !== '{old}'", timeout=60_000)
        assert bytes(page.evaluate(grab)) == bytes(after)
        page.screenshot(path=str(artifacts / "web.png"), full_page=True)
        with page.expect_download() as dl:
            page.click(".card .png")
        path = tmp_path / "download.png"
        dl.value.save_as(path)
        browser.close()
    img = Image.open(path)
    a = np.asarray(img, dtype=float)
    assert img.size == Image.open(default_sample()).size and img.mode == "RGB"
    assert np.abs(a[..., 0] - a[..., 2]).mean() > 1.0  # colour, not grey
    assert (artifacts / "web.png").stat().st_size > 10_000


def test_serve_binds_loopback_by_default_and_warns_otherwise(monkeypatch, capsys):
    import uvicorn

    from colorunet.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    assert main(["serve"]) == 0
    assert calls[-1] == ("127.0.0.1", 8000) and "warning" not in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert calls[-1] == ("0.0.0.0", 9000) and "other computers on the network" in capsys.readouterr().err
