# syntax=docker/dockerfile:1
# One image per binary: docker build --target operator -t hookline-operator:0.1.0 .
# (targets: operator, handler, consumer, emitter; `make kind-up` builds all four).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer of their own: the manifests with empty crate sources,
# so a change to Hookline's code does not rebuild every crate it depends on.
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY operator/Cargo.toml operator/
COPY handler/Cargo.toml handler/
COPY consumer/Cargo.toml consumer/
COPY emitter/Cargo.toml emitter/
COPY testkit/Cargo.toml testkit/
COPY bench/Cargo.toml bench/
COPY dev/build-release.sh dev/
RUN for crate in core operator handler consumer emitter testkit bench; do \
      mkdir -p "$crate/src" && : > "$crate/src/lib.rs"; \
    done \
 && for crate in operator handler consumer emitter bench; do \
      echo 'fn main() {}' > "$crate/src/main.rs"; \
    done \
 && dev/build-release.sh -p hookline-operator -p hookline-handler -p hookline-consumer -p hookline-emitter

# Then Hookline itself. Touch the sources: their copied mtimes may be older than the stubs'.
COPY . .
RUN find core operator handler consumer emitter testkit bench -name '*.rs' -exec touch {} + \
 && dev/build-release.sh -p hookline-operator -p hookline-handler -p hookline-consumer -p hookline-emitter

# glibc and libgcc only, no shell, user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532

FROM runtime AS operator
COPY --from=build /src/target/release/hookline-operator /usr/local/bin/hookline-operator
ENTRYPOINT ["/usr/local/bin/hookline-operator"]
CMD ["run"]

FROM runtime AS handler
COPY --from=build /src/target/release/hookline-handler /usr/local/bin/hookline-handler
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookline-handler"]

FROM runtime AS consumer
COPY --from=build /src/target/release/hookline-consumer /usr/local/bin/hookline-consumer
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/hookline-consumer"]
CMD ["run"]

FROM runtime AS emitter
COPY --from=build /src/target/release/hookline-emitter /usr/local/bin/hookline-emitter
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/hookline-emitter"]
