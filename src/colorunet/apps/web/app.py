"""``colorunet serve``: a local web page and an HTTP API over the same colorize pipeline.

Endpoints (the OpenAPI schema is at /openapi.json, interactive docs at /docs):

- ``POST /api/colorize``: multipart, the photo in ``image``; optional fields
  ``temperature``, ``mode``, ``confidence`` (true: return the confidence map
  instead), ``refine`` (propagate confident colours), ``hints`` (JSON, as for
  ``colorize --hints``), ``reference`` (a colour photo whose palette to follow, as
  ``colorize --reference``) with ``reference_strength`` (0 to 4, default 1),
  ``format`` (png or jpeg; else from ``Accept``). Returns the image, the
  input's size, and an ``X-Colorunet-Id`` header naming the cached prediction.
- ``POST /api/recolor``: ``id`` plus the same decode fields (``reference``
  included): decodes the cached class probabilities again (no network run), for
  the page's sliders. A reference's palette is remembered by a hash of its bytes
  (a few, least recently used go first), so sending the same file again with
  another strength does not decode it again.
- ``GET /api/health``, ``GET /api/model``.

Errors are JSON, ``{"error": "..."}``: 400 not an image (or a Host this server
is not), 403 a cross-site request, 404 unknown id or path, 405 wrong method, 413
too large (bytes or pixels), 415 unsupported type, 422 bad field, 503 busy (with
Retry-After). Uploads are read into memory under a byte limit enforced while the
body streams in; nothing is written to disk by the app (not even a spooled
temporary file for a large upload).

Requests must name this server in their Host header (localhost, 127.0.0.1 or
[::1], or the address given to ``--host``), and a request that changes something
(POST) from a browser must come from a page of this server (its Origin): a web
page elsewhere cannot reach the server through DNS rebinding or a cross-site
form. Every answer says ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
import numpy as np
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from ...core.decode import MODES
from ...core.images import PNG_COMPRESS_LEVEL, ImageError, ImageTooLarge, open_image
from ...core.values import MAX_TEMPERATURE, MIN_TEMPERATURE, ValueRangeError, check_temperature
from ...inference.pipeline import (
    DEFAULT_WORKING_SIZE,
    Prediction,
    check_reference_options,
    check_refine_options,
    confidence_image,
    get_model,
    predict,
    render,
)
from ...inference.reference import (
    DEFAULT_STRENGTH,
    MAX_STRENGTH,
    class_bias,
    reference_histogram,
    reference_pixels,
    strength_for,
)
from ...inference.refine import HintError, Hints, parse_hints_json

STATIC = Path(__file__).parent / "static"
RETRY_AFTER_S = 5
#: The names of this computer that a server on a loopback address answers to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class ServerSettings:
    """Limits and choices of one server.

    Attributes:
        model: model spec ("default", a file or a run folder).
        max_upload_bytes: largest request body accepted.
        max_pixels: largest photo (width × height) accepted, checked before decoding.
        max_concurrent: colorizations run at once; others wait up to ``queue_timeout_s``.
        queue_timeout_s: how long a request waits for a slot before a 503.
        cache_entries: predictions kept for /api/recolor (least recently used go first).
        reference_entries: reference palettes kept, by a hash of the file's bytes.
        working_size: short side the network runs at.
    """

    model: str = "default"
    max_upload_bytes: int = 30 * 2**20
    max_pixels: int = 50_000_000
    max_concurrent: int = 2
    queue_timeout_s: float = 10.0
    cache_entries: int = 8
    reference_entries: int = 16
    working_size: int = DEFAULT_WORKING_SIZE
    #: Host names (without port) requests may address; None accepts any (a server
    #: opened to the network with --host 0.0.0.0, whose names it cannot know).
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_NAMES


class BodyLimit:
    """ASGI middleware: refuse bodies over the limit, by Content-Length or while streaming."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = _error(413, f"upload too large: {int(length):,} bytes, the limit is {self.limit:,}")
            return await response(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"upload too large: over the limit of {self.limit:,} bytes")
            return message

        return await self.app(scope, limited_receive, send)


def _host_name(value: str) -> str:
    """The host of a Host header or an Origin's authority, without port or IPv6 brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class RequestGuard:
    """ASGI middleware: the Host (and, for a POST, the Origin) must name this server; every answer gets nosniff.

    DNS rebinding points a name the attacker controls at 127.0.0.1: the browser
    then sends ``Host: evil.example``, which is refused. A cross-site form or
    fetch carries its page's ``Origin``, which must be one of the allowed hosts.
    """

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None):
        self.app = app
        self.allowed = None if allowed_hosts is None else {_host_name(h) for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        problem = None
        if self.allowed is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if _host_name(host) not in self.allowed:
                problem = (400, f"Host {host!r} is not this server; use http://localhost:PORT/")
            elif scope["method"] not in ("GET", "HEAD", "OPTIONS") and b"origin" in headers:
                origin = headers[b"origin"].decode("latin-1")
                authority = origin.split("://", 1)[1] if "://" in origin else ""
                if _host_name(authority) not in self.allowed:
                    problem = (403, f"cross-site request from {origin!r} refused: use this server's own page")

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        if problem is not None:
            return await _error(*problem)(scope, receive, send_nosniff)
        return await self.app(scope, receive, send_nosniff)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class PredictionCache:
    """The last few predictions, by id, for re-decoding (thread-safe LRU).

    An id is 128 random bits, and answers only the client address that made it.
    (On a loopback server every local program shares 127.0.0.1: there, the id's
    randomness is the only protection.)
    """

    def __init__(self, entries: int):
        self.entries = entries
        self._items: OrderedDict[str, tuple[Prediction, str]] = OrderedDict()  # id -> (prediction, client address)
        self._lock = threading.Lock()

    def put(self, pred: Prediction, owner: str = "") -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = (pred, owner)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return key

    def get(self, key: str, owner: str = "") -> Prediction | None:
        """The prediction stored under ``key`` by the same ``owner`` (client address), else None."""
        with self._lock:
            item = self._items.get(key)
            if item is None or item[1] != owner:
                return None
            self._items.move_to_end(key)
            return item[0]


class ReferenceCache:
    """Reference palettes (h_ref, one share per colour class) by the SHA-256 of the file's bytes (thread-safe LRU).

    A palette is a few hundred numbers at most, so a few of them cost nothing to keep,
    and moving the strength slider re-sends the same file: it is hashed, not decoded again.
    """

    def __init__(self, entries: int):
        self.entries = entries
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            hist = self._items.get(key)
            if hist is not None:
                self._items.move_to_end(key)
            return hist

    def put(self, key: str, hist: np.ndarray) -> None:
        with self._lock:
            self._items[key] = hist
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)


@dataclass
class ReferenceUpload:
    """A reference photo as it arrived: its bytes, the name messages call it by, and the strength asked for."""

    data: bytes
    label: str
    strength: float


def _response_format(fmt: str | None, accept: str) -> str:
    if fmt:
        return fmt
    accept = accept.lower()
    return "jpeg" if "image/jpeg" in accept and "image/png" not in accept else "png"


def _encode(img: Image.Image, fmt: str) -> Response:
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=92)
    else:
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return Response(buf.getvalue(), media_type=f"image/{fmt}")


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    model = get_model(settings.model)  # load once, fail at start rather than on the first request
    cache = PredictionCache(settings.cache_entries)
    palettes = ReferenceCache(settings.reference_entries)
    slots = asyncio.Semaphore(settings.max_concurrent)
    app = FastAPI(title="colorunet", version=_version(), description="Automatic colorization of photographs (ColorUNet).")
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts)  # outermost: checked first
    # Starlette spools a file part over 1 MB to a temporary file on disk; uploads are
    # bounded by max_upload_bytes, so keep them in memory (the app writes no files).
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, settings.max_upload_bytes + 1)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own HTTPException too, and the router's 404 and 405
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors())
        return _error(422, problems)

    async def run_limited(fn, *args):
        try:
            await asyncio.wait_for(slots.acquire(), timeout=settings.queue_timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(
                503, "busy: too many colorizations at once, try again shortly", {"Retry-After": str(RETRY_AFTER_S)}
            ) from None
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            slots.release()

    def check_upload_type(filename: str, content_type: str | None) -> None:
        if content_type and not content_type.startswith("image/") and content_type != "application/octet-stream":
            raise HTTPException(415, f"{filename}: unsupported type {content_type}; send a photo (JPEG, PNG, WebP, TIFF, BMP)")
        if content_type == "image/svg+xml":
            raise HTTPException(415, f"{filename}: SVG is a drawing format, not a photo; send a JPEG, PNG, WebP, TIFF or BMP")

    def decode_upload(data: bytes, filename: str) -> Image.Image:
        if not data:
            raise HTTPException(400, f"{filename}: empty file")
        try:
            return open_image(data, settings.max_pixels, name=filename)
        except ImageTooLarge as e:
            raise HTTPException(413, str(e)) from None
        except ImageError as e:
            raise HTTPException(400, str(e)) from None

    def parse_hint_field(text: str | None) -> Hints | None:
        if not text:
            return None
        try:
            return parse_hints_json(text, "hints")
        except HintError as e:
            raise HTTPException(422, str(e)) from None

    def check_temperature_field(value: float | None) -> float | None:
        try:
            return None if value is None else check_temperature(value)
        except ValueRangeError as e:
            raise HTTPException(422, str(e)) from None

    async def reference_field(upload: UploadFile | None, strength: float | None) -> ReferenceUpload | None:
        """Check the reference fields and read the file (not decode it: that happens in a worker thread)."""
        if upload is not None and not upload.filename and not upload.size:
            upload = None  # an HTML form's empty file input
        if upload is None:
            if strength is not None:
                raise HTTPException(422, "reference_strength: needs a reference photo (the reference field)")
            return None
        try:
            check_reference_options(model)
            strength = strength_for(upload, strength)
        except (ValueError, ValueRangeError) as e:  # a regression model; NaN, inf or out of range
            raise HTTPException(422, str(e)) from None
        label = f"reference {Path(upload.filename or 'upload').name}"  # for messages only
        check_upload_type(label, upload.content_type)
        return ReferenceUpload(await upload.read(), label, strength)

    def reference_bias(ref: ReferenceUpload | None) -> np.ndarray | None:
        """The logit bias for a reference: its palette from the cache, else decoded (under the photo's limits) and kept."""
        if ref is None:
            return None
        key = hashlib.sha256(ref.data).hexdigest()
        hist = palettes.get(key)
        if hist is None:
            img = decode_upload(ref.data, ref.label)  # the photo's byte, pixel and decompression-bomb checks
            q = model.quantizer
            try:
                hist = reference_histogram(reference_pixels(img, ref.label), q.centers, q.space, ref.label)
            except ImageError as e:  # greyscale or fully transparent: an image, but no colours to follow
                raise HTTPException(422, str(e)) from None
            palettes.put(key, hist)
        return class_bias(hist, model.quantizer.prior, ref.strength)

    def answer(
        pred: Prediction,
        key: str,
        temperature: float | None,
        mode: str,
        confidence: bool,
        fmt: str,
        refine: bool = False,
        hints: Hints | None = None,
        bias: np.ndarray | None = None,
    ) -> Response:
        if refine or hints:
            try:
                check_refine_options(pred.model, refine)
            except ValueError as e:
                raise HTTPException(422, str(e)) from None
        result = render(pred, temperature, mode, confidence=confidence, refine=refine, hints=hints, bias=bias)
        if confidence and result.confidence_top is not None:
            response = _encode(confidence_image(result.confidence_top), fmt)
        else:
            response = _encode(result.image, fmt)
        response.headers["X-Colorunet-Id"] = key
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_info() -> dict:
        q = model.quantizer
        return {
            "name": model.metadata.get("name", model.name),
            "parameters": model.num_parameters,
            "architecture": model.config.to_dict(),
            "temperature": model.temperature,
            "modes": list(MODES),
            "quantizer": None
            if q is None
            else {"grid_size": q.grid_size, "classes": q.num_classes, "centers_uv": q.centers.round(4).tolist()},
            "training_data": model.metadata.get("data"),
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels},
            "reference": {
                "available": model.config.head == "classification",
                "default_strength": DEFAULT_STRENGTH,
                "max_strength": MAX_STRENGTH,
            },
        }

    @app.post("/api/colorize", responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
    async def colorize_endpoint(
        request: Request,
        image: UploadFile = File(..., description="the photo"),
        temperature: float | None = Form(
            None, description=f"annealed-mean temperature, {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}; default: the model's"
        ),
        mode: Literal["annealed", "mean", "mode"] = Form("annealed"),
        confidence: bool = Form(False, description="return the confidence map (white = sure) instead of the colorization"),
        refine: bool = Form(False, description="propagate the colours of the network's most confident pixels (removes stains)"),
        hints: str | None = Form(
            None,
            max_length=200_000,
            description='JSON: {"points": [{"x", "y", "color"}], "strokes": [{"points", "color", "width"}]}',
        ),
        reference: UploadFile | None = File(None, description="a color photo whose palette to follow (colorize --reference)"),
        reference_strength: float | None = Form(
            None, description=f"how hard to follow the reference, 0 to {MAX_STRENGTH:g}; default {DEFAULT_STRENGTH:g}"
        ),
        format: Literal["png", "jpeg"] | None = Form(None, description="png or jpeg; default from Accept, else png"),
    ) -> Response:
        hint_set = parse_hint_field(hints)
        temperature = check_temperature_field(temperature)
        owner = request.client.host if request.client else ""
        data = await image.read()
        name = Path(image.filename or "upload").name  # for messages only; never touches the filesystem
        check_upload_type(name, image.content_type)
        ref = await reference_field(reference, reference_strength)
        fmt = _response_format(format, request.headers.get("accept", ""))

        def work():
            # decoding runs here, in a worker thread: a large photo must not stall the event loop
            img = decode_upload(data, name)
            bias = reference_bias(ref)  # before the network runs: a bad reference fails fast
            pred = predict(img, model, settings.working_size)
            return answer(pred, cache.put(pred, owner), temperature, mode, confidence, fmt, refine, hint_set, bias)

        return await run_limited(work)

    @app.post("/api/recolor", responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
    async def recolor_endpoint(
        request: Request,
        id: str = Form(..., max_length=64, description="X-Colorunet-Id of an earlier colorization"),
        temperature: float | None = Form(None, description=f"{MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}"),
        mode: Literal["annealed", "mean", "mode"] = Form("annealed"),
        confidence: bool = Form(False),
        refine: bool = Form(False),
        hints: str | None = Form(None, max_length=200_000),
        reference: UploadFile | None = File(None, description="a colour photo whose palette to follow (colorize --reference)"),
        reference_strength: float | None = Form(
            None, description=f"how hard to follow the reference, 0 to {MAX_STRENGTH:g}; default {DEFAULT_STRENGTH:g}"
        ),
        format: Literal["png", "jpeg"] | None = Form(None),
    ) -> Response:
        hint_set = parse_hint_field(hints)
        temperature = check_temperature_field(temperature)
        pred = cache.get(id, request.client.host if request.client else "")
        if pred is None:
            raise HTTPException(404, "unknown or expired id: upload the photo again")
        ref = await reference_field(reference, reference_strength)
        fmt = _response_format(format, request.headers.get("accept", ""))

        def work():
            return answer(pred, id, temperature, mode, confidence, fmt, refine, hint_set, reference_bias(ref))

        return await run_limited(work)

    return app


def _version() -> str:
    from ... import __version__

    return __version__
