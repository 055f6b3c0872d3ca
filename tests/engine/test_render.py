"""`l2d-obs render`: frame count, order, size and rate kept; bad input is one clear error, nothing half-written."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from l2d_obs.cli import main


def write_png_clip(folder: Path, n: int, width: int = 52, height: int = 44) -> list[np.ndarray]:
    """Numbered PNG frames whose index is readable from the pixels (a bar moving across)."""
    folder.mkdir()
    frames = []
    for i in range(n):
        img = np.full((height, width, 3), 40, np.uint8)
        img[:, (i * 3) % (width - 6) : (i * 3) % (width - 6) + 6] = (250, 200, 20)
        cv2.imwrite(str(folder / f"img{i}.png"), img)  # unpadded numbers: img10 after img9
        frames.append(img)
    return frames


def write_video(path: Path, n: int, fps: float = 24.0, size=(100, 76)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:, (i * 4) % (size[0] - 10) :][:, :10] = (0, 200, 255)
        writer.write(img)
    writer.release()


def _junk(path: Path) -> Path:
    path.write_bytes(b"not a video at all" * 10)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_render_png_folder_keeps_count_order_and_size(tmp_path, capsys):
    write_png_clip(tmp_path / "in", 13)
    assert main(["render", str(tmp_path / "in"), str(tmp_path / "out"), "--profile", "tiny", "--no-progress"]) == 0
    out = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in out] == [f"frame_{i:06d}.png" for i in range(13)]
    for p in out:
        img = cv2.imread(str(p))
        assert img.shape == (44, 52, 3)  # back at the input size (not a multiple of 8)
    assert "wrote 13 frames (52x44" in capsys.readouterr().out
    assert _leftovers(tmp_path) == []


def test_render_video_to_video_keeps_count_size_and_fps(tmp_path):
    write_video(tmp_path / "in.avi", 11, fps=24.0)
    assert main(["render", "-p", "tiny", str(tmp_path / "in.avi"), str(tmp_path / "out.avi"), "--no-progress"]) == 0
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 11
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(24.0)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (100, 76)


def test_render_seed_reproduces_and_changes_output(tmp_path):
    write_png_clip(tmp_path / "in", 10)
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert main(["render", "-p", "tiny", str(tmp_path / "in"), str(tmp_path / name), "--seed", seed, "--no-progress"]) == 0
    read = lambda d: np.stack([cv2.imread(str(p)) for p in sorted((tmp_path / d).iterdir())])  # noqa: E731
    assert np.array_equal(read("a"), read("b"))
    assert not np.array_equal(read("a"), read("c"))


@pytest.mark.parametrize(
    "make_input, output, message",
    [
        (lambda d: d / "missing.avi", "out.avi", "does not exist"),
        (lambda d: _junk(d / "junk.avi"), "out.avi", "junk.avi"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "out", "holds no frames"),
        (lambda d: write_video(d / "zero.avi", 0) or d / "zero.avi", "out.avi", "zero.avi"),
        (lambda d: write_video(d / "ok.avi", 3) or (d / "afile").write_text("x") and d / "ok.avi", "afile/out.avi",
         "afile is a file"),
    ],
    ids=["missing-input", "unreadable-input", "empty-folder", "zero-frame-video", "output-dir-is-a-file"],
)
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys, make_input, output, message):
    source = make_input(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["render", "-p", "tiny", str(source), str(tmp_path / output), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("l2d-obs: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_unknown_profile_is_refused(tmp_path, capsys):
    write_video(tmp_path / "in.avi", 3)
    assert main(["render", str(tmp_path / "in.avi"), str(tmp_path / "o.avi"), "-p", "no-such-style"]) == 2
    assert "unknown profile 'no-such-style'" in capsys.readouterr().err
    assert not (tmp_path / "o.avi").exists()


def test_mixed_frame_sizes_fail_without_output(tmp_path, capsys):
    write_png_clip(tmp_path / "in", 9)
    cv2.imwrite(str(tmp_path / "in" / "img9.png"), np.zeros((20, 20, 3), np.uint8))
    assert main(["render", "-p", "tiny", str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress"]) == 3
    assert "all frames must have one size" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
