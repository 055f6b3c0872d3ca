"""What the daemon drives: the engine protocol, with style switching in it, and the adapters that give
every engine that protocol.

The daemon has one switching path: ``prepare_style(profile)`` on the switch thread (slow: weights,
prompt), then ``apply_style(prepared, recent)`` on the engine thread between two frames. How an engine
gets there is decided once, when it is built (``switchable``):

- the stream engine switches in place: a ``StyleLibrary`` prepares styles for it (sharing loaded
  components between profiles of one model) and the engine re-warms its cache from ``recent``;
- any other engine (test fakes, wrappers) can only be rebuilt: ``RebuildingEngine`` builds a new one
  through the factory and swaps it in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..frames import Frame
from ..profiles import Profile
from ..progress import ProgressFn

if TYPE_CHECKING:  # the daemon package loads no torch until an engine is built
    from ..styles import StyleLibrary


class BuiltEngine(Protocol):
    """What an engine factory must return at least: frames in, styled frames out."""

    width: int
    height: int

    def push(self, frame: Frame) -> list[Frame]: ...
    def flush(self) -> list[Frame]: ...
    def reset(self) -> None: ...


class EngineLike(BuiltEngine, Protocol):
    """What the daemon drives."""

    @property
    def warmup(self) -> int:
        """Frames a fresh stream needs before its first output (a resume after bypass feeds that many)."""
        ...

    def prepare_style(self, profile: Profile) -> Any:
        """Everything slow about switching to ``profile``; called on the switch thread while the current
        style keeps streaming. Raises a one-line L2DError (or any error) and changes nothing on failure."""
        ...

    def apply_style(self, prepared: Any, recent: list[Frame]) -> list[Frame]:
        """Make a prepared style the active one between two frames. ``recent``: the newest camera frames
        as captured (any size). Returns frames to publish at once (may be empty)."""
        ...

    @property
    def overlaps(self) -> bool:
        """Whether ``push`` should also get the next frame when it is already waiting."""
        ...

    def push(self, frame: Frame, upcoming: Frame | None = None) -> list[Frame]: ...


EngineFactory = Callable[[Profile], BuiltEngine]


def default_engine_factory(device: str | None = None, dtype: str | None = None,
                           progress: ProgressFn | None = None, accel_options: dict | None = None) -> EngineFactory:
    """``accel_options``: the command line's compile / cuda_graphs / channels_last / overlap (None: the profile's
    [engine] table, else the device's default)."""
    options = {k: v for k, v in (accel_options or {}).items() if v is not None}
    if progress is not None:
        options["progress"] = progress

    def build(profile: Profile) -> BuiltEngine:
        from ..factory import build_engine  # torch is imported only when an engine is really needed

        return build_engine(profile, device=device, dtype=dtype, **options)

    return build


class _Delegating:
    """Frames go straight to the wrapped engine (``inner``)."""

    inner: Any

    @property
    def width(self) -> int:
        return self.inner.width

    @property
    def height(self) -> int:
        return self.inner.height

    @property
    def overlaps(self) -> bool:
        """Whether the daemon should hand ``push`` the next frame too (engine option ``overlap``)."""
        return bool(getattr(self.inner, "overlaps", False))

    def push(self, frame: Frame, upcoming: Frame | None = None) -> list[Frame]:
        # Only an engine that overlaps is handed ``upcoming`` (the daemon asks ``overlaps`` first).
        return self.inner.push(frame) if upcoming is None else self.inner.push(frame, upcoming=upcoming)

    def flush(self) -> list[Frame]:
        return self.inner.flush()

    def reset(self) -> None:
        self.inner.reset()


class InPlaceEngine(_Delegating):
    """The stream engine: styles prepared by ``library`` and installed in the running engine, which
    re-warms its KV cache from the recent camera frames (fitted to the new style's size)."""

    def __init__(self, inner: Any, library: StyleLibrary) -> None:
        self.inner, self.library = inner, library

    @property
    def warmup(self) -> int:
        return self.inner.settings.warmup

    def prepare_style(self, profile: Profile) -> Any:
        return self.library.prepare(profile.name)  # a StyleEntry: the profile as loaded, its PreparedStyle

    def apply_style(self, prepared: Any, recent: list[Frame]) -> list[Frame]:
        outputs = self.inner.apply_style(prepared.style, recent=recent)
        self.library.activated(prepared.profile, prepared.style)
        return outputs


class RebuildingEngine(_Delegating):
    """An engine that cannot switch styles itself: a new one is built for each switch. The new engine
    starts a fresh stream with the next camera frame, so nothing is published at the swap."""

    def __init__(self, inner: BuiltEngine, factory: EngineFactory) -> None:
        self.inner, self._factory = inner, factory

    @property
    def warmup(self) -> int:
        # An engine that declares no settings needs one frame to answer.
        return getattr(getattr(self.inner, "settings", None), "warmup", 1)

    def prepare_style(self, profile: Profile) -> BuiltEngine:
        return self._factory(profile)

    def apply_style(self, prepared: BuiltEngine, recent: list[Frame]) -> list[Frame]:
        self.inner = prepared
        return []


def switchable(built: Any, factory: EngineFactory,
               library_for: Callable[[Any], StyleLibrary]) -> tuple[EngineLike, StyleLibrary | None]:
    """``built`` (what ``factory`` returned) as an ``EngineLike``, and the style library when the engine
    switches in place. The one place that asks what an engine can do."""
    if callable(getattr(built, "apply_style", None)):
        library = library_for(built)
        return InPlaceEngine(built, library), library
    return RebuildingEngine(built, factory), None
