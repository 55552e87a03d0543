"""chemtrain-deploy export of SO3krates CG models: :class:`SO3kratesCGExporter`, a ``chemtrain.deploy`` ``Exporter``.

    from so3krates_hk.deploy import SO3kratesCGExporter

    exporter = SO3kratesCGExporter("runs/cg/params.npz", without_priors=True)    # or .from_cg_model(model, params)
    exporter.export()                     # jax.export of the wrapped energy, shape-polymorphic, for CUDA
    exporter.save("cg_model.ptb")         # for chemtrain-deploy's LAMMPS plugin

The exporter is the same kind of object as the users' ``AllegroExporter``: ``graph_type`` is chemtrain's
``SimpleSparseNeighborList`` (LAMMPS' list, cut to ``r_cutoff`` and pruned to the atoms that matter), and
``energy_fn(position, species, graph)`` returns per-atom energies, of which ``Exporter`` sums the owned (newton on)
or all valid rows (newton off) and differentiates for forces. The energy is
:func:`so3krates_hk.export.energy.per_atom_energy_fn` with every list entry kept (no compaction), so the atom and
edge counts stay symbolic.

Neighbour orders (``nbr_order = [T, 2T]`` for T layers): with newton on, an owned atom's energy needs the atoms
within T hops; with newton off, the forces on owned atoms need the exact energies of every atom within T hops of
them, hence 2T hops.

The CG priors act on fixed atom indices, which the deployed model never sees; a model with priors is refused unless
``without_priors=True`` (then add them in LAMMPS). SO3LR is refused, with the reason
(:func:`so3krates_hk.export.model_file.so3lr_refusal`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from so3krates_hk.errors import require

require("chemtrain", "chemtrain", "so3krates_hk.deploy")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from chemtrain.deploy import exporter as _exporter  # noqa: E402
from chemtrain.deploy import graphs as _graphs  # noqa: E402

from so3krates_hk.export.energy import per_atom_energy_fn  # noqa: E402
from so3krates_hk.export.model_file import ShortRangeModel, check_priors, load_model, type_table  # noqa: E402

TARGET = "chemtrain-deploy"


class SO3kratesCGExporter(_exporter.Exporter):
    """A trained SO3krates (CG) model as a chemtrain-deploy ``Exporter``.

    Args:
        model: a ``params.npz`` of a CG or SO3krates model (:func:`so3krates_hk.export.model_file.load_model`),
            or a loaded :class:`~so3krates_hk.export.model_file.ShortRangeModel`.
        unit_style: LAMMPS unit style of positions and energies (default: ``real`` for CG models, else ``metal``).
        without_priors: export a CG model's network alone, knowingly dropping its priors.
        species: model species of the engine's species 0, 1, … (default: the identity).
    """

    graph_type = _graphs.SimpleSparseNeighborList

    def __init__(
        self,
        model: Union[str, ShortRangeModel],
        unit_style: Optional[str] = None,
        without_priors: bool = False,
        species: Optional[Sequence[int]] = None,
    ):
        self.model = load_model(model, TARGET) if isinstance(model, str) else model
        check_priors(self.model, without_priors, TARGET)
        self.r_cutoff = float(self.model.r_cutoff)
        self.unit_style = unit_style or self.model.default_units
        T = self.model.config.num_layers
        self.nbr_order = [T, 2 * T]
        # Exporter keeps its symbol registries on the class; give every instance its own.
        self._symbols, self._constraints, self._init_fns = [], [], []
        self._proto = None
        self._energy = per_atom_energy_fn(self.model, type_table(self.model, species), jnp.float32, compact=False)

    @classmethod
    def from_cg_model(cls, cg_model, params, **kwargs) -> "SO3kratesCGExporter":
        """From a :class:`so3krates_hk.training.cg_model.CGModel` and its parameters, in memory."""
        model = ShortRangeModel(
            kind="so3krates_cg",
            params={k: {n: np.asarray(v) for n, v in leaves.items()} for k, leaves in dict(params).items()},
            config=cg_model.apply_fn.config, r_cutoff=cg_model.r_cutoff, n_species=cg_model.n_species,
            avg_num_neighbors=cg_model.avg_num_neighbors, priors=cg_model.priors, path="the CG model",
        )  # fmt: skip
        return cls(model, **kwargs)

    def energy_fn(self, position, species, graph):
        """Per-atom energies (N,) of ``position`` (N, 3) over chemtrain's pruned ``SimpleSparseNeighborList``."""
        return self._energy(position, species, graph.senders, graph.receivers, graph.max_edges)

    def exported(self, platforms: Sequence[str] = ("cpu",)):
        """``jax.export`` of the function :meth:`export` serialises (chemtrain's ``Exporter._energy_fn``: the list
        pruning, the per-atom energies and their gradient), with the same symbolic input shapes, for ``platforms``.

        Call it as ``exported.call(position (N, 3) float32, species (N,) int32, n_local, n_ghost, newton, senders,
        receivers, edge_buffer)``; it returns ``(forces (N, 3), (local_energy, max_neighbors, overlong))``.
        ``export()`` itself targets CUDA only; this lets the same program run, and be checked, on the CPU.
        """
        import jax

        self._add_shapes(self._define_position_shapes)
        self._add_shapes(self.graph_type.create_symbolic_input_format)
        shapes = self._create_shapes()
        return jax.export.export(jax.jit(self._energy_fn), platforms=list(platforms))(*shapes)
