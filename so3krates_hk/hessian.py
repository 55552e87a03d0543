"""The exact Hessian of the SO3LR energy by automatic differentiation, and harmonic vibrations from it.

    import so3krates_hk
    H = so3krates_hk.hessian(atoms)                  # (3N, 3N), eV/Å², shipped SO3LR in float64
    from so3krates_hk.hessian import vibrations
    vib = vibrations(atoms)                          # ase.vibrations.VibrationsData: frequencies, modes
    vib.get_frequencies()                            # cm⁻¹ (imaginary ones as complex numbers)

    H_{ai,bj} = ∂²E / ∂r_{a,i} ∂r_{b,j}

computed as forward-over-reverse differentiation (``jax.hessian``) of the same energy ``so3krates_hk.evaluate``
uses, at fixed neighbour lists that hold every pair within the cutoffs (exact: a pair outside the cutoff
contributes nothing to E or its derivatives). Free space and fully periodic cells (at fixed cell, derivatives with
respect to the Cartesian positions, minimum image) are supported; total charge and spin come from ``atoms.info``
as in the ASE calculator. H is symmetric up to rounding and, by translation invariance, Σ_b H_{ai,bj} = 0, so the
three rigid translations are zero modes (in free space rotations are too, at a stationary point).

The cost is one reverse pass per Cartesian component: memory and time grow as 3N × (one force call).
"""

from __future__ import annotations

import sys
import types
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from so3krates_hk.committee import ModelSpec
from so3krates_hk.errors import UserError


def _program(evaluator, periodic: bool):
    cache = evaluator.__dict__.setdefault("_hessian_programs", {})
    if periodic not in cache:
        energy = evaluator.energy_function(periodic)

        def hess(params, R, sr, lr, Z, Q, S, box):
            mask = jnp.ones(Z.shape, bool)
            strain = jnp.zeros((3, 3), R.dtype)
            e = lambda r: energy(params, r, strain, sr, lr, Z, mask, Q, S, box)[0]  # noqa: E731
            return jax.hessian(e)(R)

        cache[periodic] = jax.jit(hess)
    return cache[periodic]


def hessian(
    atoms,
    model: ModelSpec = None,
    dtype: str = "float64",
    evaluator: Optional[Any] = None,
    **so3lr_kwargs: Any,
) -> np.ndarray:
    """The Hessian of SO3LR's energy at ``atoms``, (3N, 3N) in eV/Å², row/column index 3a + i (atom a, axis i).

    Args:
        atoms: an ``ase.Atoms`` (free space or fully periodic; ``info`` may hold charge and multiplicity/spin).
        model: None or "so3lr" (the shipped weights), a parameter file, or a parameter tree. Not a committee.
        dtype: "float64" (default; recommended, as second derivatives amplify rounding) or "float32".
        evaluator: an :class:`so3krates_hk.evaluate.Evaluator` to reuse (its model and dtype are used).
        **so3lr_kwargs: factory arguments overriding those of the weights.
    """
    from so3krates_hk.evaluate import Evaluator

    evaluator = evaluator or Evaluator(model, dtype, **so3lr_kwargs)
    if evaluator.members:
        raise UserError("the Hessian is defined for one model, not a committee; pass one parameter set")
    p = evaluator.prepare(atoms)
    d = evaluator.dtype
    box = jnp.asarray(p.cell.T if p.periodic else np.eye(3), d)
    H = _program(evaluator, p.periodic)(
        evaluator.params, jnp.asarray(p.positions, d), jnp.asarray(p.sr), jnp.asarray(p.lr),
        jnp.asarray(p.numbers), jnp.asarray(p.charge, d), jnp.asarray(p.spin, d), box,
    )  # fmt: skip
    H = np.asarray(H, np.float64).reshape(3 * len(p.numbers), 3 * len(p.numbers))
    if not np.all(np.isfinite(H)):
        raise RuntimeError("SO3LR returned a non-finite Hessian for a structure that passed validation.")
    return H


def vibrations(atoms, H: Optional[np.ndarray] = None, **kwargs: Any):
    """Harmonic analysis as ``ase.vibrations.VibrationsData`` (frequencies in cm⁻¹, normal modes, Jmol output),
    from ``H`` or from :func:`hessian` (``kwargs`` go to it). Masses are ``atoms.get_masses()``."""
    from ase.vibrations import VibrationsData

    if H is None:
        H = hessian(atoms, **kwargs)
    return VibrationsData.from_2d(atoms, H)


__all__ = ["hessian", "vibrations"]


class _CallableModule(types.ModuleType):
    """``so3krates_hk.hessian(atoms)`` works whether the name is bound to this module or to its function."""

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return hessian(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
