#!/usr/bin/env bash
# Every image of the offline kind mode, built locally into the engine of dev/kind/engine.sh
# (which must be running: this script uses DOCKER_HOST from its `env`).
#
#   dev/kind/images.sh base       the Debian base image (debootstrap, imported)
#   dev/kind/images.sh cluster    the kind node image with the cluster's own images preloaded
#   dev/kind/images.sh workloads  Kafka, PostgreSQL and Traefik for the chart, and kube-router
#                                 (the NetworkPolicy engine)
#   dev/kind/images.sh hookline   Hookline's four images from the top-level Dockerfile, fed
#                                 the release binaries of dev/build-release.sh
#   dev/kind/images.sh all        all of them
#   dev/kind/images.sh names      print the images `kind load` puts on the nodes
#   dev/kind/images.sh hookline-tag  print the tag of Hookline's images
#
# An image is rebuilt when what it is built from changes: the key of each is a hash of its
# inputs, kept as a label.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
eval "$(bash "$DEV_DIR/kind/engine.sh" env)"

KIND_DIR="$CACHE_DIR/kind"
CONTEXT="$KIND_DIR/context"
DOCKER=(/usr/bin/docker)
TOOLS=(bash "$DEV_DIR/kind/tools.sh")
KUBE_BIN_DIR="$CACHE_DIR/kube/$KUBERNETES_VERSION/bin"
KUBE_NODE_BIN_DIR="$CACHE_DIR/kube/$KUBERNETES_VERSION/node-bin"
KAFKA_LIBS="$CACHE_DIR/kafka/$KAFKA_VERSION/libs"
REPO=hookline-kind
POSTGRES_TAG=$POSTGRES_MAJOR

BASE_IMAGE="$REPO/debian:$DEBIAN_SUITE"
NODE_IMAGE="$REPO/node:$KUBERNETES_VERSION"
KAFKA_IMAGE="$REPO/kafka:$KAFKA_VERSION"
POSTGRES_IMAGE="$REPO/postgres:$POSTGRES_TAG"
TRAEFIK_IMAGE="$REPO/traefik:$TRAEFIK_VERSION"
KUBE_ROUTER_IMAGE="$REPO/kube-router:$KUBE_ROUTER_VERSION"
HOOKLINE_BINARIES=(operator handler consumer emitter console)

# The names kubeadm asks for under the image repository hookline-kind (see offline-config.yaml).
cluster_images() {
  echo "$REPO/kube-apiserver:$KUBERNETES_VERSION"
  echo "$REPO/kube-controller-manager:$KUBERNETES_VERSION"
  echo "$REPO/kube-scheduler:$KUBERNETES_VERSION"
  echo "$REPO/kube-proxy:$KUBERNETES_VERSION"
  echo "$REPO/etcd:$ETCD_NODE_VERSION"
  echo "$REPO/coredns:$COREDNS_VERSION"
  echo "$REPO/pause:$PAUSE_VERSION"
  echo "$REPO/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION"
  echo "$BASE_IMAGE"
}

workload_images() {
  echo "$KAFKA_IMAGE"
  echo "$POSTGRES_IMAGE"
  echo "$TRAEFIK_IMAGE"
  echo "$KUBE_ROUTER_IMAGE"
  for b in "${HOOKLINE_BINARIES[@]}"; do echo "hookline-$b:$(hookline_tag)"; done
}

# The tag of Hookline's images: a hash of the release binaries and the Dockerfile, so that a
# new build is a new tag and `helm upgrade` rolls the pods (the nodes never pull).
hookline_tag() {
  local b files=("$REPO_ROOT/Dockerfile")
  for b in "${HOOKLINE_BINARIES[@]}"; do files+=("$REPO_ROOT/target/release/hookline-$b"); done
  echo "kind-$(inputs_key "${files[@]}" | cut -c1-12)"
}

image_key() { "${DOCKER[@]}" image inspect --format '{{ index .Config.Labels "io.hookline.key" }}' "$1" 2>/dev/null || true; }

# Hash of files and words: what an image is built from.
inputs_key() {
  local item
  for item in "$@"; do
    if [ -d "$item" ]; then
      (cd "$item" && find . -type f -o -type l | LC_ALL=C sort | xargs -r sha256sum)
    elif [ -f "$item" ]; then
      sha256sum <"$item"
    else
      echo "$item"
    fi
  done | sha256sum | cut -d' ' -f1
}

# The Debian mirror apt uses on this machine (debootstrap takes the same).
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 ~ /^[a-z]+$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  echo "${HOOKLINE_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

build_base() {
  local key rootfs mirror
  mirror=$(debian_mirror)
  key=$(inputs_key "$DEBIAN_SUITE" minbase ca-certificates)
  [ "$(image_key "$BASE_IMAGE")" = "$key" ] && { log "$BASE_IMAGE is up to date"; return 0; }
  command -v debootstrap >/dev/null || apt_install debootstrap
  rootfs="$KIND_DIR/rootfs/$DEBIAN_SUITE"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  log "debootstrap $DEBIAN_SUITE from $mirror (about a minute)"
  debootstrap --variant=minbase --include=ca-certificates "$DEBIAN_SUITE" "$rootfs" "$mirror" \
    >"$KIND_DIR/debootstrap.log" 2>&1 || {
    tail -n 20 "$KIND_DIR/debootstrap.log" >&2
    die "debootstrap failed (log $KIND_DIR/debootstrap.log)"
  }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${DOCKER[@]}" import --change "LABEL io.hookline.key=$key" - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "imported $BASE_IMAGE"
}

# Lays out the build context of dev/kind/Dockerfile: binaries, kind's node files, Kafka's jars.
stage_context() {
  local kind_src tool
  rm -rf "$CONTEXT"
  mkdir -p "$CONTEXT/bin" "$CONTEXT/kind-node/manifests"
  cp "$DEV_DIR/kind/Dockerfile" "$CONTEXT/"
  cp -R "$DEV_DIR/kind/images" "$CONTEXT/images"
  for tool in kube-apiserver kube-controller-manager kubectl; do cp -l "$KUBE_BIN_DIR/$tool" "$CONTEXT/bin/" 2>/dev/null || cp "$KUBE_BIN_DIR/$tool" "$CONTEXT/bin/"; done
  for tool in kubelet kubeadm kube-proxy kube-scheduler; do cp -l "$KUBE_NODE_BIN_DIR/$tool" "$CONTEXT/bin/" 2>/dev/null || cp "$KUBE_NODE_BIN_DIR/$tool" "$CONTEXT/bin/"; done
  for tool in etcd coredns local-path-provisioner traefik kube-router pause; do cp "$("${TOOLS[@]}" path "$tool")" "$CONTEXT/bin/"; done
  kind_src=$(module_dir sigs.k8s.io/kind "$KIND_VERSION")/images/base/files
  [ -d "$kind_src" ] || die "no images/base/files in sigs.k8s.io/kind@$KIND_VERSION"
  cp -R "$kind_src" "$CONTEXT/kind"
  chmod -R u+w "$CONTEXT/kind"
  echo "$KUBERNETES_VERSION" >"$CONTEXT/kind-node/version"
  sed -e "s/LOCAL_PATH_PROVISIONER_VERSION/$LOCAL_PATH_PROVISIONER_VERSION/" -e "s/DEBIAN_SUITE/$DEBIAN_SUITE/" \
    "$DEV_DIR/kind/manifests/storage.yaml" >"$CONTEXT/kind-node/manifests/default-storage.yaml"
  cp -R "$KAFKA_LIBS" "$CONTEXT/kafka-libs"
}

# Usage: build_target TARGET IMAGE [BINARY]: dev/kind/Dockerfile's TARGET as IMAGE; BINARY
# names the file of bin/ a one-binary target takes.
build_target() {
  local target=$1 image=$2 binary=${3:-} key args=()
  key=$(inputs_key "$CONTEXT/Dockerfile" "$CONTEXT/images" "$target" "$(image_key "$BASE_IMAGE")")
  case "$target" in
    node) key=$(inputs_key "$key" "$CONTEXT/kind" "$CONTEXT/kind-node" "$CONTEXT/bin/kubelet" "$CONTEXT/bin/kubeadm" "$CONTEXT/bin/kubectl") ;;
    kafka) key=$(inputs_key "$key" "$CONTEXT/kafka-libs") ;;
    postgres) ;;
    *) key=$(inputs_key "$key" "$CONTEXT/bin/${binary:-$target}") ;;
  esac
  [ -n "$binary" ] && args=(--build-arg "BINARY=$binary")
  if [ "$(image_key "$image")" = "$key" ]; then
    log "$image is up to date"
    return 0
  fi
  log "building $image (dev/kind/Dockerfile, target $target)"
  DOCKER_BUILDKIT=1 "${DOCKER[@]}" build --quiet --network host --target "$target" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "${args[@]}" --label "io.hookline.key=$key" \
    -t "$image" "$CONTEXT" >/dev/null || die "building $image failed"
}

build_cluster() {
  local key ids preload
  build_target binary "$REPO/kube-apiserver:$KUBERNETES_VERSION" kube-apiserver
  build_target binary "$REPO/kube-controller-manager:$KUBERNETES_VERSION" kube-controller-manager
  build_target binary "$REPO/kube-scheduler:$KUBERNETES_VERSION" kube-scheduler
  build_target binary "$REPO/etcd:$ETCD_NODE_VERSION" etcd
  build_target binary "$REPO/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION" local-path-provisioner
  build_target kube-proxy "$REPO/kube-proxy:$KUBERNETES_VERSION"
  build_target coredns "$REPO/coredns:$COREDNS_VERSION"
  build_target pause "$REPO/pause:$PAUSE_VERSION"
  build_target node "$REPO/node-base:$KUBERNETES_VERSION"

  # The node image: node-base with the cluster's images in its containerd, as kind's own node
  # images carry them (kubeadm finds them there and pulls nothing).
  mapfile -t preload < <(cluster_images)
  ids=$(for image in "$REPO/node-base:$KUBERNETES_VERSION" "${preload[@]}"; do "${DOCKER[@]}" image inspect --format '{{.Id}}' "$image"; done)
  key=$(inputs_key "$ids")
  if [ "$(image_key "$NODE_IMAGE")" = "$key" ]; then
    log "$NODE_IMAGE is up to date"
    return 0
  fi
  log "building $NODE_IMAGE: preloading ${#preload[@]} images into its containerd"
  local builder=hookline-kind-node-build
  "${DOCKER[@]}" rm -f "$builder" >/dev/null 2>&1 || true
  "${DOCKER[@]}" run -d --name "$builder" --privileged --entrypoint sleep \
    "$REPO/node-base:$KUBERNETES_VERSION" infinity >/dev/null
  # shellcheck disable=SC2016 # the script runs in the container
  "${DOCKER[@]}" exec "$builder" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &
    for _ in $(seq 60); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 0.5; done
    cat /tmp/containerd.log; exit 1' || die "containerd did not start in the node build container"
  "${DOCKER[@]}" save "${preload[@]}" |
    "${DOCKER[@]}" exec -i "$builder" ctr --namespace=k8s.io images import \
      --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null ||
    die "importing the cluster images into the node failed"
  # shellcheck disable=SC2016 # the script runs in the container
  "${DOCKER[@]}" exec "$builder" bash -c 'pkill containerd; for _ in $(seq 40); do pgrep containerd >/dev/null || exit 0; sleep 0.25; done; exit 1'
  "${DOCKER[@]}" commit \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    --change "LABEL io.hookline.key=$key" "$builder" "$NODE_IMAGE" >/dev/null
  "${DOCKER[@]}" rm -f "$builder" >/dev/null
  log "built $NODE_IMAGE"
}

build_workloads() {
  build_target kafka "$KAFKA_IMAGE"
  build_target postgres "$POSTGRES_IMAGE"
  build_target traefik "$TRAEFIK_IMAGE"
  build_target kube-router "$KUBE_ROUTER_IMAGE"
}

# Hookline's images: the top-level Dockerfile with the Debian base as its runtime and the host's
# release binaries (no Rust image can be had offline) instead of its compiling stage.
build_hookline() {
  local ctx="$KIND_DIR/hookline-context" b key tag
  log "release build of Hookline's binaries (dev/build-release.sh)"
  (cd "$REPO_ROOT" && dev/build-release.sh -p hookline-operator -p hookline-handler -p hookline-consumer -p hookline-emitter -p hookline-console) ||
    die "the release build failed"
  rm -rf "$ctx"
  mkdir -p "$ctx/prebuilt"
  for b in "${HOOKLINE_BINARIES[@]}"; do
    cp "$REPO_ROOT/target/release/hookline-$b" "$ctx/prebuilt/"
  done
  tag=$(hookline_tag)
  for b in "${HOOKLINE_BINARIES[@]}"; do
    key=$(inputs_key "$REPO_ROOT/Dockerfile" "$ctx/prebuilt/hookline-$b" "$(image_key "$BASE_IMAGE")")
    if [ "$(image_key "hookline-$b:$tag")" = "$key" ]; then
      log "hookline-$b:$tag is up to date"
      continue
    fi
    log "building hookline-$b:$tag (Dockerfile, target $b, prebuilt binaries)"
    DOCKER_BUILDKIT=1 "${DOCKER[@]}" build --quiet --target "$b" \
      --build-arg "RUNTIME_IMAGE=$BASE_IMAGE" --build-arg BINARIES=prebuilt \
      --label "io.hookline.key=$key" -f "$REPO_ROOT/Dockerfile" -t "hookline-$b:$tag" "$ctx" >/dev/null ||
      die "building hookline-$b:$tag failed"
  done
}

case "${1:-}" in
  base) build_base ;;
  cluster) build_base && stage_context && build_cluster ;;
  workloads) build_base && stage_context && build_workloads ;;
  hookline) build_base && build_hookline ;;
  all) build_base && stage_context && build_cluster && build_workloads && build_hookline ;;
  names) workload_images ;;
  hookline-tag) hookline_tag ;;
  node-image) echo "$NODE_IMAGE" ;;
  *)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
