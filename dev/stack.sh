#!/usr/bin/env bash
# The local stack: real PostgreSQL, Kafka and a Kubernetes control plane on loopback (PostgreSQL
# and Kafka's SASL_SSL listener with certificates from a CA of its own, dev/components/tls.sh),
# and Prometheus's binaries for the tests that start a Prometheus of their own.
#
#   dev/stack.sh up       install what is missing, start everything, write .stack/env
#   dev/stack.sh down     stop exactly what `up` started
#   dev/stack.sh status   say what is running
#   dev/stack.sh install  only install and build (no services started)
#
# Each component is dev/components/NAME.sh with the subcommands install, start, stop, status.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMPONENTS=(tls postgres kafka kube prometheus)

component() { bash "$DEV_DIR/components/$1.sh" "$2"; }

write_env() {
  {
    echo "# Written by dev/stack.sh up; source it to reach the local stack."
    echo "export HOOKLINE_STACK_DIR=$STACK_DIR"
    cat "$ENV_PARTS_DIR"/*.env
  } >"$STACK_DIR/env"
  log "wrote $STACK_DIR/env"
}

timed() {
  local start=$SECONDS
  "$@"
  log "$* took $((SECONDS - start))s"
}

case "${1:-}" in
  install)
    for c in "${COMPONENTS[@]}"; do timed component "$c" install; done
    ;;
  up)
    for c in "${COMPONENTS[@]}"; do timed component "$c" install; done
    for c in "${COMPONENTS[@]}"; do timed component "$c" start; done
    write_env
    ;;
  down)
    for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do component "${COMPONENTS[$i]}" stop; done
    rm -f "$STACK_DIR/env"
    ;;
  status)
    rc=0
    for c in "${COMPONENTS[@]}"; do component "$c" status || rc=1; done
    exit $rc
    ;;
  *)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
