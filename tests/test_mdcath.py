"""``so3krates-hk data mdcath``: a small file of mdCATH's layout, written here with h5py, into the CG .npz that the
training job reads (Cα beads, forces summed per residue, species from residue names, replica and temperature per
frame), and clear errors for every missing piece."""

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="mdCATH files need h5py (pip install 'so3krates-hk[mdcath]')")

from so3krates_hk.cli import main  # noqa: E402
from so3krates_hk.data.mdcath import AMINO_ACIDS, MdcathError, read_mdcath  # noqa: E402
from so3krates_hk.training.data import load_cg_dataset  # noqa: E402

RESIDUES = [("TYR", ["N", "CA", "C", "O", "CB"]), ("HSD", ["N", "CA", "C", "O"]), ("GLY", ["N", "CA", "C"]),
            ("LYS", ["N", "CA", "C", "O", "CB", "NZ"])]  # fmt: skip
BOX = 40.0


def _atoms():
    rows = []
    for r, (name, atoms) in enumerate(RESIDUES):
        for a in atoms:
            rows.append((r + 5, name, a))  # resids 5…8, as in a domain cut from a chain
    return rows


def _pdb(positions):
    lines = []
    for k, ((resid, resname, atom), x) in enumerate(zip(_atoms(), positions)):
        element = atom[0]
        lines.append(f"ATOM  {k + 1:5d} {atom:<4s} {resname:<4s}A{resid:4d}    "
                     f"{x[0]:8.3f}{x[1]:8.3f}{x[2]:8.3f}  1.00  0.00          {element:>2s}")  # fmt: skip
    return "\n".join(lines) + "\nEND\n"


def write_mdcath(path, frames=6, temperatures=("320", "348"), replicas=("0", "1"), drop=None, resname=None,
                 wrap=False):  # fmt: skip
    """A domain file in mdCATH's layout; ``drop`` removes one dataset/attribute path to test the errors."""
    rng = np.random.default_rng(0)
    atoms = _atoms()
    A = len(atoms)
    ref = np.zeros((A, 3))
    for k, (resid, _, atom) in enumerate(atoms):
        ref[k] = np.array([3.8 * (resid - 5), 0.0, 0.0]) + (0 if atom == "CA" else rng.normal(scale=1.0, size=3))
    data = {}
    with h5py.File(path, "w") as f:
        g = f.create_group("4zohB01")
        g.attrs["numProteinAtoms"] = A
        g.attrs["numResidues"] = len(RESIDUES)
        names = [resname if (resname and n == "HSD") else n for _, n, _ in atoms]
        g.create_dataset("resname", data=np.array(names, dtype="S4"))
        g.create_dataset("resid", data=np.array([r for r, _, _ in atoms]))
        g.create_dataset("element", data=np.array([a[0] for _, _, a in atoms], dtype="S2"))
        g.create_dataset("z", data=np.array([{"N": 7, "C": 6, "O": 8}[a[0]] for _, _, a in atoms]))
        g.create_dataset("pdbProteinAtoms", data=np.bytes_(_pdb(ref)))
        for t in temperatures:
            for r in replicas:
                rg = g.create_group(f"{t}/{r}")
                coords = ref[None] + rng.normal(scale=0.2, size=(frames, A, 3))
                if wrap:  # the last residue crosses the boundary in frame 1 (stored wrapped)
                    last = [k for k, (res, _, _) in enumerate(atoms) if res == 8]
                    coords[1, last, 0] -= BOX
                forces = rng.normal(scale=5.0, size=(frames, A, 3))
                rg.create_dataset("coords", data=coords.astype(np.float32))
                rg.create_dataset("forces", data=forces.astype(np.float32))
                rg.create_dataset("box", data=(np.eye(3) * BOX)[None].astype(np.float32))
                rg.create_dataset("rmsd", data=np.zeros(frames, np.float32))
                rg.create_dataset("gyrationRadius", data=np.zeros(frames, np.float32))
                data[(t, r)] = (coords.astype(np.float32), forces.astype(np.float32))
        if drop:
            if drop.startswith("@"):
                del g.attrs[drop[1:]]
            else:
                del g[drop]
    return data


def test_cli_writes_the_cg_npz_that_train_reads(tmp_path):
    h5 = tmp_path / "mdcath_dataset_4zohB01.h5"
    raw = write_mdcath(h5, wrap=True)
    out = tmp_path / "4zohB01.npz"
    assert main(["data", "mdcath", str(h5), "-o", str(out), "--temperatures", "320", "348", "--replicas", "1"]) == 0
    with np.load(out) as f:
        d = {k: f[k] for k in f.files}
    assert "box" not in d
    assert d["species"].tolist() == [AMINO_ACIDS.index(c) for c in "YHGK"]
    assert d["bead_names"].tolist() == ["TYR5", "HSD6", "GLY7", "LYS8"]
    assert d["temperature"].tolist() == [320.0] * 6 + [348.0] * 6 and d["replica"].tolist() == [1] * 12
    atoms = _atoms()
    ca = [k for k, (_, _, a) in enumerate(atoms) if a == "CA"]
    residue = np.array([r for r, _, _ in atoms]) - 5
    coords, forces = raw[("348", "1")]
    np.testing.assert_allclose(d["forces"][6:], np.stack([forces[:, residue == i].sum(1) for i in range(4)], 1),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    expected = coords[:, ca].copy()
    expected[1, 3, 0] += BOX  # written whole: the wrapped Cα goes back next to its neighbour
    np.testing.assert_allclose(d["positions"][6:], expected, atol=1e-5)
    assert np.linalg.norm(np.diff(d["positions"], axis=1), axis=-1).max() < 6.0
    np.testing.assert_allclose(d["reference_structure"][:, 0], 3.8 * np.arange(4), atol=1e-3)
    # The training job's reader: one temperature at a time.
    with pytest.raises(Exception, match="several temperatures"):
        load_cg_dataset(str(out))
    ds = load_cg_dataset(str(out), temperature=348.0)
    assert ds.num_frames == 6 and ds.temperature == 348.0 and ds.replica.tolist() == [1] * 6


def test_all_groups_by_default(tmp_path):
    h5 = tmp_path / "d.h5"
    write_mdcath(h5, frames=3)
    d = read_mdcath(str(h5))
    assert len(d["positions"]) == 12 and sorted(set(d["replica"].tolist())) == [0, 1]


@pytest.mark.parametrize(
    "kwargs, select, message",
    [
        (dict(drop="320/0/forces"), {}, r"missing '4zohB01/320/0/forces'"),
        (dict(drop="pdbProteinAtoms"), {}, r"missing '4zohB01/pdbProteinAtoms'"),
        (dict(drop="@numResidues"), {}, r"missing attribute '4zohB01.numResidues'"),
        (dict(resname="XYZ"), {}, r"residue name 'XYZ' \(resid 6\) is not a standard amino acid"),
        (dict(), dict(temperatures=[450]), r"no temperature 450 K; the file has \['320', '348'\]"),
        (dict(), dict(replicas=[4]), r"no replica 4 at 320 K"),
    ],
)
def test_missing_pieces_are_clear_errors(tmp_path, kwargs, select, message):
    h5 = tmp_path / "d.h5"
    write_mdcath(h5, frames=2, **kwargs)
    with pytest.raises(MdcathError, match=message):
        read_mdcath(str(h5), **select)


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "x.h5").write_text("not hdf5")
    assert main(["data", "mdcath", str(tmp_path / "x.h5"), "-o", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("so3krates-hk: error:") and "not an HDF5 file" in err[0]
    assert main(["data", "mdcath", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "o.npz")]) == 2
