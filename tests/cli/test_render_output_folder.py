"""`l2d-obs render` creates the folders above OUTPUT (a PNG folder or a video file), and removes them
again when the render fails."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from l2d_obs import cli


def write_clip(folder: Path, n: int, size: tuple[int, int] = (48, 40)) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 30, np.uint8)
        img[:, (i * 4) % (size[0] - 6):][:, :6] = (240, 180, 20)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), img)


def render(*args: str) -> int:
    return cli.main(["render", *args, "--profile", "tiny", "--threads", "1", "--no-progress"])


def test_png_output_in_a_missing_folder_is_created(tmp_path, capsys):
    write_clip(tmp_path / "in", 4)
    out = tmp_path / "renders" / "today" / "frames"
    assert render(str(tmp_path / "in"), str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(4)]
    assert "wrote 4 frames" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "renders" / "today").iterdir()] == ["frames"]  # no temporary left


def test_video_output_in_a_missing_folder_is_created(tmp_path):
    write_clip(tmp_path / "in", 3)
    out = tmp_path / "clips" / "out.avi"
    assert render(str(tmp_path / "in"), str(out)) == 0
    cap = cv2.VideoCapture(str(out))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 3


def test_a_failed_render_leaves_no_folder_behind(tmp_path, capsys):
    write_clip(tmp_path / "in", 4)
    cv2.imwrite(str(tmp_path / "in" / "f004.png"), np.zeros((20, 20, 3), np.uint8))  # another size: fails
    assert render(str(tmp_path / "in"), str(tmp_path / "new" / "deeper" / "frames")) != 0
    assert "all frames must have one size" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_an_output_below_a_file_is_refused_in_one_line(tmp_path, capsys):
    write_clip(tmp_path / "in", 2)
    (tmp_path / "afile").write_text("x")
    assert render(str(tmp_path / "in"), str(tmp_path / "afile" / "frames")) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "afile is a file" in err
