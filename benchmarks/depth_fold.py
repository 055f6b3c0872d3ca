"""DPT-hybrid with BiT's weight standardisation per frame against folded once (issue 10 part 6).

    python3 benchmarks/depth_fold.py [--sizes 384,192] [--rounds 5] [--json PATH]
    python3 benchmarks/depth_fold.py --device cuda --dtype fp16 --rounds 30   # on a GPU

MiDaS DPT-hybrid's architecture at full width (random weights, as the benchmark's ``full`` size),
one torch thread; CPU fp32 by default. Per input size: aten ops of one forward (total and batch-norms),
ms per forward of both forms interleaved round by round (medians, paired ratio), the cost of the 52
weight standardisations alone (what folding saves on every frame, whatever the resolution), and each
form's largest relative difference from the fp32 model (in fp16 this shows what standardising after
the cast costs).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import time

import torch

from l2d_obs.bench.opcount import OpCounter
from l2d_obs.bench.runner import cpu_model
from l2d_obs.engine.depth import TransformersDepthEstimator


def dpt_hybrid(image_size: int) -> TransformersDepthEstimator:
    """MiDaS DPT-hybrid's config (DESIGN §4) at any multiple of 16 as input size."""
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(is_hybrid=True, neck_hidden_sizes=[256, 512, 768, 768], reassemble_factors=[1, 1, 1, 0.5],
                       backbone_featmap_shape=[1, 1024, image_size // 16, image_size // 16], image_size=image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DPTForDepthEstimation(config)
    return TransformersDepthEstimator(model, input_size=(image_size, image_size))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ops(estimator: TransformersDepthEstimator, x: torch.Tensor) -> dict:
    with torch.no_grad(), OpCounter() as counter:
        estimator.estimate(x)
    return {"total": sum(counter.ops.values()),
            "batch_norm": sum(n for name, n in counter.ops.items() if "batch_norm" in name)}


def _seconds(estimator: TransformersDepthEstimator, x: torch.Tensor) -> tuple[float, float]:
    """(wall, this process's CPU) seconds of one forward: on a shared CPU the CPU time is the steadier
    figure (other processes' load stretches wall time, not ours); on a GPU read the wall time."""
    _sync(x.device)
    wall, cpu = time.perf_counter(), time.process_time()
    estimator.estimate(x)
    _sync(x.device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _standardisation_ms(model: torch.nn.Module, repeats: int) -> dict:
    """The per-frame weight work of the unfolded model (wall and CPU ms): every standardised conv's
    batch-norm over its weight."""
    from transformers.models.bit.modeling_bit import WeightStandardizedConv2d

    convs = [m for m in model.modules() if isinstance(m, WeightStandardizedConv2d)]
    device = convs[0].weight.device
    walls, cpus = [], []
    with torch.no_grad():
        for _ in range(repeats):
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            for conv in convs:  # the same batch-norm call as the layer, in the model's dtype
                torch.nn.functional.batch_norm(conv.weight.reshape(1, conv.out_channels, -1), None, None,
                                               training=True, momentum=0.0, eps=conv.eps)
            _sync(device)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return {"convs": len(convs), "wall_ms": round(1000 * statistics.median(walls), 2),
            "cpu_ms": round(1000 * statistics.median(cpus), 2)}


def _rel_diff(result: torch.Tensor, reference: torch.Tensor) -> float:
    return float((result.float() - reference).abs().max() / reference.abs().max())


def measure(image_size: int, rounds: int, device: torch.device, dtype: torch.dtype) -> dict:
    base = dpt_hybrid(image_size)
    reference_model = copy.deepcopy(base).to(device, torch.float32, fold=False)
    unfolded = copy.deepcopy(base).to(device, dtype, fold=False)
    folded = base.to(device, dtype)
    x = torch.rand(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
    run = {"input": image_size, "ops_unfolded": _ops(unfolded, x), "ops_folded": _ops(folded, x)}
    reference = reference_model.estimate(x)
    del reference_model
    run["max_rel_diff_unfolded"] = _rel_diff(unfolded.estimate(x), reference)
    run["max_rel_diff_folded"] = _rel_diff(folded.estimate(x), reference)
    for _ in range(2 if device.type == "cuda" else 0):  # first calls pick kernels
        unfolded.estimate(x), folded.estimate(x)
    pairs = []
    for i in range(rounds):  # interleaved, the order alternating, so load drifts hit both forms alike
        first, second = (unfolded, folded) if i % 2 == 0 else (folded, unfolded)
        a, b = _seconds(first, x), _seconds(second, x)
        pairs.append((a, b) if first is unfolded else (b, a))
    for i, clock in enumerate(("wall", "cpu")):
        run[f"{clock}_ms_unfolded_p50"] = round(1000 * statistics.median(p[0][i] for p in pairs), 1)
        run[f"{clock}_ms_folded_p50"] = round(1000 * statistics.median(p[1][i] for p in pairs), 1)
        run[f"{clock}_folded_over_unfolded_p50"] = round(statistics.median(p[1][i] / p[0][i] for p in pairs), 3)
    run["standardisation_per_frame"] = _standardisation_ms(unfolded.model, 10)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="384,192")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference must be fp32
        torch.backends.cudnn.allow_tf32 = False
    report = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "platform": platform.platform(), "load_avg_start": os.getloadavg()},
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": args.dtype,
        "runs": [measure(int(size), args.rounds, device, dtype) for size in args.sizes.split(",")],
    }
    report["machine"]["load_avg_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
