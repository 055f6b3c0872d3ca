"""OpenCV's own "[ WARN:0@...]" lines are silenced at CLI start-up in favour of our one error line
(kept with -vv, and when the user sets OPENCV_LOG_LEVEL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    full.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full, capture_output=True, text=True, timeout=120)


# A camera index no machine has: OpenCV warns on stderr when it cannot open it.
OPEN_MISSING_CAMERA = "import cv2; assert not cv2.VideoCapture(97).isOpened()"


def test_opencv_warns_on_its_own_without_us():
    """The premise: without the CLI's set-up, OpenCV prints its own lines for a camera that is not there."""
    assert "WARN" in run(OPEN_MISSING_CAMERA).stderr


def test_the_cli_silences_opencv_imported_after_start_up():
    result = run(f"from l2d_obs.cli import main; main(['profiles', 'list']); {OPEN_MISSING_CAMERA}")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr and "VIDEOIO" not in result.stderr


def test_the_cli_silences_opencv_imported_before_start_up():
    result = run(f"import cv2; from l2d_obs.cli import main; main(['profiles', 'list']); {OPEN_MISSING_CAMERA}")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr


def test_very_verbose_and_the_users_own_level_keep_opencv_talking():
    assert "WARN" in run(f"from l2d_obs.cli import main; main(['-vv', 'profiles', 'list']); {OPEN_MISSING_CAMERA}").stderr
    code = f"from l2d_obs.cli import main; main(['profiles', 'list']); {OPEN_MISSING_CAMERA}"
    assert "WARN" in run(code, OPENCV_LOG_LEVEL="WARNING").stderr


def test_a_camera_that_does_not_open_is_one_line(tmp_path):
    """`start --source device:N` without that camera: our line only, no OpenCV lines before it."""
    result = subprocess.run(
        [sys.executable, "-m", "l2d_obs", "start", "-p", "tiny", "--source", "device:97", "--output", "null",
         "--frames", "1", "--control-port", "0", "--threads", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}, "PYTHONPATH": str(REPO),
             "L2D_STATE_DIR": str(tmp_path / "state"), "L2D_CONFIG": str(tmp_path / "none.toml")},
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("l2d-obs: error: ")]
    assert len(errors) == 1 and "camera 97" in errors[0], result.stderr
    assert "WARN" not in result.stderr and "VIDEOIO" not in result.stderr and "Traceback" not in result.stderr
