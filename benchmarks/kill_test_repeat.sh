#!/usr/bin/env bash
# The five-point kill test (tests/test_search_resume.py), RUNS times in a row under each of two slow conditions:
# the slow-CPU emulation (AVX2 only, as on CPUs without AVX-512/bf16: ONEDNN_MAX_CPU_ISA=AVX2
# ATEN_CPU_CAPABILITY=avx2) and one core (taskset -c 0). Writes the pass counts to benchmarks/results/ and keeps
# the log of every failed run in LOG_DIR.
#
#   benchmarks/kill_test_repeat.sh [RUNS=20] [LOG_DIR=/tmp/kill_test_repeat] [TEST=...five_points]
#   PARALLEL=1 benchmarks/kill_test_repeat.sh ...   # the two conditions at the same time
set -euo pipefail
RUNS=${1:-20}
LOG_DIR=${2:-/tmp/kill_test_repeat}
TEST=${3:-tests/test_search_resume.py::test_resume_after_the_driver_is_killed_at_five_points}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0  # this checkout's code
mkdir -p "$LOG_DIR"

run_condition() {  # NAME COMMAND-PREFIX...: prints how many of RUNS passed
    local name=$1 passed=0
    shift
    for i in $(seq 1 "$RUNS"); do
        local log="$LOG_DIR/$name-$i.log" base="$LOG_DIR/tmp-$name-$i"
        if "$@" python -m pytest -q -p no:cacheprovider "$TEST" --basetemp="$base" >"$log" 2>&1; then
            passed=$((passed + 1))
            rm -rf "$log" "$base"
        fi
        echo "$name: run $i of $RUNS, $passed passed" >&2
    done
    echo "$passed"
}

if [ "${PARALLEL:-0}" = 1 ]; then
    # Both conditions at once (half the wall time; each run then shares the CPUs with the other condition's,
    # which is harsher on the test's timing than either condition alone).
    run_condition slow_isa env ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 >"$LOG_DIR/slow_isa.count" &
    run_condition one_core taskset -c 0 >"$LOG_DIR/one_core.count" &
    wait
    slow_isa=$(cat "$LOG_DIR/slow_isa.count") one_core=$(cat "$LOG_DIR/one_core.count")
else
    slow_isa=$(run_condition slow_isa env ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2)
    one_core=$(run_condition one_core taskset -c 0)
fi
echo "passed: slow-CPU emulation $slow_isa of $RUNS, one core $one_core of $RUNS (failed runs' logs: $LOG_DIR)"
# The machine's load while it ran (a shared machine makes the test harsher than a quiet one).
load_15min=$(cut -d' ' -f3 /proc/loadavg)
python benchmarks/results.py --label auto --command "PARALLEL=${PARALLEL:-0} benchmarks/kill_test_repeat.sh $RUNS" \
    kill_test_repeat runs="$RUNS" slow_isa_passed="$slow_isa" one_core_passed="$one_core" \
    conditions_at_once="${PARALLEL:-0}" load_average_15min="$load_15min" seconds="$SECONDS"
