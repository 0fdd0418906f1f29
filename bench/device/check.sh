#!/usr/bin/env bash
# Issue #27's device check, in at most 6 minutes on one lent H200, in ONE device call:
#   here first:  bash bench/device/fetch_wheels.sh        (Ray's wheels into .whl/, git-ignored)
#   then:        run(command="bash bench/device/check.sh", carry=[".whl"], timeout_s=420)
#   on a CPU:    DEVICE=cpu bash bench/device/check.sh --smoke   (every path, tiny; ~5 min on 2
#                cores, to know the script works before spending GPU minutes)
# Steps, each under `timeout`, the whole under BUDGET seconds (default 340):
#   1. Ray Tune from the carried wheels into /tmp/site, when python3 lacks Ray (the GPU image);
#   2. the CUDA tests (tests/trainables/test_packed.py -k "cuda or gpu": packed runs on the GPU
#      against the CPU's, a pack saved on the GPU continued on the CPU; tests/trainables/
#      test_capture.py: steps replayed as CUDA graphs train as eager ones; test_memory.py: a
#      member's memory estimate covers its real step);
#   3. bench/device/table.py: the example CNN through caviar and through plain Ray Tune with
#      1/16 GPU per trial (256 and 2048 configurations x 10 epochs; 2048 projected through 256
#      and 1024 when it would not fit), the engine alone, the MLP benchmark: ONE table of wall
#      time, ratio to plain Ray Tune, config-epochs/s, share of the GPU's measured fp32 peak and
#      issue #27's goals.
# Logs, the table and its JSON land in $OUT (default /tmp/caviar-device).
set -euo pipefail
cd "$(dirname "$0")/../.."
SMOKE=()
[ "${1:-}" = "--smoke" ] && SMOKE=(--smoke)
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-$([ ${#SMOKE[@]} -gt 0 ] && echo 600 || echo 340)}
OUT=${OUT:-/tmp/caviar-device}
mkdir -p "$OUT"
if [ -z "${PY:-}" ]; then
    if [ "$DEVICE" = cpu ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
left() { echo $((BUDGET - SECONDS)); }
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import ray" 2>/dev/null; then
    [ -d .whl ] || { echo "error: $PY has no Ray and no .whl/ was carried (fetch_wheels.sh)"; exit 1; }
    timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl || { echo "error: installing .whl/ failed"; exit 1; }
    export PYTHONPATH="/tmp/site:$PYTHONPATH" PATH="/tmp/site/bin:$PATH"
fi
[ "$DEVICE" = cuda ] && nvidia-smi -L
"$PY" -c "import torch, ray; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'ray', ray.__version__)"
echo "[setup] $SECONDS s"

tests=0
timeout 75 "$PY" -m pytest -q -p no:cacheprovider tests/trainables/test_packed.py \
    tests/trainables/test_capture.py tests/trainables/test_memory.py -k "cuda or gpu" -rs 2>&1 | tee "$OUT/cuda_tests.log" \
    || tests=$?
echo "[cuda tests] exit $tests at $SECONDS s"

table=0
t=$(left)  # `timeout 0` would mean no limit at all
[ "$t" -gt 60 ] || { echo "error: only $t s of BUDGET=$BUDGET left for the table"; exit 1; }
timeout "$t" "$PY" bench/device/table.py --device "$DEVICE" "${SMOKE[@]}" \
    --budget "$((t - 10))" --out "$OUT/table.json" 2>&1 | grep -v "^USDT" \
    | tee "$OUT/table.log" || table=$?
echo "[table] exit $table; whole check $SECONDS s of $BUDGET"
echo "cuda tests: $(tail -n 1 "$OUT/cuda_tests.log")"
[ "$tests" -eq 0 ] && [ "$table" -eq 0 ]
