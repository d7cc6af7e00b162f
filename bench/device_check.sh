#!/usr/bin/env bash
# The GPU check: the `gpu` tests and the GPU benchmarks on one CUDA device, then one table.
#
#   bash bench/device_check.sh              on a GPU machine (after bench/device_prepare.sh here)
#   bash bench/device_check.sh --dry-run    rehearsal on CPU: the same steps, CPU numbers
#                                           (SKIP_WHEELS=1 PYTHON=... to use an environment that has them)
#
# Finishes in under 8 minutes: the tests are cut off at TEST_SECONDS, the benchmarks at
# BENCH_SECONDS (each benchmark also stops feeding rows after its --budget). Wheels in .whl/ are
# installed into /tmp/site (what this project needs and the machine lacks); the reference kit is
# read from .devkit/reference when present. Checks that need Ray run only if `import ray` works,
# else they are reported as skipped with the reason. Results (JUnit XML, logs, JSON, table.md)
# go to $HSP_DEVICE_CHECK_DIR, else $OUT/device-check (what a device call brings back), else
# /tmp/device-check. Exit status: 0 when every test passed or was skipped.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
PYTHON=${PYTHON:-python3}
TEST_SECONDS=${TEST_SECONDS:-240}
BENCH_SECONDS=${BENCH_SECONDS:-180}
RESULTS=${HSP_DEVICE_CHECK_DIR:-${OUT:-/tmp}/device-check}
mkdir -p "$RESULTS"
started=$(date +%s)

if [[ -z "${SKIP_WHEELS:-}" ]] && compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing .whl/*.whl into /tmp/site failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[[ -f .devkit/reference/README.md ]] && export HSP_REFERENCE_DIR="$PWD/.devkit/reference"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0
export HSP_DEVICE_CHECK_MEASUREMENTS="$RESULTS/measurements.json"
DEVICE=cuda
if (( DRY_RUN )); then
  DEVICE=cpu
  export HSP_GPU_TEST_DEVICE=cpu
fi
rm -f "$RESULTS"/gpu-tests.xml "$RESULTS"/measurements.json "$RESULTS"/bench.json

"$PYTHON" - <<'PY' 2>&1 | tee "$RESULTS/environment.log"
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "cuda", torch.version.cuda)
for name in ("ray", "transformers", "soundfile", "soxr", "pyarrow", "numpy"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "MISSING:", type(exc).__name__, exc)
PY

timeout "$TEST_SECONDS" "$PYTHON" -m pytest tests/gpu -m gpu -q -rs -p no:cacheprovider -p no:warnings --timeout 200 \
  --junitxml "$RESULTS/gpu-tests.xml" > "$RESULTS/gpu-tests.log" 2>&1
tests_status=$?
tail -n 25 "$RESULTS/gpu-tests.log"

quick=()
(( DRY_RUN )) && quick=(--quick)
timeout "$BENCH_SECONDS" "$PYTHON" bench/bench_device.py --device "$DEVICE" --budget "${BENCH_BUDGET:-25}" \
  --out "$RESULTS/bench.json" "${quick[@]}" > "$RESULTS/bench.log" 2>&1
bench_status=$?
(( bench_status != 0 )) && tail -n 15 "$RESULTS/bench.log"

"$PYTHON" bench/device_table.py --junit "$RESULTS/gpu-tests.xml" --measurements "$RESULTS/measurements.json" \
  --bench "$RESULTS/bench.json" | tee "$RESULTS/table.md"
table_status=${PIPESTATUS[0]}
echo "device check: tests exit $tests_status, benchmarks exit $bench_status, $(( $(date +%s) - started )) s; results in $RESULTS"
exit "$table_status"
