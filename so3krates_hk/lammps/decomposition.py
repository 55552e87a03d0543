"""The communication of the scheme (mpi4py): sums over ranks, per-atom values from owners to ghosts, and ghost
cotangents (forces among them) back to the owners.

A ghost is an image of an atom owned by some rank (possibly this one: periodic images). The pattern of one step is a
``Halo``: each rank sends the tags of its ghosts to their owners once (``MPI_Alltoallv``); afterwards

* ``gather``: owners send the rows of their owned atoms that other ranks hold as ghosts (features between layers,
  partial charges, Hirshfeld ratios) — one ``MPI_Alltoallv`` of (n, k) values;
* ``fold``: each rank sends its ghost rows (force or cotangent contributions) to the owners, which add them to their
  owned rows — one ``MPI_Alltoallv``, the transpose of ``gather``.

The tag → owner table is rebuilt (``MPI_Allgatherv`` of the owned tags) whenever any rank's owned set changed, i.e.
after LAMMPS re-neighboured and atoms migrated. With ``comm=None`` the process holds the whole system (one rank, no
MPI): the same code runs and the exchanges are local copies.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


class Halo:
    """One step's ghost ↔ owner pattern; built by ``Decomposition.halo``."""

    def __init__(self, decomposition: "Decomposition", n_owned: int, n_ghost: int, order, send_counts, recv_counts,
                 serve):  # fmt: skip
        self.d = decomposition
        self.n_owned, self.n_ghost = n_owned, n_ghost
        self.order = order  # ghost rows sorted by owner rank
        self.send_counts, self.recv_counts = send_counts, recv_counts  # ghosts per owner / requests per requester
        self.serve = serve  # owned row of each request received, grouped by requesting rank

    def gather(self, owned: np.ndarray) -> np.ndarray:
        """Ghost rows (n_ghost, …) from the owners' rows ``owned`` (n_owned, …). Collective."""
        owned = np.asarray(owned, np.float64)
        tail = owned.shape[1:]
        k = int(np.prod(tail)) if tail else 1
        send = np.ascontiguousarray(owned[self.serve]).reshape(-1)
        recv = self.d._alltoallv(send, k * self.recv_counts, k * self.send_counts)
        out = np.empty((self.n_ghost,) + tail, np.float64)
        out[self.order] = recv.reshape((-1,) + tail)
        return out

    def fold(self, rows: np.ndarray) -> np.ndarray:
        """Owned rows (n_owned, …): ``rows[:n_owned]`` plus every ghost row, on any rank, that is an image of them.
        ``rows`` covers owned then ghost atoms. Collective."""
        rows = np.asarray(rows, np.float64)
        tail = rows.shape[1:]
        k = int(np.prod(tail)) if tail else 1
        send = np.ascontiguousarray(rows[self.n_owned: self.n_owned + self.n_ghost][self.order]).reshape(-1)
        recv = self.d._alltoallv(send, k * self.send_counts, k * self.recv_counts)
        out = np.array(rows[: self.n_owned], np.float64)
        if len(self.serve):
            np.add.at(out, self.serve, recv.reshape((-1,) + tail))
        return out


class Decomposition:
    """MPI operations over ``comm`` (an ``mpi4py`` communicator; None: one process, no MPI)."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank, self.size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
        self._owned = None  # owned tags at the last table build
        self._owner = np.zeros(0, np.int32)  # owner rank by tag
        self._halo: Optional[tuple] = None  # (tags, n_owned, Halo) of the last step
        self.table_builds = 0
        self.messages = 0  # point-to-point exchanges (Alltoall/Alltoallv calls) so far

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Σ over ranks of a float64 vector (every rank gets the sum)."""
        values = np.ascontiguousarray(values, np.float64)
        if self.comm is None:
            return values.copy()
        from mpi4py import MPI

        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=MPI.SUM)
        return out

    def _alltoall(self, counts: np.ndarray) -> np.ndarray:
        self.messages += 1
        if self.comm is None:
            return counts.copy()
        out = np.empty_like(counts)
        self.comm.Alltoall(counts, out)
        return out

    def _alltoallv(self, send: np.ndarray, send_counts: np.ndarray, recv_counts: np.ndarray) -> np.ndarray:
        self.messages += 1
        if self.comm is None:
            return send.copy()
        recv = np.empty(int(recv_counts.sum()), send.dtype)
        self.comm.Alltoallv([send, send_counts], [recv, recv_counts])
        return recv

    def _owner_table(self, owned: np.ndarray) -> None:
        changed = self._owned is None or not np.array_equal(owned, self._owned)
        if self.comm is None:
            any_changed = changed
        else:
            from mpi4py import MPI

            flag = np.array([changed], np.int32)
            out = np.empty_like(flag)
            self.comm.Allreduce(flag, out, op=MPI.MAX)
            any_changed = bool(out[0])
        if not any_changed:
            return
        if self.comm is None:
            counts, tags = np.array([len(owned)], np.int64), np.asarray(owned, np.int64)
        else:
            counts = np.asarray(self.comm.allgather(len(owned)), np.int64)
            tags = np.empty(int(counts.sum()), np.int64)
            self.comm.Allgatherv(np.ascontiguousarray(owned, np.int64), [tags, counts])
        owner = np.full(int(tags.max()) + 1 if len(tags) else 1, -1, np.int32)
        owner[tags] = np.repeat(np.arange(self.size, dtype=np.int32), counts)
        self._owner, self._owned = owner, owned.copy()
        self.table_builds += 1

    def halo(self, tags: np.ndarray, n_owned: int) -> Halo:
        """The pattern for local atoms with ``tags`` (owned first, then ghosts); cached while the tags are unchanged.
        Collective."""
        tags = np.asarray(tags, np.int64)
        if self._halo is not None and self._halo[1] == n_owned and np.array_equal(self._halo[0], tags):
            return self._halo[2]
        owned_tags = tags[:n_owned]
        self._owner_table(owned_tags)
        ghost_tags = tags[n_owned:]
        if len(ghost_tags) and (ghost_tags.max() >= len(self._owner) or np.any(self._owner[ghost_tags] < 0)):
            raise RuntimeError("a ghost atom's tag has no owner; the atoms' tags must be unique and consistent")
        dest = self._owner[ghost_tags] if len(ghost_tags) else np.zeros(0, np.int32)
        order = np.argsort(dest, kind="stable")
        send_counts = np.bincount(dest, minlength=self.size).astype(np.int64)
        recv_counts = self._alltoall(send_counts)
        requested = self._alltoallv(np.ascontiguousarray(ghost_tags[order]), send_counts, recv_counts)
        sorter = np.argsort(owned_tags)
        serve = sorter[np.searchsorted(owned_tags, requested, sorter=sorter)] if len(requested) else np.zeros(0, int)
        halo = Halo(self, n_owned, len(ghost_tags), order, send_counts, recv_counts, serve)
        self._halo = (tags.copy(), n_owned, halo)
        return halo

    def fold(self, tags: np.ndarray, forces: np.ndarray, n_owned: int) -> np.ndarray:
        """Forces on the owned atoms: their own rows plus every ghost row, on any rank, that is one of their images.

        ``tags`` (n,) and ``forces`` (n, 3) cover owned (first ``n_owned``) and ghost atoms. Collective.
        """
        return self.halo(tags, n_owned).fold(forces)
