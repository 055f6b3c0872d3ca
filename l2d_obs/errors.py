"""One error hierarchy for the whole program.

Every error carries a message meant for a streamer: what is wrong and what to do about it. The CLI
prints ``str(error)`` on one line and exits with ``error.exit_code``.
"""

from __future__ import annotations


class L2DError(Exception):
    """Base of every error l2d-obs raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # Keep messages on one line: they end up in a status line or a terminal.
        super().__init__(" ".join(str(message).split()))


class ConfigError(L2DError):
    """A setting, config file or command-line value is invalid."""

    exit_code = 2


class ProfileError(ConfigError):
    """A style profile is missing, unknown or invalid."""


class InputError(L2DError):
    """An input (video file, frame folder, frame) cannot be used."""

    exit_code = 3


class OutputError(L2DError):
    """An output cannot be written."""

    exit_code = 3


class FrameSizeError(InputError):
    """A frame's size does not match what the engine was built for."""


class ModelError(L2DError):
    """Model weights are missing, corrupt or of the wrong architecture."""

    exit_code = 4


class MissingWeightsError(ModelError):
    """A weight file a profile needs is not on disk."""


class CheckpointError(ModelError):
    """A checkpoint file cannot be read or does not match the expected architecture."""


class DownloadError(ModelError):
    """A download failed: the server refused it (HTTP 401, 403, 404, ...) or the transfer broke off."""


class NetworkError(DownloadError):
    """A server cannot be reached at all (no network, DNS, refused, no answer): every download would fail."""


class EngineError(L2DError):
    """The diffusion engine was used incorrectly or failed."""

    exit_code = 5


class SourceError(L2DError):
    """A frame source (OBS, camera, file) failed or is not available."""

    exit_code = 6


class SinkError(L2DError):
    """A frame sink (virtual camera, OBS return, file) failed or is not available."""

    exit_code = 6


class OBSConnectionError(SourceError):
    """OBS is not reachable over obs-websocket."""


class ControlError(L2DError):
    """The control API of a running daemon cannot be reached or refused a request."""

    exit_code = 7
