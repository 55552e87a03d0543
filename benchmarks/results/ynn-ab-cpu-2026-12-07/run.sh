#!/bin/bash
# YNNPACK fusions on/off, same process per system (benchmarks/xla_flags_sweep.py), JAX 0.10.2, tuned malloc.
cd /work/main
OUT=benchmarks/results/ynn-ab-cpu-2026-12-07
eval "$(env -u XLA_FLAGS SO3KRATES_HK_YNN_FUSIONS=1 /work/venv-cur/bin/python -m so3krates_hk.cpu_tuning)"
unset XLA_FLAGS
export SO3KRATES_HK_YNN_FUSIONS=1   # the package leaves XLA's default in place; the variants choose
V='{"ynn (XLA default)": null, "no ynn": {"xla_cpu_experimental_ynn_fusion_type": ""}}'
{
echo "# $(date -u +%FT%T) $(/work/venv-cur/bin/python -c 'import jax; print("jax", jax.__version__)') $(grep -m1 'model name' /proc/cpuinfo)"
env | grep -E '^MALLOC|^GLIBC' | sort
for s in dha bb water-1536; do echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"; /work/venv-cur/bin/python benchmarks/xla_flags_sweep.py $s so3lr $([ $s = water-1536 ] && echo 16 || echo 40) "$V" 2>&1 | grep -v Warn; done
for s in cg-chain-100 cg-box-1000; do echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"; /work/venv-cur/bin/python benchmarks/xla_flags_sweep.py $s so3krates-cg 40 "$V" 2>&1 | grep -v Warn; done
echo "# block-sum probe, XLA default then without YNNPACK"
/work/venv-cur/bin/python benchmarks/block_sum_probe.py 2>&1 | grep -v Warn
XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= /work/venv-cur/bin/python benchmarks/block_sum_probe.py 2>&1 | grep -v Warn
echo "# load $(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%T)"
} > $OUT/log.txt 2>&1
