"""Pick the device and dtype for the machine we are on (detect, don't assume)."""
from __future__ import annotations

import functools
import re

import torch

from ..errors import WorkbenchError

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(requested: str | None) -> None:
    """Refuse, in one line, a device name torch would not know or this machine lacks."""
    if requested is None or requested == "auto":
        return
    if not isinstance(requested, str) or not _DEVICE.match(requested):
        raise WorkbenchError(f"device must be auto, cpu, cuda, cuda:N or mps, got {requested!r}")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise WorkbenchError(f"device {requested!r} is not available: torch sees no CUDA GPU on this "
                                 "machine (use --device auto or cpu)")
        index = int(requested.split(":")[1]) if ":" in requested else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise WorkbenchError(f"device {requested!r} is not available: this machine has {count} CUDA "
                                 f"GPU{'s' * (count != 1)} (cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    if requested == "mps":
        mps = getattr(torch.backends, "mps", None)
        if not (mps and mps.is_available()):
            raise WorkbenchError("device 'mps' is not available: this machine has no Apple-silicon GPU "
                                 "(use --device auto or cpu)")


def pick_device(requested: str | None = None) -> str:
    if requested and requested != "auto":
        check_device(requested)
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matmul instructions (AVX512-BF16 or AMX).

    Without them bf16 autocast is emulated and slower than fp32, so we keep fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:  # not Linux: stay with fp32, always correct
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(device: str, requested: str | None = "auto") -> bool:
    """Whether to train in bf16 (autocast on CPU, bf16 AMP on GPU)."""
    if requested in ("fp32", "float32"):
        return False
    if requested in ("bf16", "bfloat16"):
        return True
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    if device == "cpu":
        return cpu_supports_bf16()
    return False
