#!/usr/bin/env bash
# A Python virtual environment with the providers' official webhook libraries
# (standardwebhooks, svix, stripe, slack_sdk: for the interop tests of
# core/tests/standardwebhooks_interop.rs and, through testkit/providers/sign.py, of
# e2e/tests/providers), PyYAML (for dev/chart-test.sh), and Playwright and schemathesis
# (the console's browser tests and API fuzzing, e2e/tests/console; Playwright drives
# Debian's chromium, dev/chromium.sh), at the versions of dev/versions.env.
#
#   pyenv.sh   create the venv under $CACHE_DIR once (idempotent) and print the path of
#              its python on stdout (everything else goes to stderr)
#
# The venv's directory is named after the pinned versions: a missing or half-built one
# is built again from scratch, and changing a version builds a new one.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQUIREMENTS=(
  "standardwebhooks==$STANDARDWEBHOOKS_PY_VERSION"
  "svix==$SVIX_PY_VERSION"
  "stripe==$STRIPE_PY_VERSION"
  "slack_sdk==$SLACK_SDK_PY_VERSION"
  "PyYAML==$PYYAML_VERSION"
  "playwright==$PLAYWRIGHT_PY_VERSION"
  "schemathesis==$SCHEMATHESIS_PY_VERSION"
)
VENV_DIR="$CACHE_DIR/pyenv-$(printf '%s\n' "${REQUIREMENTS[@]}" | sha256sum | cut -c1-12)"
VENV_PYTHON="$VENV_DIR/bin/python"
READY_MARKER="$VENV_DIR/.hookline-ready"

# True when the venv has every pinned package at its version and imports them.
venv_ready() {
  [ -f "$READY_MARKER" ] && [ -x "$VENV_PYTHON" ] &&
    "$VENV_PYTHON" - "${REQUIREMENTS[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
import standardwebhooks, svix, stripe, slack_sdk, yaml, playwright, schemathesis  # noqa: F401
for requirement in sys.argv[1:]:
    name, wanted = requirement.split("==")
    if version(name) != wanted:
        sys.exit(1)
PY
}

# The interpreter to build the venv with: python3 with a working venv module.
base_python() {
  command -v python3 >/dev/null || apt_install python3 python3-venv
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
  fi
  command -v python3
}

build_venv() {
  local python
  python=$(base_python)
  log "creating $VENV_DIR with ${REQUIREMENTS[*]} ($("$python" --version 2>&1))"
  rm -rf "$VENV_DIR"
  "$python" -m venv "$VENV_DIR" >&2
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV_PYTHON" -m pip install --quiet "${REQUIREMENTS[@]}" >&2 ||
    die "pip could not install ${REQUIREMENTS[*]} into $VENV_DIR"
  touch "$READY_MARKER"
  venv_ready || die "$VENV_DIR was built but cannot import ${REQUIREMENTS[*]}"
}

main() {
  # Tests may call this concurrently: one builds, the others wait and reuse.
  exec 9>"$VENV_DIR.lock"
  flock 9
  venv_ready || build_venv
  printf '%s\n' "$VENV_PYTHON"
}

main "$@"
