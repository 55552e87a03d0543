"""Bundled YAML configs, reachable by name from an installed package (``--config cg_chignolin``)."""

from __future__ import annotations

import os
from importlib import resources


def bundled_names() -> list[str]:
    """Names of the bundled configs (file names without ``.yaml``)."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def resolve(name_or_path: str) -> str:
    """The path of a YAML file: ``name_or_path`` itself if it is a file, else the bundled config of that name."""
    from so3krates_hk.errors import UserError

    if os.path.isfile(name_or_path):
        return name_or_path
    name = os.path.basename(name_or_path)
    name = name[:-5] if name.endswith(".yaml") else name
    if name in bundled_names():
        return str(resources.files(__name__).joinpath(f"{name}.yaml"))
    raise UserError(f"config {name_or_path!r} is neither a file nor a bundled config ({', '.join(bundled_names())})")
