"""Frame sources: ``obs:NAME``, ``device:N`` / ``/dev/videoN``, ``file:PATH``, ``pattern``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import OBSSettings
from ..errors import ConfigError
from .base import CorruptFrame, Pacer, Source, SourceLost

__all__ = ["CorruptFrame", "Pacer", "Source", "SourceLost", "SourceOptions", "make_source"]


@dataclass(frozen=True)
class SourceOptions:
    """Options that only some sources use (from the command line)."""

    fps: float = 30.0  # obs and pattern capture rate; a camera's requested rate when camera_fps is unset
    camera_size: tuple[int, int] | None = None
    camera_fps: float | None = None
    camera_fourcc: str | None = None
    file_pace: bool = True
    file_loop: bool = False
    pattern_size: tuple[int, int] = (640, 360)
    pattern_frames: int | None = None


def make_source(spec: str, obs: OBSSettings | None = None, options: SourceOptions = SourceOptions()) -> Source:
    """Parse a --source value into a Source (not yet opened)."""
    kind, _, arg = spec.partition(":")
    if spec.startswith("/dev/video"):
        kind, arg = "device", spec
    if kind == "obs":
        from .obs import OBSSource

        return OBSSource(arg, obs or OBSSettings(), fps=options.fps)
    if kind == "device":
        from .device import DeviceSource

        if not arg:
            raise ConfigError("device: needs a camera number or path, e.g. device:0 or /dev/video0")
        device: int | str = int(arg) if arg.isdigit() else arg
        return DeviceSource(device, options.camera_size, options.camera_fps, options.camera_fourcc)
    if kind == "file":
        if not arg:
            raise ConfigError("file: needs a path, e.g. file:clip.mp4 or file:frames/")
        if os.path.isdir(arg):  # a folder of numbered PNG frames, played at --fps
            from .folder import FrameFolderSource

            return FrameFolderSource(arg, fps=options.fps, pace=options.file_pace)
        from .video import VideoFileSource

        return VideoFileSource(arg, pace=options.file_pace, loop=options.file_loop)
    if kind == "pattern":
        from .pattern import PatternSource

        w, h = options.pattern_size
        return PatternSource(w, h, options.fps, limit=options.pattern_frames)
    raise ConfigError(f"unknown source {spec!r}: use obs:NAME, device:N, /dev/videoN, file:PATH or pattern")
