#!/usr/bin/env bash
# Prometheus and promtool from Debian's package, for the alert rules' unit tests
# (dev/chart-test.sh) and the observability test (e2e/tests/observability), which start a
# Prometheus of their own on a free loopback port. The package's own service is never
# started. No daemon here.
#
#   prometheus.sh install   apt-get install prometheus if promtool is missing
#   prometheus.sh start     write the env part: PROMETHEUS, PROMTOOL
#   prometheus.sh stop      nothing to stop
#   prometheus.sh status    the installed version
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PROMETHEUS_BIN=/usr/bin/prometheus
PROMTOOL_BIN=/usr/bin/promtool

install() {
  if [ ! -x "$PROMTOOL_BIN" ] || [ ! -x "$PROMETHEUS_BIN" ]; then
    # The package's maintainer scripts start its service unless a policy says no: keep one in
    # place for the install (Debian's container images ship it; a machine may not).
    local policy=/usr/sbin/policy-rc.d added=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
    fi
    apt_install prometheus
    [ -n "$added" ] && rm -f "$policy"
  fi
  [ -x "$PROMTOOL_BIN" ] || die "apt installed prometheus but $PROMTOOL_BIN is missing"
  log "prometheus: $("$PROMETHEUS_BIN" --version 2>&1 | head -1)"
}

case "${1:-}" in
  install) install ;;
  start) write_env_part prometheus "PROMETHEUS=$PROMETHEUS_BIN" "PROMTOOL=$PROMTOOL_BIN" ;;
  stop) ;;
  status)
    if [ -x "$PROMETHEUS_BIN" ]; then
      echo "prometheus: installed ($("$PROMETHEUS_BIN" --version 2>&1 | head -1)); tests start their own"
    else
      echo "prometheus: not installed"
      exit 1
    fi
    ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
