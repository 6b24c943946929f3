#!/usr/bin/env bash
# The release build of Hookline's binaries: the command the Dockerfile runs, and the one
# CI and `make bench` run, so the image build is checked even where no Docker engine is.
# zlib is linked statically, so the binaries need nothing beyond glibc (distroless/cc).
# Arguments go to Hookline's build (-p hookline-handler: that binary only). Without any,
# the development tools' own workspace (dev/Cargo.toml: dev-pod-runner, which make run
# needs) is built too, into the same target/release.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LIBZ_SYS_STATIC=1
cargo build --release --locked --bins "$@"
if [ $# -eq 0 ]; then
  # In dev/, whose .cargo/config.toml sets the repository's target/ as the target dir.
  (cd dev && cargo build --release --locked --bins)
fi
