"""Fused PE against the materialised reference form of the streaming temporal attention (issue 10 part 5).

    python3 benchmarks/pe_attention.py [--sizes tiny,small] [--resolution 64] [--steps 2] [--json PATH]

For each model size, on one engine (CPU, fp32, one torch thread): bytes moved, largest allocation and
peak allocated bytes of one steady-state call of every temporal attention (metered op by op,
``l2d_obs.bench.attention``), and ms per steady-state push, both forms interleaved in one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import torch

from l2d_obs.bench.attention import measure_pe_attention
from l2d_obs.bench.runner import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--pushes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "platform": platform.platform(), "load_avg_start": os.getloadavg()},
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": [],
    }
    for size in args.sizes.split(","):
        run = measure_pe_attention(size, args.resolution, args.steps, pushes=args.pushes, repeats=args.repeats)
        report["runs"].append(run)
        f, m, r = run["modes"]["fused"], run["modes"]["materialised"], run["ratios_materialised_over_fused"]
        print(f"{size} {args.resolution}px T={args.steps}: cache {run['cache_bytes'] / 2**20:.1f} MiB; "
              f"bytes moved {m['bytes_moved_per_frame'] / 2**20:.1f} -> {f['bytes_moved_per_frame'] / 2**20:.1f} MiB "
              f"(x{r['bytes_moved_per_frame']}); largest temporary {m['largest_allocation_bytes'] / 2**10:.0f} -> "
              f"{f['largest_allocation_bytes'] / 2**10:.0f} KiB; peak {m['peak_allocated_bytes'] / 2**10:.0f} -> "
              f"{f['peak_allocated_bytes'] / 2**10:.0f} KiB; ms/frame {m['ms_per_frame_p50']} -> {f['ms_per_frame_p50']} "
              f"(materialised/fused x{r['ms_per_frame_p50']}); attention calls {m['metered_ms']} -> {f['metered_ms']} ms",
              flush=True)
    report["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
