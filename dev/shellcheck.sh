#!/usr/bin/env bash
# Runs shellcheck over every shell script the project tracks (installs it if missing).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v shellcheck >/dev/null || apt_install shellcheck
cd "$REPO_ROOT" || exit 1
mapfile -t scripts < <(git ls-files -co --exclude-standard '*.sh' .ci/run)
shellcheck -x "${scripts[@]}"
log "shellcheck clean on ${#scripts[@]} scripts"
