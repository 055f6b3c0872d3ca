"""Today's OBSClient against clients built on obs-websocket-py (``obswebsocket.obsws``), on a real OBS.

Run from the repository root: ``python -m benchmarks.obs_client_bench [--rounds 3] [--seconds 2] [--json F]``.
It starts a throwaway headless OBS (tests/obs_harness.py) with a noisy image (the hard case for JPEG and
websocket-client's UTF-8 check) and a flat colour source, then measures, interleaved round by round so
that a busy shared machine hurts every client alike:

- ``GetSourceScreenshot`` per second at 512x512, JPEG (quality 80) and PNG, and the client's own CPU time
  per screenshot (this process's CPU: OBS's rendering and encoding are the same for every client);
- request latency: ``GetVersion`` round trips, p50 / p95;
- whether a failed request's error text survives (a screenshot of a missing source), whether a wrong
  password is reported as such (and whether the failed login leaves its socket open), how a connect to
  a port that accepts TCP but never answers ends, and how long a request takes to fail once OBS is
  killed.

Clients: ``today`` (l2d_obs.obsclient.OBSClient), ``obsws-stock`` (obsws as documented: ``call`` with
request objects) and ``obsws-tuned`` (obsws configured as well as its API allows: UTF-8 validation
switched off on its socket after login, raw requests through its own ``events``/``answers`` tables so the
whole ``requestStatus`` comes back, and events handed to a queue so nothing runs on its receive thread).
TCP_NODELAY needs no setting: websocket-client sets it on every socket it opens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import socket
import statistics
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import websocket

try:
    import obswebsocket
    from obswebsocket import exceptions as obsws_errors
except ImportError:  # not a dependency of l2d-obs (docs/obs-client.md says why)
    raise SystemExit("this comparison needs obs-websocket-py: pip install obs-websocket-py==1.0") from None

from l2d_obs.errors import OBSConnectionError
from l2d_obs.obsclient import OBSClient
from tests.obs_harness import OBSHarness, add_color_source

SIZE = 512
SOURCES = {"noise": "bench-noise", "flat": "bench-flat"}
FORMATS = {"jpg": {"imageFormat": "jpg", "imageCompressionQuality": 80}, "png": {"imageFormat": "png"}}


class ObswsTuned:
    """obsws with everything its API (and its public attributes) let a caller configure."""

    def __init__(self, host: str, port: int, password: str, timeout: float = 5.0) -> None:
        self._ws = obswebsocket.obsws(host, port, password, legacy=False, timeout=timeout)
        self.timeout = timeout
        self._lock = threading.Lock()
        self.events: queue.Queue = queue.Queue(maxsize=256)

    def connect(self) -> "ObswsTuned":
        self._ws.connect()
        sock = self._ws.ws
        # obsws builds its WebSocket without options; the frame readers hold the UTF-8 switch.
        sock.frame_buffer.skip_utf8_validation = True
        sock.cont_frame.skip_utf8_validation = True
        self._ws.register(self._enqueue)  # the receive thread only enqueues
        return self

    def _enqueue(self, event: Any) -> None:
        try:
            self.events.put_nowait((event.name, event.datain))
        except queue.Full:
            pass

    def request(self, request_type: str, data: dict | None = None) -> dict:
        core = self._ws
        with self._lock:  # obsws's id counter is not thread-safe
            rid = str(core.id)
            core.id += 1
        done = threading.Event()
        core.events[rid] = done
        try:
            core.ws.send(json.dumps({"op": 6, "d": {"requestId": rid, "requestType": request_type, "requestData": data or {}}}))
            deadline = time.monotonic() + self.timeout
            # Wait in slices: obsws never wakes a waiting caller when the connection drops.
            while not done.wait(0.05):
                if not core.ws.connected or time.monotonic() > deadline:
                    raise OBSConnectionError(f"no answer to {request_type} (connection {'up' if core.ws.connected else 'lost'})")
        except (OSError, websocket.WebSocketException) as exc:
            raise OBSConnectionError(f"lost OBS ({type(exc).__name__})") from None
        finally:
            core.events.pop(rid, None)
        reply = core.answers.pop(rid)
        status = reply["requestStatus"]
        if not status.get("result"):
            raise OBSConnectionError(f"OBS refused {request_type}: {status.get('comment') or 'no reason given'} "
                                     f"(code {status.get('code')})")
        return reply.get("responseData") or {}

    def close(self) -> None:
        try:
            self._ws.disconnect()
        except (OSError, RuntimeError):
            pass


class ObswsStock:
    """obsws used as its documentation shows: ``call(requests.X(**data))``."""

    def __init__(self, host: str, port: int, password: str, timeout: float = 5.0) -> None:
        self._ws = obswebsocket.obsws(host, port, password, legacy=False, timeout=timeout)

    def connect(self) -> "ObswsStock":
        self._ws.connect()
        return self

    def request(self, request_type: str, data: dict | None = None) -> dict:
        try:
            reply = self._ws.call(getattr(obswebsocket.requests, request_type)(**(data or {})))
        except obsws_errors.MessageTimeout as exc:
            raise OBSConnectionError(str(exc)) from None
        if not reply.status:
            # All obsws keeps of a failure: the status flag and an empty responseData.
            raise OBSConnectionError(f"OBS refused {request_type}: {reply.datain or 'no reason given'}")
        return reply.datain

    def close(self) -> None:
        try:
            self._ws.disconnect()
        except (OSError, RuntimeError):
            pass


CLIENTS: dict[str, Callable[..., Any]] = {  # (host, port, password, timeout) -> an unconnected client
    "today": OBSClient,
    "obsws-tuned": ObswsTuned,
    "obsws-stock": ObswsStock,
}


def socket_left_open(client: Any) -> bool:
    """Whether a client whose login failed still holds an open websocket."""
    inner = client._ws
    ws = inner.ws if isinstance(inner, obswebsocket.obsws) else inner
    sock = getattr(ws, "sock", None)  # websocket-client's TCP socket; None once shut down
    return sock is not None and sock.fileno() >= 0


def screenshots_per_second(client: Any, source: str, fmt: str, seconds: float) -> tuple[float, float]:
    """(screenshots/s, client CPU ms per screenshot) over ``seconds``."""
    data = {"sourceName": source, "imageWidth": SIZE, "imageHeight": SIZE, **FORMATS[fmt]}
    count, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        shot = client.request("GetSourceScreenshot", data)["imageData"]
        assert shot.startswith("data:image/"), shot[:40]
        count += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return count / wall, 1000 * cpu / count


def latencies_ms(client: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.request("GetVersion")
        out.append((time.perf_counter() - t0) * 1000)
    return out


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def missing_source_error(client: Any) -> str:
    try:
        client.request("GetSourceScreenshot", {"sourceName": "no-such-source", "imageFormat": "jpg"})
    except OBSConnectionError as exc:
        return str(exc)
    return "(no error raised)"


def wrong_password_error(name: str, host: str, port: int) -> dict[str, Any]:
    client = CLIENTS[name](host, port, "not-the-password", 5.0)
    try:
        client.connect()
        client.close()
        return {"error": "(connected!)", "socket_left_open": False}
    except Exception as exc:  # noqa: BLE001 - the bench reports whatever each client raises
        return {"error": f"{type(exc).__name__}: {exc}", "socket_left_open": socket_left_open(client)}


def silent_port_outcome(name: str, wait: float = 3.0) -> str:
    """Connect (timeout 1 s) to a port that accepts TCP and never answers: how does the client end?"""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        client = CLIENTS[name]("127.0.0.1", server.getsockname()[1], "x", 1.0)
        outcome: list[str] = []

        def attempt() -> None:
            t0 = time.perf_counter()
            try:
                client.connect()
                outcome.append("connected?!")
            except Exception as exc:  # noqa: BLE001 - reported as is
                outcome.append(f"{type(exc).__name__} after {time.perf_counter() - t0:.1f} s")

        thread = threading.Thread(target=attempt, daemon=True)  # a hung connect is left behind, daemonic
        thread.start()
        thread.join(wait)
        return outcome[0] if outcome else f"still blocked after {wait:.0f} s"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "load_avg_start": os.getloadavg(),
            "obs_websocket_py": obswebsocket.VERSION, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def run(rounds: int, seconds: float, latency_n: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="l2d-obs-client-bench-"))
    noise = work / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8))
    harness = OBSHarness(work / "obs")
    report: dict[str, Any] = {"machine": machine(), "size": SIZE, "rounds": rounds, "seconds_per_cell": seconds}
    try:
        conn = harness.start()
        report["obs_version"] = {}
        with conn.client() as c:
            report["obs_version"] = {k: v for k, v in c.request("GetVersion").items() if k.endswith("Version")}
            c.request("CreateInput", {"sceneName": "Scene", "inputName": SOURCES["noise"], "inputKind": "image_source",
                                      "inputSettings": {"file": str(noise)}, "sceneItemEnabled": True})
            add_color_source(c, "Scene", SOURCES["flat"], (40, 120, 200))
        clients = {name: make(conn.host, conn.port, conn.password, 5.0).connect() for name, make in CLIENTS.items()}
        for client in clients.values():  # first screenshots are slower (OBS warms its textures)
            screenshots_per_second(client, SOURCES["noise"], "jpg", 0.3)
        shots: dict[str, dict[str, list]] = {n: {} for n in clients}
        lat: dict[str, list[float]] = {n: [] for n in clients}
        names = list(clients)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for content, source in SOURCES.items():
                for fmt in FORMATS:
                    for name in order:
                        shots[name].setdefault(f"{content}-{fmt}", []).append(
                            screenshots_per_second(clients[name], source, fmt, seconds))
            for name in order:
                lat[name] += latencies_ms(clients[name], latency_n)
            print(f"round {r + 1}/{rounds} done", flush=True)
        results: dict[str, Any] = {}
        for name in names:
            cells = {}
            for cell, runs in shots[name].items():
                rates = [rate for rate, _ in runs]
                cells[cell] = {"per_s_median": statistics.median(rates), "per_s_runs": rates,
                               "client_cpu_ms_median": statistics.median(cpu for _, cpu in runs)}
            results[name] = {
                "screenshots": cells,
                "get_version_ms": {"p50": percentile(lat[name], 50), "p95": percentile(lat[name], 95), "n": len(lat[name])},
                "missing_source_error": missing_source_error(clients[name]),
                "wrong_password": wrong_password_error(name, conn.host, conn.port),
                "silent_port": silent_port_outcome(name),
            }
            for cell, runs in shots[name].items():  # same round, same cell, adjacent in time: a paired ratio
                ratios = [rate / base for (rate, _), (base, _) in zip(runs, shots["today"][cell])]
                cells[cell]["vs_today_median"] = statistics.median(ratios)
        harness.kill()
        time.sleep(0.2)
        for name, client in clients.items():
            t0 = time.perf_counter()
            try:
                client.request("GetVersion")
                outcome = "answered?!"
            except OBSConnectionError as exc:
                outcome = str(exc)
            except Exception as exc:  # noqa: BLE001 - obsws raises its own and websocket-client's errors here
                outcome = f"{type(exc).__name__}: {exc}"
            results[name]["after_obs_killed"] = {"seconds": time.perf_counter() - t0, "error": outcome}
            client.close()
        report["results"] = results
    finally:
        harness.close()
    return report


def print_table(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\n{m['date']} · {m['cpu']} · {m['cores']} cores · load at start {m['load_avg_start'][0]:.2f} · "
          f"OBS {report.get('obs_version', {})} · obs-websocket-py {m['obs_websocket_py']}")
    cells = list(next(iter(report["results"].values()))["screenshots"])
    print(f"{'client':<12} " + " ".join(f"{c + ' /s':>13}" for c in cells) + "  cpu ms/jpg(noise)  GetVersion p50/p95 ms")
    for name, r in report["results"].items():
        s = r["screenshots"]
        print(f"{name:<12} " + " ".join(f"{s[c]['per_s_median']:>13.1f}" for c in cells)
              + f"  {s['noise-jpg']['client_cpu_ms_median']:>17.2f}"
              + f"  {r['get_version_ms']['p50']:.3f} / {r['get_version_ms']['p95']:.3f}")
    print("screenshots/s relative to today's, median of per-round ratios: "
          + "; ".join(f"{name} " + ", ".join(f"{c} {s['vs_today_median']:.2f}" for c, s in r["screenshots"].items())
                      for name, r in report["results"].items() if name != "today"))
    for name, r in report["results"].items():
        print(f"{name}: missing source -> {r['missing_source_error']}")
        wp = r["wrong_password"]
        print(f"{name}: wrong password -> {wp['error']} (socket left open: {wp['socket_left_open']})")
        print(f"{name}: silent port -> {r['silent_port']}")
        k = r["after_obs_killed"]
        print(f"{name}: after OBS was killed -> {k['seconds']:.3f} s: {k['error']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="per client, source and format, each round")
    ap.add_argument("--latency-n", type=int, default=300, help="GetVersion round trips per client per round")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args()
    report = run(args.rounds, args.seconds, args.latency_n)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
