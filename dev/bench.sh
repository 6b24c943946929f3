#!/usr/bin/env bash
# Runs the benchmark stages against the local stack, merges their figures into
# bench/results/latest.json (one object per stage, and the machine) and a readable table,
# and regenerates docs/BENCHMARKS.md with its charts (docs/bench-*.svg).
#
#   dev/bench.sh            every stage
#   dev/bench.sh operator   one stage
#
# Each stage runs as often as hookline-bench gives it by default (three times for the
# figures of issue 28: operator, handler and consumer as whole runs, e2e and idle repeating
# their measurements inside one start of the system; once for the long stages, console and
# storage) and reports the median with min, max and every sample. REPEATS=N runs every
# named stage N times as a whole instead (REPEATS=1 for a quick pass; e2e and idle keep
# their inner repeats). The kind stage needs the kind cluster: make kind-bench runs it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_STAGES=(idle operator emitter handler handler-slow-senders consumer consumer-scaling storage e2e console)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${ALL_STAGES[@]}")

"$DEV_DIR/stack.sh" up
# shellcheck source=/dev/null
source "$STACK_DIR/env"
cd "$REPO_ROOT"
"$DEV_DIR/build-release.sh"
results="$REPO_ROOT/bench/results"
mkdir -p "$results"
repeats=()
[ -z "${REPEATS:-}" ] || repeats=(--repeats "$REPEATS")
for stage in "${stages[@]}"; do
  log "bench stage $stage"
  target/release/hookline-bench --results "$results" "${repeats[@]}" "$stage"
done

python3 "$DEV_DIR/bench_merge.py" "$results"
python3 "$DEV_DIR/bench_report.py" "$results"
