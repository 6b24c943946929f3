#!/usr/bin/env bash
# Fails when a crate declares a dependency it does not use: cargo-machete (pinned in
# dev/versions.env, built from crates.io once into the cache) over every crate below the
# repository: Hookline's workspace and the development tools' (dev/).
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MACHETE_ROOT="$CACHE_DIR/cargo-machete-$CARGO_MACHETE_VERSION"
MACHETE="$MACHETE_ROOT/bin/cargo-machete"

if [ ! -x "$MACHETE" ]; then
  log "building cargo-machete $CARGO_MACHETE_VERSION into $MACHETE_ROOT (once)"
  cargo install --quiet --locked --version "$CARGO_MACHETE_VERSION" --root "$MACHETE_ROOT" cargo-machete ||
    die "cargo install cargo-machete $CARGO_MACHETE_VERSION failed"
fi
cd "$REPO_ROOT" || exit 1
"$MACHETE" || die "unused dependencies (above): remove them, or list a false positive under [package.metadata.cargo-machete] ignored"
log "no unused dependencies"
