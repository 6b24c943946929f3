#!/usr/bin/env bash
# Node.js packages of the providers' official webhook libraries (@octokit/webhooks-methods
# for GitHub, @shopify/shopify-api for Shopify), for the interop tests of
# e2e/tests/providers (through testkit/providers/sign.mjs), at the versions of
# dev/versions.env.
#
#   npmenv.sh   install them under $CACHE_DIR once (idempotent) and print the path of
#               the node_modules directory on stdout (everything else goes to stderr)
#
# Node.js and npm come from Debian when missing. @shopify/shopify-api declares Node 22
# or later; what the tests use of it (its HMAC function and header names) runs on 20.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
  "@octokit/webhooks-methods@$OCTOKIT_WEBHOOKS_METHODS_NPM_VERSION"
  "@shopify/shopify-api@$SHOPIFY_API_NPM_VERSION"
)
NPM_DIR="$CACHE_DIR/npmenv-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-12)"
READY_MARKER="$NPM_DIR/.hookline-ready"

packages_ready() {
  [ -f "$READY_MARKER" ] &&
    (cd "$NPM_DIR" && node --input-type=module -e '
      await import("@octokit/webhooks-methods");
      await import("@shopify/shopify-api/runtime");
    ') >/dev/null 2>&1
}

install_packages() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  log "installing ${PACKAGES[*]} into $NPM_DIR ($(node --version))"
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && printf '{"private": true}\n' >package.json &&
    npm install --no-audit --no-fund --loglevel=error --save-exact "${PACKAGES[@]}" >&2) ||
    die "npm could not install ${PACKAGES[*]} into $NPM_DIR"
  touch "$READY_MARKER"
  packages_ready || die "$NPM_DIR was built but node cannot import ${PACKAGES[*]}"
}

main() {
  exec 9>"$NPM_DIR.lock"
  flock 9
  packages_ready || install_packages
  printf '%s\n' "$NPM_DIR/node_modules"
}

main "$@"
