#!/usr/bin/env bash
# The five-minute check on a GPU, then the bench on a Llama-7B-shaped random model (three minutes), offline.
# Usage: bash scripts/gpu_check.sh [OUT]   (default OUT: gpu-check; writes OUT/check and OUT/bench-llama7b)
# On a machine that has torch but not the other packages, put their wheels in .whl/ first (benchmarks/README.md).
# DEVICE and BENCH_MODEL change the device (default cuda) and the bench's model (default random:llama-7b).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-check}"
device="${DEVICE:-cuda}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$PWD/.site" .whl/*.whl
  export PYTHONPATH="$PWD/.site:$PYTHONPATH"
fi
if [ "$device" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
timeout 360 python3 -m red_explorer check --device "$device" --out "$out/check"
echo "check: exit $?"
timeout 240 python3 -m red_explorer bench --device "$device" --model "${BENCH_MODEL:-random:llama-7b}" --minutes 3 \
  --out "$out/bench-llama7b" >/dev/null
echo "bench: exit $?"
for report in "$out"/check/check.md "$out"/check/bench/bench.md "$out"/bench-llama7b/bench.md; do
  [ -f "$report" ] && echo "=== $report" && cat "$report"
done
