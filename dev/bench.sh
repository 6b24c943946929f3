#!/usr/bin/env bash
# Runs the benchmark stages against the local stack and merges their figures into
# bench/results/latest.json (one object per stage) and a readable table.
#
#   dev/bench.sh            every stage
#   dev/bench.sh operator   one stage
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_STAGES=(operator emitter handler consumer e2e)
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

python3 - "$results" <<'PY'
import json, os, platform, subprocess, sys, datetime
results = sys.argv[1]
stages = {}
for name in sorted(os.listdir(results)):
    if name.endswith(".json") and name != "latest.json":
        with open(os.path.join(results, name)) as f:
            stages[name[:-5]] = json.load(f)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
meta = {
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
}
with open(os.path.join(results, "latest.json"), "w") as f:
    json.dump({"meta": meta, **stages}, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"\n{'figure':<50} value")
for stage, figures in stages.items():
    for key, value in figures.items():
        print(f"{stage + '.' + key:<50} {value}")
print(f"\nwrote {os.path.join(results, 'latest.json')}")
PY
