#!/usr/bin/env bash
# Supply-chain checks that need no GitHub (docs/SUPPLY-CHAIN.md).
#   deny        cargo-deny's licenses, bans and sources checks against deny.toml (make lint),
#               over Hookline's workspace and the development tools' (dev/Cargo.lock)
#   image-user  every image stage of the Dockerfile that runs something has a non-root USER (make lint)
#   sbom        one CycloneDX JSON per shipped binary in target/sbom/, checked (make build)
#   sbom-check  only the check of target/sbom/
# The tools are pinned in dev/versions.env and built from crates.io once into the cache.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The binaries the images ship (the Dockerfile's targets).
SHIPPED=(hookline-operator hookline-handler hookline-consumer hookline-emitter hookline-console)
SBOM_DIR="$REPO_ROOT/target/sbom"

# Usage: cargo_tool CRATE VERSION; prints the binary's path, building it first if missing.
cargo_tool() {
  local crate=$1 version=$2 root bin start
  root="$CACHE_DIR/$crate-$version"
  bin="$root/bin/$crate"
  if [ ! -x "$bin" ]; then
    start=$SECONDS
    log "building $crate $version into $root (once)"
    nice -n 10 cargo install --quiet --locked --version "$version" --root "$root" "$crate" >&2 ||
      die "cargo install $crate $version failed"
    log "built $crate $version in $((SECONDS - start))s"
  fi
  echo "$bin"
}

check_deny() {
  local deny
  deny=$(cargo_tool cargo-deny "$CARGO_DENY_VERSION")
  cd "$REPO_ROOT" || exit 1
  # The one network step, through cargo: every platform's crate sources for cargo metadata
  # (clippy fetched only the host's). The check itself then runs --frozen.
  cargo fetch --locked --quiet || die "cargo fetch --locked failed"
  (cd dev && cargo fetch --locked --quiet) || die "cargo fetch --locked in dev/ failed"
  # --frozen: cargo metadata offline and locked, no advisory database, no std-replacement
  # data. A skip entry that matches nothing is an error, so deny.toml lists today's duplicates.
  "$deny" deny --frozen check licenses bans sources \
    --deny unmatched-skip --deny unnecessary-skip ||
    die "cargo deny (above): fix the dependency, or change deny.toml with a reason"
  # The development tools (dev/, a workspace of their own) under the same policy. deny.toml's
  # skip list is Hookline's duplicates: entries their smaller graph does not meet are fine.
  "$deny" deny --frozen --manifest-path dev/Cargo.toml --config deny.toml check licenses bans sources \
    --allow unmatched-skip --allow unnecessary-skip ||
    die "cargo deny over dev/ (above): fix the dependency, or change deny.toml with a reason"
  log "licences, duplicate versions and sources as deny.toml allows (Hookline's workspace and dev/)"
}

# A stage's effective USER is its last USER, else its parent stage's; a stage whose parent
# is an outside image and which sets no USER runs as that image's user: not accepted. Only
# stages that run something (an ENTRYPOINT or CMD, own or inherited) are images people run.
check_image_user() {
  local dockerfile=${1:-$REPO_ROOT/Dockerfile}
  [ -f "$dockerfile" ] || die "no Dockerfile at $dockerfile"
  python3 - "$dockerfile" <<'EOF' || die "$dockerfile: an image stage would run as root (above)"
import re, sys

path = sys.argv[1]
text = re.sub(r"\\\n", " ", open(path).read())
stages = []  # dicts: name, parent, user, runs
for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        args = [a for a in rest.split() if not a.startswith("--")]
        name = args[2] if len(args) >= 3 and args[1].lower() == "as" else None
        stages.append({"name": name, "parent": args[0], "user": None, "runs": False})
    elif stages and word == "USER":
        stages[-1]["user"] = rest.strip()
    elif stages and word in ("ENTRYPOINT", "CMD"):
        stages[-1]["runs"] = True

by_name = {s["name"]: s for s in stages if s["name"]}

def effective(stage, field):
    seen = set()
    while stage is not None and id(stage) not in seen:
        seen.add(id(stage))
        if stage[field]:
            return stage[field]
        stage = by_name.get(stage["parent"])
    return None

def root(user):
    uid = user.split(":")[0].strip()
    return uid in ("", "0", "root") or uid.startswith("$")

images = [s for s in stages if effective(s, "runs")]
bad = [s for s in images if effective(s, "user") is None or root(effective(s, "user"))]
for s in bad:
    print(f"{path}: stage {s['name'] or s['parent']} runs as {effective(s, 'user') or 'its base image user'}"
          ", not a fixed non-root USER", file=sys.stderr)
if not images:
    print(f"{path}: no stage with an ENTRYPOINT or CMD: nothing checked", file=sys.stderr)
    sys.exit(1)
if bad:
    sys.exit(1)
print(", ".join(f"{s['name']} ({effective(s, 'user')})" for s in images))
EOF
}

# cargo-cyclonedx writes next to each member's Cargo.toml (removed afterwards), from the
# workspace's resolve, which holds crates no build compiles (sqlx's MySQL and SQLite
# drivers). Each SBOM is cut to what cargo tree says the Dockerfile's build of the five
# binaries compiles: normal and build dependencies, features unified as in that build.
member_sboms() { find "$REPO_ROOT" -maxdepth 3 -path "$REPO_ROOT/target" -prune -o -name "${1:-*_bin.cdx.json}" -print; }
remove_member_sboms() { member_sboms | xargs -r rm -f; rm -f "${TREE:-}"; }

make_sbom() {
  local cdx src packages=()
  cdx=$(cargo_tool cargo-cyclonedx "$CARGO_CYCLONEDX_VERSION")
  cd "$REPO_ROOT" || exit 1
  cargo metadata --locked --format-version 1 >/dev/null || die "Cargo.lock is not in sync with the manifests"
  TREE=$(mktemp)
  trap remove_member_sboms EXIT
  rm -rf "$SBOM_DIR"
  mkdir -p "$SBOM_DIR"
  # The host's target, as the release build; the tool leaves dev-dependencies out.
  CARGO_NET_OFFLINE=true "$cdx" cyclonedx --format json --spec-version 1.5 --describe binaries -q ||
    die "cargo cyclonedx failed"
  for bin in "${SHIPPED[@]}"; do packages+=(-p "$bin"); done
  cargo tree --offline --locked "${packages[@]}" -e normal,build --no-dedupe --prefix depth --format '{p}' >"$TREE" ||
    die "cargo tree failed"
  for bin in "${SHIPPED[@]}"; do
    src=$(member_sboms "${bin}_bin.cdx.json")
    [ -f "$src" ] || die "cargo cyclonedx wrote no SBOM for $bin"
    python3 - "$TREE" "$bin" "$src" "$SBOM_DIR/$bin.cdx.json" <<'EOF' || die "cutting the SBOM of $bin failed (above)"
import json, re, sys
tree, binary, src, dst = sys.argv[1:]
built, root = set(), None
for line in open(tree):
    m = re.match(r"^(\d+)(\S+) v(\S+)", line)
    if m:
        depth, name, version = m.groups()
        if depth == "0":
            root = name
        if root == binary and name != binary:
            built.add((name, version))
bom = json.load(open(src))
keep = [c for c in bom["components"] if (c["name"], c["version"]) in built]
missing = built - {(c["name"], c["version"]) for c in keep}
if not built or missing:
    sys.exit(f"{src}: crates the build compiles but the SBOM lacks: {sorted(missing) or 'all'}")
refs = {c["bom-ref"] for c in keep} | {bom["metadata"]["component"]["bom-ref"]}
bom["components"] = keep
bom["dependencies"] = [
    dict(d, dependsOn=[r for r in d.get("dependsOn", []) if r in refs])
    for d in bom.get("dependencies", []) if d["ref"] in refs
]
json.dump(bom, open(dst, "w"), indent=2)
EOF
  done
  check_sbom "${SHIPPED[@]}"
}

# Each SBOM parses, is CycloneDX, describes its binary and lists crates with versions.
check_sbom() {
  python3 - "$SBOM_DIR" "$@" <<'EOF' || die "SBOM check failed (above)"
import json, sys
folder, bins = sys.argv[1], sys.argv[2:]
for b in bins:
    path = f"{folder}/{b}.cdx.json"
    try:
        bom = json.load(open(path))
    except (OSError, ValueError) as e:
        sys.exit(f"{path}: {e}")
    comps = bom.get("components") or []
    described = bom.get("metadata", {}).get("component", {}).get("name")
    problems = []
    if bom.get("bomFormat") != "CycloneDX":
        problems.append("bomFormat is not CycloneDX")
    if described != b:
        problems.append(f"describes {described!r}")
    if not comps:
        problems.append("no components")
    if any(not c.get("name") or not c.get("version") or not c.get("purl", "").startswith("pkg:cargo/") for c in comps):
        problems.append("a component without name, version or cargo purl")
    if problems:
        sys.exit(f"{path}: " + "; ".join(problems))
    print(f"{path}: {len(comps)} crates", file=sys.stderr)
EOF
  log "SBOMs in ${SBOM_DIR#"$REPO_ROOT"/}"
}

case "${1:-}" in
  deny) check_deny ;;
  image-user)
    shift
    stages=$(check_image_user "$@")
    log "image stages run as non-root: $stages"
    ;;
  sbom) make_sbom ;;
  sbom-check) check_sbom "${SHIPPED[@]}" ;;
  *) die "usage: $0 deny | image-user [DOCKERFILE] | sbom | sbom-check" ;;
esac
