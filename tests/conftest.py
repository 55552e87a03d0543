"""Test setup: float64 is enabled for the whole session (float32 tests use float32 arrays explicitly)."""

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import so3krates_hk  # noqa: E402,F401  (its jax-md shims must precede any test's `import jax_md`)
sys.path.insert(0, os.path.dirname(__file__))
