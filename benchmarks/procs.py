"""Worker processes of the benchmark scripts: run one, read the JSON it prints last; write the rows of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Mapping, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def json_worker(module: str, args: Sequence[str], env: Mapping[str, str], check: bool = True,
                timeout: Optional[float] = None) -> tuple[int, Optional[object]]:  # fmt: skip
    """``python -m module args...`` from the repository root with ``env``; returns (exit status, the JSON value of
    its last line of output, or None when it failed). With ``check``, a failure raises instead."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=dict(env), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    if proc.returncode:
        if check:
            raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return proc.returncode, None
    return 0, json.loads(proc.stdout.strip().splitlines()[-1])


def write_rows(out: Optional[str], rows: list) -> None:
    """``rows.json`` in ``out`` (created), when ``out`` is given."""
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "rows.json"), "w") as f:
            json.dump(rows, f, indent=1)
