"""Peak memory of the current process: host peak RSS (resettable on Linux) and accelerator peak bytes.

On Linux, writing "5" to ``/proc/self/clear_refs`` resets the peak RSS (``VmHWM``) to the current RSS, so each
phase of a benchmark (compile, warm calls, MD) gets its own peak. Where that is not allowed the peak is the
process's peak so far, and ``resettable`` says so.
"""

from __future__ import annotations

import os
import resource
from typing import Optional


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> Optional[int]:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


def peak_rss_bytes() -> int:
    kb = _status_kb("VmHWM")
    if kb is None:  # not Linux: the process's lifetime peak (KiB on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024
    return kb * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def device_peak_bytes() -> Optional[int]:
    """``peak_bytes_in_use`` of the first JAX device (GPU/TPU); None on CPU or when unavailable."""
    try:
        import jax

        dev = jax.devices()[0]
        if dev.platform == "cpu":
            return None
        stats = dev.memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001
        return None


def xla_program_bytes(compiled) -> dict:
    """The buffers of a compiled JAX program from XLA's buffer assignment (``Compiled.memory_analysis()``):
    ``xla_memory_bytes`` = arguments + outputs + temporaries − aliased, ``xla_temp_bytes`` = temporaries; None
    where the backend does not report them."""
    try:
        ma = compiled.memory_analysis()
        if isinstance(ma, (list, tuple)):  # some JAX versions: one entry per device
            ma = ma[0]
        temp = int(ma.temp_size_in_bytes)
        total = temp + int(ma.argument_size_in_bytes) + int(ma.output_size_in_bytes) - int(ma.alias_size_in_bytes)
        return {"xla_memory_bytes": total, "xla_temp_bytes": temp}
    except Exception:  # noqa: BLE001
        return {"xla_memory_bytes": None, "xla_temp_bytes": None}
