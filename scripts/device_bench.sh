#!/usr/bin/env bash
# The GPU benchmark as one prepared call on a GPU machine: the full benchmark there. Run ON the device machine,
# from the repository root, after scripts/device_wheels.sh here:
#
#     device run:  command="bash scripts/device_bench.sh"  carry=[".whl"]  timeout_s=510
#
# 1. installs the carried wheels (.whl/, requirements/device.txt) into /tmp/site, no index, no dependencies;
# 2. a smoke test that fails within a minute when something is missing (import, GPU visible, one SO3LR e+f on dha);
# 3. `python -m benchmarks.run --gpu --budget $BENCH_BUDGET_S` (plan.gpu_plan: the GPU targets first), results
#    straight into $OUT/bench/ so that a run cut short still brings back partial.json;
# 4. `python -m benchmarks.eval_bench` (float32, at most $EVAL_BUDGET_S s): `so3krates-hk eval`'s packed batches
#    against looping the ASE calculator over the bundled aspirin set, into $OUT/eval/; on a GPU the loop is
#    latency-bound, so this is where batching should pay;
# 5. with the time left of $TOTAL_BUDGET_S, `python -m benchmarks.profile` on water-1536 into $OUT/profile/.
#
# What comes back (at most 10 files): $OUT/log.txt, $OUT/bench/{results.json,results.md,*.png},
# $OUT/eval/{results.json,results.md}, $OUT/profile/*.
# Copy $OUT/bench to benchmarks/results/gpu-<device>-<date>/ and $OUT/eval to
# benchmarks/results/eval-gpu-<device>-<date>/ here and commit them.
#
# Dry run on a CPU machine (what CI cannot do for us): a venv holding only what the device image holds, the wheels
# for its Python in .whl/, then
#     PYTHON=venv/bin/python OUT=/tmp/out BENCH_ARGS="--max-atoms 2000" PROFILE_SYSTEMS=dha bash scripts/device_bench.sh
set -uo pipefail
OUT=${OUT:-/tmp/so3krates-device-out}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-240}
TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-470}
EVAL_BUDGET_S=${EVAL_BUDGET_S:-120}         # benchmarks.eval_bench: packed eval against the ASE loop
BENCH_ARGS=${BENCH_ARGS:-}                 # extra arguments of benchmarks.run (a dry run on CPU: --max-atoms 2000)
PROFILE_SYSTEMS=${PROFILE_SYSTEMS:-water-1536}
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
t0=$(date +%s)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
echo "== $(date -Is) $(uname -n) $($PY --version)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

ls .whl/*.whl >/dev/null 2>&1 || { echo "ERROR: no wheels in .whl/ (run scripts/device_wheels.sh, carry .whl)"; exit 2; }
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
  || { echo "ERROR: wheel install failed"; exit 2; }
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}  # the largest box may use the whole GPU

echo "== smoke test: imports, the GPU, SO3LR parity on dha (float64 and float32, against the original's numbers)"
timeout 150 $PY - <<'PY' || { echo "ERROR: smoke test failed"; exit 3; }
import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

import so3krates_hk
from so3krates_hk import pretrained
from benchmarks import jax_models, torch_models  # noqa: F401  (the benchmark's builders import)
from so3krates_hk.data.parity import parity_report

from benchmarks.worker import _chemtrain_jax_aliases

print("jax", jax.__version__, jax.devices(), "so3krates_hk", so3krates_hk.__version__)
print("  aliases added for chemtrain:", _chemtrain_jax_aliases())
for m in ("haiku", "e3nn_jax", "jax_md", "optax", "chemtrain.trainers", "torch", "nequip", "allegro", "mace",
          "matscipy", "ase"):
    try:
        mod = __import__(m, fromlist=["_"])
        print(f"  {m:9s} {getattr(mod, '__version__', '?')}")
    except Exception as err:  # the torch baselines are optional: say so and go on
        print(f"  {m:9s} NOT IMPORTABLE: {type(err).__name__}: {err}")
params, _ = pretrained.so3lr()
(row,) = parity_report(params, names=("dha",), dtype=jnp.float64)
ok = row["energy_error"] <= 1e-6 and row["force_error"] <= 1e-5
print(f"  parity dha float64 on {jax.devices()[0].platform}: |dE| {row['energy_error']:.2e} eV, "
      f"max|dF| {row['force_error']:.2e} eV/A (limits 1e-6 / 1e-5) {'PASS' if ok else 'FAIL'}")
assert ok, "float64 parity failed on this device"
# float32: recorded, not asserted. On Ampere and newer GPUs XLA may run float32 matmuls in TF32 at the default
# precision; "highest" forces full float32 (jax.default_matmul_precision).
for prec in (None, "highest"):
    with jax.default_matmul_precision(prec):
        (row,) = parity_report(params, names=("dha",), dtype=jnp.float32)
    print(f"  parity dha float32, matmul precision {prec or 'default'}: |dE| {row['energy_error']:.2e} eV, "
          f"max|dF| {row['force_error']:.2e} eV/A")
PY
echo "== smoke done after $(( $(date +%s) - t0 )) s"

echo "== benchmark (--gpu, budget ${BENCH_BUDGET_S} s)"
timeout $(( BENCH_BUDGET_S + 180 )) $PY -m benchmarks.run --gpu --budget "$BENCH_BUDGET_S" --out "$OUT/bench" $BENCH_ARGS
echo "== benchmark rc=$? after $(( $(date +%s) - t0 )) s"

left=$(( TOTAL_BUDGET_S - ($(date +%s) - t0) ))
if [ "$left" -gt 150 ]; then
  echo "== eval against the ASE loop (${left} s left)"
  timeout $(( EVAL_BUDGET_S < left - 90 ? EVAL_BUDGET_S : left - 90 )) $PY -m benchmarks.eval_bench \
    --frames 128 --dtypes float32 --batch-atoms 3072 --repeats 3 --committee-frames 0 --out "$OUT/eval"
  echo "== eval rc=$? after $(( $(date +%s) - t0 )) s"
else
  echo "== no time left for eval (${left} s)"
fi

left=$(( TOTAL_BUDGET_S - ($(date +%s) - t0) ))
if [ "$left" -gt 90 ]; then
  echo "== profile (${left} s left)"
  timeout $(( left - 15 )) $PY -m benchmarks.profile --systems "$PROFILE_SYSTEMS" --out "$OUT/profile"
  echo "== profile rc=$? after $(( $(date +%s) - t0 )) s"
else
  echo "== no time left for the profile (${left} s)"
fi
ls -la "$OUT" "$OUT"/* 2>/dev/null
