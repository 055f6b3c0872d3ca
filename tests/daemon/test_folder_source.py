"""`file:DIR/` as a source: numbered PNGs in numeric order, clear errors for unusable folders."""

import cv2
import numpy as np
import pytest

from l2d_obs.errors import SourceError
from l2d_obs.sources import SourceOptions, make_source
from l2d_obs.sources.folder import FrameFolderSource


def test_frames_come_in_numeric_order_with_their_pixels(tmp_path):
    for i in (10, 2, 1, 0):  # written out of order, unpadded numbers
        img = np.full((6, 8, 3), i * 20, np.uint8)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
    source = make_source(f"file:{tmp_path}", options=SourceOptions(fps=25.0, file_pace=False))
    assert isinstance(source, FrameFolderSource) and source.fps == 25.0
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [int(f.pixels[0, 0, 0]) for f in frames] == [0, 20, 40, 200]
    assert source.native_size == (8, 6)


def test_duplicate_frame_numbers_are_an_error(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a1.png"), img)
    cv2.imwrite(str(tmp_path / "b01.png"), img)
    with pytest.raises(SourceError, match="two files carry frame number 1"):
        FrameFolderSource(tmp_path).open()


def test_an_unpaced_folder_is_not_paced_by_the_output_either(tmp_path):
    """--no-pace with a folder: the daemon's file output must not re-pace what the source does not."""
    import time as _time

    import cv2 as _cv2
    import numpy as _np

    from l2d_obs.daemon import Daemon, DaemonConfig
    from l2d_obs.profiles import load_profile
    from l2d_obs.sources.folder import FrameFolderSource
    from tests.daemon.daemon_helpers import PassThroughEngine, RecordingSink

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(60):
        _cv2.imwrite(str(folder / f"{i:04d}.png"), _np.full((32, 32, 3), i * 4, _np.uint8))
    source = FrameFolderSource(folder, fps=10.0, pace=False)
    assert source.pace is False and FrameFolderSource(folder, fps=10.0, pace=True).pace is True
    rec = RecordingSink(keep_pixels=False)
    started = _time.monotonic()
    Daemon(load_profile("tiny"), source, [rec], lambda p: PassThroughEngine(p), DaemonConfig()).run()
    took = _time.monotonic() - started
    assert len(rec.records) == 60
    assert took < 60 / 10.0 * 0.5, f"60 frames at a nominal 10 fps took {took:.1f} s: something paced them"
