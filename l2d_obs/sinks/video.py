"""Write published frames to a video file (``file:out.avi``/``.mp4``) or a folder of PNGs (``file:dir/``).

A folder keeps exact pixels and names each file by the frame's input index, which makes order and
completeness checkable; a video file is for watching.

A full disk must not cost the recording: OpenCV's video writer reports no write errors (a full disk
left a "successful" .avi with half its frames and an .mp4 that would not open), so the sink watches
the free space itself and stops *before* the disk is full, while there is still room to finalise the
file (the AVI index, the MP4 moov atom). It then warns once, with what was kept and what was lost,
and ignores later frames; the daemon's other outputs are not affected.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2

from ..errors import SinkError
from ..frames import Frame
from .base import Sink

log = logging.getLogger(__name__)

_FOURCC = {".avi": "MJPG", ".mkv": "MJPG", ".mp4": "mp4v", ".mov": "mp4v"}

# Room kept free for finalising: the container's index (a few dozen bytes a frame) plus slack.
_FINALISE_BYTES_PER_FRAME = 64
_FINALISE_SLACK = 64 * 1024


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still put in ``folder``'s file system."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


class VideoFileSink(Sink):
    records_repeats = False  # each styled frame once, in order (the clip plays at the source's rate)

    def __init__(self, path: str | Path) -> None:
        self.spec = str(path)
        self.path = Path(path)
        self.as_folder = self.spec.endswith(("/", "\\")) or self.path.is_dir()
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0
        self.dropped = 0  # frames not recorded after the output stopped (disk full)
        self.stopped_reason: str | None = None
        self._largest_frame = 0  # bytes planned for one frame (see _grew_by)
        self._observed = 0  # bytes: the biggest growth of the output seen after one write
        self._size = 0

    @property
    def name(self) -> str:
        return f"file:{self.spec}"

    @property
    def _folder(self) -> Path:
        return self.path if self.as_folder else self.path.parent

    def open(self, width: int, height: int, fps: float) -> None:
        self.frames = self.dropped = self._size = self._observed = 0
        self.stopped_reason = None
        # Before any frame, plan for a frame as big as raw pixels: compressed ones are far smaller.
        self._largest_frame = width * height * 3
        if self.as_folder:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SinkError(f"cannot create output folder {self.path}: {exc.strerror}") from None
            self._check_room_to_start()
            return
        fourcc = _FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise SinkError(
                f"cannot tell the video format of {self.path}: use .avi, .mkv, .mp4 or .mov, or end the path with / for PNG frames"
            )
        if not self.path.parent.is_dir():
            raise SinkError(f"folder {self.path.parent} does not exist; create it or choose another output path")
        self._check_room_to_start()
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"cannot write video {self.path} (codec {fourcc}); try an .avi path")
        self._writer = writer

    def _check_room_to_start(self) -> None:
        need = self._largest_frame + _FINALISE_SLACK
        if free_bytes(self._folder) < need:
            raise SinkError(f"the disk holding {self._folder} is full ({free_bytes(self._folder) // 1024} KiB free, "
                            f"a recording needs at least {need // 1024} KiB); free some space or choose another path")

    def _reserve(self) -> int:
        """Free space needed to take the next frame: the frame itself plus room to finalise."""
        return self._largest_frame + _FINALISE_BYTES_PER_FRAME * (self.frames + 1) + _FINALISE_SLACK

    def write(self, frame: Frame) -> None:
        if self.stopped_reason is not None:
            self.dropped += 1
            return
        if free_bytes(self._folder) < self._reserve():
            self._stop_recording("the disk is full")
            self.dropped += 1
            return
        bgr = cv2.cvtColor(frame.pixels, cv2.COLOR_RGB2BGR)
        if self.as_folder:
            target = self.path / f"frame_{frame.index:06d}.png"
            ok = False
            try:
                ok = cv2.imwrite(str(target), bgr)
            except cv2.error:
                pass
            if not ok:
                target.unlink(missing_ok=True)  # never leave a truncated PNG behind
                self._stop_recording("a PNG could not be written (disk full or folder gone)")
                self.dropped += 1
                return
            self._grew_by(target.stat().st_size)
        elif self._writer is not None:
            self._writer.write(bgr)
            self._grew_to(self.path)
        self.frames += 1

    def _grew_to(self, path: Path) -> None:
        try:
            size = path.stat().st_size
        except OSError:
            return
        self._grew_by(size - self._size)
        self._size = size

    def _grew_by(self, added: int) -> None:
        # Until the file first grows, the raw-pixel estimate stands. The writer buffers, so one
        # growth may hold several frames: an overestimate, which only makes the reserve safer.
        if added > 0:
            self._observed = max(self._observed, added)
            self._largest_frame = 2 * self._observed  # twice the biggest seen: frames vary with content

    def _stop_recording(self, why: str) -> None:
        self.stopped_reason = why
        self._finalise()
        kept = "PNGs are kept" if self.as_folder else "frames are kept in a file that plays"
        log.warning("%s: %s - stopped recording; the first %d %s, later frames are not recorded (free some "
                    "space and start again to record more). The other outputs go on.", self.name, why, self.frames, kept)

    def status(self) -> dict:
        st: dict = {"frames": self.frames}
        if self.stopped_reason:
            st.update(stopped=self.stopped_reason, not_recorded=self.dropped)
        return st

    def _finalise(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    def close(self) -> None:
        self._finalise()
        if self.dropped:
            log.info("%s: %d frames were not recorded (%s)", self.name, self.dropped, self.stopped_reason)
