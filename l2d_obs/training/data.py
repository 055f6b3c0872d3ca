"""Training clips for the style model, made offline from pictures that ship inside installed wheels.

Two kinds of clip, each a short RGB video (F, H, W, 3) uint8 with an optional depth map per frame:

- ``photo``: a virtual camera over one bundled photograph (scikit-image's ``skimage/data`` colour
  photos and scikit-learn's two sample images): a crop window that pans, zooms, rotates a little and
  shakes like a hand-held camera, sometimes with a textured blob sliding across. The only photo with
  measured depth is scikit-image's Middlebury 2014 motorcycle, whose ground-truth disparity travels
  with the picture; the others have ``depth=None``.
- ``scene``: a procedural room drawn with the painter's algorithm and *exact* depth: a textured back
  wall (scikit-image's brick/grass/gravel textures or generated patterns), often a floor, furniture
  and posters, and often a head-and-shoulders "streamer" in front. The camera translates with true
  parallax (a layer's image motion is proportional to its nearness) while the head bobs and turns
  and objects slide.

Depth follows the MiDaS convention: float32 in [0, 1], 1 = nearest, 0 = farthest (inverse-depth like).
About one clip in eight is exactly static so a model learns not to flicker on a still camera.
Colour jitter is per clip, never per frame. ``ClipDataset.clip(i)`` is a pure function of
(seed, i). Provenance and licences are in docs/training-data.md; ``HELDOUT_IMAGES`` never appear in
the "train" split.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from l2d_obs.imageops import fit
from l2d_obs.training.extras import require

HELDOUT_IMAGES = ("coffee",)
# Bundled without a stated licence (docs/training-data.md): used as photo clips, never as posters
# in scenes, and kept out of the committed preview picture.
UNCLEAR_LICENCE_IMAGES = ("motorcycle_left", "color")
SPLITS = ("train", "heldout")
CLIP_KINDS = ("photo", "scene")
STATIC_FRACTION = 1.0 / 8.0

# Photos are stored with at most this many pixels on their long side: the crop window rarely needs
# more for 512 px clips, and it bounds memory and per-clip resize time.
_MAX_SIDE = 720
# Image motion of a layer is camera * (_PARALLAX_BASE + (1 - _PARALLAX_BASE) * nearness): affine in
# nearness, as image shift is for a translating camera and affine-invariant inverse depth.
_PARALLAX_BASE = 0.1
_SUBPIXEL_BITS = 4  # fixed-point bits for cv2 drawing, so shapes move smoothly by fractions of a pixel
_SUBPIXEL = float(1 << _SUBPIXEL_BITS)


@dataclass(frozen=True)
class Clip:
    """A training clip: frames (F, H, W, 3) uint8 RGB; depth (F, H, W) float32 in [0, 1], 1 = near."""

    frames: np.ndarray
    depth: np.ndarray | None
    source: str


@dataclass(frozen=True)
class NamedImage:
    """A bundled picture: rgb (H, W, 3) uint8; disparity (H, W) float32 in [0, 1], 1 = near, or None."""

    name: str
    rgb: np.ndarray
    disparity: np.ndarray | None
    licence: str


# ------------------------------------------------------------------------------------ bundled images


@dataclass(frozen=True)
class _Source:
    name: str
    licence: str


# Licence strings as the packages state them (docstrings of skimage.data, sklearn's images README).
_PHOTOS = (
    _Source("astronaut", "public domain (NASA); via scikit-image"),
    _Source("chelsea", "CC0 (photographer Stefan van der Walt); via scikit-image"),
    _Source("coffee", "CC0 (photographer Rachel Michetti, Pikolo Espresso Bar); via scikit-image"),
    _Source("rocket", "public domain (SpaceX); via scikit-image"),
    _Source(
        "motorcycle_left",
        "no licence stated (Middlebury 2014 stereo benchmark; scikit-image credits its authors and "
        "cites Scharstein et al., GCPR 2014); via scikit-image",
    ),
    _Source("color", "no licence stated (a generated colour wheel); via scikit-image"),
    _Source("hubble_deep_field", "public domain (NASA/HubbleSite); via scikit-image"),
    _Source("retina", "CC0 1.0 (Mikael Häggström, Wikimedia Commons); via scikit-image"),
    _Source("china", "CC BY 2.0 (Flickr user danielbuechele); via scikit-learn"),
    _Source("flower", "CC BY 2.0 (Flickr user vultilion); via scikit-learn"),
)
_TEXTURES = ("brick", "grass", "gravel")  # grey CC0 textures, used as wall/object textures in scenes


def image_pool(split: str) -> list[NamedImage]:
    """The photos of a split: "train" (all but HELDOUT_IMAGES) or "heldout" (only those)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    held = split == "heldout"
    return [image for image in _all_photos() if (image.name in HELDOUT_IMAGES) == held]


@lru_cache(maxsize=1)
def _all_photos() -> tuple[NamedImage, ...]:
    return tuple(_load_photo(source) for source in _PHOTOS)


def _load_photo(source: _Source) -> NamedImage:
    disparity = None
    if source.name == "motorcycle_left":
        skimage_data = require("skimage.data")
        rgb, _, raw = skimage_data.stereo_motorcycle()
        disparity = _normalise_disparity(raw)
    elif source.name in ("china", "flower"):
        rgb = _read_sklearn_image(f"{source.name}.jpg")
    else:
        loader = "colorwheel" if source.name == "color" else source.name
        rgb = getattr(require("skimage.data"), loader)()
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    rgb, disparity = _limit_size(rgb, disparity)
    return NamedImage(
        source.name, _frozen(rgb), None if disparity is None else _frozen(disparity), source.licence
    )


def _read_sklearn_image(filename: str) -> np.ndarray:
    """One of scikit-learn's sample JPEGs, read from the installed wheel.

    Located via the package spec rather than ``sklearn.datasets.load_sample_image``: importing
    scikit-learn costs seconds (it pulls in SciPy) and only its two files are needed.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "training data needs scikit-learn installed (for its sample images china.jpg, flower.jpg)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "images" / filename
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"scikit-learn sample image missing: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _normalise_disparity(raw: np.ndarray) -> np.ndarray:
    """Stereo disparity (px, inf/NaN where unknown) to [0, 1] nearness; holes filled from neighbours."""
    raw = raw.astype(np.float32)
    valid = np.isfinite(raw) & (raw > 0)
    lo, hi = np.percentile(raw[valid], [1.0, 99.0])
    # Disparity is proportional to inverse depth already; a robust min-max gives MiDaS's convention.
    scaled = np.where(valid, np.clip((raw - lo) / (hi - lo), 0.0, 1.0), 0.0).astype(np.float32)
    holes = (~valid).astype(np.uint8)
    filled = cv2.inpaint(scaled, holes, 5, cv2.INPAINT_TELEA)
    return np.clip(filled, 0.0, 1.0).astype(np.float32)


def _limit_size(rgb: np.ndarray, disparity: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    h, w = rgb.shape[:2]
    factor = _MAX_SIDE / max(h, w)
    if factor >= 1.0:
        return rgb, disparity
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    if disparity is not None:
        disparity = cv2.resize(disparity, size, interpolation=cv2.INTER_AREA)
    return rgb, disparity


@lru_cache(maxsize=1)
def _textures() -> tuple[np.ndarray, ...]:
    """Grey textures (H, W) float32 in [0, 1], normalised so tints spread over a useful range."""
    skimage_data = require("skimage.data")
    out = []
    for name in _TEXTURES:
        grey = getattr(skimage_data, name)().astype(np.float32)
        lo, hi = np.percentile(grey, [2.0, 98.0])
        out.append(_frozen(np.clip((grey - lo) / max(hi - lo, 1.0), 0.0, 1.0).astype(np.float32)))
    return tuple(out)


def _frozen(array: np.ndarray) -> np.ndarray:
    # Cached pictures are shared by every clip; read-only keeps one clip from editing another's.
    array.setflags(write=False)
    return array


# -------------------------------------------------------------------------------------- motion paths


def _ease(length: int, rng: np.random.Generator) -> np.ndarray:
    """Progress 0..1 over the clip: linear, or eased in and out (a camera operator's pan)."""
    t = np.linspace(0.0, 1.0, length) if length > 1 else np.zeros(1)
    if rng.random() < 0.5:
        return t
    return t * t * (3.0 - 2.0 * t)


def _shake(rng: np.random.Generator, length: int, amplitude: float, dims: int = 2) -> np.ndarray:
    """Hand-held wobble (length, dims): a few slow sinusoids, 0.5..2.5 cycles per clip."""
    t = np.arange(length, dtype=np.float64) / 16.0  # cycles are per 16 frames, whatever the length
    out = np.zeros((length, dims))
    for _ in range(3):
        freq = rng.uniform(0.5, 2.5, size=dims)
        phase = rng.uniform(0.0, 2.0 * math.pi, size=dims)
        out += np.sin(2.0 * math.pi * freq * t[:, None] + phase) * rng.uniform(0.2, 1.0, size=dims)
    return out * (amplitude / 2.0)


# -------------------------------------------------------------------------------------- photo clips


@dataclass(frozen=True)
class _CameraPath:
    """Per frame: crop centre (x, y) and crop width in source pixels, rotation in degrees."""

    centre: np.ndarray  # (F, 2)
    width: np.ndarray  # (F,)
    angle: np.ndarray  # (F,)


def photo_clip(rng: np.random.Generator, image: NamedImage, size: tuple[int, int], length: int) -> Clip:
    """A virtual camera over ``image``; ``size`` is (height, width) of the frames."""
    height, width = _check_size(size, length)
    path = _photo_camera(rng, image.rgb.shape[:2], (height, width), length)
    # Shrink the source once per clip so each frame's warp scales by about 1: no aliasing shimmer.
    scale = float(np.sqrt((width / path.width.max()) * (width / path.width.min())))
    rgb, disparity = image.rgb, image.disparity
    if scale < 1.0:
        new_size = (max(8, round(rgb.shape[1] * scale)), max(8, round(rgb.shape[0] * scale)))
        scale = new_size[0] / rgb.shape[1]
        rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
        if disparity is not None:
            disparity = cv2.resize(disparity, new_size, interpolation=cv2.INTER_AREA)
    else:
        scale = 1.0
    blob = _photo_blob(rng, (height, width), length) if rng.random() < 0.3 else None

    frames = np.empty((length, height, width, 3), np.uint8)
    depth = None if disparity is None else np.empty((length, height, width), np.float32)
    for f in range(length):
        matrix = _view_matrix(path, f, scale, (height, width))
        frames[f] = cv2.warpAffine(
            rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        if depth is not None:
            depth[f] = cv2.warpAffine(
                disparity, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
            )
        if blob is not None:
            _paint_blob(blob, f, frames[f], None if depth is None else depth[f])
    if depth is not None:
        np.clip(depth, 0.0, 1.0, out=depth)
    return Clip(frames, depth, f"photo:{image.name}")


def _photo_camera(
    rng: np.random.Generator, source_hw: tuple[int, int], size: tuple[int, int], length: int
) -> _CameraPath:
    src_h, src_w = source_hw
    height, width = size
    full_width = min(src_w, src_h * width / height)  # the widest crop with the frame's aspect
    style = rng.choice(["still", "pan", "zoom", "mixed"], p=[0.2, 0.3, 0.2, 0.3])
    zoom0 = rng.uniform(0.35, 1.0)
    zoom1 = zoom0
    if style in ("zoom", "mixed"):
        zoom1 = float(np.clip(zoom0 * math.exp(rng.uniform(-0.4, 0.4)), 0.3, 1.0))
    w0, w1 = full_width * zoom0, full_width * zoom1
    c0 = _random_centre(rng, source_hw, w0, w0 * height / width)
    c1 = c0
    if style in ("pan", "mixed"):
        direction = rng.uniform(0.0, 2.0 * math.pi)
        distance = rng.uniform(0.05, 0.5) * w0
        c1 = c0 + distance * np.array([math.cos(direction), math.sin(direction)])
    c1 = _clamp_centre(c1, source_hw, w1, w1 * height / width)
    progress = _ease(length, rng)
    crop_width = w0 + (w1 - w0) * progress
    centre = c0[None, :] + (c1 - c0)[None, :] * progress[:, None]
    angle = np.full(length, rng.normal(0.0, 1.5))
    if style == "mixed" or rng.random() < 0.2:
        angle = angle + rng.normal(0.0, 3.0) * progress
    # Always some shake (a tripod's sub-pixel wobble at least): exactly static clips are made on
    # purpose by make_clip, at a known rate. Shake is in output pixels, scaled to source pixels.
    amp = (rng.uniform(0.05, 0.4) if style == "still" else rng.uniform(0.0, 1.5)) * height / 128.0
    if amp > 0.0:
        centre = centre + _shake(rng, length, amp) * (crop_width / width)[:, None]
        angle = angle + _shake(rng, length, amp * 0.15, dims=1)[:, 0]
    return _CameraPath(centre, crop_width, angle)


def _random_centre(
    rng: np.random.Generator, source_hw: tuple[int, int], crop_w: float, crop_h: float
) -> np.ndarray:
    src_h, src_w = source_hw
    x = rng.uniform(crop_w / 2.0, max(crop_w / 2.0, src_w - crop_w / 2.0))
    y = rng.uniform(crop_h / 2.0, max(crop_h / 2.0, src_h - crop_h / 2.0))
    return np.array([x, y])


def _clamp_centre(centre: np.ndarray, source_hw: tuple[int, int], crop_w: float, crop_h: float) -> np.ndarray:
    src_h, src_w = source_hw
    lo = np.array([crop_w / 2.0, crop_h / 2.0])
    hi = np.maximum(lo, np.array([src_w - crop_w / 2.0, src_h - crop_h / 2.0]))
    return np.clip(centre, lo, hi)


def _view_matrix(path: _CameraPath, f: int, source_scale: float, size: tuple[int, int]) -> np.ndarray:
    """Affine map from (rescaled) source pixels to frame pixels for frame ``f``."""
    height, width = size
    zoom = width / (path.width[f] * source_scale)
    matrix = cv2.getRotationMatrix2D((0.0, 0.0), float(path.angle[f]), zoom)
    centre = path.centre[f] * source_scale
    matrix[:, 2] = np.array([width / 2.0, height / 2.0]) - matrix[:, :2] @ centre
    return matrix


@dataclass(frozen=True)
class _Blob:
    """A textured shape sliding over a photo: outline in its own frame, offset per frame."""

    outline: np.ndarray  # (N, 2) relative to the blob's centre
    offsets: np.ndarray  # (F, 2) centre per frame
    fill: np.ndarray  # (h, w, 3) float32 patch covering the outline's bounding box
    nearness: float


def _photo_blob(rng: np.random.Generator, size: tuple[int, int], length: int) -> _Blob:
    height, width = size
    radius = rng.uniform(0.08, 0.22) * min(height, width)
    outline = _blob_outline(rng, radius)
    start = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
    velocity = rng.normal(0.0, 0.25 * min(height, width), size=2)
    progress = np.linspace(0.0, 1.0, length) if length > 1 else np.zeros(1)
    offsets = start[None, :] + velocity[None, :] * progress[:, None]
    box = int(math.ceil(radius * 1.6)) * 2 + 2
    fill, _ = _fill_patch(rng, box, box)
    return _Blob(outline, offsets, fill, 1.0)


def _blob_outline(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A smooth closed outline: a circle whose radius wobbles with a few low harmonics."""
    angles = np.linspace(0.0, 2.0 * math.pi, 40, endpoint=False)
    r = np.ones_like(angles)
    for k in (2, 3, 5):
        r += rng.uniform(0.0, 0.25 / k * 2.0) * np.cos(k * angles + rng.uniform(0.0, 2.0 * math.pi))
    r = radius * r / r.max() * 1.3
    return np.stack([np.cos(angles) * r, np.sin(angles) * r], axis=1)


def _paint_blob(blob: _Blob, f: int, frame: np.ndarray, depth: np.ndarray | None) -> None:
    h, w = blob.fill.shape[:2]
    x0 = int(math.floor(blob.offsets[f, 0])) - w // 2
    y0 = int(math.floor(blob.offsets[f, 1])) - h // 2
    local = blob.outline + blob.offsets[f] - np.array([x0, y0])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_fixed(local)], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    _composite(frame, depth, mask, blob.fill, blob.nearness, x0, y0)


def _composite(
    frame: np.ndarray,
    depth: np.ndarray | None,
    mask: np.ndarray,
    fill: np.ndarray,
    nearness: float | np.ndarray,
    x0: int,
    y0: int,
) -> None:
    """Alpha-blend ``fill`` through ``mask`` into ``frame`` at (x0, y0), clipped to the frame."""
    height, width = frame.shape[:2]
    h, w = mask.shape
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    sub = np.s_[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    alpha = mask[sub].astype(np.float32)[..., None] / 255.0
    region = frame[fy0:fy1, fx0:fx1]
    region[...] = (region * (1.0 - alpha) + fill[sub] * alpha + 0.5).astype(np.uint8)
    if depth is not None:
        near = mask[sub] >= 128  # depth takes the front layer where it covers at least half a pixel
        values = nearness if np.isscalar(nearness) else nearness[sub]
        depth[fy0:fy1, fx0:fx1] = np.where(near, values, depth[fy0:fy1, fx0:fx1])


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _SUBPIXEL).astype(np.int32).reshape(-1, 1, 2)


# ------------------------------------------------------------------------------- fills and textures


def _tint(rng: np.random.Generator, grey: np.ndarray, saturation: float = 0.6) -> np.ndarray:
    """Grey (h, w) in [0, 1] -> RGB float32 0..255 between a dark and a light shade of one hue."""
    hue = rng.uniform(0.0, 1.0)
    sat = rng.uniform(0.1, saturation)
    dark = _hsv(hue, sat, rng.uniform(0.1, 0.45))
    light = _hsv((hue + rng.normal(0.0, 0.04)) % 1.0, sat * rng.uniform(0.5, 1.0), rng.uniform(0.65, 1.0))
    return (dark + (light - dark) * grey[..., None]).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB 0..255 float32 of hue, saturation, value in [0, 1] (OpenCV's float HSV: hue in degrees)."""
    pixel = np.array([[[h * 360.0, s, v]]], np.float32)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0] * 255.0


def _grey_pattern(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (height, width) float32 pattern in [0, 1]: a bundled texture or a generated one."""
    kind = rng.choice(["texture", "noise", "stripes", "gradient", "checker"], p=[0.45, 0.2, 0.15, 0.1, 0.1])
    if kind == "texture":
        textures = _textures()
        texture = textures[int(rng.integers(len(textures)))]
        th, tw = texture.shape
        zoom = rng.uniform(0.25, 1.0)
        ch, cw = max(8, int(th * zoom * height / max(height, width))), max(
            8, int(tw * zoom * width / max(height, width))
        )
        y, x = int(rng.integers(0, th - ch + 1)), int(rng.integers(0, tw - cw + 1))
        return cv2.resize(texture[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_AREA)
    if kind == "noise":
        cells = int(rng.integers(3, 12))
        coarse = rng.random((cells, cells), dtype=np.float32)
        fine = rng.random((cells * 4, cells * 4), dtype=np.float32)
        pattern = 0.7 * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        pattern += 0.3 * cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(pattern, 0.0, 1.0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0.0, math.pi)
    along = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == "stripes":
        period = rng.uniform(6.0, 30.0) * max(height, width) / 128.0
        return (0.5 + 0.5 * np.tanh(3.0 * np.sin(2.0 * math.pi * along / period))).astype(np.float32)
    if kind == "gradient":
        return ((along - along.min()) / max(float(np.ptp(along)), 1.0)).astype(np.float32)
    period = rng.uniform(8.0, 24.0) * max(height, width) / 128.0
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    cells = (np.floor(along / period) + np.floor(across / period)) % 2
    return (0.25 + 0.5 * cells).astype(np.float32)


def _fill_patch(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, bool]:
    """RGB float32 (height, width, 3) 0..255 (a flat colour or a tinted pattern); True if patterned."""
    kind = rng.choice(["flat", "pattern"], p=[0.45, 0.55])
    if kind == "flat":
        colour = _hsv(rng.uniform(0.0, 1.0), rng.uniform(0.2, 0.95), rng.uniform(0.25, 0.95))
        # A soft top-light keeps flat objects from being perfectly flat, as under room lighting.
        shade = np.linspace(1.08, 0.88, height, dtype=np.float32)[:, None, None]
        return np.clip(np.broadcast_to(colour, (height, width, 3)) * shade, 0, 255).astype(np.float32), False
    return _tint(rng, _grey_pattern(rng, height, width), saturation=0.85), True


# ---------------------------------------------------------------------------------- procedural scenes


@dataclass(frozen=True)
class _Shape:
    """A flat object: outline (N, 2) in frame pixels at frame 0, fill patch over its bounding box."""

    outline: np.ndarray
    fill: np.ndarray
    nearness: float
    motion: np.ndarray  # (F, 2) own motion in pixels, added to the camera's parallax shift
    textured: bool  # the fill has detail that must move by sub-pixel steps with the outline


@dataclass(frozen=True)
class _Person:
    """A head-and-shoulders figure; sizes in pixels, motion and turn per frame."""

    centre_x: float
    head_y: float
    head_radius: float
    skin: np.ndarray
    hair: np.ndarray
    shirt: np.ndarray
    hair_style: str
    headphones: bool
    glasses: bool
    nearness: float
    motion: np.ndarray  # (F, 2) head bob, in pixels
    turn: np.ndarray  # (F,) -1..1, features slide sideways as the head turns
    blink: np.ndarray  # (F,) bool


@dataclass(frozen=True)
class ScenePlan:
    """Everything a procedural clip is drawn from; ``render_scene`` turns it into frames and depth.

    ``camera`` (F, 2) is the camera's image shift in pixels for a layer of nearness 1; a layer of
    nearness n moves by camera * (0.1 + 0.9 n), which is what makes the parallax.
    """

    size: tuple[int, int]
    camera: np.ndarray
    wall: np.ndarray  # (H + 2m, W + 2m, 3) float32, m = margin
    wall_nearness: float
    margin: int
    floor: np.ndarray | None  # (H + 2m, W + 2m, 3) float32 or None
    horizon: float  # frame row (at frame 0) where the floor meets the wall
    floor_nearness: float  # nearness of the floor at the frame's bottom row
    shapes: tuple[_Shape, ...]
    person: _Person | None
    light: np.ndarray = field(repr=False)  # (H, W, 1) float32 multiplicative lighting in frame space

    @property
    def length(self) -> int:
        return int(self.camera.shape[0])


def procedural_scene(rng: np.random.Generator, size: tuple[int, int], length: int) -> Clip:
    """A layered room with exact depth, camera parallax and moving objects; ``size`` = (h, w)."""
    return render_scene(plan_scene(rng, size, length))


def plan_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    length: int,
    posters: list[NamedImage] | None = None,
    camera: np.ndarray | None = None,
    object_motion: bool = True,
) -> ScenePlan:
    """Draw the random choices of a scene (layout, colours, camera and object motion).

    ``posters``: photos that may hang on the wall (pass the split's pool). ``camera`` (length, 2)
    replaces the random camera path; ``object_motion=False`` holds every object and the figure
    still, so that only the camera moves (how the tests see parallax on its own).
    """
    height, width = _check_size(size, length)
    unit = min(height, width)
    if camera is None:
        camera = _scene_camera(rng, length, unit)
    camera = np.asarray(camera, dtype=np.float64)
    if camera.shape != (length, 2):
        raise ValueError(f"camera must have shape ({length}, 2), got {camera.shape}")
    margin = int(math.ceil(np.abs(camera).max())) + 2
    canvas_hw = (height + 2 * margin, width + 2 * margin)
    wall = _tint(rng, _grey_pattern(rng, *canvas_hw), saturation=0.5)
    wall_near = float(rng.uniform(0.0, 0.15))
    floor, horizon, floor_near = None, float(height), wall_near
    if rng.random() < 0.6:
        horizon = float(rng.uniform(0.45, 0.8) * height)
        floor = _tint(rng, _grey_pattern(rng, *canvas_hw), saturation=0.45)
        floor_near = float(rng.uniform(0.45, 0.7))
    has_person = rng.random() < 0.65
    shapes = []
    for _ in range(int(rng.integers(1, 5))):
        shapes.append(
            _plan_shape(
                rng,
                (height, width),
                length,
                wall_near,
                floor_near if floor is not None else None,
                horizon,
                has_person,
            )
        )
    if posters and rng.random() < 0.4:
        shapes.append(_plan_poster(rng, (height, width), length, wall_near, posters))
    shapes.sort(key=lambda s: s.nearness)
    person = _plan_person(rng, (height, width), length) if has_person else None
    if not object_motion:
        shapes = [replace(shape, motion=np.zeros_like(shape.motion)) for shape in shapes]
        if person is not None:
            person = replace(
                person, motion=np.zeros_like(person.motion), turn=np.full_like(person.turn, person.turn[0])
            )
    light = _lighting(rng, height, width)
    shapes = [_lit(shape, light) for shape in shapes]
    return ScenePlan(
        (height, width),
        camera,
        wall,
        wall_near,
        margin,
        floor,
        horizon,
        floor_near,
        tuple(shapes),
        person,
        light,
    )


def _scene_camera(rng: np.random.Generator, length: int, unit: int) -> np.ndarray:
    style = rng.choice(["still", "pan", "drift"], p=[0.2, 0.5, 0.3])
    progress = _ease(length, rng)
    path = np.zeros((length, 2))
    if style == "pan":
        direction = rng.uniform(0.0, 2.0 * math.pi)
        distance = rng.uniform(0.05, 0.3) * unit
        path = progress[:, None] * distance * np.array([math.cos(direction), math.sin(direction) * 0.5])
    elif style == "drift":
        path = progress[:, None] * rng.normal(0.0, 0.04 * unit, size=2)
    amp = rng.uniform(0.05, 0.4) if style == "still" else rng.uniform(0.0, 1.5)
    path = path + _shake(rng, length, amp * unit / 128.0)
    return path - path.mean(axis=0)  # centred, so the margin the layers need is as small as it can be


def _plan_shape(
    rng: np.random.Generator,
    size: tuple[int, int],
    length: int,
    wall_near: float,
    floor_near: float | None,
    horizon: float,
    has_person: bool,
) -> _Shape:
    height, width = size
    unit = min(height, width)
    kind = rng.choice(["rect", "ellipse", "polygon", "blob"])
    half_w = rng.uniform(0.06, 0.22) * unit
    half_h = rng.uniform(0.06, 0.3) * unit
    cx = rng.uniform(0.05, 0.95) * width
    if floor_near is not None and rng.random() < 0.6:
        # Standing on the floor: its base sits on the floor row of its own nearness.
        nearness = float(rng.uniform(wall_near + 0.05, floor_near))
        base = horizon + (height - horizon) * (nearness - wall_near) / max(floor_near - wall_near, 1e-6)
        cy = base - half_h
    else:
        nearness = float(rng.uniform(wall_near + 0.02, 0.7 if not has_person else 0.6))
        cy = rng.uniform(0.1, 0.9) * height
    if kind == "rect":
        angle = rng.normal(0.0, 0.15)
        corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
        outline = corners @ _rotation(angle).T
    elif kind == "ellipse":
        angles = np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False)
        outline = np.stack([np.cos(angles) * half_w, np.sin(angles) * half_h], axis=1)
    elif kind == "polygon":
        count = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0.0, 2.0 * math.pi, count))
        radii = rng.uniform(0.6, 1.0, count)
        outline = np.stack([np.cos(angles) * radii * half_w, np.sin(angles) * radii * half_h], axis=1)
    else:
        outline = (
            _blob_outline(rng, 0.5 * (half_w + half_h))
            * np.array([half_w, half_h])
            / (0.5 * (half_w + half_h))
        )
    outline = outline + np.array([cx, cy])
    motion = np.zeros((length, 2))
    if rng.random() < 0.35:  # an object sliding across
        velocity = rng.normal(0.0, 0.12 * unit, size=2) * np.array([1.0, 0.3])
        motion = np.linspace(0.0, 1.0, length)[:, None] * velocity[None, :]
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    fill, textured = _fill_patch(rng, int(hi[1] - lo[1]) + 4, int(hi[0] - lo[0]) + 4)
    return _Shape(outline, fill, nearness, motion, textured)


def _plan_poster(
    rng: np.random.Generator, size: tuple[int, int], length: int, wall_near: float, posters: list[NamedImage]
) -> _Shape:
    """A framed picture hanging on the wall, cut from one of the split's photos."""
    height, width = size
    image = posters[int(rng.integers(len(posters)))].rgb
    half_w = rng.uniform(0.1, 0.2) * width
    half_h = half_w * rng.uniform(0.6, 1.3)
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.5) * height
    outline = np.array(
        [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
    ) + np.array([cx, cy])
    fw, fh = int(2 * half_w) + 4, int(2 * half_h) + 4
    picture = fit(image, fw, fh).astype(np.float32)
    border = max(1, round(0.08 * min(fw, fh)))
    frame_colour = _hsv(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.4), rng.uniform(0.1, 0.9))
    picture[:border], picture[-border:], picture[:, :border], picture[:, -border:] = (frame_colour,) * 4
    return _Shape(outline, picture, wall_near + 0.01, np.zeros((length, 2)), True)


# Skin tones from light to deep, and common hair colours (RGB).
_SKIN = np.array(
    [
        [255, 224, 196],
        [241, 194, 160],
        [224, 172, 130],
        [198, 134, 94],
        [161, 102, 70],
        [120, 74, 48],
        [88, 54, 36],
    ],
    np.float32,
)
_HAIR = np.array(
    [
        [20, 16, 14],
        [60, 40, 28],
        [110, 74, 44],
        [200, 160, 96],
        [150, 60, 30],
        [170, 170, 170],
        [60, 90, 200],
        [200, 80, 160],
    ],
    np.float32,
)


def _plan_person(rng: np.random.Generator, size: tuple[int, int], length: int) -> _Person:
    height, width = size
    unit = min(height, width)
    head_radius = rng.uniform(0.08, 0.15) * unit
    centre_x = rng.uniform(0.3, 0.7) * width
    head_y = rng.uniform(0.32, 0.5) * height
    skin = _SKIN[int(rng.integers(len(_SKIN)))] * rng.uniform(0.92, 1.05)
    hair = _HAIR[int(rng.integers(len(_HAIR)))] * rng.uniform(0.85, 1.1)
    shirt = _hsv(rng.uniform(0.0, 1.0), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.9))
    t = np.arange(length, dtype=np.float64)
    bob_amp = rng.uniform(0.0, 0.04) * unit
    bob = np.stack(
        [
            np.sin(t * rng.uniform(0.1, 0.4) + rng.uniform(0, 6)) * bob_amp,
            np.sin(t * rng.uniform(0.15, 0.5) + rng.uniform(0, 6)) * bob_amp * 0.5,
        ],
        axis=1,
    )
    turn0, turn1 = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)
    turn = np.linspace(turn0, turn1 if rng.random() < 0.5 else turn0, length)
    blink = np.zeros(length, bool)
    if length > 3 and rng.random() < 0.3:
        start = int(rng.integers(0, length - 2))
        blink[start : start + 2] = True
    return _Person(
        centre_x,
        head_y,
        head_radius,
        np.clip(skin, 0, 255),
        np.clip(hair, 0, 255),
        shirt,
        str(rng.choice(["short", "long", "bald", "bun"], p=[0.45, 0.35, 0.1, 0.1])),
        bool(rng.random() < 0.25),
        bool(rng.random() < 0.2),
        float(rng.uniform(0.8, 0.9)),
        bob,
        turn,
        blink,
    )


def _lighting(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A soft key light: brighter towards a random point, darker in the far corners."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    lx, ly = rng.uniform(0.0, 1.0) * width, rng.uniform(0.0, 0.6) * height
    dist = np.hypot(xx - lx, yy - ly) / max(height, width)
    strength = rng.uniform(0.1, 0.45)
    return (1.0 + 0.5 * strength - strength * dist)[..., None].astype(np.float32)


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _parallax(nearness: float | np.ndarray) -> float | np.ndarray:
    return _PARALLAX_BASE + (1.0 - _PARALLAX_BASE) * nearness


def render_scene(plan: ScenePlan) -> Clip:
    """Draw every frame of ``plan`` back to front; depth is the front-most layer's nearness."""
    height, width = plan.size
    length = plan.length
    frames = np.empty((length, height, width, 3), np.uint8)
    depth = np.empty((length, height, width), np.float32)
    floor_layer = _floor_layer(plan) if plan.floor is not None else None
    light3 = np.repeat(plan.light, 3, axis=2)
    for f in range(length):
        shift = plan.camera[f]
        frame_f = _warp_layer(
            plan.wall, _translation(shift * _parallax(plan.wall_nearness) - plan.margin), (width, height)
        )
        depth_f = np.full((height, width), plan.wall_nearness, np.float32)
        if floor_layer is not None:
            _draw_floor(plan, f, frame_f, depth_f, floor_layer)
        frame_u8 = cv2.multiply(frame_f, light3, dtype=cv2.CV_8U)  # rounds and saturates
        for shape in plan.shapes:
            _draw_shape(shape, shift * _parallax(shape.nearness) + shape.motion[f], frame_u8, depth_f)
        if plan.person is not None:
            _draw_person(plan.person, f, shift, frame_u8, depth_f)
        frames[f] = frame_u8
        depth[f] = depth_f
    np.clip(depth, 0.0, 1.0, out=depth)
    return Clip(frames, depth, "scene")


def _translation(offset: np.ndarray) -> np.ndarray:
    return np.array([[1.0, 0.0, offset[0]], [0.0, 1.0, offset[1]]])


def _warp_layer(canvas: np.ndarray, matrix: np.ndarray, dsize: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(canvas, matrix, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _floor_layer(plan: ScenePlan) -> np.ndarray:
    """The floor canvas with coverage and nearness as channels 4 and 5, so one warp moves all three.

    Nearness is linear in the image row, as inverse depth is for a real ground plane.
    """
    assert plan.floor is not None
    canvas_h, canvas_w = plan.floor.shape[:2]
    rows = np.arange(canvas_h, dtype=np.float32)[:, None] - plan.margin  # frame rows at frame 0
    slope = (plan.floor_nearness - plan.wall_nearness) / max(plan.size[0] - plan.horizon, 1.0)
    near = np.clip(plan.wall_nearness + slope * (rows - plan.horizon), plan.wall_nearness, 1.0)
    coverage = np.clip(rows - plan.horizon + 0.5, 0.0, 1.0)
    ones = np.ones((1, canvas_w), np.float32)
    return np.dstack([plan.floor, coverage * ones, near * ones]).astype(np.float32)


def _draw_floor(plan: ScenePlan, f: int, frame: np.ndarray, depth: np.ndarray, layer: np.ndarray) -> None:
    """Warp the floor with its exact parallax: every row moves by its own nearness (an affine shear)."""
    height, width = plan.size
    m = plan.margin
    slope = (plan.floor_nearness - plan.wall_nearness) / max(height - plan.horizon, 1.0)
    # Canvas row v has nearness n(v) = wall + slope * (v - m - horizon); it moves by cam * parallax(n(v)).
    # parallax(n(v)) = a + b * v is affine in v, so the whole floor is one affine warp.
    b = (1.0 - _PARALLAX_BASE) * slope
    a = _parallax(plan.wall_nearness) - b * (m + plan.horizon)
    cam_x, cam_y = plan.camera[f]
    matrix = np.array([[1.0, cam_x * b, cam_x * a - m], [0.0, 1.0 + cam_y * b, cam_y * a - m]])
    warped = cv2.warpAffine(
        layer, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = warped[..., 3:4]
    frame[...] = frame * (1.0 - alpha) + warped[..., :3] * alpha
    np.copyto(depth, warped[..., 4], where=warped[..., 3] >= 0.5)


def _lit(shape: _Shape, light: np.ndarray) -> _Shape:
    """The shape's fill under the room's light where it stands at frame 0 (it carries that along)."""
    h, w = shape.fill.shape[:2]
    x0, y0 = np.floor(shape.outline.min(axis=0) - 1.0).astype(int)
    ys = np.clip(np.arange(h) + y0, 0, light.shape[0] - 1)
    xs = np.clip(np.arange(w) + x0, 0, light.shape[1] - 1)
    return replace(shape, fill=(shape.fill * light[ys][:, xs]).astype(np.float32))


def _draw_shape(shape: _Shape, offset: np.ndarray, frame: np.ndarray, depth: np.ndarray) -> None:
    outline = shape.outline + offset
    corner = outline.min(axis=0) - 1.0
    lo = np.floor(corner).astype(int)
    h, w = shape.fill.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_fixed(outline - lo)], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    # The fill moves by the same fraction of a pixel as the outline, so textures glide, not judder.
    if shape.textured:
        fill = cv2.warpAffine(
            shape.fill,
            _translation(corner - lo),
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    else:
        fill = shape.fill
    _composite(frame, depth, mask, fill, shape.nearness, int(lo[0]), int(lo[1]))


class _Pen:
    """Draws anti-aliased shapes into a frame and, at the same time, into a coverage mask."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = frame
        self.mask = np.zeros(frame.shape[:2], np.uint8)

    def ellipse(
        self,
        centre: tuple[float, float],
        axes: tuple[float, float],
        colour: np.ndarray,
        arc: tuple[float, float] = (0.0, 360.0),
        cover: bool = True,
    ) -> None:
        c = (int(round(centre[0] * _SUBPIXEL)), int(round(centre[1] * _SUBPIXEL)))
        a = (max(1, int(round(axes[0] * _SUBPIXEL))), max(1, int(round(axes[1] * _SUBPIXEL))))
        cv2.ellipse(self.frame, c, a, 0.0, arc[0], arc[1], _colour(colour), -1, cv2.LINE_AA, _SUBPIXEL_BITS)
        if cover:
            cv2.ellipse(self.mask, c, a, 0.0, arc[0], arc[1], 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)

    def polygon(self, points: np.ndarray, colour: np.ndarray, cover: bool = True) -> None:
        cv2.fillPoly(self.frame, [_fixed(points)], _colour(colour), cv2.LINE_AA, _SUBPIXEL_BITS)
        if cover:
            cv2.fillPoly(self.mask, [_fixed(points)], 255, cv2.LINE_AA, _SUBPIXEL_BITS)

    def arc(
        self,
        centre: tuple[float, float],
        axes: tuple[float, float],
        arc: tuple[float, float],
        colour: np.ndarray,
        thickness: int,
    ) -> None:
        c = (int(round(centre[0] * _SUBPIXEL)), int(round(centre[1] * _SUBPIXEL)))
        a = (max(1, int(round(axes[0] * _SUBPIXEL))), max(1, int(round(axes[1] * _SUBPIXEL))))
        for target, value in ((self.frame, _colour(colour)), (self.mask, 255)):
            cv2.ellipse(target, c, a, 0.0, arc[0], arc[1], value, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)


def _colour(colour: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (min(255.0, max(0.0, float(c))) for c in colour)
    return (r, g, b)


_DARK = np.array([35.0, 28.0, 26.0])
_HEAD_OFFSET = 0.04  # the head's rim is this much nearer than the torso
_HEAD_BULGE = 0.06  # and its middle this much nearer again


def _draw_person(person: _Person, f: int, camera: np.ndarray, frame: np.ndarray, depth: np.ndarray) -> None:
    """Hair, torso, neck, head and face in painter's order; depth from the figure's coverage."""
    height = frame.shape[0]
    r = person.head_radius
    near_head = min(1.0, person.nearness + _HEAD_OFFSET)
    # The head is a little nearer than the shoulders, so it moves a little more with the camera;
    # it bobs, the shoulders barely do.
    torso_shift = camera * _parallax(person.nearness) + person.motion[f] * 0.3
    head_shift = camera * _parallax(near_head + 0.5 * _HEAD_BULGE) + person.motion[f]
    cx_t, ty = person.centre_x + torso_shift[0], person.head_y + torso_shift[1]
    cx_h, hy = person.centre_x + head_shift[0], person.head_y + head_shift[1]
    turn = float(person.turn[f])
    pen = _Pen(frame)
    if person.hair_style == "long":  # long hair falls behind the shoulders: drawn first
        pen.ellipse((cx_h, hy + 0.6 * r), (1.15 * r, 1.5 * r), person.hair)
    shoulders_y = ty + 3.0 * r
    pen.ellipse((cx_t, shoulders_y), (2.0 * r, 1.4 * r), person.shirt)
    body = np.array(
        [
            [cx_t - 2.0 * r, shoulders_y],
            [cx_t + 2.0 * r, shoulders_y],
            [cx_t + 2.15 * r, height + 2.0],
            [cx_t - 2.15 * r, height + 2.0],
        ]
    )
    pen.polygon(body, person.shirt)
    neck = np.array(
        [
            [cx_h - 0.38 * r, hy + 0.6 * r],
            [cx_h + 0.38 * r, hy + 0.6 * r],
            [cx_t + 0.42 * r, shoulders_y - 0.7 * r],
            [cx_t - 0.42 * r, shoulders_y - 0.7 * r],
        ]
    )
    pen.polygon(neck, person.skin * 0.8)
    head_axes = (0.82 * r * (1.0 - 0.08 * abs(turn)), r)
    if person.hair_style == "bun":
        pen.ellipse((cx_h - 0.2 * turn * r, hy - 1.05 * r), (0.42 * r, 0.36 * r), person.hair)
    for side in (-1.0, 1.0):  # ears show on the side the face turns away from
        if turn * side < 0.3:
            pen.ellipse(
                (cx_h + side * head_axes[0] * 0.98, hy + 0.05 * r), (0.14 * r, 0.22 * r), person.skin * 0.9
            )
    pen.ellipse((cx_h, hy), head_axes, person.skin)
    body_mask = pen.mask.copy()
    if person.hair_style != "bald":
        pen.ellipse((cx_h, hy - 0.18 * r), (head_axes[0] * 1.06, r * 0.9), person.hair, (180.0, 360.0))
        pen.ellipse(
            (cx_h + 0.25 * turn * r, hy - 0.35 * r),
            (head_axes[0] * 0.95, 0.3 * r),
            person.hair,
            (180.0, 360.0),
        )
    _draw_face(pen, person, f, (cx_h, hy), r, turn)
    if person.headphones:
        pen.arc(
            (cx_h, hy - 0.1 * r),
            (head_axes[0] * 1.12, r * 1.08),
            (180.0, 360.0),
            np.array([30.0, 30.0, 34.0]),
            max(1, round(0.12 * r)),
        )
        for side in (-1.0, 1.0):
            pen.ellipse(
                (cx_h + side * head_axes[0] * 1.02, hy + 0.05 * r),
                (0.2 * r, 0.32 * r),
                np.array([40.0, 40.0, 46.0]),
            )
    np.copyto(depth, np.float32(person.nearness), where=np.maximum(pen.mask, body_mask) >= 128)
    _head_depth(depth, (cx_h, hy), head_axes, near_head)


def _head_depth(
    depth: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], nearness: float
) -> None:
    """A rounded face in depth: nearer in the middle, like an ellipsoid seen from the front."""
    height, width = depth.shape
    x0, x1 = max(0, int(centre[0] - axes[0]) - 1), min(width, int(centre[0] + axes[0]) + 2)
    y0, y1 = max(0, int(centre[1] - axes[1]) - 1), min(height, int(centre[1] + axes[1]) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    inside = 1.0 - ((xx - centre[0]) / axes[0]) ** 2 - ((yy - centre[1]) / axes[1]) ** 2
    region = depth[y0:y1, x0:x1]
    np.copyto(
        region,
        np.minimum(1.0, nearness + _HEAD_BULGE * np.sqrt(np.clip(inside, 0.0, 1.0))),
        where=inside >= 0.0,
    )


def _draw_face(
    pen: _Pen, person: _Person, f: int, centre: tuple[float, float], r: float, turn: float
) -> None:
    cx, cy = centre
    shift = 0.28 * turn * r  # features slide towards the side the head turns to
    eye_y = cy - 0.08 * r
    for side in (-1.0, 1.0):
        ex = cx + shift + side * 0.34 * r * (1.0 - 0.25 * turn * side)
        if person.blink[f]:
            pen.ellipse((ex, eye_y), (0.15 * r, 0.025 * r + 0.3), _DARK, cover=False)
        else:
            pen.ellipse((ex, eye_y), (0.15 * r, 0.09 * r), np.array([245.0, 245.0, 240.0]), cover=False)
            pen.ellipse((ex + 0.04 * turn * r, eye_y), (0.07 * r, 0.08 * r), _DARK, cover=False)
        brow = np.array(
            [
                [ex - 0.16 * r, eye_y - 0.2 * r],
                [ex + 0.16 * r, eye_y - 0.22 * r],
                [ex + 0.16 * r, eye_y - 0.17 * r],
                [ex - 0.16 * r, eye_y - 0.15 * r],
            ]
        )
        pen.polygon(brow, person.hair * 0.8, cover=False)
        if person.glasses:
            pen.arc((ex, eye_y), (0.22 * r, 0.2 * r), (0.0, 360.0), np.array([20.0, 20.0, 20.0]), 1)
    pen.ellipse((cx + 1.3 * shift, cy + 0.2 * r), (0.07 * r, 0.05 * r), person.skin * 0.78, cover=False)
    lips = np.array([150.0, 60.0, 60.0]) * 0.6 + person.skin * 0.25
    pen.ellipse((cx + 1.1 * shift, cy + 0.45 * r), (0.24 * r, 0.1 * r), lips, (0.0, 180.0), cover=False)


# ------------------------------------------------------------------------------------------ clips


def make_clip(
    rng: np.random.Generator,
    size: tuple[int, int],
    length: int,
    split: str = "train",
    kinds: tuple[str, ...] = CLIP_KINDS,
) -> Clip:
    """One random clip of ``kinds`` from ``split``'s pictures, (height, width) = ``size``."""
    _check_size(size, length)
    if not kinds or any(kind not in CLIP_KINDS for kind in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {CLIP_KINDS}, got {kinds!r}")
    pool = image_pool(split)
    kind = kinds[int(rng.integers(len(kinds)))]
    static = rng.random() < STATIC_FRACTION
    # A static clip is one frame repeated: exactly identical frames, whatever the generator does.
    drawn = 1 if static else length
    if kind == "photo":
        clip = photo_clip(rng, pool[int(rng.integers(len(pool)))], size, drawn)
    else:
        posters = [image for image in pool if image.name not in UNCLEAR_LICENCE_IMAGES]
        clip = render_scene(plan_scene(rng, size, drawn, posters=posters))
    frames = _colour_jitter(rng, clip.frames)
    depth = clip.depth
    if static:
        frames = np.repeat(frames, length, axis=0)
        depth = None if depth is None else np.repeat(depth, length, axis=0)
    return Clip(frames, depth, clip.source)


def _colour_jitter(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """One brightness/contrast/saturation/white-balance/gamma change for the whole clip."""
    contrast = rng.uniform(0.8, 1.2)
    brightness = rng.normal(0.0, 12.0)
    saturation = rng.uniform(0.7, 1.3)
    gains = np.exp(rng.normal(0.0, 0.06, size=3))
    grey = np.array([0.299, 0.587, 0.114])
    # Saturation mixes each pixel with its grey; gains then contrast about mid-grey, then brightness.
    mix = saturation * np.eye(3) + (1.0 - saturation) * np.tile(grey, (3, 1))
    matrix = contrast * gains[:, None] * mix
    offset = 128.0 * (1.0 - contrast) + brightness
    affine = np.hstack([matrix, np.full((3, 1), offset)]).astype(np.float32)
    flat = frames.reshape(-1, frames.shape[2], 3)
    out = cv2.transform(flat, affine)
    gamma = math.exp(rng.normal(0.0, 0.1))
    if abs(gamma - 1.0) > 1e-3:
        table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
        out = cv2.LUT(out, table)
    return out.reshape(frames.shape)


class ClipDataset:
    """An endless, indexable stream of clips; ``clip(i)`` depends only on (seed, i)."""

    def __init__(
        self,
        size: tuple[int, int],
        length: int,
        seed: int,
        split: str = "train",
        kinds: tuple[str, ...] = CLIP_KINDS,
    ) -> None:
        _check_size(size, length)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
        self.size = (int(size[0]), int(size[1]))
        self.length = int(length)
        self.seed = int(seed)
        self.split = split
        self.kinds = tuple(kinds)

    def clip(self, index: int) -> Clip:
        if index < 0:
            raise IndexError(f"clip index must be >= 0, got {index}")
        rng = np.random.default_rng([self.seed, int(index)])
        return make_clip(rng, self.size, self.length, self.split, self.kinds)

    def __getitem__(self, index: int) -> Clip:
        return self.clip(index)


def _check_size(size: tuple[int, int], length: int) -> tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 16 or width < 16:
        raise ValueError(f"frame size must be at least 16x16, got {size!r}")
    if length < 1:
        raise ValueError(f"clip length must be >= 1, got {length}")
    return height, width


__all__ = [
    "CLIP_KINDS",
    "HELDOUT_IMAGES",
    "SPLITS",
    "UNCLEAR_LICENCE_IMAGES",
    "STATIC_FRACTION",
    "Clip",
    "ClipDataset",
    "NamedImage",
    "ScenePlan",
    "image_pool",
    "make_clip",
    "photo_clip",
    "plan_scene",
    "procedural_scene",
    "render_scene",
]
