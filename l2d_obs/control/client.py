"""Talk to a running daemon through its control API (address and token from control.json)."""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ControlError
from .server import control_file


@dataclass(frozen=True)
class ControlInfo:
    host: str
    port: int
    pid: int
    token: str

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return f"ControlInfo({self.host}:{self.port}, pid={self.pid})"


def read_control_file(path: Path | None = None) -> ControlInfo:
    path = path or control_file()
    try:
        data = json.loads(path.read_text())
        return ControlInfo(str(data["host"]), int(data["port"]), int(data["pid"]), str(data["token"]))
    except FileNotFoundError:
        raise ControlError(f"no running daemon found ({path} does not exist); start one with 'l2d-obs start'") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ControlError(f"{path} is unreadable or damaged; stop any daemon and delete it") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited process its parent has not reaped yet (a zombie) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class ControlClient:
    def __init__(self, info: ControlInfo | None = None, timeout: float = 5.0) -> None:
        self.info = info or read_control_file()
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        info = self.info
        conn = http.client.HTTPConnection(info.host, info.port, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {info.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as exc:
            hint = "it is no longer running" if not _pid_alive(info.pid) else "it does not answer"
            raise ControlError(f"cannot reach the daemon (pid {info.pid}) at {info.host}:{info.port}: {hint} ({exc})") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw.decode() or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ControlError(f"the daemon sent a reply that is not JSON (HTTP {resp.status})") from None
        if resp.status >= 400:
            raise ControlError(f"daemon refused {method} {path}: {payload.get('error', f'HTTP {resp.status}')}")
        return payload

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/status")

    def profiles(self) -> dict[str, Any]:
        return self.request("GET", "/profiles")

    def switch(self, profile: str) -> dict[str, Any]:
        return self.request("POST", "/switch", {"profile": profile})

    def stop(self) -> dict[str, Any]:
        return self.request("POST", "/stop")
