#!/usr/bin/env bash
# Run ON the GPU machine (device tool), from the repo root, with .whl carried (made by
# bench/device/fetch_wheels.sh here):
#   run(command="bash bench/device/check.sh", carry=[".whl"], timeout_s=560)
# 1. installs Ray Tune from the carried wheels into /tmp/site (the image has torch, Python 3.12);
# 2. the CUDA cases of the packed-training tests;
# 3. bench/throughput.py --device cuda (the loop extrapolated from 32 configurations).
# Logs and the JSON land in $OUT. Budget: ~1 min install and tests, ~3-5 min the benchmark.
set -uo pipefail
OUT=${OUT:-/tmp/caviar-device}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "error: installing the carried wheels failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" PATH="/tmp/site/bin:$PATH"
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, ray; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'ray', ray.__version__)"
python3 -m pytest -q -p no:cacheprovider tests/trainables/test_packed.py -k "cuda or gpu" \
    2>&1 | tee "$OUT/cuda_tests.log"
tests=${PIPESTATUS[0]}
timeout 420 python3 bench/throughput.py --device cuda --loop-configs 32 \
    --out "$OUT/throughput_cuda.json" 2>&1 | grep -v "^USDT" | tee "$OUT/throughput_cuda.log"
bench=${PIPESTATUS[0]}
echo "cuda tests exit $tests, benchmark exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
