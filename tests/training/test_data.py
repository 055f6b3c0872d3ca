"""Training data: clips are reproducible, well-formed, move the way they claim, and the target
styles keep the picture's structure while clearly changing it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from l2d_obs.training.data import (
    HELDOUT_IMAGES,
    ClipDataset,
    image_pool,
    make_clip,
    photo_clip,
    plan_scene,
    procedural_scene,
    render_scene,
)
from l2d_obs.training.stylize import STYLES, stylize

# The colour photos bundled in scikit-image's wheel (coffee is the held-out one).
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
    "color",
    "hubble_deep_field",
    "retina",
)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Timings are for one core, as the figures in the docs are."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


def _all_images() -> dict:
    return {image.name: image for split in ("train", "heldout") for image in image_pool(split)}


def _photos_128() -> list[tuple[str, np.ndarray]]:
    images = _all_images()
    return [
        (name, cv2.resize(images[name].rgb, (128, 128), interpolation=cv2.INTER_AREA))
        for name in SKIMAGE_PHOTOS
    ]


def _edges(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    grey = cv2.GaussianBlur(grey, (0, 0), 1.0)
    dx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(dx, dy).ravel()


def _edge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_edges(a), _edges(b))[0, 1])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-12))


def _colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness (0 for grey pictures)."""
    x = rgb.astype(np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


# ------------------------------------------------------------------------------------------ clips


def test_clip_is_a_pure_function_of_seed_and_index() -> None:
    a = ClipDataset((48, 64), 6, seed=7)
    b = ClipDataset((48, 64), 6, seed=7)
    for index in (0, 1, 5, 123456):
        first, again = a.clip(index), b[index]
        assert first.source == again.source
        np.testing.assert_array_equal(first.frames, again.frames)
        assert (first.depth is None) == (again.depth is None)
        if first.depth is not None:
            np.testing.assert_array_equal(first.depth, again.depth)
    assert not np.array_equal(a.clip(0).frames, a.clip(1).frames)
    assert not np.array_equal(a.clip(0).frames, ClipDataset((48, 64), 6, seed=8).clip(0).frames)


def test_shapes_dtypes_and_depth_range() -> None:
    dataset = ClipDataset((40, 72), 5, seed=1)
    kinds = set()
    for index in range(24):
        clip = dataset.clip(index)
        kinds.add(clip.source.split(":")[0])
        assert clip.frames.shape == (5, 40, 72, 3) and clip.frames.dtype == np.uint8
        if clip.depth is not None:
            assert clip.depth.shape == (5, 40, 72) and clip.depth.dtype == np.float32
            assert np.isfinite(clip.depth).all()
            assert clip.depth.min() >= 0.0 and clip.depth.max() <= 1.0
    assert kinds == {"photo", "scene"}
    with pytest.raises(ValueError, match="kinds"):
        make_clip(np.random.default_rng(0), (32, 32), 2, kinds=("video",))
    with pytest.raises(IndexError):
        dataset.clip(-1)


def test_scenes_have_exact_layered_depth() -> None:
    for seed in range(6):
        clip = procedural_scene(np.random.default_rng(seed), (64, 96), 4)
        assert clip.source == "scene" and clip.depth is not None
        assert clip.depth.shape == (4, 64, 96)
        assert 0.0 <= clip.depth.min() and clip.depth.max() <= 1.0
        # A room: something near in front of a far wall.
        assert clip.depth.max() - clip.depth.min() > 0.3


def test_motorcycle_photo_carries_its_disparity() -> None:
    image = _all_images()["motorcycle_left"]
    assert image.disparity is not None and image.disparity.shape == image.rgb.shape[:2]
    assert np.isfinite(image.disparity).all()
    assert image.disparity.min() >= 0.0 and image.disparity.max() <= 1.0
    # MiDaS convention: the motorcycle (middle of the picture) is nearer than the wall behind it (top).
    h, w = image.disparity.shape
    assert image.disparity[h // 2 :, w // 3 : 2 * w // 3].mean() > image.disparity[: h // 8].mean() + 0.15
    clip = photo_clip(np.random.default_rng(0), image, (48, 64), 4)
    assert clip.depth is not None and clip.depth.shape == (4, 48, 64)
    others = [img for img in image_pool("train") if img.disparity is None]
    assert photo_clip(np.random.default_rng(0), others[0], (48, 64), 4).depth is None


def _best_shift(f0: np.ndarray, f1: np.ndarray, m0: np.ndarray, m1: np.ndarray, max_shift: int) -> int:
    """The horizontal shift s for which frame 1 at x + s best matches frame 0 at x on a layer."""
    errors = []
    for s in range(max_shift):
        w = f0.shape[1] - s
        valid = m0[:, :w] & m1[:, s : s + w]
        if valid.sum() < 100:
            errors.append(np.inf)
            continue
        diff = np.abs(f0[:, :w].astype(np.int32) - f1[:, s : s + w].astype(np.int32)).sum(axis=-1)
        errors.append(float(diff[valid].mean()))
    return int(np.argmin(errors))


def test_panning_scene_has_parallax() -> None:
    pan = 20.0  # camera moves 20 px (at nearness 1) between the two frames
    camera = np.array([[-pan / 2, 0.0], [pan / 2, 0.0]])
    checked = 0
    for seed in range(10):
        plan = plan_scene(np.random.default_rng(seed), (96, 128), 2, camera=camera, object_motion=False)
        if plan.person is None:
            continue
        clip = render_scene(plan)
        assert clip.depth is not None
        (f0, f1), (d0, d1) = clip.frames, clip.depth
        wall = plan.wall_nearness
        body = plan.person.nearness
        far = _best_shift(f0, f1, np.isclose(d0, wall), np.isclose(d1, wall), 26)
        near = _best_shift(f0, f1, np.isclose(d0, body, atol=1e-6), np.isclose(d1, body, atol=1e-6), 26)
        expected_far = pan * (0.1 + 0.9 * wall)
        expected_near = pan * (0.1 + 0.9 * body)
        assert abs(far - expected_far) <= 1.5, (seed, far, expected_far)
        assert abs(near - expected_near) <= 1.5, (seed, near, expected_near)
        assert near >= far + 8
        checked += 1
    assert checked >= 3


def test_about_one_clip_in_eight_is_exactly_static() -> None:
    dataset = ClipDataset((32, 40), 4, seed=11)
    static = 0
    total = 96
    for index in range(total):
        clip = dataset.clip(index)
        if all(np.array_equal(clip.frames[0], frame) for frame in clip.frames[1:]):
            static += 1
            if clip.depth is not None:
                assert all(np.array_equal(clip.depth[0], d) for d in clip.depth[1:])
        else:
            # A moving clip must really move, not just differ by rounding somewhere.
            assert np.abs(clip.frames[0].astype(int) - clip.frames[-1].astype(int)).max() > 2
    print(f"\nstatic clips: {static}/{total}")
    assert 4 <= static <= 22  # binomial(96, 1/8): mean 12


def test_heldout_images_never_in_train() -> None:
    train = {image.name for image in image_pool("train")}
    heldout = {image.name for image in image_pool("heldout")}
    assert heldout == set(HELDOUT_IMAGES)
    assert not train & set(HELDOUT_IMAGES)
    assert len(train) >= 8
    assert all(image.licence for image in image_pool("train"))
    sources = {ClipDataset((32, 32), 2, seed=3, kinds=("photo",)).clip(i).source for i in range(60)}
    assert not {f"photo:{name}" for name in HELDOUT_IMAGES} & sources
    assert {
        ClipDataset((32, 32), 2, seed=3, split="heldout", kinds=("photo",)).clip(i).source for i in range(4)
    } == {f"photo:{name}" for name in HELDOUT_IMAGES}
    with pytest.raises(ValueError, match="train"):
        image_pool("test")


def test_clip_generation_speed(one_thread: None) -> None:
    dataset = ClipDataset((128, 128), 16, seed=0)
    dataset.clip(0)  # photo loading is cached once per process; time the clips, not the loading
    start = time.perf_counter()
    count = 24
    for index in range(1, count + 1):
        dataset.clip(index)
    per_clip = (time.perf_counter() - start) / count
    print(f"\n16-frame 128x128 clip: {per_clip * 1000:.1f} ms")
    assert per_clip < 0.12  # about 25 ms here; generous for a loaded CI machine


# ----------------------------------------------------------------------------------------- styles


@pytest.mark.parametrize("style", STYLES)
def test_style_is_deterministic_and_keeps_shape(style: str) -> None:
    rng = np.random.default_rng(0)
    for h, w in ((48, 48), (97, 131), (128, 128), (512, 384)):
        picture = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        picture = cv2.GaussianBlur(picture, (0, 0), 2.0)
        out = stylize(style, picture)
        assert out.shape == picture.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, stylize(style, picture.copy()))


def test_unknown_style_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="toon.*pencil"):
        stylize("watercolour", np.zeros((48, 48, 3), np.uint8))


def test_styles_keep_structure_and_change_the_picture(one_thread: None) -> None:
    photos = _photos_128()
    figures = {}
    for style in STYLES:
        corr = [_edge_correlation(x, stylize(style, x)) for _, x in photos]
        psnr = [_psnr(x, stylize(style, x)) for _, x in photos]
        figures[style] = (float(np.mean(corr)), float(np.mean(psnr)))
        print(f"\n{style}: edge correlation mean {np.mean(corr):.3f} (min {np.min(corr):.2f}),", end=" ")
        print(f"PSNR mean {np.mean(psnr):.1f} dB")
        for (name, _), c, p in zip(photos, corr, psnr):
            print(f"  {name:18s} corr {c:.3f}  psnr {p:5.1f}")
    toon_corr, toon_psnr = figures["toon"]
    pencil_corr, pencil_psnr = figures["pencil"]
    assert toon_corr >= 0.7
    assert toon_psnr < 22.0
    assert pencil_corr >= 0.6
    assert pencil_psnr < 16.0
    cel_corr, cel_psnr = figures["toon-cel"]  # the shipped toon's cel look keeps more edges than the flat toon
    assert cel_corr >= 0.8 and cel_corr > toon_corr
    assert cel_psnr < 22.0
    start = time.perf_counter()
    for _, x in photos:
        for style in STYLES:
            stylize(style, x)
    per_call = (time.perf_counter() - start) / (len(STYLES) * len(photos))
    print(f"stylize at 128x128: {per_call * 1000:.2f} ms per frame")
    assert per_call < 0.015  # about 1-2 ms here


def test_toon_and_pencil_are_clearly_different() -> None:
    paper = []
    for name, x in _photos_128():
        toon, pencil = stylize("toon", x), stylize("pencil", x)
        paper.append(cv2.cvtColor(pencil, cv2.COLOR_RGB2GRAY))
        assert _psnr(toon, pencil) < 15.0, name
        # Pencil is graphite on paper: nearly grey. Toon keeps (and boosts) the photo's colour.
        assert _colourfulness(pencil) < 12.0, name
        if _colourfulness(x) > 30.0:
            assert _colourfulness(toon) > _colourfulness(pencil) + 20.0, name
    # Paper: pencil drawings are mostly light (a night sky is shaded dark, the rest make up for it).
    assert np.median(np.stack(paper)) > 150
