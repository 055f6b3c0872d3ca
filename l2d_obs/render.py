"""Offline translation of a whole clip: `l2d-obs render INPUT OUTPUT --profile NAME`.

INPUT and OUTPUT are each a video file or a folder of numbered PNG frames. The output has the input's
frame count, order, size and frame rate: frames are fitted to the profile's resolution (centre crop +
resize) for the engine and fitted back to the input size; warmup frames are real outputs and the
pipeline is flushed at the end. Missing folders above OUTPUT are created. Everything is written to a
temporary sibling first and moved into place only when complete, so a failure never leaves a
half-written output (nor the folders it created).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2

from .errors import InputError, OutputError
from .frames import Frame
from .imageops import fit
from .sinks.video import VideoFileSink
from .sources.base import CorruptFrame, Source
from .sources.folder import FrameFolderSource
from .sources.video import VideoFileSource

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mkv", ".mp4", ".mov")


@dataclass(frozen=True)
class RenderResult:
    frames: int
    width: int
    height: int
    fps: float
    output: Path


def open_input(path: Path, fps: float) -> tuple[Source, int]:
    """Open INPUT and count its frames; a clear InputError for anything unusable."""
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        source: Source = FrameFolderSource(path, fps=fps)
        try:
            source.open()
        except Exception as exc:
            raise InputError(str(exc)) from None
        count = len(source)  # type: ignore[arg-type]
    else:
        source = VideoFileSource(path, pace=False)
        try:
            source.open()
        except Exception as exc:
            raise InputError(f"cannot read {path} as a video: {exc}") from None
        cap = cv2.VideoCapture(str(path))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    if count <= 0:
        source.close()
        raise InputError(f"input {path} holds no frames")
    return source, count


def _check_output(output: Path) -> bool:
    """Validate OUTPUT before any work; returns True for a PNG-folder output."""
    as_folder = output.suffix.lower() not in VIDEO_SUFFIXES
    existing = next(p for p in output.absolute().parents if p.exists())  # the folders below it get created
    if not existing.is_dir():
        raise OutputError(f"cannot create the output folder {output.parent}: {existing} is a file")
    if as_folder and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise OutputError(f"output {output} already exists and is not an empty folder; choose a new path")
    if not as_folder and output.is_dir():
        raise OutputError(f"output {output} is a folder, not a video file")
    return as_folder


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and any missing parents; returns the ones created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {folder}: {exc.strerror}") from None
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # something else was put there meanwhile: keep it
            return


def render(
    input_path: Path,
    output_path: Path,
    engine_factory: Callable[[], object],
    input_fps: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Translate every frame of INPUT into OUTPUT. ``engine_factory`` returns a StreamEngine."""
    as_folder = _check_output(output_path)
    source, total = open_input(input_path, input_fps)
    try:
        width, height = source.native_size or (0, 0)
        if width <= 0 or height <= 0:
            raise InputError(f"input {input_path} reports no frame size")
        fps = source.fps
        engine = engine_factory()
        created = _make_folders(output_path.parent)
        tmp_root = Path(tempfile.mkdtemp(prefix=f".{output_path.name}.partial-", dir=output_path.parent))
        done = False
        try:
            target = tmp_root / ("frames" if as_folder else f"out{output_path.suffix}")
            sink = VideoFileSink(str(target) + ("/" if as_folder else ""))
            sink.open(width, height, fps)
            written = 0

            def publish(frames: list[Frame]) -> None:
                nonlocal written
                for out in frames:
                    sink.write(out.with_pixels(fit(out.pixels, width, height)))
                    written += 1
                    if progress:
                        progress(written, total)

            read = 0
            while True:
                try:
                    frame = source.read()
                except CorruptFrame as exc:
                    raise InputError(f"{exc}; the output was not written") from None
                if frame is None:
                    break
                if frame.pixels.shape[:2] != (height, width):
                    raise InputError(
                        f"frame {frame.index} of {input_path} is {frame.width}x{frame.height}, "
                        f"the first was {width}x{height}; all frames must have one size"
                    )
                read += 1
                publish(engine.push(frame.with_pixels(fit(frame.pixels, engine.width, engine.height))))
            publish(engine.flush())
            sink.close()
            if read == 0:
                raise InputError(f"input {input_path} holds no readable frames")
            if written != read:
                raise OutputError(f"engine returned {written} frames for {read} inputs")  # an invariant
            if output_path.exists():  # an empty folder we validated
                output_path.rmdir()
            shutil.move(str(target), str(output_path))
            done = True
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)
            if not done:
                _remove_empty(created)
    finally:
        source.close()
    log.info("rendered %d frames (%dx%d @ %.2f fps) to %s", written, width, height, fps, output_path)
    return RenderResult(frames=written, width=width, height=height, fps=fps, output=output_path)
