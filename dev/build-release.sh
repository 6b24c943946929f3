#!/usr/bin/env bash
# The release build of Hookline's binaries: the command the Dockerfile runs, and the one
# CI and `make bench` run, so the image build is checked even where no Docker engine is.
# zlib is linked statically, so the binaries need nothing beyond glibc (distroless/cc).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LIBZ_SYS_STATIC=1
cargo build --release --locked --bins "$@"
