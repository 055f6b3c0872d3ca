"""Numbers for a styled video against its input: structure kept, pixels changed, temporal consistency.

Frames are HxWx3 uint8 RGB arrays; a video is a sequence of them (or an FxHxWx3 array).

- *Structure*: ``edge_correlation`` — Pearson correlation of edge-magnitude maps; a style that keeps
  the scene's layout keeps its edges where they were.
- *Change*: ``psnr`` against the input (low = strongly styled) and, when a reference styling exists,
  against that target.
- *Temporal consistency*: ``warp_error`` as in Live2Diff (Table 1): the optical flow of the *input*
  video carries output frame t+1 back onto frame t; the mean absolute difference over pixels the
  flow can see (forward-backward consistent, inside the frame) measures flicker that the scene's
  motion does not explain. It is in [0, 1] (pixel values / 255).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np

Video = Sequence[np.ndarray]

# Forward-backward consistency thresholds (Sundaram et al. 2010, as used by Ruder et al. 2016).
_FB_ALPHA = 0.01
_FB_BETA = 0.5


# ----------------------------------------------------------------------------------------- checks


def _check_frame(frame: np.ndarray, what: str = "frame") -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise ValueError(f"{what} must be an HxWx3 uint8 RGB array, got shape {shape} dtype {dtype}")
    return frame


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    _check_frame(a, "first frame")
    _check_frame(b, "second frame")
    if a.shape != b.shape:
        raise ValueError(f"frames differ in size: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}")


def _check_videos(xs: Video, ys: Video, min_frames: int = 1, names: tuple[str, str] = ("outputs", "inputs")) -> None:
    """Paired videos: same length (>= min_frames) and every frame the same HxWx3 uint8 shape."""
    if len(xs) != len(ys):
        raise ValueError(f"{names[0]} have {len(xs)} frames but {names[1]} have {len(ys)}; they must pair up")
    if len(xs) < min_frames:
        raise ValueError(f"need at least {min_frames} frame(s), got {len(xs)}")
    shape = _check_frame(xs[0], f"{names[0]}[0]").shape
    for i, (x, y) in enumerate(zip(xs, ys)):
        for name, f in ((names[0], x), (names[1], y)):
            _check_frame(f, f"{name}[{i}]")
            if f.shape != shape:
                raise ValueError(
                    f"{name}[{i}] is {f.shape[1]}x{f.shape[0]} but {names[0]}[0] is {shape[1]}x{shape[0]}; "
                    "all frames of both videos must have the same size (resize outputs to the input size first)"
                )


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# ------------------------------------------------------------------------------------- structure


def edge_magnitude(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude (float32 HxW) of the lightly blurred gray image in [0, 1] scale."""
    gray = _gray(_check_frame(rgb)).astype(np.float32) / 255.0
    gray = cv2.GaussianBlur(gray, (0, 0), sigmaX=1.0)  # sigma 1: ignore pixel noise, keep real edges
    dx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(dx, dy)


def edge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two frames' edge magnitudes; 0.0 when either map is constant."""
    _check_pair(a, b)
    ea = edge_magnitude(a).astype(np.float64).ravel()
    eb = edge_magnitude(b).astype(np.float64).ravel()
    ea -= ea.mean()
    eb -= eb.mean()
    denom = math.sqrt(float(ea @ ea) * float(eb @ eb))
    if denom <= 1e-20:  # a flat frame has no edges to agree with
        return 0.0
    return float(np.clip(float(ea @ eb) / denom, -1.0, 1.0))


def mean_edge_correlation(outputs: Video, inputs: Video) -> float:
    _check_videos(outputs, inputs)
    return float(np.mean([edge_correlation(o, i) for o, i in zip(outputs, inputs)]))


# ---------------------------------------------------------------------------------------- change


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for peak 255; ``inf`` for identical frames."""
    _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def mean_psnr(xs: Video, ys: Video) -> float:
    """Mean of per-frame PSNR (``inf`` if any pair is identical: that pair is noise-free)."""
    _check_videos(xs, ys, names=("first video", "second video"))
    return float(np.mean([psnr(x, y) for x, y in zip(xs, ys)]))


def spatial_std(rgb: np.ndarray) -> float:
    """Standard deviation of gray values (0..255): how far a frame is from flat."""
    return float(_gray(_check_frame(rgb)).astype(np.float64).std())


def mean_spatial_std(frames: Video) -> float:
    if len(frames) < 1:
        raise ValueError("need at least 1 frame")
    return float(np.mean([spatial_std(f) for f in frames]))


def temporal_flicker(frames: Video) -> float:
    """Mean absolute difference (0..255) between consecutive frames; meant for static inputs."""
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames to measure flicker, got {len(frames)}")
    _check_videos(frames[1:], frames[:-1], names=("frames", "frames"))
    diffs = [np.mean(np.abs(b.astype(np.int16) - a.astype(np.int16))) for a, b in zip(frames[:-1], frames[1:])]
    return float(np.mean(diffs))


# ------------------------------------------------------------------------------------------ flow


def _dis() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def input_flow(prev: np.ndarray, next: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense optical flow (H,W,2 float32, pixels) from ``prev`` to ``next``: prev(x) ~ next(x + flow(x)).

    ``method="dis"`` (default) is OpenCV's DIS flow, preset MEDIUM: fast and accurate on textured
    content. ``method="farneback"`` is OpenCV's Farnebäck flow, smoother but blurrier at motion edges.
    """
    _check_pair(prev, next)
    g0, g1 = _gray(prev), _gray(next)
    if method == "dis":
        return _dis().calc(g0, g1, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise ValueError(f"unknown flow method {method!r}; use 'dis' or 'farneback'")


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = image(x + flow(x)), bilinear, edges replicated.

    With ``flow`` from prev to next, ``warp(next, flow)`` reconstructs prev. Keeps ``image``'s dtype
    (pass float32 to avoid rounding to uint8).
    """
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != image.shape[:2]:
        raise ValueError(f"flow of shape {flow.shape} does not match an image of shape {image.shape}")
    map_x, map_y = _sample_grid(flow.astype(np.float32, copy=False))
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(flow_fw: np.ndarray, flow_bw: np.ndarray) -> np.ndarray:
    """True where ``flow_fw`` (t->t+1) is trustworthy: forward-backward consistent and inside the frame.

    A pixel x is consistent when the backward flow at its target, bw(x + fw(x)), undoes fw(x):
    |fw + bw~|^2 < 0.01 (|fw|^2 + |bw~|^2) + 0.5. Pixels that become hidden in t+1 (or whose target
    leaves the frame) fail the test — there is nothing in t+1 to compare them with.
    """
    if flow_fw.shape != flow_bw.shape or flow_fw.ndim != 3 or flow_fw.shape[2] != 2:
        raise ValueError(f"flows must both be HxWx2 and equal in shape, got {flow_fw.shape} and {flow_bw.shape}")
    fw = flow_fw.astype(np.float32, copy=False)
    bw_warped = warp(flow_bw.astype(np.float32, copy=False), fw)
    round_trip = np.sum((fw + bw_warped) ** 2, axis=-1)
    bound = _FB_ALPHA * (np.sum(fw**2, axis=-1) + np.sum(bw_warped**2, axis=-1)) + _FB_BETA
    h, w = fw.shape[:2]
    tx, ty = _sample_grid(fw)
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (round_trip < bound) & inside


@dataclass(frozen=True)
class FlowPair:
    """Flow between input frames t and t+1, and where the forward flow is valid."""

    forward: np.ndarray  # t -> t+1, HxWx2 float32
    backward: np.ndarray  # t+1 -> t
    valid: np.ndarray  # HxW bool, from occlusion_mask(forward, backward)


def flow_pairs(inputs: Video, method: str = "dis") -> list[FlowPair]:
    """Flows of every consecutive input pair (computed once, reusable for several outputs)."""
    _check_videos(inputs, inputs, min_frames=2, names=("inputs", "inputs"))
    pairs = []
    for a, b in zip(inputs[:-1], inputs[1:]):
        fw, bw = input_flow(a, b, method), input_flow(b, a, method)
        pairs.append(FlowPair(forward=fw, backward=bw, valid=occlusion_mask(fw, bw)))
    return pairs


# ------------------------------------------------------------------------------------ warp error


@dataclass(frozen=True)
class WarpError:
    """Temporal inconsistency of a video given its input's motion, in [0, 1] (pixels/255)."""

    mean: float  # mean over frame pairs
    per_frame: list[float]  # one per pair (t, t+1): len(frames) - 1
    valid_fraction: float  # mean share of pixels the flow could judge


def warp_error(outputs: Video, inputs: Video, pairs: Sequence[FlowPair] | None = None, method: str = "dis") -> WarpError:
    """Live2Diff's warp error: input flow carries output t+1 back to t; MAE over non-occluded pixels.

    ``pairs`` may hold precomputed ``flow_pairs(inputs)`` to score several outputs of one input.
    A pair with no valid pixel at all (never seen on real footage) is scored over the whole frame
    rather than left undefined.
    """
    _check_videos(outputs, inputs, min_frames=2)
    if pairs is None:
        pairs = flow_pairs(inputs, method)
    elif len(pairs) != len(inputs) - 1:
        raise ValueError(f"{len(pairs)} flow pairs given for {len(inputs)} input frames; need {len(inputs) - 1}")
    per_frame: list[float] = []
    fractions: list[float] = []
    for t, pair in enumerate(pairs):
        # Float warping: rounding back to uint8 would add up to 0.5/255 of error on its own.
        back = warp(outputs[t + 1].astype(np.float32), pair.forward)
        diff = np.abs(back - outputs[t].astype(np.float32)).mean(axis=-1) / 255.0
        valid = pair.valid if pair.valid.any() else np.ones_like(pair.valid)
        per_frame.append(float(diff[valid].mean()))
        fractions.append(float(pair.valid.mean()))
    return WarpError(mean=float(np.mean(per_frame)), per_frame=per_frame, valid_fraction=float(np.mean(fractions)))


# ---------------------------------------------------------------------------------------- report


def _json_number(x: float | None) -> float | None:
    # JSON has no infinity: an identical-frames PSNR is reported as null.
    return None if x is None or not math.isfinite(x) else x


@dataclass(frozen=True)
class VideoReport:
    frames: int
    width: int
    height: int
    edge_correlation: float  # outputs vs inputs, mean per frame
    psnr_to_input: float  # dB
    spatial_std: float  # outputs, 0..255
    input_spatial_std: float
    warp_error: float  # outputs, [0, 1]
    input_warp_error: float  # the inputs scored against themselves: the flow's own floor
    warp_valid_fraction: float
    psnr_to_target: float | None = None  # outputs vs a reference styling, if given
    psnr_input_to_target: float | None = None  # how far the reference itself is from the input

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: _json_number(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


def video_report(outputs: Video, inputs: Video, targets: Video | None = None) -> VideoReport:
    """All metrics of ``outputs`` against ``inputs`` (and ``targets``, a reference styling, if given)."""
    _check_videos(outputs, inputs, min_frames=2)
    if targets is not None:
        _check_videos(targets, inputs, names=("targets", "inputs"))
    pairs = flow_pairs(inputs)
    out_warp = warp_error(outputs, inputs, pairs)
    h, w = inputs[0].shape[:2]
    return VideoReport(
        frames=len(inputs),
        width=int(w),
        height=int(h),
        edge_correlation=mean_edge_correlation(outputs, inputs),
        psnr_to_input=mean_psnr(outputs, inputs),
        spatial_std=mean_spatial_std(outputs),
        input_spatial_std=mean_spatial_std(inputs),
        warp_error=out_warp.mean,
        input_warp_error=warp_error(inputs, inputs, pairs).mean,
        warp_valid_fraction=out_warp.valid_fraction,
        psnr_to_target=None if targets is None else mean_psnr(outputs, targets),
        psnr_input_to_target=None if targets is None else mean_psnr(inputs, targets),
    )
