#!/usr/bin/env bash
# A Python virtual environment with the official `standardwebhooks` package (for the
# interoperability test of core/tests/standardwebhooks_interop.rs) and PyYAML (for
# dev/chart-test.sh).
#
#   pyenv.sh   create $CACHE_DIR/pyenv-$STANDARDWEBHOOKS_PY_VERSION once (idempotent) and
#              print the path of its python on stdout (everything else goes to stderr)
#
# A venv that is missing, half-built or holds another version is built again from scratch.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV_DIR="$CACHE_DIR/pyenv-$STANDARDWEBHOOKS_PY_VERSION-yaml$PYYAML_VERSION"
VENV_PYTHON="$VENV_DIR/bin/python"
READY_MARKER="$VENV_DIR/.hookline-ready"

# True when the venv imports the pinned version of the package.
venv_ready() {
  [ -f "$READY_MARKER" ] && [ -x "$VENV_PYTHON" ] &&
    "$VENV_PYTHON" - "$STANDARDWEBHOOKS_PY_VERSION" "$PYYAML_VERSION" >/dev/null 2>&1 <<'EOF'
import sys
from importlib.metadata import version
from standardwebhooks.webhooks import Webhook  # noqa: F401
import yaml  # noqa: F401
sys.exit(0 if (version("standardwebhooks"), version("PyYAML")) == tuple(sys.argv[1:3]) else 1)
EOF
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
  log "creating $VENV_DIR with standardwebhooks==$STANDARDWEBHOOKS_PY_VERSION ($("$python" --version 2>&1))"
  rm -rf "$VENV_DIR"
  "$python" -m venv "$VENV_DIR" >&2
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV_PYTHON" -m pip install --quiet \
    "standardwebhooks==$STANDARDWEBHOOKS_PY_VERSION" "PyYAML==$PYYAML_VERSION" >&2 ||
    die "pip could not install standardwebhooks==$STANDARDWEBHOOKS_PY_VERSION and PyYAML==$PYYAML_VERSION into $VENV_DIR"
  touch "$READY_MARKER"
  venv_ready || die "$VENV_DIR was built but cannot import standardwebhooks $STANDARDWEBHOOKS_PY_VERSION and PyYAML $PYYAML_VERSION"
}

main() {
  # Tests may call this concurrently: one builds, the others wait and reuse.
  exec 9>"$CACHE_DIR/pyenv-$STANDARDWEBHOOKS_PY_VERSION.lock"
  flock 9
  venv_ready || build_venv
  printf '%s\n' "$VENV_PYTHON"
}

main "$@"
