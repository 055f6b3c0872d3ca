"""Styles the daemon can switch to: profiles prepared ahead (``--preload``) or on request.

Preparing a style (loading weights, fusing LoRAs, encoding the prompt) is slow and happens here, on
the caller's thread, while the engine keeps streaming the current style. Components are shared
between profiles that use the same model (same base, LoRAs, depth...), so switching between prompts
of one model costs only a prompt encoding and a re-warm. Memory stays bounded: besides the active
style, only preloaded styles are kept.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .errors import L2DError, ProfileError
from .profiles import Profile, load_profile

if TYPE_CHECKING:  # the daemon module imports this one: torch comes only when a style is prepared
    import torch

    from .engine.components import Live2DiffComponents
    from .engine.stream import PreparedStyle

log = logging.getLogger(__name__)


def model_key(profile: Profile, device: torch.device | None = None, dtype: torch.dtype | None = None) -> tuple:
    """Profiles with equal keys can share one set of loaded components (on one device, in one precision)."""
    return (profile.model, profile.depth, str(device), str(dtype))  # frozen dataclasses: every field counts


@dataclass(frozen=True)
class StyleEntry:
    profile: Profile
    style: PreparedStyle


class StyleLibrary:
    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        components_factory: Callable[[Profile, torch.device, torch.dtype], Live2DiffComponents] | None = None,
        profile_loader: Callable[[str], Profile] = load_profile,
        placement: Callable[[Profile], tuple[torch.device, torch.dtype]] | None = None,
    ) -> None:
        if components_factory is None:
            from .factory import build_components

            components_factory = build_components
        self.device = device
        self.dtype = dtype
        # Where a profile runs: the command line's choice if any, else its [engine] table, else the
        # running engine's (see daemon.style_placement); by default, always the running engine's.
        self._placement = placement or (lambda profile: (self.device, self.dtype))
        self._components_factory = components_factory
        self._load_profile = profile_loader
        self._lock = threading.Lock()
        self._components: dict[tuple, Live2DiffComponents] = {}
        self._styles: dict[str, StyleEntry] = {}
        self.preloaded: set[str] = set()
        self.active: str | None = None

    def _components_for(self, profile: Profile, device: torch.device, dtype: torch.dtype) -> Live2DiffComponents:
        key = model_key(profile, device, dtype)
        with self._lock:
            found = self._components.get(key)
        if found is not None:
            return found
        components = self._components_factory(profile, device, dtype)  # slow: outside the lock
        with self._lock:
            return self._components.setdefault(key, components)

    def prepare(self, name: str) -> StyleEntry:
        """Load, validate and prepare a profile; raises a one-line L2DError and changes nothing on failure."""
        try:
            profile = self._load_profile(name)
        except L2DError:
            raise
        except Exception as exc:  # a profile loader must never take the daemon down
            raise ProfileError(f"profile {name!r} cannot be loaded: {exc}") from None
        with self._lock:
            cached = self._styles.get(profile.name)
        if cached is not None and cached.profile == profile:
            return cached
        device, dtype = self._placement(profile)
        components = self._components_for(profile, device, dtype)
        from .engine.stream import EngineSettings, prepare_style

        style = prepare_style(components, EngineSettings.from_profile(profile), device, dtype, profile.name)
        entry = StyleEntry(profile, style)
        with self._lock:
            self._styles[profile.name] = entry
        return entry

    def adopt(self, profile: Profile, style: PreparedStyle) -> None:
        """Register the style an engine was built with, so switching back to it reuses its parts."""
        with self._lock:
            self._components.setdefault(model_key(profile, style.device, style.dtype), style.components)
            self._styles[profile.name] = StyleEntry(profile, style)
            self.active = profile.name

    def preload(self, names: list[str]) -> None:
        for name in names:
            entry = self.prepare(name)
            self.preloaded.add(entry.profile.name)
            log.info("preloaded style %s", entry.profile.name)

    def activated(self, profile: Profile, style: PreparedStyle) -> None:
        """Record the active style and drop what neither it nor a preload needs any more. The active
        entry is (re)registered here: a newer request may have evicted it while it waited to be
        swapped in, and the library must always hold what is on screen."""
        name = profile.name
        with self._lock:
            self.active = name
            self._styles[name] = StyleEntry(profile, style)
            self._components.setdefault(model_key(profile, style.device, style.dtype), style.components)
            keep = self.preloaded | {name}
            for style_name in [n for n in self._styles if n not in keep]:
                del self._styles[style_name]
            used = {model_key(e.profile, e.style.device, e.style.dtype) for e in self._styles.values()}
            for key in [k for k in self._components if k not in used]:
                del self._components[key]

    def held(self) -> dict[str, int]:
        """How many styles and component sets are in memory (for status and tests)."""
        with self._lock:
            return {"styles": len(self._styles), "models": len(self._components)}
