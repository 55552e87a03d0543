"""Bad input on the command line: one line ``so3krates-hk: error: …`` on stderr and exit status 2, before any
compilation. Each case of the README's validation list (shapes, dtypes, NaN positions, species / atomic-number
range, overlapping atoms, integer charge, spin parity) is given as a user gives it: a structure file or an option.
"""

import os
import subprocess
import sys

import pytest

from so3krates_hk.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "so3krates-hk: error: "


def xyz(tmp_path, body: str, name: str = "s.xyz") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


WATER = "3\n\nO 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH -0.24 0.93 0.0\n"


def fails(capsys, argv) -> str:
    """Run ``so3krates-hk argv`` in this process; assert one error line and status 2; return the message."""
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith(PREFIX), err
    return err[0][len(PREFIX):]


def md(tmp_path, *extra):
    return ["md", "--output", str(tmp_path / "out"), "--steps", "10", "--no-progress", *extra]


@pytest.mark.parametrize(
    "body, message",
    [
        # NaN position, naming the atom
        ("3\n\nO 0.0 0.0 0.0\nH nan 0.0 0.0\nH -0.24 0.93 0.0\n", r"position of atom 1 is not finite"),
        # atomic number outside 1 … 99 (ASE's "X" is Z = 0; Fm is Z = 100), naming the atom
        ("3\n\nX 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH -0.24 0.93 0.0\n", r"atomic number\[0\] = 0 is outside .* 1 … 99"),
        ("3\n\nO 0.0 0.0 0.0\nH 0.96 0.0 0.0\nFm -0.24 0.93 0.0\n", r"atomic number\[2\] = 100 is outside .* 1 … 99"),
        # overlapping atoms (< 0.1 Å), naming the pair and the distance
        ("3\n\nO 0.0 0.0 0.0\nH 0.05 0.0 0.0\nH -0.24 0.93 0.0\n", r"atoms 0 and 1 are 0.05 Å apart"),
        # malformed file (a coordinate missing: the shape is wrong)
        ("3\n\nO 0.0 0.0 0.0\nH 0.96 0.0\nH -0.24 0.93 0.0\n", r"s.xyz: cannot read it as a structure"),
        # an element that does not exist, naming it and its line
        ("3\n\nO 0.0 0.0 0.0\nQq 0.96 0.0 0.0\nH -0.24 0.93 0.0\n", r"s.xyz: unknown element 'Qq' on line 4"),
        # a periodic cell too small for the long-range cutoff (minimum image)
        ('3\nLattice="10 0 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
         "O 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH -0.24 0.93 0.0\n", r"too small"),
    ],
    ids=["nan", "z0", "z100", "overlap", "shape", "element", "cell"],
)
def test_bad_structure_files(tmp_path, capsys, body, message):
    import re

    msg = fails(capsys, md(tmp_path, "--structure", xyz(tmp_path, body)))
    assert re.search(message, msg), msg


def test_charge_and_spin(tmp_path, capsys):
    water = xyz(tmp_path, WATER)
    assert "integer number of elementary charges" in fails(capsys, md(tmp_path, "--structure", water, "--charge", "0.5"))
    msg = fails(capsys, md(tmp_path, "--structure", water, "--spin", "1"))  # 10 electrons: S must be even
    assert "num_unpaired_electrons = 1 is inconsistent with 10 electrons" in msg
    assert "non-negative integer" in fails(capsys, md(tmp_path, "--structure", water, "--spin", "-2"))


def test_options_and_files(tmp_path, capsys):
    msg = fails(capsys, md(tmp_path, "--structure", "dah"))
    assert "'dah'" in msg and all(name in msg for name in ("atat", "dha", "bb", "water"))
    assert "nothing to restart" in fails(capsys, md(tmp_path, "--restart"))
    assert "--steps must be positive" in fails(capsys, md(tmp_path, "--structure", "dha", "--steps", "0"))
    msg = fails(capsys, md(tmp_path, "--structure", "dha", "--block", "20", "--record-every", "7"))
    assert "record_every (7) must divide block (20)" in msg
    msg = fails(capsys, md(tmp_path, "--structure", "dha", "--params", str(tmp_path / "missing.npz")))
    assert "missing.npz" in msg
    assert "nope.yaml" in fails(capsys, ["train", "--config", str(tmp_path / "nope.yaml")])
    assert "give params.pkl" in fails(capsys, ["convert"])


def test_a_missing_extra_is_named_before_any_compilation(capsys, monkeypatch):
    import jax

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled before checking the extra")

    monkeypatch.setitem(sys.modules, "chemtrain", None)  # as if chemtrain were not installed
    monkeypatch.setattr(jax, "jit", no_compiling)
    msg = fails(capsys, ["train", "--config", "cg_alanine_dipeptide"])
    assert "pip install 'so3krates-hk[chemtrain]'" in msg
    msg = fails(capsys, ["finetune", "--config", "finetune_aspirin"])
    assert "pip install 'so3krates-hk[chemtrain]'" in msg


def test_one_line_from_a_real_process_and_debug_shows_the_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "so3krates_hk.cli", "md", "--structure", "dah", "--output", str(tmp_path / "o")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"{PREFIX}structure 'dah' is neither a file nor a bundled structure (atat, dha, bb, water)"
    ]
    p = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "Traceback" in p.stderr and "InputError" in p.stderr
