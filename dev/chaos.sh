#!/usr/bin/env bash
# make chaos: the fault scenarios of docs/RELIABILITY.md against the whole system
# (dev/run.sh up in namespace hookline-chaos), then that page regenerated.
#
#   dev/chaos.sh                  every scenario (about 15 minutes)
#   dev/chaos.sh kafka-kill ...   only the named ones (the page then lists only those)
#
# It SIGKILLs and restarts the stack's Kafka broker and stops PostgreSQL: run it alone,
# never beside `make test` or a benchmark. HOOKLINE_RUN_BIN_DIR picks the binaries
# (default: the debug build, made here).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$DEV_DIR/stack.sh" up
cd "$REPO_ROOT"
if [ -z "${HOOKLINE_RUN_BIN_DIR:-}" ]; then
  log "building the debug binaries"
  cargo build --workspace --bins --locked
  (cd dev && cargo build --workspace --bins --locked)
else
  cargo build --locked -p hookline-e2e --bin hookline-chaos
fi
# shellcheck source=/dev/null
source "$STACK_DIR/env"
log "running the fault scenarios (${*:-all})"
target/debug/hookline-chaos "$@"
