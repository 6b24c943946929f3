#!/usr/bin/env bash
# The console's page script parses (node --check): it has no build step that would
# catch a syntax error before a browser does. Part of `make lint`.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v node >/dev/null || apt_install nodejs
node --check "$REPO_ROOT/console/assets/app.js"
