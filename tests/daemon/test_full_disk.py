"""A full disk under a file output: one warning, the recording finalised and playable, the other
outputs unaffected. On a real small tmpfs when this machine lets the test mount one (root in a
container), else through the sink's own free-space probe counting down as the file grows."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import cv2
import pytest

import l2d_obs.sinks.video as video
from l2d_obs.daemon import Daemon, DaemonConfig
from l2d_obs.profiles import load_profile
from l2d_obs.sinks.video import VideoFileSink
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import PassThroughEngine, RecordingSink, playable_frames

@contextlib.contextmanager
def small_disk(tmp_path: Path, monkeypatch, disk_bytes: int) -> Iterator[Path]:
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={disk_bytes}", "tmpfs", str(mount)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode == 0:
        try:
            yield mount
        finally:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        return

    # No tmpfs here: the same disk, with a capacity of disk_bytes as the sink's probe reports it.
    def fake_free(folder: Path) -> int:
        used = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
        return max(0, disk_bytes - used)

    monkeypatch.setattr(video, "free_bytes", fake_free)
    yield mount


def _frame_count(path: Path) -> int:
    return playable_frames(path)


# Disks small enough for 600 moving 320x240 frames to fill them (an .mp4 of them takes ~300 KB).
@pytest.mark.parametrize("name,disk_bytes", [("clip.avi", 2 * 2**20), ("clip.mp4", 384 * 1024), ("frames/", 2 * 2**20)])
def test_full_disk_stops_one_output_cleanly_and_the_rest_go_on(name, disk_bytes, tmp_path, monkeypatch, caplog):
    with small_disk(tmp_path, monkeypatch, disk_bytes) as disk:
        target = str(disk / name) + ("/" if name.endswith("/") else "")
        file_sink, rec = VideoFileSink(target), RecordingSink(keep_pixels=False)
        frames = 600
        daemon = Daemon(load_profile("tiny"), PatternSource(320, 240, fps=200), [file_sink, rec],
                        lambda p: PassThroughEngine(p), DaemonConfig(max_frames=frames))  # fmt: skip
        with caplog.at_level(logging.WARNING):
            daemon.run()
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "file:" in r.getMessage()]
        print([w.getMessage() for w in warnings])
        assert len(warnings) == 1, [w.getMessage() for w in warnings]
        assert "disk is full" in warnings[0].getMessage() and "The other outputs go on" in warnings[0].getMessage()
        st = file_sink.status()
        print(f"{name}: {st}")
        assert st["stopped"] and 0 < st["frames"] < frames and st["frames"] + st["not_recorded"] == frames
        # The other output got every frame (and, from a live source, the clock's repeats too).
        assert daemon.stats.frames_published == frames and len(rec.records) >= frames
        assert len({f.index for _, f in rec.records}) == frames
        if name.endswith("/"):
            pngs = sorted((disk / name).glob("*.png"))
            assert len(pngs) == st["frames"] and all(cv2.imread(str(p)) is not None for p in pngs)
        else:
            assert _frame_count(disk / name) == st["frames"]


def test_a_disk_already_full_refuses_the_output_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "free_bytes", lambda folder: 1000)
    from l2d_obs.errors import SinkError

    with pytest.raises(SinkError, match="is full") as info:
        VideoFileSink(tmp_path / "x.avi").open(320, 240, 30)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.avi").exists()
    assert os.listdir(tmp_path) == []
