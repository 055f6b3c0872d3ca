"""A benchmark report as a short human-readable table (the CLI's default output; --json gives all)."""

from __future__ import annotations


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def format_report(report: dict) -> str:
    c, m = report["config"], report["machine"]
    lines = [
        f"l2d-obs bench: size {c['size']}, {c['resolution']}px, T={c['T']}, L={c['L']}, Lw={c['Lw']}, "
        f"depth {'on' if c['depth'] else 'off'}, {c['device']} {c['dtype']}, {c['torch_threads']} torch threads",
        f"machine: {m['cpu']} ({m['cores']} cores){', ' + m['gpu'] if m['gpu'] else ''}; "
        f"load {m['load_avg_start']} -> {m['load_avg_end']}; {m['date_utc']}",
    ]
    e = report.get("engine")
    if e:
        r = e["ratios"]
        lines += [
            "",
            f"{'variant':<14}{'ms/frame':>10}{'UNet ms':>10}{'encode':>9}{'decode':>9}",
        ]
        for name, label in (("pipelined", "cached"), ("sequential", "sequential"), ("recompute", "recompute"),
                            ("no_temporal", "no temporal")):
            v = e["variants"][name]
            lines.append(f"{label:<14}{v['ms_per_frame']:>10.1f}{v['denoise_ms']:>10.1f}{v['encode_ms']:>9.1f}{v['decode_ms']:>9.1f}")
        lines += [
            "",
            f"recompute / cached: {r['recompute_over_cached']:.2f}x (UNet only {r['unet_recompute_over_cached']:.2f}x)",
            f"sequential / pipelined: {r['sequential_over_pipelined']:.2f}x",
            f"cached / no temporal: {r['cached_over_no_temporal']:.2f}x (UNet only {r['unet_cached_over_no_temporal']:.2f}x)",
            f"warmup {e['warmup_ms']:.0f} ms, KV cache {_mib(e['cache_bytes'])}, peak RSS {_mib(e['peak_rss_bytes'])}"
            + (f", peak GPU {_mib(e['peak_gpu_bytes'])}" if e.get("peak_gpu_bytes") else ""),
        ]
    d = report.get("daemon")
    if d:
        lines += [
            "",
            f"daemon: {d['end_to_end_fps']:.1f} styled fps end to end (the engine alone, pushed frames back to back "
            f"just before: {d['engine_only_fps']:.1f} fps; engine {d['engine_ms_in_daemon']:.0f} ms/frame inside the daemon), "
            f"latency p50 {d['latency_ms_p50']:.0f} ms / p95 {d['latency_ms_p95']:.0f} ms",
        ]
        ratio = d.get("end_to_end_over_engine_only")
        if ratio and ratio > 1.15:
            # The daemon cannot beat the engine it runs: the machine's load changed between the runs.
            lines.append(f"  note: end to end is {ratio:.2f}x the engine alone - the machine's load changed between "
                         "the runs (see the per-run figures in --json); rerun on a quiet machine to compare")
    s = report.get("soak")
    if s:
        lines.append(f"soak: {s['frames']} frames, RSS growth {s['rss_growth_pct']:+.2f}%")
    g = report.get("graphs")
    if g:
        c, t = g["compiled_stream_step"], g["transfers"]
        lines.append(f"compiled stream step: {c['graphs_per_stream_call']:g} graph per call ({c['variants']} variants), "
                     f"{c['graph_breaks']} graph breaks, {c['recompiles_after_warmup']} recompiles after warmup over "
                     f"{c['frames']} frames; host<->device transfers per push: {t['host_device_transfers_per_push']} "
                     f"({t['uploads_per_push']} up, {t['downloads_per_push']} down)")
    return "\n".join(lines)
