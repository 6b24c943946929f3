#!/usr/bin/env bash
# Runs the benchmark stages against the local stack, merges their figures into
# bench/results/latest.json (one object per stage, and the machine) and a readable table,
# and regenerates docs/BENCHMARKS.md with its charts (docs/bench-*.svg).
#
#   dev/bench.sh            every stage
#   dev/bench.sh operator   one stage
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_STAGES=(operator emitter handler handler-slow-senders consumer consumer-scaling storage e2e console)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${ALL_STAGES[@]}")

"$DEV_DIR/stack.sh" up
# shellcheck source=/dev/null
source "$STACK_DIR/env"
cd "$REPO_ROOT"
"$DEV_DIR/build-release.sh"
results="$REPO_ROOT/bench/results"
mkdir -p "$results"
for stage in "${stages[@]}"; do
  log "bench stage $stage"
  target/release/hookline-bench --results "$results" "$stage"
done

python3 "$DEV_DIR/bench_merge.py" "$results"
python3 "$DEV_DIR/bench_report.py" "$results"
