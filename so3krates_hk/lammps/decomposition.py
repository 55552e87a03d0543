"""The communication of the scheme (mpi4py): sums over ranks, and ghost forces back to the atoms' owners.

A ghost is an image of an atom owned by some rank (possibly this one: periodic images). Its force is added to that
atom: ``fold`` sends each ghost force, with the atom's tag, to the owner (``MPI_Alltoallv``), which adds what it
receives to its owned atoms. The tag → owner table is rebuilt (``MPI_Allgatherv`` of the owned tags) whenever any
rank's owned set changed, i.e. after LAMMPS re-neighboured and atoms migrated.
"""

from __future__ import annotations

import numpy as np


class Decomposition:
    """MPI operations over ``comm`` (an ``mpi4py`` communicator)."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._owned = None  # owned tags at the last table build
        self._owner = np.zeros(0, np.int32)  # owner rank by tag
        self.table_builds = 0

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Σ over ranks of a float64 vector (every rank gets the sum)."""
        from mpi4py import MPI

        values = np.ascontiguousarray(values, np.float64)
        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=MPI.SUM)
        return out

    def _owner_table(self, owned: np.ndarray) -> None:
        from mpi4py import MPI

        changed = np.array([self._owned is None or not np.array_equal(owned, self._owned)], np.int32)
        any_changed = np.empty_like(changed)
        self.comm.Allreduce(changed, any_changed, op=MPI.MAX)
        if not any_changed[0]:
            return
        counts = np.asarray(self.comm.allgather(len(owned)), np.int64)
        tags = np.empty(int(counts.sum()), np.int64)
        self.comm.Allgatherv(np.ascontiguousarray(owned, np.int64), [tags, counts])
        owner = np.full(int(tags.max()) + 1 if len(tags) else 1, -1, np.int32)
        owner[tags] = np.repeat(np.arange(self.size, dtype=np.int32), counts)
        self._owner, self._owned = owner, owned.copy()
        self.table_builds += 1

    def fold(self, tags: np.ndarray, forces: np.ndarray, n_owned: int) -> np.ndarray:
        """Forces on the owned atoms: their own rows plus every ghost row, on any rank, that is one of their images.

        ``tags`` (n,) and ``forces`` (n, 3) cover owned (first ``n_owned``) and ghost atoms. Collective.
        """
        tags = np.asarray(tags, np.int64)
        owned_tags = tags[:n_owned]
        self._owner_table(owned_tags)
        ghost_tags, ghost_f = tags[n_owned:], np.asarray(forces[n_owned:], np.float64)
        if len(ghost_tags) and (ghost_tags.max() >= len(self._owner) or np.any(self._owner[ghost_tags] < 0)):
            raise RuntimeError("a ghost atom's tag has no owner; the atoms' tags must be unique and consistent")
        dest = self._owner[ghost_tags] if len(ghost_tags) else np.zeros(0, np.int32)
        order = np.argsort(dest, kind="stable")
        send_counts = np.bincount(dest, minlength=self.size).astype(np.int64)
        recv_counts = np.empty_like(send_counts)
        self.comm.Alltoall(send_counts, recv_counts)
        send_t = np.ascontiguousarray(ghost_tags[order])
        send_f = np.ascontiguousarray(ghost_f[order]).reshape(-1)
        recv_t = np.empty(int(recv_counts.sum()), np.int64)
        recv_f = np.empty(3 * int(recv_counts.sum()), np.float64)
        self.comm.Alltoallv([send_t, send_counts], [recv_t, recv_counts])
        self.comm.Alltoallv([send_f, 3 * send_counts], [recv_f, 3 * recv_counts])
        out = np.array(forces[:n_owned], np.float64)
        if len(recv_t):
            sorter = np.argsort(owned_tags)
            local = sorter[np.searchsorted(owned_tags, recv_t, sorter=sorter)]
            np.add.at(out, local, recv_f.reshape(-1, 3))
        return out
