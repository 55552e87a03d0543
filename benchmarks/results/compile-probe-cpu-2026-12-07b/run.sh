#!/bin/bash
# water-12288 MD loop program, compile only (NORUN=1), one process per line; JAX 0.10.2 with the package's flags
# (no YNNPACK, recomputation) and with YNNPACK kept (SO3KRATES_HK_YNN_FUSIONS=1: XLA's default, stored per-pair
# terms), and JAX 0.4.37; tuned malloc.
cd /work/main
eval "$(/work/venv-ct/bin/python -m so3krates_hk.cpu_tuning)"; unset XLA_FLAGS
echo "# $(date -u +%FT%T) $(grep -m1 'model name' /proc/cpuinfo)"
for r in 1 2; do
  for side in cur cur-ynn ct; do
    case $side in
      cur) py=/work/venv-cur/bin/python; ex="";;
      cur-ynn) py=/work/venv-cur/bin/python; ex="SO3KRATES_HK_YNN_FUSIONS=1";;
      ct) py=/work/venv-ct/bin/python; ex="";;
    esac
    echo "round $r $side load $(cut -d' ' -f1 /proc/loadavg)"
    env $ex NORUN=1 /usr/bin/time -f "maxrss %M KB wall %e s" $py -m benchmarks.compile_probe water-12288 md default 2>&1 | grep -E "compile|maxrss"
  done
done
echo finished
