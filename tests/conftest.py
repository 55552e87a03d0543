"""Test setup: float64 is enabled for the whole session (float32 tests use float32 arrays explicitly)."""

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import so3krates_hk  # noqa: E402,F401  (its jax-md shims must precede any test's `import jax_md`)
sys.path.insert(0, os.path.dirname(__file__))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``bigmem`` need more memory than a 24 GB machine: they are skipped, saying so, unless
    ``SO3KRATES_HK_BIGMEM=1`` is set."""
    import pytest

    if os.environ.get("SO3KRATES_HK_BIGMEM") == "1":
        return
    skip = pytest.mark.skip(reason="bigmem: needs more than 24 GB of memory; run with SO3KRATES_HK_BIGMEM=1")
    for item in items:
        if "bigmem" in item.keywords:
            item.add_marker(skip)
