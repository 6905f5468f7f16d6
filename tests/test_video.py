"""Video: the smoother's maths, cut detection, and short clips made here through the real CLI."""

import math
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from conftest import learnable_photo
from PIL import Image

from colorunet.apps.video import (
    FrameColorizer,
    TemporalSmoother,
    flicker,
    histogram_distance,
    luma_histogram,
    read_frames,
)


def test_smoother_weights_by_hand():
    s = TemporalSmoother(window=2, decay=math.log(2))  # weights 1, 1/2, 1/4 for the newest three
    maps = [torch.tensor([[[[p]], [[1 - p]]]]) for p in (0.2, 0.4, 0.8, 1.0)]  # (1, 2, 1, 1)
    out = [s.push(m)[0, 0, 0, 0].item() for m in maps]
    assert out[0] == pytest.approx(0.2, abs=1e-3)
    assert out[1] == pytest.approx((0.4 + 0.5 * 0.2) / 1.5, abs=1e-3)
    assert out[2] == pytest.approx((0.8 + 0.5 * 0.4 + 0.25 * 0.2) / 1.75, abs=1e-3)
    assert out[3] == pytest.approx((1.0 + 0.5 * 0.8 + 0.25 * 0.4) / 1.75, abs=1e-3)  # 0.2 has left the window
    s.reset()
    assert s.push(maps[0])[0, 0, 0, 0].item() == pytest.approx(0.2, abs=1e-3)


def test_running_sum_matches_a_direct_sum_over_a_long_stream():
    torch.manual_seed(0)
    s = TemporalSmoother(window=20, decay=0.2)
    stream = [torch.softmax(torch.randn(1, 8, 4, 4), 1) for _ in range(600)]
    for t, p in enumerate(stream):
        got = s.push(p)
    w = torch.tensor([math.exp(-0.2 * i) for i in range(21)])
    direct = sum(wi * stream[-1 - i].half().float() for i, wi in enumerate(w))
    torch.testing.assert_close(got, direct / direct.sum(1, keepdim=True), atol=1e-4, rtol=0)


def test_histogram_distance_sees_cuts():
    rng = np.random.default_rng(0)
    a = learnable_photo(rng, 48, 64)
    b = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)  # same shot, a touch brighter
    c = (a * 0.45).astype(np.uint8)  # another, darker shot
    h = [luma_histogram(np.asarray(Image.fromarray(x).convert("L")) / 255) for x in (a, b, c)]
    assert histogram_distance(h[0], h[1]) < 0.17 < histogram_distance(h[1], h[2])


def test_flicker_metric():
    still = [np.full((8, 8, 3), 120, np.uint8)] * 3
    assert flicker(iter(still)) == 0
    # same luma, chroma alternating: red-ish / blue-ish greys of equal Y
    from colorunet.core.color import yuv_to_rgb

    f1 = (np.clip(yuv_to_rgb(np.array([0.5, 0.05, 0.05])), 0, 1) * 255).round().astype(np.uint8)
    f2 = (np.clip(yuv_to_rgb(np.array([0.5, -0.05, -0.05])), 0, 1) * 255).round().astype(np.uint8)
    frames = [np.broadcast_to(f, (8, 8, 3)).copy() for f in (f1, f2, f1)]
    assert flicker(iter(frames)) == pytest.approx(200, rel=0.05)  # |ΔU| + |ΔV| ≈ 0.2, ×1000


def make_clip(path, frames, fps=10, audio=True):
    """A short H.264 clip (with a sine audio track) from RGB frames."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = c.add_stream("aac", rate=22050) if audio else None
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(v.encode(None))
        if a is not None:
            t = np.arange(int(22050 * len(frames) / fps)) / 22050
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, samples.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="flt", layout="mono")
                af.sample_rate = 22050
                c.mux(a.encode(af))
            c.mux(a.encode(None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    rng = np.random.default_rng(1)
    a, b = learnable_photo(rng, 48, 64), (learnable_photo(rng, 48, 64) * 0.45).astype(np.uint8)  # b: a darker shot
    frames = [np.roll(a, i, axis=1) for i in range(6)] + [np.roll(b, i, axis=0) for i in range(6)]  # a cut after 6
    path = tmp_path_factory.mktemp("clip") / "film.mp4"
    make_clip(path, frames)
    return path


@pytest.mark.slow
def test_video_cli_keeps_timing_size_and_audio(clip, tmp_path):
    out = tmp_path / "colour film.mp4"
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "video", str(clip), "-o", str(out)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert "12 frames, 1 shot changes" in r.stderr
    with av.open(str(clip)) as src, av.open(str(out)) as dst:
        vs, vd = src.streams.video[0], dst.streams.video[0]
        assert (vd.codec_context.width, vd.codec_context.height) == (64, 48)
        assert vd.average_rate == vs.average_rate and vd.codec_context.name == "h264"
        assert [s.type for s in dst.streams] == ["video", "audio"]
        assert abs(float(dst.duration - src.duration)) / 1e6 < 0.15
    frames = list(read_frames(out))
    assert len(frames) == 12
    assert np.abs(frames[3][..., 0].astype(int) - frames[3][..., 2]).mean() > 1  # coloured
    assert not list(tmp_path.glob(".*.part"))


def test_interrupted_video_leaves_no_output(clip, tmp_path, monkeypatch):
    from colorunet.apps import video

    calls = {"n": 0}
    real = FrameColorizer.__call__

    def interrupt_on_third(self, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, frame)

    monkeypatch.setattr(FrameColorizer, "__call__", interrupt_on_third)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        video.colorize_video(clip, out, FrameColorizer(), progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_frame_folders(tmp_path):
    rng = np.random.default_rng(2)
    src = tmp_path / "frames"
    src.mkdir()
    for i in (1, 2, 10):  # natural order: 1, 2, 10
        Image.fromarray(learnable_photo(rng, 24, 32)).save(src / f"frame{i}.png")
    out = tmp_path / "colored"
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "video", str(src), "-o", str(out), "-q"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["frame1.png", "frame10.png", "frame2.png"]
    assert Image.open(out / "frame10.png").size == (32, 24)


def test_smoothing_reduces_flicker_on_a_noisy_static_clip():
    rng = np.random.default_rng(3)
    base = learnable_photo(rng, 48, 64).astype(int)
    # the same shot with a little sensor noise per frame: per-frame colours jitter
    frames = [
        Image.fromarray(np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)).convert("L") for _ in range(12)
    ]
    raw = [np.asarray(FrameColorizer(smooth=False)(f)) for f in frames]
    fc = FrameColorizer(smooth=True)
    smooth = [np.asarray(fc(f)) for f in frames]
    assert fc.cuts == 0
    assert flicker(iter(smooth), static_luma=0.1) < 0.6 * flicker(iter(raw), static_luma=0.1)


@pytest.mark.slow
def test_bad_inputs(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a film")
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "video", str(junk), "-o", str(tmp_path / "o.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "junk.mp4" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "colorunet", "video", str(junk), "-o", str(tmp_path / "o.xyz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "unknown video format" in r.stderr


def _textured(rng, h, w, mean, spread):
    """A grey frame with smooth texture: luma around ``mean`` with about ``spread`` of variation."""
    small = rng.uniform(-1, 1, (h // 8, w // 8))
    tex = (
        np.asarray(Image.fromarray(((small + 1) * 127.5).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC), float)
        / 127.5
        - 1
    )
    return np.clip(mean + spread * tex, 0, 1)


def _shots_found(frames) -> tuple[list[int], int]:
    """The frames where smoothing restarts, and how many shot changes were counted."""
    from colorunet.apps.video import ShotDetector

    det = ShotDetector()
    return [i for i, f in enumerate(frames) if det.new_shot(luma_histogram(f))], det.shots


def test_shot_detection_finds_a_dissolve_and_a_slow_fade_that_the_cut_test_misses():
    rng = np.random.default_rng(7)
    a, b = _textured(rng, 48, 64, 0.7, 0.2), _textured(rng, 48, 64, 0.3, 0.15)
    dissolve = [a] * 10 + [a + (b - a) * i / 30 for i in range(1, 31)] + [b] * 10
    steps = [histogram_distance(luma_histogram(x), luma_histogram(y)) for x, y in zip(dissolve, dissolve[1:])]
    assert max(steps) < 0.17  # no single step looks like a cut...
    found, shots = _shots_found(dissolve)
    # ...but the dissolve restarts the smoothing while it runs, and counts as one shot change
    assert shots == 1 and found and all(10 < i <= 45 for i in found)
    # a fade to black and up again, over 200 frames: one shot change, with a restart on the way out of the black
    fade = [a * (1 - i / 100) for i in range(101)] + [b * i / 100 for i in range(1, 101)]
    found, shots = _shots_found(fade)
    assert shots == 1 and any(100 < i < 110 for i in found)


def test_shot_detection_stays_quiet_within_a_panning_shot():
    rng = np.random.default_rng(8)
    wide = _textured(rng, 48, 400, 0.5, 0.35)  # a slow pan over a varied scene
    pan = [wide[:, x : x + 64] for x in range(0, 336, 4)]
    assert _shots_found(pan) == ([], 0)
    # and a real cut is still a cut
    assert _shots_found(pan[:10] + [_textured(rng, 48, 64, 0.15, 0.1)] * 5) == ([10], 1)
