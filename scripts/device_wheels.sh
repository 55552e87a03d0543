#!/usr/bin/env bash
# Download, as wheels, the packages the GPU device image lacks (requirements/device.txt) into .whl/ (git-ignored),
# for the device's Python (3.12, x86-64 manylinux). Pure-Python packages published only as sdists are built into
# wheels here. Run on a machine that reaches PyPI, from the repository root:
#
#     scripts/device_wheels.sh [PYTHON_VERSION=3.12] [DEST=.whl]
#
# Then pass carry=[".whl"] to the device call and start it with scripts/device_bench.sh (see its header).
set -euo pipefail
PYVER=${1:-3.12}
DEST=${2:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
plats=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1 manylinux_2_31 \
         manylinux_2_34 manylinux_2_35; do
  plats+=(--platform "${p}_x86_64")
done
grep -Ev '^\s*(#|$)' requirements/device.txt | while read -r req; do
  name=${req%%==*}
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
       "${plats[@]}" -d "$DEST" "$req" 2>/dev/null; then
    echo "no wheel for $req: building one from the sdist (pure Python)" >&2
    "$PY" -m pip wheel -q --no-deps --no-binary "$name" -w "$DEST" "$req"
    whl=$(ls "$DEST"/*.whl | grep -i "$(echo "$name" | tr '-' '_')" | head -1 || true)
    case "$whl" in *-none-any.whl) ;; *) echo "ERROR: $req is not pure Python ($whl)" >&2; exit 1 ;; esac
  fi
done
n=$(ls "$DEST"/*.whl | wc -l)
echo "$n wheels in $DEST ($(du -sh "$DEST" | cut -f1)); expected $(grep -Evc '^\s*(#|$)' requirements/device.txt)"
