"""l2d-obs: live, temporally consistent AI style for a camera in OBS Studio, powered by Live2Diff."""

__version__ = "0.1.0"
