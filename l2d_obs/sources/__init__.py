"""Frame sources, one registry: each kind's spec syntax, one-line help, the options it reads, whether it
talks to OBS, and how its spec is parsed. ``make_source``, the ``--source`` help and ``doctor`` read it,
so the list of kinds is written here once. Adding a kind: its module and one ``SourceKind`` row.

This module imports no kind's module (nor numpy or OpenCV): each is imported when its kind is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..config import OBSSettings
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Source

__all__ = ["SOURCE_KINDS", "SourceKind", "SourceOptions", "make_source", "source_help", "source_kind"]


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


@dataclass(frozen=True)
class SourceKind:
    name: str  # what a spec starts with: "obs" in "obs:Camera"
    syntax: str  # how a spec is written, for help and errors
    help: str  # one line
    talks_to_obs: bool
    options: tuple[str, ...]  # the SourceOptions fields it reads
    make: Callable[[str, OBSSettings, SourceOptions], "Source"]  # the text after "kind:" -> a Source, not opened
    aliases: tuple[str, ...] = ()  # other spellings a spec may start with ("/dev/video")


def _obs(arg: str, obs: OBSSettings, options: SourceOptions) -> "Source":
    from .obs import OBSSource

    return OBSSource(arg, obs, fps=options.fps)


def _device(arg: str, obs: OBSSettings, options: SourceOptions) -> "Source":
    from .device import DeviceSource

    if not arg:
        raise ConfigError("device: needs a camera number or path, e.g. device:0 or /dev/video0")
    device: int | str = int(arg) if arg.isdigit() else arg
    return DeviceSource(device, options.camera_size, options.camera_fps, options.camera_fourcc)


def _file(arg: str, obs: OBSSettings, options: SourceOptions) -> "Source":
    if not arg:
        raise ConfigError("file: needs a path, e.g. file:clip.mp4 or file:frames/")
    if os.path.isdir(arg):  # a folder of numbered PNG frames, played at --fps
        from .folder import FrameFolderSource

        return FrameFolderSource(arg, fps=options.fps, pace=options.file_pace)
    from .video import VideoFileSource

    return VideoFileSource(arg, pace=options.file_pace, loop=options.file_loop)


def _pattern(arg: str, obs: OBSSettings, options: SourceOptions) -> "Source":
    from .pattern import PatternSource

    w, h = options.pattern_size
    return PatternSource(w, h, options.fps, limit=options.pattern_frames)


SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind("obs", "obs:NAME", "a source or scene in OBS, by screenshots over obs-websocket", True, ("fps",), _obs),
    SourceKind("device", "device:N", "a camera by number or path (also /dev/videoN)", False,
               ("camera_size", "camera_fps", "camera_fourcc", "fps"), _device, aliases=("/dev/video",)),
    SourceKind("file", "file:PATH", "a video file, or a folder of numbered PNG frames played at --fps", False,
               ("file_pace", "file_loop", "fps"), _file),
    SourceKind("pattern", "pattern", "a moving test pattern (no camera needed)", False,
               ("pattern_size", "pattern_frames", "fps"), _pattern),
)


def source_kind(spec: str) -> tuple[SourceKind, str]:
    """The kind a --source value names and the text after ``kind:``; a ConfigError listing the kinds."""
    for kind in SOURCE_KINDS:
        if any(spec.startswith(alias) for alias in kind.aliases):
            return kind, spec
        name, _, arg = spec.partition(":")
        if name == kind.name:
            return kind, arg
    raise ConfigError(f"unknown source {spec!r}: use {_spelled()}")


def make_source(spec: str, obs: OBSSettings | None = None, options: SourceOptions = SourceOptions()) -> "Source":
    """Parse a --source value into a Source (not yet opened; ``with`` closes it)."""
    kind, arg = source_kind(spec)
    return kind.make(arg, obs or OBSSettings(), options)


def _spelled() -> str:
    syntaxes = [k.syntax for k in SOURCE_KINDS]
    return ", ".join(syntaxes[:-1]) + " or " + syntaxes[-1]


def source_help() -> str:
    """The --source help: every kind with its one line."""
    return "; ".join(f"{k.syntax}: {k.help}" for k in SOURCE_KINDS) + "."
