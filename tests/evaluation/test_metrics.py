"""The metrics give known answers on synthetic videos before anyone trusts them on styled ones."""

import math

import cv2
import numpy as np
import pytest

from l2d_obs.evaluation.metrics import (
    WarpError,
    edge_correlation,
    edge_magnitude,
    input_flow,
    mean_edge_correlation,
    mean_psnr,
    mean_spatial_std,
    occlusion_mask,
    psnr,
    spatial_std,
    temporal_flicker,
    video_report,
    warp,
    warp_error,
)

SIZE = 128
MARGIN = 32  # the scene is cut from a larger canvas so shifts never pull in border pixels


def texture(h: int, w: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """Smoothed colour noise in 20..220: textured everywhere, so flow is well defined."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (noise * 200 + 20).astype(np.uint8)


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Content moved by (dx, dy) pixels (sub-pixel shifts interpolate bilinearly)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def crop(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img[MARGIN : MARGIN + SIZE, MARGIN : MARGIN + SIZE])


@pytest.fixture(scope="module")
def canvas() -> np.ndarray:
    return texture(SIZE + 2 * MARGIN, SIZE + 2 * MARGIN, seed=0)


@pytest.fixture(scope="module")
def moving(canvas) -> list[np.ndarray]:
    # Integer and sub-pixel steps, drifting right and down, then back a little.
    steps = [(1.0, 0.0), (1.5, 0.5), (0.0, 2.0), (2.0, 1.0), (0.3, 0.7), (-1.0, 0.5)] * 4
    frames, x, y = [crop(canvas)], 0.0, 0.0
    for dx, dy in steps[:23]:
        x, y = x + dx, y + dy
        frames.append(crop(shifted(canvas, x, y)))
    return frames


@pytest.fixture(scope="module")
def moving_error(moving) -> WarpError:
    return warp_error(moving, moving)


def interior(a: np.ndarray, border: int = 16) -> np.ndarray:
    return a[border:-border, border:-border]


# ----------------------------------------------------------------------------------- warp error


def test_static_video_has_no_warp_error_and_no_flicker(canvas):
    static = [crop(canvas)] * 24
    err = warp_error(static, static)
    assert err.mean < 1e-3
    assert len(err.per_frame) == 23
    assert err.valid_fraction > 0.99
    assert temporal_flicker(static) == 0.0


def test_moving_input_scored_against_itself_is_consistent(moving_error):
    assert moving_error.mean < 0.02
    assert len(moving_error.per_frame) == 23
    assert 0.8 < moving_error.valid_fraction <= 1.0  # only the edges that leave the frame are excluded


def test_brightness_flicker_on_a_moving_video_is_caught(moving, moving_error):
    rng = np.random.default_rng(3)
    gains = rng.uniform(0.8, 1.2, len(moving))
    flicker = [np.clip(f.astype(np.float32) * g, 0, 255).astype(np.uint8) for f, g in zip(moving, gains)]
    err = warp_error(flicker, moving)  # flow from the clean input, as the paper does
    assert err.mean >= 5 * moving_error.mean
    assert err.mean > 0.03


def test_warp_error_rejects_unpaired_videos(moving):
    with pytest.raises(ValueError, match="frames"):
        warp_error(moving[:5], moving[:6])
    with pytest.raises(ValueError, match="at least 2"):
        warp_error(moving[:1], moving[:1])
    small = [cv2.resize(f, (64, 64)) for f in moving[:4]]
    with pytest.raises(ValueError, match="same size"):
        warp_error(small, moving[:4])


# ----------------------------------------------------------------------------------- flow, warp


def test_flow_recovers_a_known_shift_and_warp_undoes_it(canvas):
    prev, nxt = crop(canvas), crop(shifted(canvas, 3, 2))  # 3 px right, 2 px down
    flow = input_flow(prev, nxt)
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    median = np.median(interior(flow).reshape(-1, 2), axis=0)
    assert abs(median[0] - 3) < 0.25 and abs(median[1] - 2) < 0.25
    back = warp(nxt, flow)
    assert back.shape == prev.shape and back.dtype == np.uint8
    assert np.abs(interior(back).astype(np.float32) - interior(prev)).mean() < 1.5  # of 255


def test_farneback_is_an_alternative_and_unknown_methods_fail(canvas):
    prev, nxt = crop(canvas), crop(shifted(canvas, 2, 0))
    median = np.median(interior(input_flow(prev, nxt, method="farneback")).reshape(-1, 2), axis=0)
    assert abs(median[0] - 2) < 0.5 and abs(median[1]) < 0.5
    with pytest.raises(ValueError, match="unknown flow method"):
        input_flow(prev, nxt, method="nope")


def test_warp_with_a_synthetic_flow_samples_where_it_points():
    img = np.arange(20 * 30, dtype=np.float32).reshape(20, 30)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0] = 2.0  # out(x, y) = img(x + 2, y)
    out = warp(img, flow)
    assert np.array_equal(out[:, :-2], img[:, 2:])
    assert np.array_equal(out[:, -1], img[:, -1])  # replicated border


# ------------------------------------------------------------------------------------ occlusion


def test_occlusion_mask_known_answers_on_synthetic_flows():
    h, w = 40, 50
    fw = np.zeros((h, w, 2), np.float32)
    fw[..., 0] = 3.0
    bw = -fw
    valid = occlusion_mask(fw, bw)
    assert valid[:, : w - 3].all()  # consistent and inside
    assert not valid[:, w - 3 :].any()  # points past the right edge
    bw_broken = bw.copy()
    bw_broken[10:20, 23:33] = (5.0, 4.0)  # the target area does not map back
    valid = occlusion_mask(fw, bw_broken)
    assert not valid[10:20, 20:30].any()
    assert valid[25:, : w - 3].all()


def test_occlusion_mask_marks_covered_and_uncovered_background():
    bg, fg = texture(SIZE, SIZE, seed=1), texture(64, 64, seed=2)
    d = 8

    def scene(x: int) -> np.ndarray:
        img = bg.copy()
        img[32:96, x : x + 48] = fg[:, :48]  # an opaque square on a static background
        return img

    a, b = scene(30), scene(30 + d)  # the square moves d px right
    fw, bw = input_flow(a, b), input_flow(b, a)
    forward_valid, backward_valid = occlusion_mask(fw, bw), occlusion_mask(bw, fw)
    # Background of `a` just right of the square is covered in `b`: nothing to compare it with.
    assert forward_valid[36:92, 78 : 78 + d].mean() < 0.4
    # Background left of the square appears in `b`: seen from `b`, it has no match in `a`.
    assert backward_valid[36:92, 30 : 30 + d].mean() < 0.4
    # The rest moves consistently (static background, the square's inside).
    assert forward_valid[:24].mean() > 0.9 and forward_valid[104:].mean() > 0.9
    assert forward_valid[36:92, 34:74].mean() > 0.9


def test_occlusion_mask_is_mostly_valid_for_a_pure_shift(canvas):
    prev, nxt = crop(canvas), crop(shifted(canvas, 3, 2))
    valid = occlusion_mask(input_flow(prev, nxt), input_flow(nxt, prev))
    assert valid.mean() > 0.9
    assert not valid[:, -2:].any() and not valid[-1:, :].any()  # moved out of the frame


# ------------------------------------------------------------------------ structure and change


def test_edge_correlation_known_answers(canvas):
    x = crop(canvas)
    assert edge_correlation(x, x) == pytest.approx(1.0)
    other = crop(texture(SIZE + 2 * MARGIN, SIZE + 2 * MARGIN, seed=5))
    assert abs(edge_correlation(x, other)) < 0.1
    blurred = cv2.GaussianBlur(x, (0, 0), 1.5)
    assert 0.7 < edge_correlation(x, blurred) < 1.0
    flat = np.full_like(x, 128)
    assert edge_correlation(x, flat) == 0.0
    assert mean_edge_correlation([x, x], [x, x]) == pytest.approx(1.0)
    mag = edge_magnitude(x)
    assert mag.shape == (SIZE, SIZE) and mag.dtype == np.float32 and mag.min() >= 0


def test_psnr_known_answers(canvas):
    x = crop(canvas)  # values in 20..220, so +10 never clips
    assert psnr(x, x) == math.inf
    assert psnr(x, x + 10) == pytest.approx(20 * math.log10(255 / 10))
    assert mean_psnr([x, x], [x + 10, x + 10]) == pytest.approx(20 * math.log10(255 / 10))


def test_spatial_std_and_flicker_known_answers(canvas):
    flat = np.full((16, 16, 3), 77, np.uint8)
    assert spatial_std(flat) == 0.0
    half = flat.copy()
    half[:, 8:] = 177  # gray values 77 and 177 in equal parts: std 50
    assert spatial_std(half) == pytest.approx(50.0)
    assert mean_spatial_std([flat, half]) == pytest.approx(25.0)
    assert temporal_flicker([flat, flat + 4, flat]) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        temporal_flicker([flat])


def test_metric_errors_on_mismatched_input(canvas):
    x = crop(canvas)
    with pytest.raises(ValueError, match="size"):
        psnr(x, x[:64])
    with pytest.raises(ValueError, match="size"):
        edge_correlation(x, x[:, :64])
    with pytest.raises(ValueError, match="uint8"):
        psnr(x.astype(np.float32), x)
    with pytest.raises(ValueError, match="frames"):
        mean_psnr([x, x], [x])
    with pytest.raises(ValueError, match="frames"):
        video_report([x, x], [x, x, x])


def test_video_report(moving):
    rng = np.random.default_rng(4)
    noisy = [np.clip(f.astype(np.int16) + rng.integers(-20, 21, f.shape), 0, 255).astype(np.uint8) for f in moving]
    report = video_report(noisy, moving, targets=moving)
    d = report.as_dict()
    assert d["frames"] == 24 and d["width"] == SIZE and d["height"] == SIZE
    assert d["psnr_input_to_target"] is None  # identical: infinite PSNR has no JSON form
    assert d["psnr_to_target"] == pytest.approx(d["psnr_to_input"])
    assert 20 < d["psnr_to_input"] < 30
    assert d["warp_error"] > d["input_warp_error"]
    assert 0 < d["edge_correlation"] < 1
    assert video_report(moving, moving).psnr_to_target is None
