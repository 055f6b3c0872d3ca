#!/usr/bin/env bash
# One prepared GPU check (about 5-8 minutes on an H100/H200): full size (SD1.5 + motion modules +
# DPT-hybrid, random weights), 512x512, T=2, depth on, fp16. For eager, compiled and compiled + CUDA
# graphs (each built through the engine's own accelerations, as `l2d-obs start` builds it):
# FPS and ms/frame, peak GPU memory, torch.cuda.set_sync_debug_mode("warn") warnings over 20 pushes,
# recompiles and graph breaks after the build-time warmup, kernels per frame (torch.profiler), and for
# CUDA graphs: inductor's cudagraph counters (a skip names its reason; the KV cache buffers are marked
# static inputs, so none is expected) and whether the cache kept its addresses over every push.
# Writes $OUT/gpu_check.json (or ./gpu_check_out/ without $OUT) after every phase, so a run cut
# short still leaves what it measured. On a machine without CUDA it says so and exits 3.
#
# The last configuration adds `overlap` (the next frame's encode + depth on a second CUDA stream, fed
# the next frame as the daemon feeds it): its FPS against compiled+graphs is what the overlap buys.
#
#   bash benchmarks/gpu_check.sh            # all four configurations
#   GPU_CHECK_CONFIGS=eager,compiled bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-$PWD/gpu_check_out}"
PY="${PYTHON:-python}"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA GPU visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'torch missing')); nothing measured" >&2
  exit 3
fi
mkdir -p "$OUT_DIR"
export GPU_CHECK_JSON="$OUT_DIR/gpu_check.json"
export GPU_CHECK_CONFIGS="${GPU_CHECK_CONFIGS:-eager,compiled,compiled+graphs,compiled+graphs+overlap}"
export TORCHINDUCTOR_FX_GRAPH_CACHE=1  # the graphs run reuses the kernels the compiled run built
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/l2d-gpu-check-inductor}"  # not under $OUT: it would come back
exec timeout "${GPU_CHECK_TIMEOUT:-470}" "$PY" - <<'PYEOF'
import json, os, time, warnings

import torch
import torch._dynamo
from torch._dynamo.utils import counters

from l2d_obs.bench.config import BenchConfig
from l2d_obs.bench.models import build_components
from l2d_obs.bench.setup import bench_settings, pattern_frames
from l2d_obs.engine.accel import Accelerations
from l2d_obs.engine.stream import StreamEngine

torch.backends.cuda.matmul.allow_tf32 = True
cfg = BenchConfig(size="full", resolution=512, steps=2, device="cuda", dtype="fp16", depth=True)
settings = bench_settings(cfg)
device, dtype = torch.device("cuda"), torch.float16
path = os.environ["GPU_CHECK_JSON"]
report = {"card": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
          "config": {"size": "full", "resolution": 512, "T": 2, "L": cfg.window, "Lw": cfg.warmup, "depth": True,
                     "dtype": "fp16"}, "runs": {}, "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def save():
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


ACCELS = {
    "eager": Accelerations(),
    "compiled": Accelerations(compile=True, channels_last=True),
    "compiled+graphs": Accelerations(compile=True, cuda_graphs=True, channels_last=True),
    "compiled+graphs+overlap": Accelerations(compile=True, cuda_graphs=True, channels_last=True, overlap=True),
}
t0 = time.time()
components = build_components("full", depth=True, weights_seed=0)
report["components_build_s"] = round(time.time() - t0, 1)
frames = pattern_frames(512, 512, 120)
save()


class Feed:
    """The frames in order; with overlap on, each push also gets the next one (as the daemon does)."""

    def __init__(self, engine):
        self.engine, self.i = engine, 0

    def push(self):
        frame, self.i = frames[self.i], self.i + 1
        upcoming = frames[self.i] if self.engine.overlaps and self.i < len(frames) else None
        return self.engine.push(frame, upcoming=upcoming)


for name in os.environ["GPU_CHECK_CONFIGS"].split(","):
    accel = ACCELS[name]
    run = report["runs"][name] = {"accelerations": accel.describe()}
    torch._dynamo.reset()
    counters.clear()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.time()
    engine = StreamEngine(components, settings, device=device, dtype=dtype, accel=accel,
                          progress=lambda step, f: print(f"[{name}] {step} {f:.0%}", flush=True))
    run["build_and_warm_s"] = round(time.time() - started, 1)
    graphs_at_warmup = counters["stats"]["unique_graphs"]
    run["graphs_at_warmup"] = graphs_at_warmup
    save()
    feed = Feed(engine)
    with torch.no_grad():
        for _ in range(cfg.warmup + 10):  # warmup, pipeline fill, the recent ring filling
            feed.push()
        torch.cuda.synchronize()
        cache_addresses = engine.cache.data_ptrs()
        times = []
        for _ in range(30):
            t = time.perf_counter()
            out = feed.push()  # returns the finished frame on the host: waits for it
            times.append(time.perf_counter() - t)
        times.sort()
        ms = 1000 * times[len(times) // 2]
        run.update(ms_per_frame_p50=round(ms, 2), fps=round(1000 / ms, 1),
                   ms_per_frame_mean=round(1000 * sum(times) / len(times), 2))
        save()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for _ in range(20):
                    feed.push()
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message).lower()]
        run["sync_warnings_20_pushes"] = len(syncs)
        run["sync_warnings_per_push"] = round(len(syncs) / 20, 2)
        run["sync_warning_kinds"] = sorted(set(syncs))[:10]
        save()
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                feed.push()
            torch.cuda.synchronize()
        events = prof.events()
        kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        launches = sum(1 for e in events if e.name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
        graph_launches = sum(1 for e in events if e.name == "cudaGraphLaunch")
        run.update(gpu_ops_per_frame=round(kernels / 5, 1), kernel_launch_calls_per_frame=round(launches / 5, 1),
                   cuda_graph_launches_per_frame=round(graph_launches / 5, 1))
    run["recompiles_after_warmup"] = counters["stats"]["unique_graphs"] - graphs_at_warmup
    run["graph_breaks"] = int(sum(counters["graph_break"].values()))
    run["inductor_counters"] = {k: v for k, v in counters["inductor"].items() if "cudagraph" in k}
    run["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
    run["cache_bytes"] = engine.cache.nbytes()
    run["cache_addresses_stable"] = engine.cache.data_ptrs() == cache_addresses
    engine.close()
    del engine
    save()
    print(f"[{name}] {run.get('fps')} fps, {run.get('ms_per_frame_p50')} ms/frame", flush=True)

report["total_s"] = round(time.time() - t0, 1)
save()
print(json.dumps(report, indent=2))
PYEOF
