"""Host <-> device traffic of the engine's step, counted by a mechanism that cannot be fooled by timing.

The engine runs on the ``meta`` device: a meta tensor has no data, so nothing can read it on the host.
``TransferAudit`` (a TorchDispatchMode) sees every op and

- counts uploads (a copy from the CPU to the device) and downloads (device -> CPU; on meta it hands
  back an empty CPU tensor of the right shape, the one read a real step is allowed: the finished frame);
- fails on a data-dependent host read of a device tensor (``.item()``, ``.tolist()``, ``int()``,
  ``bool()``: all reach ``aten._local_scalar_dense``);
- fails on an op that mixes a device tensor with a non-scalar CPU tensor (a host-built index such as
  ``cuda_table[torch.tensor(steps)]``, which on CUDA is an implicit, blocking upload).

What runs on CUDA is the same Python, so what passes here issues no hidden host sync there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

aten = torch.ops.aten


class HostSyncError(RuntimeError):
    """The step read device data on the host or mixed in host-built tensors."""


@dataclass
class TransferCounts:
    uploads: int = 0
    downloads: int = 0
    upload_bytes: int = 0
    download_bytes: int = 0
    ops: int = 0  # device ops dispatched (a proxy for kernel launches)
    events: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.uploads + self.downloads


def _is_device(t: torch.Tensor) -> bool:
    return t.device.type != "cpu"


_HOST_READS = {torch.Tensor.tolist, torch.Tensor.item, torch.Tensor.numpy, torch.Tensor.__bool__,
               torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__}
_FACTORIES = {torch.tensor, torch.as_tensor}


class _FunctionAudit(TorchFunctionMode):
    """The Python-level half: host reads that never reach the dispatcher as an op on meta
    (``.tolist()``), and tensors built from host data straight onto the device
    (``torch.tensor(list, device=cuda)``: a blocking upload the dispatcher does not show)."""

    def __init__(self, audit: "TransferAudit") -> None:
        super().__init__()
        self.audit = audit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _HOST_READS and args and isinstance(args[0], torch.Tensor) and _is_device(args[0]):
            self.audit._violate(f"host read of a {args[0].device.type} tensor: {func.__name__}()")
        if func in _FACTORIES:
            device = kwargs.get("device")
            if device is not None and torch.device(device).type != "cpu":
                self.audit._violate(f"{func.__name__}(host data, device={device}) inside the step: a blocking upload")
        return func(*args, **kwargs)


class TransferAudit(TorchDispatchMode):
    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = strict
        self.counts = TransferCounts()
        self.violations: list[str] = []
        self._functions = _FunctionAudit(self)

    def __enter__(self):
        self._functions.__enter__()
        try:
            return super().__enter__()
        except BaseException:
            self._functions.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._functions.__exit__(*exc)

    def _violate(self, message: str) -> None:
        self.violations.append(message)
        if self.strict:
            raise HostSyncError(message)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        c = self.counts
        if func is aten._local_scalar_dense.default and _is_device(args[0]):
            self._violate(f"host read of a {args[0].device.type} tensor ({func}): .item()/.tolist()/int()/bool()")
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if func is aten._to_copy.default:
            src = args[0]
            dst = torch.device(kwargs.get("device") or src.device)
            if src.device.type == "cpu" and dst.type != "cpu":
                c.uploads += 1
                c.upload_bytes += src.numel() * src.element_size()
                c.events.append(f"upload {tuple(src.shape)} {src.dtype}")
            elif _is_device(src) and dst.type == "cpu":
                c.downloads += 1
                dtype = kwargs.get("dtype") or src.dtype
                c.download_bytes += src.numel() * torch.empty((), dtype=dtype).element_size()
                c.events.append(f"download {tuple(src.shape)} {dtype}")
                if src.device.type == "meta":
                    return torch.zeros(src.shape, dtype=dtype)
            return func(*args, **kwargs)
        if func is aten.copy_.default:
            dst, src = args[0], args[1]
            if dst.device.type != src.device.type:
                if src.device.type == "cpu":
                    c.uploads += 1
                    c.upload_bytes += src.numel() * src.element_size()
                    c.events.append(f"upload (copy_) {tuple(src.shape)}")
                else:
                    c.downloads += 1
                    c.download_bytes += src.numel() * src.element_size()
                    c.events.append(f"download (copy_) {tuple(src.shape)}")
                    if src.device.type == "meta":
                        return dst
            return func(*args, **kwargs)
        devices = {t.device.type for t in tensors}
        if len(devices) > 1 and "cpu" in devices:
            host = [tuple(t.shape) for t in tensors if t.device.type == "cpu" and t.dim() > 0]
            if host:
                self._violate(f"{func} mixes device tensors with host-built tensors of shapes {host}")
        if any(_is_device(t) for t in tensors):
            c.ops += 1
        return func(*args, **kwargs)


def measure_steady_state_transfers(engine, frames, pushes: int = 4) -> dict:
    """Stream ``frames`` through an engine on the meta device; audit (strictly) the last ``pushes``
    steady-state pushes. The first pushes (warmup, fill, the ring filling) run under a lenient audit:
    only they may upload one-off tables. Returns per-push figures for ``bench --json``."""
    if engine.device.type != "meta":
        raise ValueError("run the transfer audit on an engine built on the meta device")
    s = engine.settings
    first = s.window + s.steps  # past warmup, pipeline fill and a full recent ring
    if len(frames) < first + pushes:
        raise ValueError(f"need at least {first + pushes} frames, got {len(frames)}")
    engine.reset()
    with torch.no_grad():
        with TransferAudit(strict=False):
            for frame in frames[:first]:
                engine.push(frame)
        per_push = []
        for frame in frames[first : first + pushes]:
            with TransferAudit(strict=True) as audit:
                outputs = engine.push(frame)
            per_push.append((audit.counts, len(outputs)))
    engine.reset()
    uploads = [c.uploads for c, _ in per_push]
    downloads = [c.downloads for c, _ in per_push]
    return {
        "host_device_transfers_per_push": max(u + d for u, d in zip(uploads, downloads)),
        "uploads_per_push": max(uploads),
        "downloads_per_push": max(downloads),
        "outputs_per_push": min(n for _, n in per_push),
        "upload_bytes_per_push": max(c.upload_bytes for c, _ in per_push),
        "download_bytes_per_push": max(c.download_bytes for c, _ in per_push),
        "device_ops_per_push": max(c.ops for c, _ in per_push),
        "host_reads_or_host_built_tensors": 0,  # the strict audit raises on any
        "pushes_audited": pushes,
        "transfers": per_push[-1][0].events,
        "method": "engine on the meta device under a dispatch + function mode audit",
    }
