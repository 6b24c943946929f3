# One image per binary: DOCKER_BUILDKIT=1 docker build --target operator -t hookline-operator:0.1.0 .
# (targets: operator, handler, consumer, emitter, console; `make kind-up` builds all five).
#
# Build arguments, so the same recipe serves both modes of `make kind-up`:
#   RUST_IMAGE     the image that compiles (connected mode)
#   RUNTIME_IMAGE  what the binaries run on: distroless glibc by default; the offline mode
#                  gives its Debian base (dev/kind/images.sh)
#   BINARIES       "compiled" (cargo runs in RUST_IMAGE, the default) or "prebuilt": the
#                  context is then a folder holding prebuilt/hookline-<binary>, the release
#                  binaries dev/build-release.sh made on the host (no Rust image offline)
# BuildKit builds only the stages a target needs, so the unused one is never pulled.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARIES=compiled

FROM ${RUST_IMAGE} AS compiled
WORKDIR /src

# Dependencies first, in a layer of their own: every workspace member's manifest with empty
# sources, so a change to Hookline's code does not rebuild every crate it depends on.
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY runtime/Cargo.toml runtime/
COPY store/Cargo.toml store/
COPY api/Cargo.toml api/
COPY operator/Cargo.toml operator/
COPY handler/Cargo.toml handler/
COPY consumer/Cargo.toml consumer/
COPY emitter/Cargo.toml emitter/
COPY console/Cargo.toml console/
COPY testkit/Cargo.toml testkit/
COPY bench/Cargo.toml bench/
COPY e2e/Cargo.toml e2e/
COPY dev/build-release.sh dev/
RUN for crate in core runtime store api operator handler consumer emitter console testkit bench e2e; do \
      mkdir -p "$crate/src/bin" && : > "$crate/src/lib.rs"; \
    done \
 && for crate in operator handler consumer emitter console bench; do \
      echo 'fn main() {}' > "$crate/src/main.rs"; \
    done \
 && echo 'fn main() {}' > e2e/src/bin/chaos.rs \
 && dev/build-release.sh -p hookline-operator -p hookline-handler -p hookline-consumer -p hookline-emitter -p hookline-console

# Then Hookline itself. Touch the sources: their copied mtimes may be older than the stubs'.
COPY . .
RUN find core runtime store api operator handler consumer emitter console testkit bench e2e -name '*.rs' -exec touch {} + \
 && dev/build-release.sh -p hookline-operator -p hookline-handler -p hookline-consumer -p hookline-emitter -p hookline-console \
 && mkdir -p /out \
 && cp target/release/hookline-operator target/release/hookline-handler \
      target/release/hookline-consumer target/release/hookline-emitter \
      target/release/hookline-console /out/

FROM scratch AS prebuilt
COPY prebuilt/ /out/

FROM ${BINARIES} AS binaries

# glibc and libgcc only (distroless), no shell, user 65532.
FROM ${RUNTIME_IMAGE} AS runtime
USER 65532:65532

FROM runtime AS operator
COPY --from=binaries /out/hookline-operator /usr/local/bin/hookline-operator
ENTRYPOINT ["/usr/local/bin/hookline-operator"]
CMD ["run"]

FROM runtime AS handler
COPY --from=binaries /out/hookline-handler /usr/local/bin/hookline-handler
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookline-handler"]

FROM runtime AS consumer
COPY --from=binaries /out/hookline-consumer /usr/local/bin/hookline-consumer
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/hookline-consumer"]
CMD ["run"]

FROM runtime AS emitter
COPY --from=binaries /out/hookline-emitter /usr/local/bin/hookline-emitter
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/hookline-emitter"]

FROM runtime AS console
COPY --from=binaries /out/hookline-console /usr/local/bin/hookline-console
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/hookline-console"]
