"""Run the benchmark parts a config asks for and gather one JSON-able report."""

from __future__ import annotations

import datetime
import logging
import os
import platform
import time
from dataclasses import dataclass, field

import torch

from .config import BenchConfig
from .daemon_bench import DaemonResult, run_daemon_bench
from .engine_bench import EngineBench, EngineResult
from .setup import BenchEngine, build_bench_engine, pattern_frames
from .soak import SoakResult, run_soak

log = logging.getLogger(__name__)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class MachineInfo:
    cpu: str
    cores: int
    platform: str
    python: str
    torch: str
    gpu: str | None
    load_avg_start: tuple[float, float, float]
    load_avg_end: tuple[float, float, float] | None = None
    date_utc: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))

    @classmethod
    def probe(cls, device: torch.device) -> "MachineInfo":
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
        return cls(
            cpu=cpu_model(),
            cores=os.cpu_count() or 0,
            platform=platform.platform(),
            python=platform.python_version(),
            torch=torch.__version__,
            gpu=gpu,
            load_avg_start=tuple(round(x, 2) for x in os.getloadavg()),  # type: ignore[arg-type]
        )


@dataclass
class BenchReport:
    config: BenchConfig
    machine: MachineInfo
    torch_threads: int
    dtype: str
    device: str
    engine: EngineResult | None = None
    daemon: DaemonResult | None = None
    soak: SoakResult | None = None
    graphs: dict | None = None
    build_seconds: float = 0.0

    def to_dict(self) -> dict:
        config = self.config.to_dict()
        config.update(
            torch_threads=self.torch_threads,
            dtype=self.dtype,
            device=self.device,
            T=self.config.steps,
            L=self.config.window,
            Lw=self.config.warmup,
        )
        return {
            "config": config,
            "machine": {**self.machine.__dict__, "build_seconds": round(self.build_seconds, 1)},
            "engine": self.engine.to_dict() if self.engine else None,
            "daemon": self.daemon.to_dict() if self.daemon else None,
            "soak": self.soak.to_dict() if self.soak else None,
            "graphs": self.graphs,
        }


def run_bench(cfg: BenchConfig, progress: bool = False) -> BenchReport:
    """``progress``: a bar with ETA per part on stderr (each part's figures are printed at the end)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.monotonic()
    bench: BenchEngine = build_bench_engine(cfg)
    build_seconds = time.monotonic() - started
    machine = MachineInfo.probe(bench.device)
    report = BenchReport(
        config=cfg,
        machine=machine,
        torch_threads=torch.get_num_threads(),
        dtype=str(bench.dtype).removeprefix("torch."),
        device=str(bench.device),
        build_seconds=build_seconds,
    )
    if "engine" in cfg.parts:
        frames = pattern_frames(cfg.resolution, cfg.resolution, cfg.window + cfg.frames)
        report.engine = EngineBench(bench, cfg, frames).run(progress)
        log.info("engine part done")
    if "daemon" in cfg.parts:
        report.daemon = run_daemon_bench(bench.engine, cfg, progress)
        log.info("daemon part done")
    if "soak" in cfg.parts:
        report.soak = run_soak(bench.engine, cfg.soak_frames, progress)
        log.info("soak part done")
    if "graphs" in cfg.parts:
        from .graphs import run_graphs_part

        report.graphs = run_graphs_part(cfg, progress)
        log.info("graphs part done")
    machine.load_avg_end = tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[assignment]
    return report
