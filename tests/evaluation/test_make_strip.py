"""scripts/make_strip.py: a strip of input over output tiles, a side-by-side GIF, one-line errors."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_strip.py"
W, H = 56, 48  # not a multiple of 8, not the tiny profile's 64x64


def load_script():
    spec = importlib.util.spec_from_file_location("make_strip", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_strip"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ms():
    return load_script()


def write_clip(folder: Path, n: int = 8) -> list[np.ndarray]:
    """Numbered PNGs (RGB frames returned) with a disc moving right over a gradient."""
    folder.mkdir()
    frames = []
    for i in range(n):
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[..., 0] = np.linspace(30, 220, W, dtype=np.uint8)[None, :]
        rgb[..., 2] = 90
        cv2.circle(rgb, (8 + 5 * i, H // 2), 7, (250, 240, 20), -1)
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        frames.append(rgb)
    return frames


def strip_shape(ms, columns: int, rows: int, w: int = W, h: int = H) -> tuple[int, int]:
    return rows * h + (rows + 1) * ms.GAP, columns * w + (columns + 1) * ms.GAP


def tile(picture: np.ndarray, ms, col: int, row: int, w: int = W, h: int = H) -> np.ndarray:
    y, x = ms.GAP + row * (h + ms.GAP), ms.GAP + col * (w + ms.GAP)
    return picture[y : y + h, x : x + w]


def test_strip_and_gif_from_a_tiny_render(ms, tmp_path, capsys):
    frames = write_clip(tmp_path / "in")
    png, gif = tmp_path / "strip.png", tmp_path / "strip.gif"
    argv = [str(tmp_path / "in"), "--profile", "tiny", "--png", str(png), "--gif", str(gif), "--every", "2", "--threads", "1"]
    assert ms.main(argv) == 0
    assert capsys.readouterr().err == ""
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[:2] == strip_shape(ms, columns=4, rows=2)  # frames 0, 2, 4, 6 over their outputs
    # The middle of each top tile is the input frame itself (labels sit at the top and bottom edges).
    band = slice(H // 2 - 6, H // 2 + 6)
    for col, i in enumerate((0, 2, 4, 6)):
        assert np.array_equal(tile(picture, ms, col, 0)[band], frames[i][band])
        assert not np.array_equal(tile(picture, ms, col, 1)[band], frames[i][band])  # styled below
    with Image.open(gif) as anim:
        assert anim.n_frames == 8
        assert anim.size == (2 * W + 3 * ms.GAP, H + 2 * ms.GAP)  # input | output


def test_strip_from_an_already_rendered_output(ms, tmp_path):
    frames = write_clip(tmp_path / "in")
    fake_out = tmp_path / "out"  # any clip with the same frame count stands in for a render
    fake_out.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(fake_out / f"frame_{i:06d}.png"), 255 - cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    png = tmp_path / "strip.png"
    argv = [str(tmp_path / "in"), "--output-video", str(fake_out), "--png", str(png), "--columns", "3", "--size", "40x40"]
    assert ms.main(argv) == 0
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[:2] == strip_shape(ms, columns=3, rows=2, w=40, h=40)  # every ceil(8/3)=3rd frame
    band = slice(14, 26)
    for col, i in enumerate((0, 3, 6)):
        top = tile(picture, ms, col, 0, 40, 40)[band].astype(int)
        bottom = tile(picture, ms, col, 1, 40, 40)[band].astype(int)
        # The inverted "output" sits under its input (resizing may round the two differently by 1).
        assert np.abs(top + bottom - 255).max() <= 1


def test_output_with_another_frame_count_is_refused(ms, tmp_path, capsys):
    write_clip(tmp_path / "in", 8)
    write_clip(tmp_path / "other", 5)
    code = ms.main([str(tmp_path / "in"), "--output-video", str(tmp_path / "other"), "--png", str(tmp_path / "s.png")])
    assert code == 2
    err = capsys.readouterr().err
    assert "5 frames" in err and err.count("\n") == 1
    assert not (tmp_path / "s.png").exists()


def test_pattern_input_needs_no_file(ms, tmp_path):
    clip, total = ms.load_input(ms.PATTERN, 6, (32, 24))
    assert total == 6 and len(clip.frames) == 6 and clip.frames[0].shape == (24, 32, 3)
    rendered = tmp_path / "out"  # the pattern's own frames stand in for a render: no engine needed
    rendered.mkdir()
    for i, f in enumerate(clip.frames):
        cv2.imwrite(str(rendered / f"frame_{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    png = tmp_path / "strip.png"
    argv = [ms.PATTERN, "--frames", "6", "--size", "32x24", "--output-video", str(rendered), "--png", str(png), "--every", "1"]
    assert ms.main(argv) == 0
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[:2] == strip_shape(ms, columns=6, rows=2, w=32, h=24)


def test_unknown_profile_is_one_line_exit_2(ms, tmp_path, capsys):
    write_clip(tmp_path / "in", 3)
    code = ms.main([str(tmp_path / "in"), "--profile", "no-such-style", "--png", str(tmp_path / "s.png")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown profile 'no-such-style'" in err and err.count("\n") == 1


def test_missing_input_is_one_line_exit_2_without_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "missing.avi"), "--profile", "tiny", "--png", str(tmp_path / "s.png")],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"input {tmp_path / 'missing.avi'} does not exist"]
    assert "Traceback" not in run.stderr and run.stdout == ""
    assert not (tmp_path / "s.png").exists()


def test_help_runs(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--output-video" in run.stdout and "pattern" in run.stdout
