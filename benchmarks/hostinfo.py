"""What a benchmark record says about its host: CPU model, installed versions, load. Standard library only, so the
torch-side workers (no JAX installed) import it too."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Optional


def cpu_name(cpuinfo: Optional[str] = None) -> str:
    """The CPU model from /proc/cpuinfo (Linux; or from the text ``cpuinfo``), with its family and model numbers,
    which tell apart CPUs that a virtual machine names alike ("AMD EPYC": family 25 is Zen 3/4, family 26 Zen 5);
    else what ``platform`` knows."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first CPU is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def dist_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name``, or None."""
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def uptime() -> str:
    """``uptime``'s line (load averages), or the load averages alone where the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
