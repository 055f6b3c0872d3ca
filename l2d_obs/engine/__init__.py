"""The Live2Diff streaming engine (torch/diffusers side; knows nothing of OBS or cameras)."""

from .components import Live2DiffComponents
from .accel import Accelerations
from .factory import pick_device, pick_dtype
from .stream import EngineSettings, EngineStats, StreamEngine

__all__ = [
    "Accelerations",
    "EngineSettings",
    "EngineStats",
    "Live2DiffComponents",
    "StreamEngine",
    "pick_device",
    "pick_dtype",
]
