"""Frames from a folder of numbered PNG images (lossless: for exact comparisons and offline renders)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2

from ..errors import SourceError
from ..frames import Frame
from .base import CorruptFrame, Pacer, Source

_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a file name


def numbered_pngs(folder: Path) -> list[Path]:
    """PNG files in ``folder`` ordered by the last number in their names (frame_2 before frame_10)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file()]
    unnumbered = [p.name for p in files if not _NUMBER.search(p.stem)]
    if unnumbered:
        raise SourceError(f"{folder}: PNG files without a frame number in their name: {', '.join(sorted(unnumbered)[:5])}")
    numbers: dict[int, Path] = {}
    for p in files:
        n = int(_NUMBER.search(p.stem).group(1))
        if n in numbers:
            raise SourceError(f"{folder}: two files carry frame number {n}: {numbers[n].name} and {p.name}")
        numbers[n] = p
    return [numbers[n] for n in sorted(numbers)]


class FrameFolderSource(Source):
    live = False

    def __init__(self, folder: str | Path, fps: float = 30.0, pace: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self._fps = fps
        self.pace = pace
        self._files: list[Path] = []
        self._pacer = Pacer(fps if pace else 0)
        self._size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"file:{self.folder}/"

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def native_size(self) -> tuple[int, int] | None:
        return self._size

    def __len__(self) -> int:
        return len(self._files)

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder} is not a folder")
        self._files = numbered_pngs(self.folder)
        if self._files:
            first = cv2.imread(str(self._files[0]), cv2.IMREAD_COLOR)
            if first is None:
                raise SourceError(f"{self._files[0]}: not a readable PNG image")
            self._size = (first.shape[1], first.shape[0])

    def read(self) -> Frame | None:
        if self._next_index >= len(self._files):
            return None
        self._pacer.wait()
        path = self._files[self._next_index]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            self._next_index += 1
            raise CorruptFrame(f"{path}: not a readable PNG image")
        return self._frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))

    def close(self) -> None:
        self._files = []
