"""Target styles for training: classical filters that draw what the model must learn to draw.

These filters make the *targets* of the offline training set only; the trained model replaces them
at inference. Each style is a pure function of the input pixels (no randomness, no state carried
between frames), so a clip's targets are bit-identical every time they are made.

- ``toon``: edge-preserving smoothing, a flat palette in CIELAB (quantised lightness, boosted and
  quantised chroma) and bold soft dark outlines where the input has edges. It flattens texture away,
  so on a textured wall it keeps little of the input's structure (edge correlation 0.54 with it).
  The shipped autoencoder learns it too; the shipped toon profile's look is ``toon-cel``.
- ``toon-cel``: the shipped toon profile's look (since 2026-12-02): four soft lightness bands at
  doubled contrast over a lightly smoothed picture, a little of the input's fine detail kept, colour
  mildly boosted, ink on the dark side of every edge. Its targets keep the input's edges (correlation
  0.89-0.96 on the held-out clips: 0.955 / 0.911 / 0.886).
- ``pencil``: a graphite sketch: the grey image colour-dodged by its blurred inverse (strokes along
  edges), soft tonal shading with a diagonal hatching grain in dark areas, on tinted paper.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

STYLES = ("toon", "pencil", "toon-cel")
# The targets the autoencoder stage trains on besides the input frames: the styles the shipped VAE saw
# (changing this changes what a from-scratch run of the shipped configs produces).
AUTOENCODER_STYLES = ("toon", "pencil")

# Paper and graphite colours (RGB) of the pencil style.
_PAPER_RGB = np.array([246.0, 242.0, 230.0], dtype=np.float32)
_GRAPHITE_RGB = np.array([52.0, 54.0, 62.0], dtype=np.float32)


def stylize(style: str, rgb: np.ndarray) -> np.ndarray:
    """Draw ``rgb`` (HxWx3 uint8 RGB) in ``style``; same shape and dtype out, deterministic."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known styles: {', '.join(STYLES)}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    pixels = np.ascontiguousarray(rgb)
    if style == "toon":
        return _toon(pixels)
    if style == "toon-cel":
        return _toon_cel(pixels)
    return _pencil(pixels)


def _scale(rgb: np.ndarray) -> float:
    """Size of the picture relative to the 128 px the filter constants were tuned at."""
    return max(rgb.shape[0], rgb.shape[1]) / 128.0


def _odd(value: float) -> int:
    n = max(1, int(round(value)))
    return n if n % 2 == 1 else n + 1


# ---------------------------------------------------------------------------------------------- toon


def _toon(rgb: np.ndarray) -> np.ndarray:
    scale = _scale(rgb)
    smooth = _edge_preserving_smooth(rgb, scale)
    flat = _flat_palette(smooth)
    # A 3x3 median removes one-pixel islands the quantiser leaves on noisy level boundaries.
    flat = cv2.medianBlur(flat, 3)
    lines = _outlines(smooth, scale)
    # Outlines darken the flat colour rather than painting pure black, so they stay thin-looking.
    out = flat.astype(np.float32) * (1.0 - 0.7 * lines[..., None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _edge_preserving_smooth(rgb: np.ndarray, scale: float) -> np.ndarray:
    out = rgb
    # Repeated small (5 px) bilateral passes flatten texture inside regions much more than one
    # strong pass, at the same edges and a fraction of a wide kernel's cost; big pictures get more.
    passes = 2 if scale <= 1.5 else (3 if scale <= 3.0 else 4)
    for _ in range(passes):
        out = cv2.bilateralFilter(out, 5, 35.0, 3.0)
    return out


def _flat_palette(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    return cv2.cvtColor(cv2.LUT(lab, _palette_lut()), cv2.COLOR_LAB2RGB)


@lru_cache(maxsize=1)
def _palette_lut() -> np.ndarray:
    """Per-channel 8-bit Lab table: lightness into 6 bands, chroma boosted 1.5x in steps of 18."""
    levels = np.arange(256, dtype=np.float64)
    lightness = _soft_steps(levels, 256.0 / 6.0, 7.0)
    chroma = _soft_steps((levels - 128.0) * 1.5, 18.0, 5.0, centred=True) + 128.0
    table = np.stack([lightness, chroma, chroma], axis=-1)
    table = np.clip(np.round(table), 0, 255).astype(np.uint8).reshape(256, 1, 3)
    table.setflags(write=False)
    return table


def _soft_steps(values: np.ndarray, step: float, sharpness: float, centred: bool = False) -> np.ndarray:
    """A staircase whose risers are steep tanh ramps instead of jumps.

    Flat treads give the cartoon's flat regions; the ramps keep band borders from turning into
    hard false edges in smooth gradients and from flickering when a pixel sits on a threshold.
    ``centred`` puts a tread on 0 (for chroma, so grey stays grey); otherwise treads sit at
    (n + 0.5) * step, the centres of the bands [n * step, (n + 1) * step).
    """
    x = values / step + (0.5 if centred else 0.0)
    riser = np.round(x)
    offset = x - riser  # in [-0.5, 0.5], 0 on a riser
    y = riser + 0.5 * np.tanh(sharpness * offset) / np.tanh(0.5 * sharpness)
    return (y - (0.5 if centred else 0.0)) * step


def _outlines(smooth: np.ndarray, scale: float) -> np.ndarray:
    """0..1 line strength on the edges of the smoothed picture: about 2 px wide at 128 px with soft
    sides. One-pixel hard lines were measured to be more than a 4x-downsampling autoencoder can
    carry (they cost the trained model ~3 dB to its target); bold soft lines read as ink, and survive."""
    gray = cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY)
    gray = cv2.GaussianBlur(gray, (0, 0), 1.2 * scale)
    edges = cv2.Canny(gray, 50, 120, L2gradient=True)
    width = max(2, int(round(2 * scale)))  # proportional, so lines read the same when shrunk
    edges = cv2.dilate(edges, np.ones((width, width), np.uint8))
    lines = cv2.GaussianBlur(edges.astype(np.float32) / 255.0, (0, 0), 0.9 * scale)
    return 0.85 * lines


# ----------------------------------------------------------------------------- toon-cel (the shipped toon's look)

# Chosen (2026-12-02) against the 4x autoencoder the shipped model decodes with: stronger chroma
# boosts were reconstructed 2-6 dB worse (saturated colours leave its range), so colour changes
# little and lightness carries the style.
_CEL_CONTRAST = 2.0  # lightness contrast about mid-grey, before banding
_CEL_BANDS = 4
_CEL_DETAIL = 0.3  # share of the input's fine lightness detail kept on top of the bands
_CEL_CHROMA = 1.2
_CEL_INK = 0.6  # darkening at full line strength


def _toon_cel(rgb: np.ndarray) -> np.ndarray:
    scale = _scale(rgb)
    smooth = cv2.bilateralFilter(rgb, _odd(5 * scale), 35.0, 3.0 * scale)
    lab_smooth = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB).astype(np.float32)
    lightness_in = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    base = cv2.GaussianBlur(lab_smooth[..., 0], (0, 0), 1.5 * scale)
    stretched = np.clip((base - 128.0) * _CEL_CONTRAST + 128.0, 0.0, 255.0)
    bands = _soft_steps(stretched.astype(np.float64), 256.0 / _CEL_BANDS, 4.0).astype(np.float32)
    lightness = bands + _CEL_DETAIL * (lightness_in - base)
    chroma = (lab_smooth[..., 1:] - 128.0) * _CEL_CHROMA
    chroma = _soft_steps(chroma.astype(np.float64), 16.0, 5.0, centred=True).astype(np.float32) + 128.0
    lab = np.clip(np.dstack([lightness, chroma]) + 0.5, 0, 255).astype(np.uint8)
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32)
    out *= 1.0 - _CEL_INK * _ink(rgb, scale)[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _ink(rgb: np.ndarray, scale: float) -> np.ndarray:
    """0..1 ink where a pixel is darker than its surroundings (a difference of Gaussians of the grey
    picture): lines fall on the dark side of edges, so the edges stay where the input has them - a
    line centred on an edge would put two edges, one each side, where the input has one."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    dog = cv2.GaussianBlur(gray, (0, 0), 1.5 * scale) - cv2.GaussianBlur(gray, (0, 0), 3.0 * scale)
    return np.clip(-8.0 * dog, 0.0, 1.0)


# -------------------------------------------------------------------------------------------- pencil


def _pencil(rgb: np.ndarray) -> np.ndarray:
    scale = _scale(rgb)
    grey_u8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gray = _stretch(grey_u8)
    inverse_blur = cv2.GaussianBlur(1.0 - gray, (0, 0), 2.5 * scale)
    # Colour dodge: bright where the grey matches its surroundings, dark on edges and fine detail.
    # The lift keeps near-black areas from flipping between white and black on tiny changes (a
    # plain dodge divides noise by noise there), which would flicker from frame to frame.
    lift = 0.12
    dodge = np.minimum((gray + lift) / (1.0 - inverse_blur + lift), 1.0)
    strokes = dodge**2.0
    # Shading: a soft, lightened copy of the tone, crossed with hatching grain where it is dark.
    tone = cv2.GaussianBlur(gray, (0, 0), 1.5 * scale)
    darkness = np.clip(1.0 - tone * 1.25, 0.0, 1.0)
    hatch = _hatching(rgb.shape[0], rgb.shape[1])
    shade = 1.0 - darkness * (0.3 + 0.4 * hatch)
    value = strokes * shade * _paper_grain(rgb.shape[0], rgb.shape[1])
    out = _GRAPHITE_RGB + (_PAPER_RGB - _GRAPHITE_RGB) * value[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _stretch(grey: np.ndarray) -> np.ndarray:
    """Grey levels stretched so the 1st..99th percentiles span 0..1 (at most 3x): hazy photos
    still get strokes where their structure is, and an artist would draw them with full range."""
    lo, hi = np.percentile(grey, (1.0, 99.0))
    span = max(float(hi - lo), 255.0 / 3.0)
    centre = 0.5 * float(hi + lo)
    lo = min(max(centre - 0.5 * span, 0.0), 255.0 - span)
    return np.clip((grey.astype(np.float32) - lo) / span, 0.0, 1.0)


@lru_cache(maxsize=16)
def _hatching(height: int, width: int) -> np.ndarray:
    """Fixed diagonal strokes (0..1) per picture size: the same on every frame, so it cannot flicker."""
    rng = np.random.default_rng(20240601)
    noise = rng.random((height, width), dtype=np.float32)
    length = _odd(9 * max(height, width) / 128.0)
    kernel = np.eye(length, dtype=np.float32)[::-1] / length  # 45-degree smear
    streaks = cv2.filter2D(noise, -1, kernel, borderType=cv2.BORDER_REFLECT)
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)
    hatch = np.clip(0.5 + 0.35 * streaks, 0.0, 1.0)
    hatch.setflags(write=False)
    return hatch


@lru_cache(maxsize=16)
def _paper_grain(height: int, width: int) -> np.ndarray:
    """A fixed, faint multiplicative paper texture (about 0.95..1) per picture size."""
    rng = np.random.default_rng(19700101)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 0.7)
    grain = np.clip(0.975 + 0.04 * noise, 0.9, 1.0)
    grain.setflags(write=False)
    return grain
