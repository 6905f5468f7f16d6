"""The web app: API through FastAPI's TestClient, a real uvicorn process, and a real browser."""

import asyncio
import base64
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

from colorunet.core.color import rgb_to_luma  # noqa: E402
from colorunet.inference.pipeline import default_sample  # noqa: E402
from colorunet.apps.web import app as web  # noqa: E402

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
    assert same.status_code == 200 and np.array_equal(
        np.asarray(Image.open(io.BytesIO(same.content))), np.asarray(Image.open(io.BytesIO(r.content)))
    )
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


# ---------- "Colour like…": a reference photo's palette ----------

RED_REFERENCE = _png(np.full((60, 80, 3), (200, 30, 30), np.uint8))


def _mean_a_star(data: bytes) -> float:
    from skimage.color import rgb2lab

    return float(rgb2lab(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) / 255.0)[..., 1].mean())


def _with_reference(
    client, url="/api/colorize", reference=RED_REFERENCE, ref_name="red.png", ref_type="image/png", photo=True, **fields
):
    files = {"reference": (ref_name, reference, ref_type)}
    if photo:
        files["image"] = ("camera.png", SAMPLE, "image/png")
    return client.post(url, files=files, data={k: str(v) for k, v in fields.items()})


def test_reference_turns_the_photo_toward_its_palette(client, monkeypatch):
    plain = _post(client)
    red = _with_reference(client)
    assert red.status_code == 200, red.text
    assert _mean_a_star(red.content) > _mean_a_star(plain.content) + 3  # redder: a* is Lab's green-red axis
    assert Image.open(io.BytesIO(red.content)).size == Image.open(io.BytesIO(SAMPLE)).size
    # recolor with the same reference gives the same picture, without running the network again
    key = plain.headers["x-colorunet-id"]
    monkeypatch.setattr(web, "predict", lambda *a, **k: pytest.fail("recolor ran the network again"))
    again = _with_reference(client, "/api/recolor", photo=False, id=key)
    assert again.status_code == 200 and again.content == red.content
    # strength 0 is no reference at all; a larger strength pushes harder; no reference field is the plain photo
    assert _with_reference(client, "/api/recolor", photo=False, id=key, reference_strength=0).content == plain.content
    strong = _with_reference(client, "/api/recolor", photo=False, id=key, reference_strength=3)
    assert _mean_a_star(strong.content) > _mean_a_star(red.content)
    assert client.post("/api/recolor", data={"id": key}).content == plain.content
    # the explicit default equals the implicit one
    assert _with_reference(client, "/api/recolor", photo=False, id=key, reference_strength=1).content == red.content
    info = client.get("/api/model").json()["reference"]
    assert info == {"available": True, "default_strength": 1.0, "max_strength": 4.0}


def test_reference_palette_is_decoded_once_per_file(client, monkeypatch):
    key = _post(client).headers["x-colorunet-id"]
    ref = _png(np.full((40, 50, 3), (30, 160, 40), np.uint8))
    calls = []
    real = web.reference_pixels
    monkeypatch.setattr(web, "reference_pixels", lambda *a, **k: calls.append(1) or real(*a, **k))
    for strength in (0.5, 1.5, 2.5):
        assert (
            _with_reference(client, "/api/recolor", reference=ref, photo=False, id=key, reference_strength=strength).status_code
            == 200
        )
    assert len(calls) == 1


@pytest.mark.parametrize(
    "kwargs,status,words",
    [
        ({"reference": b"not really a png", "ref_name": "fake.png"}, 400, "reference fake.png: not an image"),
        ({"reference": b"", "ref_name": "empty.png"}, 400, "reference empty.png: empty"),
        ({"reference": SAMPLE[: len(SAMPLE) // 3], "ref_name": "cut.png"}, 400, "reference cut.png"),
        ({"reference": b"<svg/>", "ref_name": "d.svg", "ref_type": "image/svg+xml"}, 415, "reference d.svg: SVG"),
        ({"reference": b"hello", "ref_name": "t.txt", "ref_type": "text/plain"}, 415, "reference t.txt: unsupported type"),
        (
            {"reference": _png(np.zeros((1100, 1000, 3), np.uint8)), "ref_name": "big.png"},
            413,
            "reference big.png: 1000×1100 pixels",
        ),
        ({"reference": SAMPLE, "ref_name": "camera.png"}, 422, "grayscale"),
        (
            {"reference": _png(np.full((20, 20, 3), 128, np.uint8)), "ref_name": "grey.png"},
            422,
            "reference grey.png: is grayscale",
        ),
        ({"reference": _png(np.zeros((9, 9, 4), np.uint8)), "ref_name": "clear.png"}, 422, "transparent"),
        ({"reference_strength": "nan"}, 422, "reference strength"),
        ({"reference_strength": "inf"}, 422, "reference strength"),
        ({"reference_strength": -0.1}, 422, "reference strength"),
        ({"reference_strength": 4.5}, 422, "reference strength"),
    ],
)
def test_reference_errors(client, kwargs, status, words):
    for url, extra in (("/api/colorize", {}), ("/api/recolor", {"photo": False, "id": _post(client).headers["x-colorunet-id"]})):
        r = _with_reference(client, url, **kwargs, **extra)
        assert r.status_code == status, (url, r.text)
        assert words in r.json()["error"], (url, r.json())


def test_reference_strength_without_a_reference_and_regression_models(client):
    r = _post(client, reference_strength=2)
    assert r.status_code == 422 and "needs a reference photo" in r.json()["error"]
    key = _post(client).headers["x-colorunet-id"]
    r = client.post("/api/recolor", data={"id": key, "reference_strength": "2"})
    assert r.status_code == 422 and "needs a reference photo" in r.json()["error"]
    from colorunet.core.model import ColorUNet, ColorUNetConfig
    from colorunet.core.weights import ColorModel

    regression = ColorModel(ColorUNet(ColorUNetConfig(widths=(8, 16, 32), head="regression")).eval(), None)
    c = TestClient(web.create_app(web.ServerSettings(model=regression)), base_url="http://127.0.0.1:8000")
    r = _with_reference(c)
    assert r.status_code == 422 and "needs a classification model" in r.json()["error"]
    assert _post(c).status_code == 200  # without a reference it colorizes as before


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
    r = client.post(
        "/api/colorize",
        content=b"x" * 10,
        headers={"Content-Length": str(3 * 2**20), "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413 and "too large" in r.json()["error"]

    def chunks():  # no Content-Length: counted while streaming
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "colorunet", "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
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


@pytest.mark.slow
def test_real_server_on_loopback(server):
    photo = _png(synthetic_photo(np.random.default_rng(0), 120, 90))
    r = httpx.post(
        server + "/api/colorize", files={"image": ("p.png", photo, "image/png")}, data={"temperature": "0.6"}, timeout=60
    )
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (90, 120)
    assert httpx.post(server + "/api/colorize", files={"image": ("t.txt", b"hello", "text/plain")}).status_code == 415


def test_serve_binds_loopback_by_default_and_warns_otherwise(monkeypatch, capsys):
    import uvicorn

    from colorunet.apps.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    assert main(["serve"]) == 0
    assert calls[-1] == ("127.0.0.1", 8000) and "warning" not in capsys.readouterr().err
    assert main(["serve", "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert calls[-1] == ("0.0.0.0", 9000) and "other computers on the network" in capsys.readouterr().err


# ---------- the page in a real browser (Debian's chromium, driven by Playwright), as a person uses it ----------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = os.environ.get("COLORUNET_ARTIFACTS")  # screenshots go here when set (docs/web_desktop.png, docs/web_phone.png)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: .ci/run installs Debian's chromium (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """One tab on the page, with the failed requests and script errors it saw."""

    def __init__(self, browser, server, **context):
        self.ctx = browser.new_context(accept_downloads=True, **context)
        self.page = self.ctx.new_page()
        self.server, self.failed, self.errors = server, [], []
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append((r.status, r.url.replace(server, ""))))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(server + "/")
        self.page.wait_for_function("document.querySelector('#limits').textContent.includes('parameters')")

    def card(self, name: str) -> str:
        return f'.card[aria-label="{name}"]'

    def add(self, *paths, wait=True):
        self.page.set_input_files("#files", [str(p) for p in paths])
        if wait:
            for p in paths:
                self.wait_status(Path(p).name, "Done")

    def wait_status(self, name: str, prefix: str, timeout=60_000):
        """Until the card says ``prefix`` and no request of it is in flight."""
        sel = self.card(name)
        self.page.wait_for_function(
            "([sel, prefix]) => { const c = document.querySelector(sel);"
            " return c && !c.classList.contains('busy') && c.querySelector('.status').textContent.startsWith(prefix); }",
            arg=[sel, prefix],
            timeout=timeout,
        )
        return self.page.locator(f"{sel} .status").text_content()

    def change(self, name: str, action) -> str:
        """Do ``action``, then wait until the card has shown the answer to the request it caused; its status."""
        seq = self.state(name, "c.seq")
        action()
        self.page.wait_for_function(
            "([name, seq]) => { const c = state.cards.find(c => c.name === name);"
            " return c.seq > seq && !c.el.classList.contains('busy'); }",
            arg=[name, seq],
            timeout=60_000,
        )
        return self.page.locator(f"{self.card(name)} .status").text_content()

    def shown(self, name: str) -> bytes:
        """The bytes of the image the card shows now."""
        b64 = self.page.evaluate(
            "async sel => { const b = await (await fetch(document.querySelector(sel).src)).blob();"
            " return await new Promise(r => { const f = new FileReader(); f.onload = () => r(f.result.split(',')[1]); "
            "f.readAsDataURL(b); }); }",
            self.card(name) + " .after",
        )
        return base64.b64decode(b64)

    def state(self, name: str, expr: str):
        return self.page.evaluate(f"() => {{ const c = state.cards.find(c => c.name === {name!r}); return {expr}; }}")

    def download(self, selector: str, tmp_path: Path) -> tuple[str, Image.Image]:
        with self.page.expect_download() as dl:
            self.page.click(selector)
        path = tmp_path / dl.value.suggested_filename
        dl.value.save_as(path)
        img = Image.open(path)
        img.load()
        return dl.value.suggested_filename, img

    def set_value(self, selector: str, value: str):
        """Move a slider or pick a value as a person would: the input event fires."""
        self.page.eval_on_selector(
            selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", value
        )

    def close(self):
        assert not self.errors, self.errors
        self.ctx.close()


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)


def _recolor(server: str, key: str, **fields) -> bytes:
    r = httpx.post(
        server + "/api/recolor", data={"id": key, "format": "png", **{k: str(v).lower() for k, v in fields.items()}}, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.content


def _stroke_mask(points, width: float, shape) -> np.ndarray:
    from PIL import ImageDraw

    mask = Image.new("L", (shape[1], shape[0]))
    ImageDraw.Draw(mask).line([tuple(p) for p in points], fill=255, width=int(round(width)))
    return np.asarray(mask) > 0


@pytest.mark.slow
def test_browser_mouse_stroke_colours_the_region(browser, server, tmp_path):
    """Issue 19.1: mouse down, moves, up over the photo paints a stroke; the stroke region takes the stroke's hue."""
    t = Page(browser, server, viewport={"width": 1280, "height": 900})
    page = t.page
    t.add(default_sample())
    plain = t.shown("camera.png")
    page.eval_on_selector("#hintcolor", "el => { el.value = '#2e86c1'; }")  # blue
    drags = []
    page.evaluate("() => document.addEventListener('dragstart', () => window.__drags = (window.__drags || 0) + 1, true)")
    box = page.locator(".card .compare").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.12  # the sky, right of the man
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 16):
        page.mouse.move(x0 + box["width"] * 0.025 * i, y0 + box["height"] * 0.004 * i, steps=2)
    assert t.change("camera.png", page.mouse.up) == "Updated."
    drags.append(page.evaluate("window.__drags || 0"))
    hints = t.state("camera.png", "c.hints")
    assert drags == [0] and len(hints["strokes"]) == 1 and hints["points"] == []
    stroke = hints["strokes"][0]
    assert len(stroke["points"]) >= 10 and stroke["color"] == "#2e86c1"
    a, b = _rgb(plain), _rgb(t.shown("camera.png"))
    mask = _stroke_mask(stroke["points"], stroke["width"], a.shape)
    assert mask.sum() > 200
    before, after = a[mask].mean(axis=0), b[mask].mean(axis=0)
    assert after[2] - after[0] > 20, after  # blue, not red: the stroke's hue
    assert (after[2] - after[0]) - (before[2] - before[0]) > 20, (before, after)
    # the colour fills the region: sky 20 px below the stroke turned blue too
    below = np.roll(mask, 20, axis=0)
    assert (b[below][:, 2] - b[below][:, 0]).mean() > (a[below][:, 2] - a[below][:, 0]).mean() + 10
    # the page draws the stroke it keeps
    assert page.locator(".card .marks polyline").count() == 2
    if ARTIFACTS:
        Path(ARTIFACTS).mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)
        page.screenshot(path=str(Path(ARTIFACTS) / "web_desktop.png"))
    # undo brings back the unhinted photo, byte for byte
    assert t.change("camera.png", lambda: page.click("#undo")) == "Updated."
    assert t.shown("camera.png") == plain and t.state("camera.png", "c.hints.strokes.length") == 0
    t.close()


# A slow network for the answers named: the answer arrives late even if the page cancelled the request meanwhile,
# which is the worst case for the page (it must drop the answer itself).
SLOW_ANSWERS = """(() => {
window.__slow = () => false;
const realFetch = window.fetch;
window.fetch = async (url, opts) => {
  const slow = opts && opts.body instanceof FormData && window.__slow(opts.body);
  const r = await realFetch(url, slow ? { ...opts, signal: undefined } : opts);
  if (slow) await new Promise(res => setTimeout(res, 1500));
  return r;
};
})()"""


@pytest.mark.slow
def test_browser_newest_change_wins_over_slow_answers(browser, server):
    """Issue 19.2: a hint then Clear within 0.4 s, and quick slider moves, end showing the latest state."""
    t = Page(browser, server, viewport={"width": 1280, "height": 800})
    page = t.page
    page.evaluate(SLOW_ANSWERS)
    t.add(default_sample())
    key = t.state("camera.png", "c.id")
    plain = t.shown("camera.png")
    assert plain == _recolor(server, key, temperature="0.7", mode="annealed", confidence=False, refine=False)
    # the hint's answer comes back late; Clear's is fast
    page.evaluate("() => window.__slow = f => f.has('hints')")
    box = page.locator(".card .compare").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.2)
    page.wait_for_timeout(250)
    page.click("#clearhints")
    page.wait_for_timeout(2500)  # well after the slow answer came back
    assert t.wait_status("camera.png", "Updated") == "Updated."
    assert t.state("camera.png", "c.hints") == {"points": [], "strokes": []}
    assert t.shown("camera.png") == plain
    # quick slider moves: the earlier answers are slow, the last one is not
    page.evaluate("() => window.__slow = f => f.get('temperature') !== '1.6'")
    for value in ("0.3", "1", "1.6"):
        t.set_value("#temperature", value)
        page.wait_for_timeout(200)  # past the page's debounce: each move sends a request
    page.wait_for_timeout(2500)
    t.wait_status("camera.png", "Updated")
    assert page.input_value("#temperature") == "1.6" and page.text_content("#tval") == "1.60"
    assert t.shown("camera.png") == _recolor(server, key, temperature="1.6", mode="annealed", confidence=False, refine=False)
    t.close()


@pytest.mark.slow
def test_browser_more_photos_than_the_server_keeps(browser, server, tmp_path):
    """Issue 19.3: ten photos, the server keeps eight; every photo stays editable (sent again from the browser)."""
    rng = np.random.default_rng(3)
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"p{i}.png")
        Image.fromarray(synthetic_photo(rng, 96, 128)).save(paths[-1])
    names = [p.name for p in paths]
    t = Page(browser, server, viewport={"width": 1280, "height": 800})
    page = t.page
    t.add(*paths)
    statuses = page.eval_on_selector_all(".card .status", "els => els.map(e => e.textContent)")
    assert page.locator(".card").count() == 10 and page.locator(".card.failed").count() == 0, statuses
    first = {n: t.shown(n) for n in names}
    ids = {n: t.state(n, "c.id") for n in names}
    # the first photo, chosen again: a slider move
    page.click(t.card("p0.png") + " .name")
    assert page.text_content("#target") == "for p0.png"
    status = t.change("p0.png", lambda: t.set_value("#temperature", "0.2"))
    assert status == "Updated.", (status, t.failed)
    # then all of them: which two the server forgot depends on which uploads finished first, but two it did
    page.click("#applyall")
    page.wait_for_function(
        "() => state.cards.every(c => c.settings.temperature === '0.2' && !c.el.classList.contains('busy')"
        " && c.el.querySelector('.status').textContent === 'Updated.')",
        timeout=60_000,
    )
    for n in names:
        assert t.shown(n) != first[n], n
    forgotten = t.failed.count((404, "/api/recolor"))
    assert forgotten >= 2, t.failed
    assert sum(t.state(n, "c.id") != ids[n] for n in names) >= 2  # sent again: the server has new ids for them
    assert set(t.failed) == {(404, "/api/recolor")}, t.failed
    t.failed.clear()
    # a JPEG download (the photo is sent again if the server has forgotten it meanwhile)
    name, img = t.download(t.card("p9.png") + " .jpeg", tmp_path)
    assert (name, img.format, img.size) == ("p9_color.jpg", "JPEG", (128, 96))
    assert not t.failed or set(t.failed) == {(404, "/api/recolor")}, t.failed
    t.failed.clear()
    t.close()


@pytest.mark.slow
def test_browser_confidence_map_download_and_legend(browser, server, tmp_path):
    """Issue 19.4: with the confidence map shown, Download PNG saves the colour photo; the map has its own name and a legend."""
    t = Page(browser, server, viewport={"width": 1280, "height": 800})
    page = t.page
    t.add(default_sample())
    assert not page.is_visible(".card .legend") and not page.is_visible(".card .confpng")
    t.change("camera.png", lambda: page.check("#confidence"))
    assert Image.open(io.BytesIO(t.shown("camera.png"))).mode == "L"
    assert page.is_visible(".card .legend") and "white = sure" in page.text_content(".card .legend")
    name, img = t.download(".card .png", tmp_path)
    a = np.asarray(img, dtype=float)
    assert name == "camera_color.png" and img.mode == "RGB" and np.abs(a[..., 0] - a[..., 2]).mean() > 1.0
    name, img = t.download(".card .confpng", tmp_path)
    assert name == "camera_confidence.png" and img.mode == "L" and img.size == Image.open(default_sample()).size
    name, img = t.download(".card .jpeg", tmp_path)
    assert name == "camera_color.jpg" and img.format == "JPEG" and img.mode == "RGB"
    t.close()


@pytest.mark.slow
def test_browser_phone_shows_the_result_after_upload(browser, server):
    """Issue 19.5: on a phone the result card is scrolled into view; strokes work with a finger too."""
    t = Page(browser, server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = t.page
    results_top = page.evaluate("document.querySelector('#results').getBoundingClientRect().top")
    assert results_top > 844 - 50  # at the bottom of the screen: a new photo would start below it
    t.add(default_sample())
    page.wait_for_function(
        "() => { const r = document.querySelector('.card .compare').getBoundingClientRect(); return r.top >= 0 && r.bottom <= "
        "innerHeight; }",
        timeout=5000,
    )
    box = page.locator(".card .compare").bounding_box()
    assert box["width"] > 300  # nearly the whole width of the phone
    if ARTIFACTS:
        page.screenshot(path=str(Path(ARTIFACTS) / "web_phone.png"))
    # a finger stroke: real touch input, as the phone's screen sends it
    cdp = t.ctx.new_cdp_session(page)
    x, y, w = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15, box["width"]

    def touch(kind, i):
        points = [] if kind == "touchEnd" else [{"x": x + i * w / 25, "y": y, "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 0)
    for i in range(1, 11):
        touch("touchMove", i)
    t.change("camera.png", lambda: touch("touchEnd", 10))
    assert t.state("camera.png", "c.hints.strokes.length") == 1
    t.close()


@pytest.mark.slow
def test_browser_settings_hint_files_cards_and_details(browser, server, tmp_path):
    """Issue 19.6–10: selection and apply-to-all, hint files, failed cards, resizes, keyboard, drops, favicon."""
    t = Page(browser, server, viewport={"width": 1600, "height": 900})
    page = t.page
    # 10: no 404 (favicon), hint buttons wait for a photo, everything reachable with Tab
    assert not t.failed and httpx.get(server + "/favicon.ico").status_code == 200
    for b in ("#undo", "#clearhints", "#exporthints", "#importhints-button", "#applyall"):
        assert page.is_disabled(b), b
    focused = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert "choose" in focused
    with page.expect_file_chooser() as chooser:
        page.focus("#choose")
        page.keyboard.press("Enter")
    chooser.value.set_files(
        [str(default_sample()), str(_write(tmp_path / "second.png", synthetic_photo(np.random.default_rng(1), 120, 160)))]
    )
    t.wait_status("camera.png", "Done")
    t.wait_status("second.png", "Done")
    assert page.is_enabled("#importhints-button") and page.is_enabled("#applyall")
    page.focus("#importhints-button")  # a button now: reachable with the keyboard
    # 9: a result is wide on a wide screen, and before/after stay aligned after a resize
    assert page.locator(t.card("camera.png")).bounding_box()["width"] >= 540
    for size in ({"width": 1600, "height": 900}, {"width": 1000, "height": 700}, {"width": 700, "height": 900}):
        page.set_viewport_size(size)
        page.wait_for_timeout(100)
        a = page.locator(t.card("camera.png") + " .after").bounding_box()
        b = page.locator(t.card("camera.png") + " .before").bounding_box()
        assert all(abs(a[k] - b[k]) < 0.5 for k in a), (size, a, b)
        assert abs(a["width"] / a["height"] - 1.0) < 0.01  # the 512×512 sample, not squashed
    page.set_viewport_size({"width": 1600, "height": 900})
    # 6: the selected photo is marked and named; apply to all copies its settings
    page.click(t.card("second.png") + " .name")
    assert page.locator(".card.selected").count() == 1 and page.is_visible(t.card("second.png") + " .badge")
    assert page.text_content("#target") == "for second.png" and not page.is_visible(t.card("camera.png") + " .badge")
    t.change("second.png", lambda: (t.set_value("#temperature", "1.5"), page.select_option("#mode", "mean")))
    assert t.state("camera.png", "c.settings.mode") == "annealed"  # only the selected photo changed
    t.change("camera.png", lambda: page.click("#applyall"))
    assert t.state("camera.png", "c.settings") == {
        "temperature": "1.5",
        "mode": "mean",
        "confidence": False,
        "refine": False,
        "reference": None,
        "strength": "1",
    }
    page.click(t.card("camera.png") + " .name")
    assert page.input_value("#mode") == "mean"  # the controls show the selected photo's settings
    # 7: a bad hints file is refused with a message; a good one imports, and Undo takes it back
    bad = tmp_path / "bad_hints.json"
    bad.write_text('{"points": [{"x": 10, "y": 10, "color": "red"}]}')
    page.set_input_files("#importhints", str(bad))
    page.wait_for_selector("#message:not([hidden])")
    assert "not #rrggbb" in page.text_content("#message") and "Nothing was imported" in page.text_content("#message")
    assert t.state("camera.png", "c.hints.points.length") == 0
    outside = tmp_path / "other_photo_hints.json"
    outside.write_text('{"points": [{"x": 4000, "y": 10, "color": "#ff0000"}]}')
    page.set_input_files("#importhints", str(outside))
    page.wait_for_function("document.querySelector('#message').textContent.includes('outside this photo')")
    page.click("#message .dismiss")  # error messages can be dismissed
    assert page.is_hidden("#message")
    good = tmp_path / "good_hints.json"
    good.write_text(
        '{"points": [{"x": 400, "y": 80, "color": "#2e86c1"}], "strokes": [{"points": [[300, 60], [460, 70]], '
        '"color": "#2e86c1", "width": 4}]}'
    )
    hinted_before = t.shown("camera.png")
    t.change("camera.png", lambda: page.set_input_files("#importhints", str(good)))
    assert t.state("camera.png", "c.hints.strokes.length") == 1 and t.shown("camera.png") != hinted_before
    t.change("camera.png", lambda: page.click("#undo"))
    assert t.state("camera.png", "c.hints") == {"points": [], "strokes": []} and t.shown("camera.png") == hinted_before
    # 8: a photo the server refuses: a clear message, no dead controls, no broken images, and it can be removed
    fake = tmp_path / "notaphoto.png"
    fake.write_bytes(b"this is not a PNG")
    t.add(fake, wait=False)
    card = t.card("notaphoto.png")
    page.wait_for_selector(card + ".failed")
    assert "not an image" in page.text_content(card + " .status") and "Pillow" not in page.text_content(card + " .status")
    for hidden in (" .png", " .jpeg", " .split", " .after", " .before", " .retry"):
        assert not page.is_visible(card + hidden), hidden
    page.click(card + " .remove")
    assert page.locator(card).count() == 0
    t.failed.remove((400, "/api/colorize"))
    # 10: a photo dropped outside the drop zone is added, and the page stays
    page.evaluate("""async () => {
        const c = document.createElement('canvas'); c.width = 64; c.height = 48;
        const g = c.getContext('2d'); g.fillStyle = '#777'; g.fillRect(0, 0, 64, 48);
        g.fillStyle = '#ccc'; g.fillRect(10, 10, 30, 20);
        const blob = await new Promise(r => c.toBlob(r, 'image/png'));
        const dt = new DataTransfer(); dt.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
        const target = document.querySelector('.card .status');
        for (const type of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
    }""")
    t.wait_status("dropped.png", "Done")
    assert page.url == server + "/" and page.locator(".card").count() == 3
    assert not t.failed, t.failed
    t.close()


def _write(path: Path, a: np.ndarray) -> Path:
    Image.fromarray(a).save(path)
    return path


@pytest.mark.slow
def test_browser_colour_like_a_reference_on_a_phone(browser, server, tmp_path):
    """ "Colour like…": a red reference, chosen with the keyboard, turns the shown photo redder, as the API does;
    the strength slider re-decodes (0 is no reference), Clear takes it away, a grey reference is refused with a message."""
    t = Page(browser, server, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = t.page
    assert page.is_disabled("#refstrength") and page.is_disabled("#clearref") and not page.is_visible("#refthumb")
    t.add(default_sample())
    plain = t.shown("camera.png")
    red = _write(tmp_path / "red_dress.png", np.full((60, 80, 3), (200, 30, 30), np.uint8))
    with page.expect_file_chooser() as chooser:
        page.focus("#chooseref")
        page.keyboard.press("Enter")
    assert t.change("camera.png", lambda: chooser.value.set_files(str(red))) == "Updated."
    reddened = t.shown("camera.png")
    assert _mean_a_star(reddened) > _mean_a_star(plain) + 3
    assert page.is_visible("#refthumb") and page.text_content("#refname") == "red_dress.png" and page.is_enabled("#refstrength")
    assert page.evaluate("document.querySelector('#refthumb').naturalWidth") == 80  # the thumbnail shows the reference
    assert page.text_content("#reference-target") == "for camera.png"
    # the page shows what the API answers for the same photo, settings and reference
    key = t.state("camera.png", "c.id")
    s = t.state("camera.png", "({temperature: c.settings.temperature, strength: c.settings.strength})")
    api = httpx.post(
        server + "/api/recolor",
        files={"reference": ("red_dress.png", red.read_bytes(), "image/png")},
        data={"id": key, "temperature": s["temperature"], "reference_strength": s["strength"], "format": "png"},
        timeout=60,
    )
    assert api.status_code == 200 and api.content == reddened
    # the strength slider re-decodes: stronger is redder, 0 is no reference
    t.change("camera.png", lambda: t.set_value("#refstrength", "3"))
    assert page.text_content("#rsval") == "3.0" and _mean_a_star(t.shown("camera.png")) > _mean_a_star(reddened)
    t.change("camera.png", lambda: t.set_value("#refstrength", "0"))
    assert t.shown("camera.png") == plain
    t.change("camera.png", lambda: t.set_value("#refstrength", "1"))
    assert t.shown("camera.png") == reddened
    # the panel fits a phone's width: nothing sticks out sideways
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    box = page.locator("#reference").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    # Clear: back to the plain photo, the slider waits for a reference again
    assert t.change("camera.png", lambda: page.click("#clearref")) == "Updated."
    assert t.shown("camera.png") == plain and page.is_disabled("#refstrength") and not page.is_visible("#refthumb")
    # a greyscale reference is refused with a message; the photo keeps what it showed
    grey = _write(tmp_path / "grey.png", np.full((40, 40, 3), 128, np.uint8))
    t.change("camera.png", lambda: page.set_input_files("#reffile", str(grey)))
    page.wait_for_selector("#message.error:not([hidden])")
    assert "Reference not used" in page.text_content("#message") and "grayscale" in page.text_content("#message")
    assert "grayscale" in page.text_content(t.card("camera.png") + " .status")
    assert t.state("camera.png", "c.settings.reference") is None and page.text_content("#refname") == "No reference"
    assert t.shown("camera.png") == plain
    t.failed.remove((422, "/api/recolor"))
    # a reference dropped onto the panel is taken as the reference, not as another photo to colorize
    t.change(
        "camera.png",
        lambda: page.evaluate("""async () => {
        const c = document.createElement('canvas'); c.width = 30; c.height = 20;
        const g = c.getContext('2d'); g.fillStyle = '#c81e1e'; g.fillRect(0, 0, 30, 20);
        const blob = await new Promise(r => c.toBlob(r, 'image/png'));
        const dt = new DataTransfer(); dt.items.add(new File([blob], 'dropped_red.png', {type: 'image/png'}));
        const target = document.querySelector('#refname');
        for (const type of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
    }"""),
    )
    assert page.locator(".card").count() == 1 and page.text_content("#refname") == "dropped_red.png"
    assert _mean_a_star(t.shown("camera.png")) > _mean_a_star(plain) + 3
    # the fine-tuning tip is there, folded away until opened
    assert not page.is_visible(".tips pre")
    page.click(".tips summary")
    assert "--init default" in page.text_content(".tips pre") and "colorunet serve --model runs/mine" in page.text_content(
        ".tips pre"
    )
    assert not t.failed, t.failed
    t.close()
