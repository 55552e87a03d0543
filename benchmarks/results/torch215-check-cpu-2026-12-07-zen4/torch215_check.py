"""Is so3krates-torch faster under torch 2.15.0 than under 2.14.1? Same run, one machine: the samerun harness's own
torch worker (``benchmarks/so3krates_torch_worker.py``: parity of the compiled model against eager before timing),
eager and compiled, both torch versions, interleaved round by round. A third compiled side runs 2.15 with
``torch._dynamo.config.trace_autograd_ops = True``, the setting 2.15's graph-break message recommends for the
forces' ``torch.autograd.grad``.

    python torch215_check.py V214/bin/python V215/bin/python [SYSTEMS] [ROUNDS]
"""
import json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../.."))
sys.path.insert(0, ROOT)
import numpy as np  # noqa: E402
from benchmarks.systems import build_system  # noqa: E402
from so3krates_hk.cpu_tuning import MALLOC_ENV  # noqa: E402

WRAP = """import runpy, sys, torch
torch._dynamo.config.trace_autograd_ops = True
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
py214, py215 = sys.argv[1], sys.argv[2]
systems = (sys.argv[3] if len(sys.argv) > 3 else "dha,bb").split(",")
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 2
tmp = tempfile.mkdtemp()
wrap = os.path.join(tmp, "wrap.py")
open(wrap, "w").write(WRAP)
worker = os.path.join(ROOT, "benchmarks", "so3krates_torch_worker.py")
sides = [("torch 2.14.1 eager", [py214, worker], "eager"), ("torch 2.14.1 compiled", [py214, worker], "compiled"),
         ("torch 2.15.0 eager", [py215, worker], "eager"), ("torch 2.15.0 compiled", [py215, worker], "compiled"),
         ("torch 2.15.0 compiled, trace_autograd_ops=True", [py215, wrap, worker], "compiled")]
env = dict(os.environ, **MALLOC_ENV)  # as benchmarks.samerun runs its torch workers
log = open(os.path.join(HERE, "log.txt"), "a")
recs = []
for name in systems:
    s = build_system(name)
    npz = os.path.join(tmp, f"{name}.npz")
    np.savez(npz, positions=s.positions, species=s.species, box=-1.0 if s.box is None else float(s.box))
    for r in range(rounds):
        for side, cmd, mode in sides:
            out = os.path.join(tmp, f"{name}-{len(recs)}.json")
            p = subprocess.run(cmd + [npz, out, "--repeats", "10", "--mode", mode], env=env, capture_output=True,
                               text=True, timeout=1800)
            rec = dict(system=name, side=side, round=r, load=os.getloadavg()[0])
            if p.returncode == 0 and os.path.exists(out):
                d = json.load(open(out))
                rec.update(status="ok", times_ms=[1e3 * t for t in d["times_s"]], versions=d["versions"],
                           compile_s=d.get("compile_s"), parity_vs_eager=d.get("parity_vs_eager"))
            else:
                rec.update(status="failed", error=(p.stderr or p.stdout)[-1500:])
            log.write(json.dumps(rec) + "\n"); log.flush()
            what = (f"median {statistics.median(rec['times_ms']):8.1f} ms" if rec["status"] == "ok"
                    else "FAILED " + rec["error"].strip().splitlines()[-1][:200])
            print(f"{name:6s} r{r} {side:48s} {what}", flush=True)
            recs.append(rec)
print("\n| system | side | ms per call: median (min–max) | calls | compile s |\n|---|---|---:|---:|---:|")
for name in systems:
    for side, _, _ in sides:
        ok = [x for x in recs if x["system"] == name and x["side"] == side and x["status"] == "ok"]
        if not ok:
            print(f"| {name} | {side} | failed (see log.txt) | | |")
            continue
        t = [v for x in ok for v in x["times_ms"]]
        cs = ", ".join(f"{x['compile_s']:.1f}" for x in ok if x.get("compile_s"))
        print(f"| {name} | {side} | {statistics.median(t):.1f} ({min(t):.1f}–{max(t):.1f}) | {len(t)} | {cs} |")
